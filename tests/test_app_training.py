"""The Training page (AppTest): the sidebar form starts a real background run on real
MiraBest sources, its progress shows, it can be cancelled, and a crashed run says why."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from explorer import jobs
from pretrain import config
from tests.app_space import wait_until
from tests.finetune_data import random_encoder_weights, small_mirabest_bundle

APP = str(config.REPO_ROOT / "app.py")
PAGE = "pages/3_Training.py"


pytestmark = pytest.mark.slow  # each test trains a real (small) run in the background


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory, mirabest_dir):
    return small_mirabest_bundle(tmp_path_factory, mirabest_dir)


@pytest.fixture
def app_env(tmp_path, monkeypatch, bundle_path, tmp_path_factory):
    """Runs in a temporary folder, random backbone weights, the small bundle as MiraBest's."""
    monkeypatch.setenv("EXPLORER_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("EXPLORER_WEIGHTS", str(random_encoder_weights(tmp_path_factory)))
    default_bundle = config.cache_dir() / "bundles" / "mirabest"
    default_bundle.parent.mkdir(parents=True, exist_ok=True)
    default_bundle.symlink_to(bundle_path, target_is_directory=True)
    return tmp_path


def _page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page(PAGE)
    at.run()
    assert not at.exception, at.exception
    return at


def _texts(at) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [e.value for e in at.error]
    parts += [str(m.label) + " " + str(m.value) for m in at.metric]
    return "\n".join(str(p) for p in parts)


def _submit(at, labels: int, epochs: int, depth: int = 1) -> None:
    at.sidebar.number_input[0].set_value(labels)  # label budget
    at.sidebar.select_slider[0].set_value(depth)
    at.sidebar.number_input[1].set_value(epochs)
    next(b for b in at.sidebar.button if b.label == "Start training").click()  # the form's submit button
    at.run()
    assert not at.exception, at.exception


def test_form_starts_a_run_whose_progress_and_results_show(app_env):
    at = _page()
    assert at.title[0].value == "Training"
    assert "No runs yet." in _texts(at)

    _submit(at, labels=12, epochs=2)
    runs = jobs.list_runs()
    assert len(runs) == 1
    run_id = runs["run_id"].iloc[0]
    assert runs["state"].iloc[0] == "running"
    assert run_id in _texts(at) and "In progress" in [h.value for h in at.subheader]
    options = jobs.read_job(run_id)["options"]
    assert (options["labels"], options["epochs"], options["depth"], options["scratch"]) == (12, 2, 1, False)

    wait_until(
        lambda: len(jobs.read_progress(run_id)) >= 1 or jobs.run_status(run_id)["state"] != "running",
        what="the first epoch",
    )
    if jobs.run_status(run_id)["state"] == "running":
        at.run()  # a reload: a fresh script run finds the run from the runs folder
        assert not at.exception
        assert "loss" in [m.label for m in at.metric]  # the last epoch's figures
        bars = [p.proto.text for p in at.get("progress")]
        assert any(text.startswith(("epoch 1 / 2", "epoch 2 / 2")) for text in bars), bars

    wait_until(lambda: jobs.run_status(run_id)["state"] != "running")
    fresh = _page()  # another tab: nothing in its session, everything from the runs folder
    assert jobs.run_status(run_id)["state"] == "finished", jobs.log_tail(run_id)
    metrics = jobs.read_metrics(run_id)
    shown = {m.label: m.value for m in fresh.metric}
    assert shown["test error"] == f"{metrics['test_error_percent']:.2f} %"
    assert shown["training labels"] == "12"
    assert f"run {run_id}: P(FRII)" in _texts(fresh)
    assert fresh.selectbox(key="training_selected_run").value == run_id
    _results_are_shown(fresh, run_id, metrics)


def _array(value) -> np.ndarray:
    """A plotly array as the browser gets it (plain lists, or base64 with dtype and shape)."""
    if isinstance(value, dict) and "bdata" in value:
        data = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        return data.reshape([int(n) for n in str(value["shape"]).split(",")])
    return np.asarray(value)


def _results_are_shown(at, run_id: str, metrics: dict) -> None:
    """A finished run: a name that says what it was, confusion matrices with counts, a gallery
    of its mistakes with their split, and tables without empty cells."""
    import json

    predictions = jobs.read_predictions(run_id)
    name = at.selectbox(key="training_selected_run").format_func(run_id)
    assert name.startswith("FRI/FRII · depth 1 · 12 labels · 2 ep · ")
    assert f"{metrics['test_error_percent']:.1f} % test error" in name and "None" not in name

    charts = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    heatmaps = [c for c in charts if c["data"] and c["data"][0]["type"] == "heatmap"]
    titles = [c["layout"]["title"]["text"] for c in heatmaps]
    assert titles[0] == "Confusion matrix: test" and "Confusion matrix: out of distribution" in titles
    test = predictions[predictions["split"] == "test"]
    counts = _array(heatmaps[0]["data"][0]["z"])
    assert counts.sum() == len(test) == metrics["n_test"]
    wrong = int((~test["correct"].astype(bool)).sum())
    assert counts[0, 1] + counts[1, 0] == wrong  # the off-diagonal cells are the test errors
    assert heatmaps[0]["data"][0]["text"][0][0].startswith(f"{counts[0, 0]}<br>")  # each cell shows its count
    assert heatmaps[0]["layout"]["xaxis"]["title"]["text"] == "predicted label"

    galleries = [e.proto.body for e in at.get("html") if "nb-gallery" in getattr(e.proto, "body", "")]
    test_gallery = next(g for g in galleries if f'data-query="errors-{run_id}-test"' in g)
    assert f'data-count="{min(wrong, 24)}"' in test_gallery and "→" in test_gallery and "<img" in test_gallery
    first_error = test[~test["correct"].astype(bool)]
    assert any(sid in test_gallery for sid in first_error["source_id"])

    for table in at.dataframe:  # the run listing, the split summary, the errors: no None/NaN cells
        value = table.value
        assert value.notna().all().all(), value
        assert not value.astype(str).isin(["None", "nan", "<NA>"]).any().any(), value


def test_cancel_button_stops_a_run(app_env):
    at = _page()
    _submit(at, labels=10, epochs=500, depth=1)  # (a depth-0 probe is one quick fit: nothing to cancel)
    run_id = jobs.list_runs()["run_id"].iloc[0]
    wait_until(lambda: len(jobs.read_progress(run_id)) >= 1, what="the first epoch")
    at.run()
    cancel = [b for b in at.button if b.label == "Cancel this run"]
    assert cancel, "a running run has a cancel button"
    cancel[0].click()
    at.run()
    assert not at.exception
    assert jobs.run_status(run_id)["state"] == "cancelled"
    assert "Cancelled at epoch" in " ".join(w.value for w in at.warning)


def test_a_crashed_run_shows_why_and_the_page_keeps_working(app_env, tmp_path):
    run_id = jobs.start_run(bundle=tmp_path / "no-such-bundle", epochs=1)
    wait_until(lambda: jobs.run_status(run_id)["state"] != "running")
    at = _page()
    errors = " ".join(e.value for e in at.error)
    assert "The run failed" in errors and "no such bundle" in errors
    # The page still starts runs after a failure.
    _submit(at, labels=10, epochs=1)
    assert len(jobs.list_runs()) == 2
    for run in jobs.active_runs():
        jobs.cancel_run(run)


def test_missing_backbone_is_explained_not_started(app_env, monkeypatch, tmp_path):
    monkeypatch.setenv("EXPLORER_WEIGHTS", str(tmp_path / "missing.safetensors"))
    at = _page()
    _submit(at, labels=10, epochs=1)
    assert "does not exist" in " ".join(e.value for e in at.sidebar.error)
    assert jobs.list_runs().empty


def test_the_show_run_box_names_the_run_as_it_is_now(tmp_path, monkeypatch):
    """The "Show run" box shows the name the browser was last sent for the chosen run (a keyed
    select box is sent it only when the value is set from the page): every page run must send
    the current one, or the box goes on saying "running" after the run has ended."""
    import json

    from tests.test_reliability_runs import _run_folder
    from tests.test_training_results import FINISHED_METRICS, RUN

    monkeypatch.setenv("EXPLORER_RUNS", str(tmp_path / "runs"))
    job = {"run_id": RUN, "host": "another-machine", "options": {"task": "mirabest-fr", "depth": 1, "epochs": 5}}
    path = _run_folder(jobs.runs_dir(), RUN, job_json=job, status_json={"state": "running", "epoch": 0, "epochs": 5})
    at = _page()

    def shown() -> tuple[list[str], str | None]:
        box = next(s for s in at.selectbox if s.label == "Show run")
        assert box.value == RUN
        return list(box.options), box.proto.raw_value if box.proto.set_value else None  # None: the browser keeps its

    names, sent = shown()
    assert sent == names[0] and "running" in sent
    (path / "status.json").write_text(json.dumps({"state": "finished", "epoch": 5, "epochs": 5}))
    (path / "metrics.json").write_text(json.dumps(FINISHED_METRICS))
    at.run()  # what the live section's rerun of the page does when the run ends
    assert not at.exception, at.exception
    names, sent = shown()
    assert sent == names[0] and sent.endswith("12.5 % test error · 01 Jan 00:00")
    assert "test error" in _texts(at)  # and the finished run's results are shown under it
