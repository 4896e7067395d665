"""Fine-tuning and linear probes: the command line, the model's freezing and lr decay,
label budgets and the task splits, on real MiraBest (and Griese, FRDEEP) sources."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from pretrain import config
from pretrain.__main__ import main
from pretrain.data.bundle import build_bundle, load_bundle
from pretrain.evaluate import mirabest_confident_split
from pretrain.finetune import Classifier, FinetuneSettings, make_optimizer, parameter_groups, train_classifier
from pretrain.models.backbone import load_encoder
from pretrain.models.resnet import ResNet18Encoder, resnet18_encoder
from pretrain.tasks import TaskError, get_task, label_budget
from tests.finetune_data import random_encoder_weights, small_mirabest_bundle

BLOCKS = ResNet18Encoder.BLOCKS


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory, mirabest_dir):
    return small_mirabest_bundle(tmp_path_factory, mirabest_dir)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return random_encoder_weights(tmp_path_factory)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, bundle_path, weights):
    """One real run from the command line: last block + head, 20 labels, 2 epochs."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("cli") / "run"
    code = main(
        [
            "finetune",
            "--weights",
            str(weights),
            "--bundle",
            str(bundle_path),
            "--out",
            str(out),
            "--labels",
            "20",
            "--depth",
            "1",
            "--epochs",
            "2",
            "--seed",
            "3",
            "--no-progress",
        ]
    )
    assert code == 0
    return out


@pytest.mark.slow
def test_cli_run_writes_every_file_with_sane_content(cli_run, bundle_path):
    bundle = load_bundle(bundle_path)
    catalogue = bundle.catalogue
    for name in (
        "config.json",
        "status.json",
        "progress.jsonl",
        "metrics.json",
        "predictions.parquet",
        "encoder.safetensors",
        "head.safetensors",
    ):
        assert (cli_run / name).is_file(), name

    status = json.loads((cli_run / "status.json").read_text())
    assert status["state"] == "finished" and status["error"] is None

    progress = [json.loads(line) for line in (cli_run / "progress.jsonl").read_text().splitlines()]
    assert [p["epoch"] for p in progress] == [1, 2]
    assert all(np.isfinite(p["loss"]) and 0 <= p["train_acc"] <= 1 and 0 <= p["test_acc"] <= 1 for p in progress)

    predictions = pd.read_parquet(cli_run / "predictions.parquet")
    assert list(predictions["source_id"]) == list(catalogue["source_id"])  # every source, bundle order
    prob = predictions["prob_FRII"].to_numpy()
    assert np.all((prob >= 0) & (prob <= 1))
    assert ((prob > 0.5) == (predictions["predicted"] == "FRII")).all()
    labelled = predictions["label"].notna()
    assert (
        predictions.loc[labelled, "correct"]
        == (predictions.loc[labelled, "predicted"] == predictions.loc[labelled, "label"])
    ).all()
    assert predictions.loc[~labelled, "correct"].isna().all()
    counts = predictions["split"].value_counts()
    confident = catalogue["confident"].fillna(False).astype(bool)
    fr = catalogue["label"].isin(["FRI", "FRII"])
    assert counts["train"] == 20
    assert counts["test"] == config.MIRABEST_TEST_SIZE
    assert counts["ood"] == int((fr & ~confident).sum())
    assert counts["unlabelled"] == int((catalogue["label"] == "hybrid").sum())

    metrics = json.loads((cli_run / "metrics.json").read_text())
    test = predictions[predictions["split"] == "test"]
    ood = predictions[predictions["split"] == "ood"]
    assert metrics["test_error"] == pytest.approx(1 - test["correct"].astype(bool).mean())
    assert metrics["ood_error"] == pytest.approx(1 - ood["correct"].astype(bool).mean())
    assert metrics["test_error"] == pytest.approx(progress[-1]["test_error"])  # the last epoch, not the best
    assert (metrics["n_train"], metrics["n_test"], metrics["n_ood"]) == (20, len(test), len(ood))
    assert metrics["device"] == "cpu" and metrics["wall_time_s"] > metrics["train_time_s"] > 0
    assert metrics["bundle_id"] == bundle.bundle_id

    run_config = json.loads((cli_run / "config.json").read_text())
    assert run_config["settings"]["labels"] == 20 and run_config["settings"]["seed"] == 3
    assert run_config["trainable_blocks"] == ["layer4"]


