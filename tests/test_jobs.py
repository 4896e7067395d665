"""Background training runs (explorer/jobs.py): real `python -m pretrain finetune`
processes on real MiraBest sources, started, followed, cancelled and killed."""

from __future__ import annotations

import json
import os
import signal
import time
from types import SimpleNamespace

import pandas as pd
import pytest

from explorer import jobs
from tests.finetune_data import random_encoder_weights, small_mirabest_bundle


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory, mirabest_dir):
    return small_mirabest_bundle(tmp_path_factory, mirabest_dir)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return random_encoder_weights(tmp_path_factory)


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


def _wait(predicate, timeout_s: float = 240, what: str = "the run"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _finished(run_id):
    return jobs.run_status(run_id)["state"] != "running"


@pytest.mark.slow
def test_two_concurrent_runs_finish_in_their_own_folders(runs, bundle_path, weights):
    common = dict(bundle=bundle_path, weights=weights, epochs=2, depth=1, num_threads=1)
    first = jobs.start_run(labels=10, seed=1, **common)
    second = jobs.start_run(labels=16, seed=2, **common)
    assert first != second
    seen_progress = _wait(lambda: len(jobs.read_progress(first)) or _finished(first), what="progress")
    _wait(lambda: _finished(first) and _finished(second))
    assert seen_progress
    for run_id, labels, seed in ((first, 10, 1), (second, 16, 2)):
        status = jobs.run_status(run_id)
        assert status["state"] == "finished", jobs.log_tail(run_id)
        metrics = jobs.read_metrics(run_id)
        assert metrics["n_train"] == labels and metrics["seed"] == seed
        progress = jobs.read_progress(run_id)
        assert list(progress["epoch"]) == [1, 2]
        assert jobs.run_path(run_id).parent == runs
    listed = jobs.list_runs()
    assert set(listed["run_id"]) == {first, second}
    assert (listed["state"] == "finished").all() and listed["test_error_percent"].notna().all()

    # Their predictions become map colours, aligned with a space's source ids.
    predictions = jobs.read_predictions(first)
    ids = list(predictions["source_id"].iloc[::-1]) + ["J000000.00+000000.0"]
    columns = jobs.prediction_columns(ids)
    prob = columns[f"run {first}: P(FRII)"]
    assert len(prob) == len(ids) and pd.isna(prob.iloc[-1])
    expected = predictions.set_index("source_id")["prob_FRII"]
    assert prob.iloc[:-1].to_numpy() == pytest.approx(expected.loc[ids[:-1]].to_numpy())
    marks = columns[f"run {first}: misclassified"]
    shared = predictions.set_index("source_id").loc[ids[:-1]]
    words = {"train": "training", "test": "test", "ood": "out of distribution", "unused": "not in the label budget"}
    expected_marks = [  # each mistake says its split
        "-" if pd.isna(c) else ("correct" if c else f"misclassified · {words[split]}")
        for c, split in zip(shared["correct"].astype("object"), shared["split"], strict=True)
    ]
    assert list(marks.iloc[:-1].fillna("-")) == expected_marks
    assert marks.notna().sum() == predictions["label"].notna().sum()
    assert f"run {second}: P(FRII)" in columns
    assert jobs.prediction_columns(["J000000.00+000000.0"]) == {}  # no shared sources: no columns

    # The map page's provider: the same columns, indexed by source_id.
    space = SimpleNamespace(catalogue=pd.DataFrame({"source_id": ids}))
    by_id = jobs.prediction_colour_columns(space)
    assert set(by_id) == set(columns)
    assert list(by_id[f"run {first}: P(FRII)"].index) == ids
    assert by_id[f"run {first}: P(FRII)"].to_numpy() == pytest.approx(prob.to_numpy(), nan_ok=True)


@pytest.mark.slow
def test_a_linear_probe_counts_one_fit_not_the_epochs_asked(runs, bundle_path, weights):
    run_id = jobs.start_run(bundle=bundle_path, weights=weights, epochs=20, depth=0, labels=10, num_threads=1)
    status = jobs.run_status(run_id)  # before the process writes its own: what the page shows at once
    assert (status.get("epochs"), status.get("mode")) == (1, "linear probe"), status
    _wait(lambda: _finished(run_id))
    status = jobs.run_status(run_id)
    assert status["state"] == "finished", (status, jobs.log_tail(run_id))
    assert (status["epoch"], status["epochs"], status.get("mode")) == (1, 1, "linear probe"), status


def test_run_ids_are_unique(runs):
    made = {jobs._new_run_folder()[0] for _ in range(50)}
    assert len(made) == 50 and len(list(runs.iterdir())) == 50


@pytest.mark.slow
def test_cancel_stops_the_run_cleanly(runs, bundle_path, weights):
    # depth 1: a fine-tuning run with epochs to cancel (a probe, depth 0, ends at once)
    run_id = jobs.start_run(bundle=bundle_path, weights=weights, epochs=500, depth=1, labels=10, num_threads=1)
    _wait(lambda: len(jobs.read_progress(run_id)) >= 1, what="the first epoch")
    pid = jobs.read_job(run_id)["pid"]
    status = jobs.cancel_run(run_id)
    assert status["state"] == "cancelled"
    assert status["stage"] == "cancelled"  # written by the run itself: it stopped cleanly
    assert not jobs._process_alive(pid)
    assert jobs.read_metrics(run_id) is None
    assert "cancelled" in jobs.log_tail(run_id) and "Traceback" not in jobs.log_tail(run_id)
    assert jobs.cancel_run(run_id)["state"] == "cancelled"  # cancelling twice is harmless


@pytest.mark.slow
def test_a_killed_process_is_reported_as_failed(runs, bundle_path, weights):
    # depth 1: a fine-tuning run with epochs to cancel (a probe, depth 0, ends at once)
    run_id = jobs.start_run(bundle=bundle_path, weights=weights, epochs=500, depth=1, labels=10, num_threads=1)
    _wait(lambda: len(jobs.read_progress(run_id)) >= 1, what="the first epoch")
    os.killpg(jobs.read_job(run_id)["pid"], signal.SIGKILL)  # as the OOM killer would
    status = _wait(lambda: (s := jobs.run_status(run_id))["state"] != "running" and s, what="the death")
    assert status["state"] == "failed"
    assert "process ended unexpectedly" in status["error"]
    # The verdict is written down: a fresh reader (another tab, after a reload) sees it.
    assert json.loads((jobs.run_path(run_id) / "status.json").read_text())["state"] == "failed"
    assert jobs.list_runs().set_index("run_id").loc[run_id, "state"] == "failed"


def test_a_crashing_run_says_why(runs, weights, tmp_path):
    run_id = jobs.start_run(bundle=tmp_path / "no-such-bundle", weights=weights, epochs=1)
    _wait(lambda: _finished(run_id))
    status = jobs.run_status(run_id)
    assert status["state"] == "failed"
    assert "no such bundle" in status["error"]
    assert "no such bundle" in jobs.log_tail(run_id)


def test_run_ids_cannot_escape_the_runs_folder(runs):
    from pretrain.errors import ExplorerError

    for bad in ("../etc", "/tmp/x", "20260101-120000-zzzzzz", ""):
        with pytest.raises(ExplorerError):
            jobs.run_path(bad)


def test_the_runs_folder_defaults_to_the_cache(monkeypatch):
    from pretrain import config

    monkeypatch.delenv("EXPLORER_RUNS", raising=False)
    assert jobs.runs_dir() == config.cache_dir() / "runs"
    assert jobs.list_runs().empty


def test_label_budget_reads_the_same_whatever_the_state_of_the_run():
    from explorer.jobs import _label_budget

    assert _label_budget(None, None) == "all"  # cancelled before any metrics
    assert _label_budget(None, 665) == "all (665)"  # finished
    assert _label_budget(72, 72) == _label_budget(72, None) == "72"
