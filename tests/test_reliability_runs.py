"""Issue #17, runs: damaged and planted run folders, what Cancel may signal, the bound on
concurrent runs, shared runs folders, and `train` / `finetune` into damaged or busy folders."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from explorer import jobs
from pretrain.__main__ import main as cli
from pretrain.errors import ExplorerError


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_RUNS", str(tmp_path / "runs"))
    return jobs.runs_dir()


def _run_folder(runs: Path, name: str, old: bool = True, **files) -> Path:
    """A run folder holding the given files (dict/list -> JSON, str -> as is)."""
    path = runs / name
    path.mkdir()
    for file_name, content in files.items():
        text = content if isinstance(content, str) else json.dumps(content)
        (path / file_name.replace("_", ".", 1)).write_text(text)
    if old:  # not "being started right now"
        stamp = time.time() - 3600
        os.utime(path, (stamp, stamp))
    return path


def _pretend_run(run_path: Path) -> subprocess.Popen:
    """A live process whose command line is this run's `pretrain finetune --out` (it only sleeps)."""
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "pretrain", "finetune", "--out", str(run_path)],
        start_new_session=True,
    )


def _job(process: subprocess.Popen, run_id: str, **extra) -> dict:
    return {"run_id": run_id, "pid": process.pid, "pid_start": jobs._process_start(process.pid), **extra}


def test_damaged_run_folders_do_not_break_the_listing(runs):
    _run_folder(runs, "20260101-000001-aaaaaa", status_json=[1, 2, 3])
    _run_folder(runs, "20260101-000002-bbbbbb", status_json={"state": "running", "epoch": "abc", "epochs": None})
    _run_folder(
        runs,
        "20260101-000003-cccccc",
        status_json={"state": "finished", "epoch": 3, "epochs": 3},
        metrics_json={"test_error_percent": None, "wall_time_s": "long", "n_train": "many"},
        progress_jsonl='[1, 2]\n{"epoch": 1, "loss": "x", "train_acc": null, "test_acc": 0.5}\n{"epoch": 2, "lo',
        config_json={"settings": [1]},
        job_json={"options": "none", "pid": "x"},
    )
    _run_folder(runs, "20260101-000004-dddddd", status_json={"state": 7, "epoch": -1})
    listed = jobs.list_runs().set_index("run_id")
    assert len(listed) == 4
    assert listed.loc["20260101-000001-aaaaaa", "state"] == "failed"
    assert "damaged" in listed.loc["20260101-000001-aaaaaa", "error"]
    assert listed.loc["20260101-000002-bbbbbb", "state"] == "failed"  # no process: not running for ever
    assert listed.loc["20260101-000004-dddddd", "state"] == "failed"
    status = jobs.run_status("20260101-000002-bbbbbb")
    assert status["epoch"] == 0 and isinstance(status["epoch"], int)
    assert jobs.read_metrics("20260101-000003-cccccc") is None  # no usable figures: no metrics shown
    progress = jobs.read_progress("20260101-000003-cccccc")
    assert list(progress["epoch"]) == [1] and progress["loss"].isna().all() and progress["test_acc"].iloc[0] == 0.5


def test_a_planted_job_naming_another_process_is_not_live_and_never_signalled(runs):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        run_id = "20260101-000005-eeeeee"
        _run_folder(runs, run_id, status_json={"state": "running", "epoch": 1}, job_json=_job(sleeper, run_id))
        assert jobs.run_status(run_id)["state"] == "failed"  # was "running" for as long as the process lived
        status = jobs.cancel_run(run_id, grace_s=0.5)
        assert status["state"] == "failed"
        assert sleeper.poll() is None  # not signalled
    finally:
        sleeper.kill()
        sleeper.wait()


def test_another_hosts_run_is_neither_judged_nor_cancelled_here(runs):
    run_id = "20260101-000006-ffffff"
    job = {"run_id": run_id, "pid": 999_999, "pid_start": 1, "host": "another-machine"}
    _run_folder(runs, run_id, status_json={"state": "running", "epoch": 2, "epochs": 5}, job_json=job)
    status = jobs.run_status(run_id)
    assert status["state"] == "running" and status["host"] == "another-machine"  # was marked failed
    with pytest.raises(ExplorerError, match="another-machine"):
        jobs.cancel_run(run_id)
    assert json.loads((runs / run_id / "status.json").read_text())["state"] == "running"