@pytest.mark.slow
def test_cli_run_trains_exactly_the_last_block(cli_run, weights):
    before, after = load_file(str(weights)), load_file(str(cli_run / "encoder.safetensors"))
    assert set(before) == set(after)
    for name in before:
        same = torch.equal(before[name], after[name])
        if name.startswith("layer4.") and before[name].is_floating_point() and "running" not in name:
            assert not same, f"{name} should have been trained"
        if not name.startswith("layer4."):
            assert same, f"{name} is frozen and must not change"
    load_encoder(cli_run / "encoder.safetensors")  # the run's encoder is a usable backbone
    head = load_file(str(cli_run / "head.safetensors"))
    assert head["1.weight"].shape == (2, 512)


def test_split_is_the_documented_one_and_test_sources_never_train(cli_run, bundle_path):
    catalogue = load_bundle(bundle_path).catalogue
    data = get_task("mirabest-fr").data(catalogue)
    train, test = mirabest_confident_split(catalogue, seed=config.FINETUNE_SPLIT_SEED)
    assert np.array_equal(data.test, test) and np.array_equal(data.train, train)
    assert not set(data.train) & set(data.test)
    predictions = pd.read_parquet(cli_run / "predictions.parquet")
    assert set(predictions.loc[predictions["split"] == "test", "source_id"]) == set(catalogue["source_id"].iloc[test])
    trained = set(predictions.loc[predictions["split"] == "train", "source_id"])
    assert trained <= set(catalogue["source_id"].iloc[train])
    # Out of distribution: the Uncertain FRI/FRII sources, never hybrids.
    ood = catalogue.iloc[data.ood]
    assert (~ood["confident"].astype(bool)).all() and ood["label"].isin(["FRI", "FRII"]).all()


def test_label_budget_is_stratified_and_seeded(bundle_path):
    data = get_task("mirabest-fr").data(load_bundle(bundle_path).catalogue)
    share = np.mean(data.y[data.train] == 1)
    for n in (10, 25):
        rows = label_budget(data, n, seed=1)
        assert len(rows) == n and set(rows) <= set(data.train)
        assert abs(np.sum(data.y[rows] == 1) - share * n) <= 1  # class proportions kept
        assert np.array_equal(rows, label_budget(data, n, seed=1))
    assert not np.array_equal(label_budget(data, 25, seed=1), label_budget(data, 25, seed=2))
    assert np.array_equal(label_budget(data, None, seed=0), data.train)
    assert np.array_equal(label_budget(data, 10_000, seed=0), data.train)
    with pytest.raises(TaskError):
        label_budget(data, 1, seed=0)


def _encoder_state(model):
    return {k: v.clone() for k, v in model.encoder.state_dict().items()}


def test_linear_probe_leaves_the_encoder_unchanged(bundle_path):
    torch.set_num_threads(1)
    bundle = load_bundle(bundle_path)
    data = get_task("mirabest-fr").data(bundle.catalogue)
    torch.manual_seed(0)
    model = Classifier(resnet18_encoder(), depth=0)
    before = _encoder_state(model)
    head_before = model.head[1].weight.clone()
    settings = FinetuneSettings(depth=0, epochs=1, batch_size=16)
    history = train_classifier(
        model, bundle.images, data.y, data.train[:32], data.test[:8], settings, torch.device("cpu")
    )
    assert len(history) == 1
    after = model.encoder.state_dict()
    for name, value in before.items():  # weights and batch-norm running statistics alike
        assert torch.equal(value, after[name]), name
    assert not torch.equal(head_before, model.head[1].weight)  # ... while the head learned


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_depth_unfreezes_the_last_blocks_with_decayed_lr(depth):
    model = Classifier(resnet18_encoder(), depth=depth)
    settings = FinetuneSettings(depth=depth, batch_size=64)
    optimizer, _ = make_optimizer(model, settings, total_steps=10)
    base = settings.base_lr * settings.batch_size / 256
    lrs = {}
    for group in optimizer.param_groups:
        lrs.setdefault(group["name"], set()).add(group["lr"])
    expected = {"head": base}
    for i, name in enumerate(reversed(BLOCKS[-depth:]), start=1):
        expected[name] = base * 0.75**i
    assert {k: v.pop() for k, v in lrs.items()} == pytest.approx(expected)
    trainable = {id(p) for g in optimizer.param_groups for p in g["params"]}
    for name in BLOCKS:
        params = list(getattr(model.encoder, name).parameters())
        unfrozen = name in BLOCKS[-depth:]
        assert all(p.requires_grad == unfrozen for p in params), name
        assert all((id(p) in trainable) == unfrozen for p in params), name


