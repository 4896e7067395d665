"""BYOL training: steps, checkpoints, exact resume, extent filter, metrics, the CLI."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pretrain import config
from pretrain.__main__ import main
from pretrain.data.bundle import load_bundle
from pretrain.models.backbone import load_encoder, weights_metadata
from pretrain.models.byol import cosine_tau
from pretrain.train import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    TrainConfig,
    Trainer,
    confident_fr_mask,
    learning_rate,
    load_training_data,
    select_by_extent,
)

torch.set_num_threads(1)
SIZE = config.IMAGE_SIZE_PX


def _source(rng: np.random.Generator, kind: str) -> tuple[np.ndarray, float]:
    """A synthetic radio source (uint8 150 x 150) and its extent in arcsec."""
    y, x = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
    angle = rng.uniform(0, np.pi)
    u = x * np.cos(angle) + y * np.sin(angle)
    v = -x * np.sin(angle) + y * np.cos(angle)
    if kind == "point":
        image = np.exp(-(x**2 + y**2) / (2 * 1.5**2))
        extent_px = 4.0
    elif kind == "FRI":  # bright core, fading jets
        length = rng.uniform(10, 25)
        image = np.exp(-(u**2 + v**2) / 8) + np.exp(-np.abs(u) / length - v**2 / 6) * 0.6
        extent_px = 2 * length
    else:  # FRII: two bright lobes at the ends
        half = rng.uniform(10, 30)
        image = np.exp(-((u - half) ** 2 + v**2) / 10) + np.exp(-((u + half) ** 2 + v**2) / 10)
        extent_px = 2 * half + 6
    image = image / image.max() * 255
    return image.astype(np.uint8), extent_px * config.FIRST_PIXEL_SCALE_ARCSEC


def write_synthetic_bundle(folder: Path, n_fri: int = 12, n_frii: int = 12, n_point: int = 6, seed: int = 0) -> Path:
    """A bundle in the format of ``pretrain.data.bundle`` (images.npy, catalogue.parquet,
    manifest.json) holding synthetic FRI, FRII and point sources."""
    rng = np.random.default_rng(seed)
    kinds = ["FRI"] * n_fri + ["FRII"] * n_frii + ["point"] * n_point
    images, rows = [], []
    for i, kind in enumerate(kinds):
        image, extent = _source(rng, kind)
        images.append(image)
        ra, dec = 150.0 + i * 0.1, 2.0 + seed
        rows.append(
            {
                "source_id": f"SYN{seed}_{i:04d}",
                "ra": ra,
                "dec": dec,
                "angular_extent_arcsec": extent,
                "angular_extent_estimated_arcsec": extent,
                "label": "" if kind == "point" else kind,
                "confident": kind != "point",
                "survey": "FIRST",
                "file": f"synthetic_{i}.fits",
            }
        )
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "images.npy", np.stack(images))
    catalogue = pd.DataFrame(rows)
    catalogue["confident"] = catalogue["confident"].astype("boolean")
    catalogue.to_parquet(folder / "catalogue.parquet", index=False)
    manifest = {"bundle_id": f"synthetic{seed:04d}", "n_images": len(rows), "format_version": 1}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture
def bundle(tmp_path) -> Path:
    return write_synthetic_bundle(tmp_path / "bundle")


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """A 2-epoch run trained in one go: the reference for the resume tests."""
    folder = tmp_path_factory.mktemp("straight")
    bundle = write_synthetic_bundle(folder / "bundle")
    trainer = Trainer(small_config(bundle), folder / "run", progress=False)
    trainer.fit()
    return bundle, trainer


def small_config(bundle: Path, **overrides) -> TrainConfig:
    values = dict(
        bundles=[str(bundle)],
        epochs=2,
        batch_size=8,
        base_lr=0.2,
        warmup_epochs=1,
        device="cpu",
        seed=0,
        monitor_every_epochs=1,
    )
    values.update(overrides)
    return TrainConfig(**values)


def test_min_extent_filter_drops_small_sources(bundle):
    catalogue = load_bundle(bundle).catalogue
    keep = select_by_extent(catalogue, 20.0)
    assert keep.sum() == 24 and not keep[catalogue["label"] == ""].any()
    data = load_training_data([bundle], 20.0)
    assert len(data.images) == 24
    assert data.counts["synthetic0000"]["dropped_below_min_extent"] == 6
    assert len(load_training_data([bundle], 0.0).images) == 30
    with_nan = catalogue.assign(angular_extent_arcsec=np.nan)
    assert select_by_extent(with_nan, 20.0).all()  # unknown extent: kept


def test_pooled_bundles_and_monitor_labels(tmp_path):
    a = write_synthetic_bundle(tmp_path / "a", seed=0)
    b = write_synthetic_bundle(tmp_path / "b", n_fri=5, n_frii=3, n_point=2, seed=1)
    data = load_training_data([a, b], 20.0)
    assert len(data.images) == 24 + 8
    assert data.bundle_ids == ["synthetic0000", "synthetic0001"]
    assert len(data.monitor_labels) == 32 and data.monitor_labels.sum() == 12 + 3
    assert not confident_fr_mask(load_bundle(a).catalogue.assign(confident=False)).any()


def test_learning_rate_warms_up_then_decays():
    peak = 0.1
    lrs = [learning_rate(s, 100, 10, peak) for s in range(100)]
    assert lrs[0] == pytest.approx(peak / 10) and lrs[9] == pytest.approx(peak)
    assert all(b <= a for a, b in itertools.pairwise(lrs[9:]))
    assert lrs[55] == pytest.approx(peak / 2, rel=0.02) and lrs[-1] < peak * 0.01


def test_training_steps_change_weights_and_move_the_target_by_tau(bundle, tmp_path):
    trainer = Trainer(small_config(bundle, epochs=3), tmp_path / "run", progress=False)
    model = trainer.model
    first = {k: v.detach().clone() for k, v in model.encoder.named_parameters()}
    target_before = {k: v.detach().clone() for k, v in model.target_encoder.named_parameters()}
    batch = trainer.images[:8]
    loss = trainer.train_step(batch)
    assert math.isfinite(loss) and 0 < loss <= 8
    online = dict(model.encoder.named_parameters())
    target = dict(model.target_encoder.named_parameters())
    tau = cosine_tau(1, trainer.total_steps)
    for k in first:
        assert torch.allclose(target[k], tau * target_before[k] + (1 - tau) * online[k].detach(), atol=1e-6)
    assert any(not torch.equal(target[k], online[k]) for k in first)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(trainer.peak_lr / trainer.warmup_steps)
    # The blocks' last BatchNorm starts at zero, so the convolutions inside a block get
    # gradients from the second step on: after two steps every convolution has moved.
    assert math.isfinite(trainer.train_step(trainer.images[8:16]))
    convolutions = [k for k, v in first.items() if v.ndim == 4]
    unchanged = [k for k in convolutions if torch.equal(first[k], online[k])]
    assert len(convolutions) == 20 and not unchanged


@pytest.mark.slow
def test_fit_writes_metrics_checkpoint_backbone_and_config(bundle, tmp_path):
    run = tmp_path / "run"
    trainer = Trainer(small_config(bundle), run, progress=False)
    summary = trainer.fit()
    lines = [json.loads(line) for line in (run / METRICS_FILE).read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    for record in lines:
        assert math.isfinite(record["loss"]) and record["images_per_s"] > 0
        assert 0.996 <= record["tau"] <= 1 and record["lr"] > 0
    assert lines[-1]["tau"] == pytest.approx(1.0)
    assert summary["epochs_completed"] == 2 and summary["steps"] == 2 * 3
    state = torch.load(run / CHECKPOINT_FILE, weights_only=True)
    assert state["epoch"] == 2 and state["global_step"] == 6
    info = json.loads((run / CONFIG_FILE).read_text())
    assert info["parameters"]["batch_size"] == 8 and info["data"]["bundle_ids"] == ["synthetic0000"]
    assert info["resolved"]["peak_lr"] == pytest.approx(0.2 * 8 / 256)
    assert info["result"]["wall_time_s"] > 0 and info["device"].startswith("cpu")
    meta = weights_metadata(run / "backbone.safetensors")
    assert meta["bundle_ids"] == "synthetic0000" and meta["epochs_completed"] == "2"
    encoder = load_encoder(run / "backbone.safetensors")
    for k, v in trainer.model.encoder.state_dict().items():
        assert torch.equal(encoder.state_dict()[k], v)


def test_monitor_accuracy_is_logged_when_labels_exist(tmp_path, monkeypatch):
    pytest.importorskip("pretrain.evaluate")
    monkeypatch.setattr(config, "MONITOR_K", 5)
    bundle = write_synthetic_bundle(tmp_path / "b", n_fri=15, n_frii=15, n_point=0)
    run = tmp_path / "run"
    Trainer(small_config(bundle, epochs=1), run, progress=False).fit()
    record = json.loads((run / METRICS_FILE).read_text().splitlines()[-1])
    assert 0.0 <= record["knn_accuracy_fr"] <= 1.0
    assert 0.0 <= record["linear_probe_error_fr"] <= 1.0  # the last epoch also gets a probe
    assert 0.0 <= record["neighbour_purity_fr"] <= 1.0  # what a click shows
    assert json.loads((run / CONFIG_FILE).read_text())["resolved"]["monitor_sources"] == 30


def test_resume_continues_exactly(straight_run, tmp_path):
    """Two epochs in one go == one epoch, stop, resume, one more epoch: same weights."""
    bundle, straight = straight_run

    # Stop a 2-epoch run (same schedule) after its first epoch, then resume it.
    run2 = tmp_path / "split"
    part = Trainer(small_config(bundle), run2, progress=False)
    part.cfg.epochs = 1
    part.fit()
    resumed = Trainer(small_config(bundle), run2, progress=False)
    resumed.resume()
    assert resumed.epoch == 1 and resumed.global_step == 3
    resumed.fit()
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    for a, b in zip(
        straight.optimizer.state_dict()["state"].values(), resumed.optimizer.state_dict()["state"].values()
    ):
        assert torch.equal(a["momentum_buffer"], b["momentum_buffer"])
    lines = [json.loads(x) for x in (run2 / METRICS_FILE).read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]


def test_resume_on_another_kind_of_device_starts_a_new_augmentation_stream(straight_run, tmp_path, capsys):
    """A checkpoint written on a GPU holds a CUDA generator state (16 bytes, not the CPU's
    5056): resuming it on the CPU (or the other way round) continues the run with a fresh
    augmentation stream instead of failing."""
    bundle, _ = straight_run
    run = tmp_path / "moved"
    part = Trainer(small_config(bundle), run, progress=False)
    part.cfg.epochs = 1
    part.fit()
    state = torch.load(run / CHECKPOINT_FILE, weights_only=True)
    state["aug_generator"] = torch.zeros(16, dtype=torch.uint8)  # the size of a CUDA generator's state
    torch.save(state, run / CHECKPOINT_FILE)
    resumed = Trainer(small_config(bundle), run, progress=False)
    resumed.resume()
    assert "starts afresh" in capsys.readouterr().err
    assert resumed.epoch == 1 and resumed.global_step == 3
    for (k, a), b in zip(part.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k  # the weights continue from the checkpoint
    resumed.fit()
    assert resumed.epoch == 2


def test_interrupt_saves_a_checkpoint_mid_epoch_and_resume_matches(straight_run, tmp_path, monkeypatch):
    bundle, straight = straight_run

    run = tmp_path / "run"
    trainer = Trainer(small_config(bundle), run, progress=False)
    real_step, calls = trainer.train_step, []

    def step_then_interrupt(batch):
        if len(calls) == 4:  # second epoch, second batch
            raise KeyboardInterrupt
        calls.append(1)
        return real_step(batch)

    monkeypatch.setattr(trainer, "train_step", step_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    state = torch.load(run / CHECKPOINT_FILE, weights_only=True)
    assert (state["epoch"], state["batch_in_epoch"], state["global_step"]) == (1, 1, 4)

    resumed = Trainer(small_config(bundle), run, progress=False)
    resumed.resume()
    resumed.fit()
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    straight_loss = json.loads((straight.run_dir / METRICS_FILE).read_text().splitlines()[-1])["loss"]
    resumed_loss = json.loads((run / METRICS_FILE).read_text().splitlines()[-1])["loss"]
    assert resumed_loss == pytest.approx(straight_loss, rel=1e-6)


def test_cli_trains_end_to_end_and_refuses_to_overwrite(bundle, tmp_path, capsys):
    run = tmp_path / "cli_run"
    argv = [
        "train",
        "--bundle",
        str(bundle),
        "--out",
        str(run),
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--num-threads",
        "1",
        "--no-progress",
        "--min-extent",
        "20",
    ]
    assert main(argv) == 0
    assert (run / "backbone.safetensors").is_file()
    info = json.loads((run / CONFIG_FILE).read_text())
    assert info["resolved"]["images"] == 24 and info["parameters"]["min_extent_arcsec"] == 20
    assert main(argv) == 2  # the run exists: the user is told to resume
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2", "--no-progress", "--device", "cpu"]) == 0
    lines = (run / METRICS_FILE).read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]


def test_cli_reports_bad_input(tmp_path, capsys):
    assert main(["train", "--bundle", str(tmp_path / "missing"), "--out", str(tmp_path / "r")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "r"), "--resume"]) == 2
    assert "--resume" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_trains_on_real_mirabest_images(mirabest_dir, tmp_path):
    """End to end on real FIRST cutouts: bundle 40 MiraBest files, train one epoch."""
    from pretrain.data.bundle import build_bundle
    from pretrain.holdout import is_held_out
    from pretrain.models.backbone import load_encoder

    subset = tmp_path / "fits"
    subset.mkdir()
    for path in sorted(mirabest_dir.glob("*.fits.fz"))[::29][:40]:
        (subset / path.name).symlink_to(path)
    bundle = build_bundle(fits_dirs=[subset], out=tmp_path / "bundle", progress=False, workers=1)
    extents = bundle.catalogue["angular_extent_arcsec"].to_numpy()
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--bundle",
                str(bundle.path),
                "--out",
                str(run),
                "--epochs",
                "1",
                "--batch-size",
                "16",
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 0
    )
    info = json.loads((run / CONFIG_FILE).read_text())
    # The held-out sky is left out by default, and the weights say so.
    held_out = is_held_out(bundle.catalogue["ra"], bundle.catalogue["dec"])
    assert 0 < held_out.sum() < len(held_out)
    assert info["resolved"]["images"] == int(((extents >= 20) & ~held_out).sum())
    assert info["data"]["bundles"][bundle.bundle_id]["dropped_held_out"] == int(((extents >= 20) & held_out).sum())
    record = json.loads((run / METRICS_FILE).read_text().splitlines()[0])
    assert math.isfinite(record["loss"]) and 0 < record["loss"] < 8
    meta = weights_metadata(run / "backbone.safetensors")
    assert meta["bundle_ids"] == bundle.bundle_id and meta["held_out"] == "excluded"
    assert meta["architecture"] == "resnet18-1ch"
    # --include-held-out and another stem and width: every source, a narrow reference-stem encoder.
    args = ["train", "--bundle", str(bundle.path), "--epochs", "1", "--batch-size", "16", "--no-progress"]
    assert (
        main([*args, "--out", str(tmp_path / "all"), "--include-held-out", "--stem", "reference", "--width", "16"]) == 0
    )
    info = json.loads((tmp_path / "all" / CONFIG_FILE).read_text())
    assert info["resolved"]["images"] == int((extents >= 20).sum())
    meta = weights_metadata(tmp_path / "all" / "backbone.safetensors")
    assert meta["held_out"] == "included" and meta["architecture"] == "resnet18-1ch-stem3x3-w16"
    assert load_encoder(tmp_path / "all" / "backbone.safetensors").representation_dim == 128
    # --symmetry d4: the group-convolution network trains, and its weights say what they are.
    assert main([*args, "--out", str(tmp_path / "d4"), "--stem", "reference", "--width", "4", "--symmetry", "d4"]) == 0
    d4_weights = tmp_path / "d4" / "backbone.safetensors"
    assert weights_metadata(d4_weights)["architecture"] == "resnet18-1ch-stem3x3-w4-d4"
    assert load_encoder(d4_weights).invariant


def test_precision_resolution_and_both_precisions_train(bundle, tmp_path, monkeypatch):
    from pretrain import precision
    from pretrain.errors import ExplorerError

    assert precision.resolve_precision("fp32", torch.device("cpu")) == "fp32"
    assert precision.resolve_precision("auto", torch.device("cuda")) == "bf16"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert precision.resolve_precision("auto", torch.device("cpu")) == "fp32"  # emulated bf16 is slow
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.resolve_precision("auto", torch.device("cpu")) == "bf16"
    with pytest.raises(ExplorerError, match="unknown precision"):
        precision.resolve_precision("fp8", torch.device("cpu"))
    for name, written in (("fp32", "fp32"), ("bf16", "bf16 autocast")):
        run = tmp_path / name
        trainer = Trainer(small_config(bundle, epochs=1, precision=name), run, progress=False)
        assert trainer.channels_last == (name == "bf16")
        trainer.fit()
        info = json.loads((run / CONFIG_FILE).read_text())
        assert info["precision"] == written and info["parameters"]["precision"] == name
        record = json.loads((run / METRICS_FILE).read_text().splitlines()[-1])
        assert math.isfinite(record["loss"])
        # the weights stay fp32 whatever the autocast precision
        assert all(
            v.dtype == torch.float32 for v in trainer.model.encoder.state_dict().values() if v.is_floating_point()
        )
    # The D4 network trains in bf16 too: its channels_last model holds 4-D filters like a Conv2d's.
    trainer = Trainer(
        small_config(bundle, epochs=1, precision="bf16", stem="reference", width=4, symmetry="d4"),
        tmp_path / "d4-bf16",
        progress=False,
    )
    assert trainer.channels_last
    trainer.fit()
    assert math.isfinite(json.loads((tmp_path / "d4-bf16" / METRICS_FILE).read_text().splitlines()[-1])["loss"])


def test_native_bf16_means_bf16_instructions_not_avx512_alone(monkeypatch):
    """AVX-512 without AVX512-BF16/AMX emulates bf16 (2-5x slower than fp32): auto picks fp32 there."""
    from pretrain import precision

    avx512_only = {"avx512_f": True, "avx512_bw": True, "avx512_bf16": False, "amx_bf16": False}
    monkeypatch.setattr(torch._C._cpu, "_get_cpu_capability", lambda: avx512_only)
    assert not precision.cpu_has_native_bf16()
    assert precision.resolve_precision("auto", torch.device("cpu")) == "fp32"
    for flag in ("avx512_bf16", "amx_bf16"):
        monkeypatch.setattr(torch._C._cpu, "_get_cpu_capability", lambda f=flag: {**avx512_only, f: True})
        assert precision.cpu_has_native_bf16()
        assert precision.resolve_precision("auto", torch.device("cpu")) == "bf16"


def test_device_default_batch_size_and_short_run_warmup(bundle, tmp_path):
    """No --batch-size: 128 on a CPU (1024 is the GPU default), recorded for --resume; the
    warm-up of a short run takes at most a fifth of its steps."""
    from pretrain import config as cfg_module

    cfg = small_config(bundle, epochs=5)
    cfg.batch_size, cfg.warmup_epochs = None, 10
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    assert cfg.batch_size == cfg_module.PRETRAIN_BATCH_SIZE_CPU
    assert trainer.batch_size == min(cfg_module.PRETRAIN_BATCH_SIZE_CPU, len(trainer.data.images))
    assert trainer.total_steps > 0 and trainer.warmup_steps <= 0.2 * trainer.total_steps
    gpu = small_config(bundle)
    gpu.batch_size = None
    gpu.resolve_batch_size(torch.device("cuda"))
    assert gpu.batch_size == cfg_module.PRETRAIN_BATCH_SIZE