def test_cancel_signals_only_this_users_own_run_process(runs):
    run_id = "20260101-000007-aaaaaa"
    path = runs / run_id
    process = _pretend_run(path)
    try:
        _run_folder(runs, run_id, status_json={"state": "running", "epoch": 1}, job_json=_job(process, run_id))
        assert jobs.run_status(run_id)["state"] == "running"
        if os.geteuid() == 0:  # a job.json another user wrote is data, not a licence to signal
            os.chown(path / "job.json", 65534, 65534)
            with pytest.raises(ExplorerError, match="another user"):
                jobs.cancel_run(run_id, grace_s=0.5)
            assert process.poll() is None
            os.chown(path / "job.json", 0, 0)
        status = jobs.cancel_run(run_id, grace_s=2.0)
        assert process.wait(timeout=10) != 0 and status["state"] == "cancelled"
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def test_concurrent_runs_are_bounded(runs, monkeypatch):
    monkeypatch.setenv("EXPLORER_MAX_RUNS", "1")
    run_id = "20260101-000008-bbbbbb"
    process = _pretend_run(runs / run_id)
    try:
        _run_folder(runs, run_id, status_json={"state": "running", "epoch": 1}, job_json=_job(process, run_id))
        before = sorted(p.name for p in runs.iterdir())
        with pytest.raises(ExplorerError, match="at most 1 at once"):
            jobs.start_run(epochs=1)
        assert sorted(p.name for p in runs.iterdir()) == before  # nothing started, no folder left
    finally:
        process.kill()
        process.wait()
    assert jobs.max_running() == 1
    monkeypatch.delenv("EXPLORER_MAX_RUNS")
    from pretrain import config

    assert jobs.max_running() == config.JOB_MAX_RUNNING >= 1


def test_a_shared_runs_folder_gives_shared_run_folders(tmp_path, monkeypatch):
    shared = tmp_path / "runs"
    shared.mkdir()
    shared.chmod(0o2775)
    monkeypatch.setenv("EXPLORER_RUNS", str(shared))
    run_id, path = jobs._new_run_folder()
    assert stat.S_IMODE(path.stat().st_mode) & 0o2070 == 0o2070  # the group may write status and cancel files
    from pretrain.files import atomic_write_json

    atomic_write_json(path / "status.json", {"state": "running"})
    assert stat.S_IMODE((path / "status.json").stat().st_mode) & 0o060 == 0o060


def test_a_second_finetune_into_the_same_out_is_refused(tmp_path):
    from pretrain.finetune import FinetuneSettings, run_finetune
    from pretrain.run_folder import locked_run_folder

    out = tmp_path / "ft"
    with locked_run_folder(out), pytest.raises(ExplorerError, match="another run is writing into this folder"):
        run_finetune(FinetuneSettings(), out)
    assert not (out / "status.json").exists()  # the first run's files are untouched


# --- train: bad parameters and damaged resume files ---------------------------------------