def test_frozen_blocks_stay_put_and_unfrozen_ones_learn():
    torch.manual_seed(0)
    model = Classifier(resnet18_encoder(), depth=2)
    model.head[1].weight.data.normal_()  # a non-zero head, so gradients reach the encoder
    for name, param in model.encoder.named_parameters():
        if name.endswith("bn2.weight"):  # ... and through every residual branch (see finetune_data)
            param.data.fill_(1.0)
    before = _encoder_state(model)
    optimizer, _ = make_optimizer(model, FinetuneSettings(depth=2), total_steps=10)
    model.train()
    x, target = torch.rand(8, 1, 70, 70), torch.tensor([0, 1] * 4)
    loss = torch.nn.functional.cross_entropy(model(x), target)
    loss.backward()
    optimizer.step()
    after = model.encoder.state_dict()
    for name in before:
        block = name.split(".")[0]
        changed = not torch.equal(before[name], after[name])
        if block in ("stem", "layer1", "layer2"):
            assert not changed, name  # frozen, running statistics included
    for block in ("layer3", "layer4"):
        learned = [n for n in before if n.startswith(block + ".") and "running" not in n and "num_batches" not in n]
        assert learned and all(not torch.equal(before[n], after[n]) for n in learned), block


def test_scratch_trains_every_layer_at_one_lr():
    settings = FinetuneSettings(depth=1, scratch=True)
    assert settings.depth == len(BLOCKS) and settings.mode == "scratch"
    model = Classifier(resnet18_encoder(), depth=settings.depth)
    optimizer, _ = make_optimizer(model, settings, total_steps=10)
    assert {g["lr"] for g in optimizer.param_groups} == {settings.base_lr * settings.batch_size / 256}
    assert all(p.requires_grad for p in model.parameters())


def test_parameter_groups_cover_each_trainable_parameter_once():
    model = Classifier(resnet18_encoder(), depth=3)
    groups = parameter_groups(model, 1.0, 0.01, 0.75)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == sum(1 for p in model.parameters() if p.requires_grad)
    assert all(g["weight_decay"] == 0.0 for g in groups for p in g["params"] if p.ndim == 1)


def test_bad_input_gives_a_clear_message(tmp_path, bundle_path, weights, capsys):
    common = ["finetune", "--bundle", str(bundle_path), "--weights", str(weights), "--no-progress"]
    assert main(common + ["--out", str(tmp_path / "a"), "--labels", "1"]) == 2
    assert "--labels 1" in capsys.readouterr().err
    assert main(common + ["--out", str(tmp_path / "b"), "--depth", "9"]) == 2
    assert "--depth 9" in capsys.readouterr().err
    missing = tmp_path / "nowhere.safetensors"
    assert (
        main(
            [
                "finetune",
                "--bundle",
                str(bundle_path),
                "--weights",
                str(missing),
                "--out",
                str(tmp_path / "c"),
                "--no-progress",
            ]
        )
        == 2
    )
    assert "not found" in capsys.readouterr().err
    status = json.loads((tmp_path / "c" / "status.json").read_text())
    assert status["state"] == "failed" and "not found" in status["error"]
    assert (
        main(
            [
                "finetune",
                "--bundle",
                str(tmp_path / "no-bundle"),
                "--weights",
                str(weights),
                "--out",
                str(tmp_path / "d"),
                "--no-progress",
            ]
        )
        == 2
    )
    assert "no such bundle" in capsys.readouterr().err
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "metrics.json").write_text("{}")
    assert main(common + ["--out", str(tmp_path / "e")]) == 2
    assert "another run" in capsys.readouterr().err
    assert (tmp_path / "e" / "metrics.json").read_text() == "{}"  # nothing lost


def test_a_bundle_of_another_data_set_is_refused(tmp_path, griese_dir, weights, capsys):
    images = tmp_path / "griese"
    for label in ("FRII", "Bent"):
        (images / label).mkdir(parents=True)
        for f in sorted((griese_dir / label).glob("*.png"))[:3]:
            (images / label / f.name).symlink_to(f)
    bundle = build_bundle(image_dirs=[images], out=tmp_path / "bundle", progress=False, workers=1)
    code = main(
        [
            "finetune",
            "--task",
            "mirabest-fr",
            "--bundle",
            str(bundle.path),
            "--weights",
            str(weights),
            "--out",
            str(tmp_path / "run"),
            "--no-progress",
        ]
    )
    assert code == 2
    assert "confident" in capsys.readouterr().err.lower()


@pytest.mark.slow
def test_griese_bent_task(tmp_path, griese_dir):
    images = tmp_path / "griese"
    for label in ("FRI", "FRII", "Compact", "Bent"):
        (images / label).mkdir(parents=True)
        for f in sorted((griese_dir / label).glob("*.png"))[:15]:
            (images / label / f.name).symlink_to(f)
    catalogue = build_bundle(image_dirs=[images], out=tmp_path / "bundle", progress=False, workers=1).catalogue
    task = get_task("griese-bent")
    data = task.data(catalogue)
    bent = (catalogue["label"] == "Bent").to_numpy()
    assert np.array_equal(data.y == 1, bent) and (data.y >= 0).all()
    assert not set(data.train) & set(data.test) and len(data.ood) == 0
    assert len(data.test) == pytest.approx(config.GRIESE_TEST_FRACTION * len(catalogue), abs=1)
    assert 0 < bent[data.test].sum() < len(data.test)  # stratified: both classes tested


def test_frdeep_task_trains_on_first_and_tests_on_nvss(tmp_path, frdeep_dir):
    release = pd.read_csv(frdeep_dir / "catalogue.csv")
    folders = {}
    for survey in ("FIRST", "NVSS"):
        folders[survey] = tmp_path / survey
        folders[survey].mkdir()
        for f in sorted((frdeep_dir / survey).glob("*.fits*"))[::40]:
            (folders[survey] / f.name).symlink_to(f)
    task = get_task("frdeep-first-to-nvss")
    bundle = build_bundle(
        fits_dirs=[folders["FIRST"], folders["NVSS"]],
        out=tmp_path / "bundle",
        progress=False,
        workers=1,
        duplicate_radius_arcsec=task.duplicate_radius_arcsec,
    )
    catalogue = bundle.catalogue
    assert set(catalogue["survey"]) == {"FIRST", "NVSS"}
    from pretrain.tasks import frdeep_release_split

    split = frdeep_release_split(catalogue, release)
    assert (split != "").all()  # every image found in the release catalogue
    try:
        data = task.data(catalogue)
    except TaskError:
        pytest.skip("this small subset lacks a class in a split")
    survey = catalogue["survey"].to_numpy()
    assert (survey[data.train] == "FIRST").all() and (split[data.train] == "train").all()
    assert (survey[data.test] == "FIRST").all() and (split[data.test] == "test").all()
    assert (survey[data.ood] == "NVSS").all() and (split[data.ood] == "test").all()
    # The same objects: every NVSS test source has its FIRST image in the test set.
    assert set(catalogue["name"].iloc[data.ood]) == set(catalogue["name"].iloc[data.test])


def test_default_bundle_is_built_once_from_the_task_data(tmp_path, griese_dir, monkeypatch):
    from pretrain.tasks import default_bundle, default_bundle_path

    shared = tmp_path / "shared"
    for label in ("FRI", "Bent"):
        (shared / "griese2023" / "images" / label).mkdir(parents=True)
        for f in sorted((griese_dir / label).glob("*.png"))[:4]:
            (shared / "griese2023" / "images" / label / f.name).symlink_to(f)
    monkeypatch.setattr(config, "SHARED_DATA_DIR", shared)
    calls = []
    path = default_bundle("griese-bent", progress=lambda done, total, message: calls.append((done, total)))
    assert path == default_bundle_path("griese-bent") and path.parent == config.cache_dir() / "bundles"
    bundle = load_bundle(path)
    assert len(bundle) == 8 and set(bundle.catalogue["label"]) == {"FRI", "Bent"}
    assert calls and calls[-1] == (8, 8)  # progress was reported
    manifest = (path / "manifest.json").stat().st_mtime_ns
    assert default_bundle("griese-bent") == path  # reused, not rebuilt
    assert (path / "manifest.json").stat().st_mtime_ns == manifest


def test_a_task_without_its_data_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "SHARED_DATA_DIR", tmp_path / "empty")
    from pretrain.tasks import default_bundle

    with pytest.raises(TaskError, match="griese2023"):
        default_bundle("griese-bent")


# --- The linear probe (depth 0) is evaluate's probe on the app's representation -------------


class _PcaMap:
    """The map step of a space without UMAP, whose numba compilation takes minutes on a busy
    machine: the first two principal components. The probe and its figures never read the map."""

    @staticmethod
    def projector():
        from sklearn.decomposition import PCA

        from pretrain.mapping import MapProjector
        from pretrain.vectors import l2_normalise

        class PcaOnly(MapProjector):
            def fit_transform(self, embeddings):
                x = np.asarray(embeddings, np.float32)
                pca = PCA(n_components=2, random_state=0)
                xy = pca.fit_transform(l2_normalise(x)).astype(np.float32)
                self.n_components_, self.n_neighbors_ = 2, 0
                self.n_samples_, self.input_dim_ = x.shape
                self.explained_variance_ = float(np.sum(pca.explained_variance_ratio_))
                self.pca_components_ = pca.components_.astype(np.float32)
                self.pca_mean_ = pca.mean_.astype(np.float32)
                self.set_reference(x, xy)
                return xy

        return PcaOnly()