@pytest.mark.parametrize(
    "flags, word",
    [
        (["--lr", "-1"], "--lr"),
        (["--lr", "nan"], "--lr"),
        (["--width", "0"], "--width"),
        (["--epochs", "0"], "--epochs"),
    ],
)
def test_train_refuses_bad_parameters(tmp_path, capsys, flags, word):
    from tests.test_train import write_synthetic_bundle

    bundle = write_synthetic_bundle(tmp_path / "bundle")
    assert cli(["train", "--bundle", str(bundle), "--out", str(tmp_path / "run"), *flags]) == 2
    assert word in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One epoch of a tiny run: a real config.json, checkpoint.pt and metrics.jsonl."""
    import torch

    from tests.test_train import small_config, write_synthetic_bundle

    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("trained")
    bundle = write_synthetic_bundle(folder / "bundle", n_fri=4, n_frii=4, n_point=0)
    from pretrain.train import train

    train(small_config(bundle, epochs=1, batch_size=4, monitor_every_epochs=100), folder / "run", progress=False)
    return folder / "run"


def _copy_run(run: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(run, to)
    (to / ".lock").unlink(missing_ok=True)
    return to


def _resume(run: Path, epochs: int = 1) -> list[str]:
    return ["train", "--resume", "--out", str(run), "--epochs", str(epochs), "--device", "cpu", "--no-progress"]


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_resume_from_a_damaged_checkpoint_is_a_clear_error(trained_run, tmp_path, capsys, damage):
    run = _copy_run(trained_run, tmp_path / "run")
    checkpoint = run / "checkpoint.pt"
    raw = checkpoint.read_bytes()
    checkpoint.write_bytes({"truncated": raw[: len(raw) // 3], "garbage": os.urandom(4096), "empty": b""}[damage])
    assert cli(_resume(run, 2)) == 2
    err = capsys.readouterr().err
    assert "checkpoint" in err and "damaged" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{not json",
        "[1, 2, 3]",
        '{"parameters": 5}',
        '{"other": {}}',
        '{"parameters": {"epochs": 2}}',
        '{"parameters": {"bundles": ["b"], "epochs": "abc"}}',
        '{"parameters": {"bundles": "b", "epochs": 2}}',
    ],
)
def test_resume_with_a_damaged_config_is_a_clear_error(tmp_path, capsys, text):
    run = tmp_path / "run"  # config.json is read first: nothing else is needed to see it refused
    run.mkdir()
    (run / "config.json").write_text(text)
    assert cli(_resume(run, 2)) == 2
    err = capsys.readouterr().err
    assert "config.json" in err and "damaged" in err and "Traceback" not in err


@pytest.mark.slow
def test_resume_after_a_half_written_metrics_line(trained_run, tmp_path):
    run = _copy_run(trained_run, tmp_path / "run")
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 2, "loss": 0.1')  # a kill in the middle of the write
    assert cli(_resume(run, 2)) == 0
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


@pytest.mark.slow
def test_sigterm_in_the_middle_of_a_step_resumes_bit_identically(tmp_path):
    """SIGTERM arriving inside a step's forward pass: the run stops at the step's end, so the
    checkpoint never holds half a step (its batch-norm statistics), and resuming gives the
    same weights as the run that was never stopped."""
    import torch

    from pretrain.commands.train import _interrupt_on_sigterm
    from pretrain.train import Trainer
    from tests.test_train import small_config, write_synthetic_bundle

    torch.set_num_threads(1)
    bundle = write_synthetic_bundle(tmp_path / "bundle", n_fri=6, n_frii=6, n_point=0)
    cfg = dict(epochs=2, batch_size=4, monitor_every_epochs=100)
    straight = Trainer(small_config(bundle, **cfg), tmp_path / "straight", progress=False)
    straight.fit()

    run = tmp_path / "run"
    trainer = Trainer(small_config(bundle, **cfg), run, progress=False)
    calls = []

    def signal_mid_step(module, args, output):
        calls.append(1)
        if len(calls) == 5:  # the 5th step, its batch-norm statistics updated, its weights not yet
            os.kill(os.getpid(), signal.SIGTERM)

    hook = trainer.model.encoder.register_forward_hook(signal_mid_step)
    previous = _interrupt_on_sigterm()  # as the command line installs it
    try:
        with pytest.raises(KeyboardInterrupt):
            trainer.fit()
    finally:
        signal.signal(signal.SIGTERM, previous)
        hook.remove()
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["global_step"] == 5  # the step in flight was finished, then the run stopped

    resumed = Trainer(small_config(bundle, **cfg), run, progress=False)
    resumed.resume()
    resumed.fit()
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.slow  # the app in AppTest
def test_the_training_page_shows_damaged_and_foreign_runs(tmp_path, monkeypatch, tmp_path_factory):
    from streamlit.testing.v1 import AppTest

    from pretrain import config
    from tests.finetune_data import random_encoder_weights

    monkeypatch.setenv("EXPLORER_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("EXPLORER_WEIGHTS", str(random_encoder_weights(tmp_path_factory)))
    runs = jobs.runs_dir()
    _run_folder(runs, "20260101-000001-aaaaaa", status_json=[1, 2, 3])
    _run_folder(runs, "20260101-000002-bbbbbb", status_json={"state": "running", "epoch": "abc"})
    _run_folder(
        runs,
        "20260101-000003-cccccc",
        status_json={"state": "finished", "epoch": "3", "epochs": 3},
        metrics_json={"test_error_percent": 12.5, "wall_time_s": 30, "ood_error": 0.2, "n_train": "x"},
        progress_jsonl='[1]\n{"epoch": 1, "loss": null, "train_acc": "a"}\n{"epoch": 2, "loss": 0.4}\n',
    )
    foreign = {"run_id": "20260101-000004-dddddd", "pid": 4242, "host": "elsewhere", "options": {"epochs": 4}}
    _run_folder(runs, "20260101-000004-dddddd", status_json={"state": "running", "epoch": 1}, job_json=foreign)
    at = AppTest.from_file(str(config.REPO_ROOT / "app.py"), default_timeout=120)
    at.switch_page("pages/3_Training.py")
    at.run()
    assert not at.exception, at.exception
    assert any("elsewhere" in c.value for c in at.caption)  # the foreign run: shown, not cancellable here
    menu = at.selectbox(key="training_selected_run")
    for run_id in [o for o in jobs.list_runs()["run_id"]]:
        menu.set_value(run_id)
        at.run()
        assert not at.exception, (run_id, at.exception)