@pytest.fixture(scope="module")
def d4_space(tmp_path_factory, bundle_path):
    """The real small MiraBest bundle embedded by the shipped backbone as the app embeds it
    (d4, ``embed_bundle_to_space``), written as a space: what the app shows and `evaluate` reads."""
    from pretrain.space import embed_bundle_to_space

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("d4-space") / "mirabest-small"
    embed_bundle_to_space(bundle_path, out=out, device="cpu", symmetry="d4", projector=_PcaMap.projector())
    return out


@pytest.fixture(scope="module")
def evaluate_seed0_percent(d4_space) -> float:
    """`pretrain evaluate`'s linear-probe test error (%) on the space, seed 0: the task's split."""
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["evaluate", "--space", str(d4_space), "--seeds", "2", "--json"]) == 0
    return json.loads(printed.getvalue())["probe_error_percent"]["per_seed"][0]


@pytest.mark.slow
def test_depth_0_scores_what_evaluate_scores_on_the_same_space(tmp_path, bundle_path, d4_space, evaluate_seed0_percent):
    """The sidebar's probe finds the app's space in the cache, reads its embeddings and fits
    evaluate's probe on the task's split: the same test error, to the source (tolerance 0:
    evaluate prints 0.1 %, one of the 104 test sources is 0.96 %)."""
    from pretrain.space import load_space

    cached = config.cache_dir() / "spaces" / "mirabest"
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.symlink_to(d4_space, target_is_directory=True)
    out = tmp_path / "probe"
    assert main(["finetune", "--bundle", str(bundle_path), "--depth", "0", "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["probe"]["origin"] == "space" and metrics["probe"]["symmetry"] == "d4"
    assert metrics["probe"]["space"] == str(cached)
    assert metrics["n_test"] == config.MIRABEST_TEST_SIZE
    assert round(100 * metrics["test_error"], 1) == evaluate_seed0_percent  # the same figure

    space = load_space(d4_space)
    catalogue = space.catalogue_map
    train, _ = mirabest_confident_split(catalogue, seed=config.FINETUNE_SPLIT_SEED)
    predictions = pd.read_parquet(out / "predictions.parquet")
    assert set(predictions.loc[predictions["split"] == "train", "source_id"]) == set(catalogue["source_id"].iloc[train])
    assert metrics["epochs"] is None and metrics["probe"]["folds"] == 5
    assert metrics["probe"]["C"] in [c["C"] for c in metrics["probe"]["cv_accuracy"]]
    # The saved head is the fitted logistic regression on the space's vectors: it gives the
    # run's probabilities for every source.
    head = load_file(str(out / "head.safetensors"))
    z = (space.embeddings - head["scaler.mean"].numpy()) / head["scaler.scale"].numpy()
    logit = z.astype(np.float64) @ head["coef"].numpy()[0] + head["intercept"].numpy()[0]
    assert 1 / (1 + np.exp(-logit)) == pytest.approx(predictions["prob_FRII"].to_numpy(), abs=1e-4)
    progress = [json.loads(line) for line in (out / "progress.jsonl").read_text().splitlines()]
    assert len(progress) == 1 and progress[0]["test_error"] == metrics["test_error"]
    assert not (out / "encoder.safetensors").exists()  # a probe's encoder is the backbone itself


@pytest.mark.slow
def test_depth_0_without_a_space_embeds_the_same_representation(
    tmp_path, bundle_path, d4_space, evaluate_seed0_percent, weights, capsys
):
    """No space in the cache: the run embeds the bundle (d4) itself and scores what evaluate
    scores on the space, within one test source; a --space made otherwise is refused."""
    out = tmp_path / "probe"
    assert main(["finetune", "--bundle", str(bundle_path), "--depth", "0", "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["probe"]["origin"] == "computed" and metrics["probe"]["space"] is None
    assert abs(100 * metrics["test_error"] - evaluate_seed0_percent) <= 100 / metrics["n_test"] + 0.05

    bad = tmp_path / "other"
    args = ["finetune", "--bundle", str(bundle_path), "--weights", str(weights), "--depth", "0", "--no-progress"]
    assert main(args + ["--space", str(d4_space), "--out", str(bad)]) == 2
    assert "other weights" in capsys.readouterr().err
    assert json.loads((bad / "status.json").read_text())["state"] == "failed"
