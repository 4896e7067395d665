"""Training runs as background processes: start, follow, list, cancel. No Streamlit here.

A run is ``python -m pretrain finetune ... --out RUNS/<run id>`` started in its own
process session, so a page reload, a closed tab or a Streamlit rerun does not stop it;
everything the app shows comes from the run folder (status.json, progress.jsonl,
metrics.json, predictions.parquet; see :mod:`pretrain.finetune`), never from the session.
Each run folder also holds ``job.json`` (how it was started: the command, its pid) and
``run.log`` (the process's stdout and stderr).

Run ids are the start time (UTC) plus random hex, and a run folder is created with ``exist_ok=False``,
so two runs can never write into the same folder. A process that died without saying so
(killed, out of memory) is found by its pid and reported as failed, with the log's tail.

Runs live in ``$EXPLORER_RUNS`` or ``pretrain.config.cache_dir() / "runs"``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd

from pretrain import config
from pretrain.clock import utc_now, utc_timestamp
from pretrain.errors import ExplorerError
from pretrain.files import atomic_write_json
from pretrain.run_folder import CONFIG_FILE, METRICS_FILE, PREDICTIONS_FILE, PROGRESS_FILE, STATUS_FILE

JOB_FILE = "job.json"
LOG_FILE = "run.log"
CANCEL_FILE = "cancel-requested"
_RUN_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")
_DEATH = "process ended unexpectedly"
_children: dict[int, subprocess.Popen] = {}  # started by this process: reaped by a waiting thread


def runs_dir() -> Path:
    """The folder holding every run (created if needed)."""
    override = os.environ.get(config.RUNS_DIR_ENV, "").strip()
    path = Path(override).expanduser() if override else config.cache_dir() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_path(run_id: str) -> Path:
    """The folder of a run; the id is checked, so no id can point outside the runs folder."""
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
        raise ExplorerError(f"{run_id!r} is not a run id (like 20260101-120000-a1b2c3).")
    return runs_dir() / run_id


def _new_run_folder() -> tuple[str, Path]:
    for _ in range(100):  # bounded: a clash needs the same second and the same 24 random bits
        run_id = f"{utc_now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        path = runs_dir() / run_id
        try:
            path.mkdir(exist_ok=False)
            return run_id, path
        except FileExistsError:
            continue
    raise ExplorerError(f"could not create a new run folder in {runs_dir()}.")


# --- Starting ---------------------------------------------------------------------------


def finetune_command(
    out: Path,
    task: str = config.FINETUNE_TASK,
    labels: int | None = None,
    depth: int = config.FINETUNE_DEPTH,
    epochs: int = config.FINETUNE_EPOCHS,
    seed: int = 0,
    scratch: bool = False,
    weights: str | Path | None = None,
    bundle: str | Path | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    num_threads: int | None = None,
) -> list[str]:
    """The command line of a run (a list for subprocess, no shell)."""
    command = [
        sys.executable,
        "-m",
        "pretrain",
        "finetune",
        "--out",
        str(out),
        "--task",
        task,
        "--depth",
        str(int(depth)),
        "--epochs",
        str(int(epochs)),
        "--seed",
        str(int(seed)),
        "--device",
        device,
        "--no-progress",
    ]
    if labels is not None:
        command += ["--labels", str(int(labels))]
    if scratch:
        command.append("--scratch")
    if weights is not None:
        command += ["--weights", str(weights)]
    if bundle is not None:
        command += ["--bundle", str(bundle)]
    if batch_size is not None:
        command += ["--batch-size", str(int(batch_size))]
    if num_threads is not None:
        command += ["--num-threads", str(int(num_threads))]
    return command


def start_run(**options) -> str:
    """Start a fine-tuning run in the background; return its run id at once.

    ``options`` are those of :func:`finetune_command` (task, labels, depth, epochs, seed,
    scratch, weights, bundle, device, batch_size, num_threads).
    """
    run_id, path = _new_run_folder()
    command = finetune_command(path, **options)
    # The run's own status, until the process writes its first: a run that dies before
    # that is still seen (as failed, by its pid).
    atomic_write_json(
        path / STATUS_FILE,
        {
            "state": "running",
            "stage": "starting",
            "error": None,
            "epoch": 0,
            "epochs": int(options.get("epochs", config.FINETUNE_EPOCHS)),
            "started": utc_timestamp(),
        },
    )
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"  # the log shows what happened up to a crash
    env["PYTHONPATH"] = os.pathsep.join(
        [str(config.REPO_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    with open(path / LOG_FILE, "ab") as log:
        try:
            process = subprocess.Popen(
                command,
                cwd=config.REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # its own session: outlives a page reload
        except OSError as exc:
            atomic_write_json(
                path / STATUS_FILE,
                {"state": "failed", "error": f"could not start the run: {exc}", "started": utc_timestamp()},
            )
            raise ExplorerError(f"could not start the run: {exc}") from exc
    atomic_write_json(
        path / JOB_FILE,
        {
            "run_id": run_id,
            "pid": process.pid,
            "pid_start": _process_start(process.pid),
            "command": command,
            "options": {k: _plain(v) for k, v in options.items()},
            "started": utc_timestamp(),
            "host": os.uname().nodename,
        },
    )
    _children[process.pid] = process
    threading.Thread(target=process.wait, daemon=True, name=f"reap-{run_id}").start()  # no zombies
    return run_id


def _plain(value):
    return str(value) if isinstance(value, Path) else value


# --- Is the process alive? --------------------------------------------------------------


def _process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _process_alive(pid: int | None, pid_start: int | None = None) -> bool:
    if not pid:
        return False
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        return False
    stat_path = Path(f"/proc/{pid}/stat")
    if stat_path.parent.parent.is_dir() and Path("/proc/self").exists():
        try:
            stat = stat_path.read_text()
        except OSError:
            return False
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] in ("Z", "X"):  # a zombie has ended; only its exit status is left
            return False
        return pid_start is None or int(fields[19]) == pid_start
    try:  # no /proc: signal 0 only checks that the pid exists
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- Reading a run ----------------------------------------------------------------------


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_job(run_id: str) -> dict:
    return _read_json(run_path(run_id) / JOB_FILE) or {}


def read_config(run_id: str) -> dict | None:
    return _read_json(run_path(run_id) / CONFIG_FILE)


def read_metrics(run_id: str) -> dict | None:
    return _read_json(run_path(run_id) / METRICS_FILE)


def run_status(run_id: str) -> dict:
    """The run's status (``state``: running, finished, failed, cancelled, and more fields).

    A run whose status says running but whose process is gone is marked failed here, with
    the reason and the log's last lines, and the status file is updated so it stays so.
    """
    path = run_path(run_id)
    if not path.is_dir():
        raise ExplorerError(f"no run {run_id} in {runs_dir()}.")
    status = _read_json(path / STATUS_FILE) or {"state": "failed", "error": "the run has no readable status file"}
    if status.get("state") != "running":
        return status
    job = _read_json(path / JOB_FILE) or {}
    pid = job.get("pid") or status.get("pid")
    if pid is None and _age_s(path) < 30:
        return status  # being started right now
    if _process_alive(pid, job.get("pid_start")):
        return status
    status = _read_json(path / STATUS_FILE) or status  # it may have finished in between
    if status.get("state") != "running":
        return status
    if (path / CANCEL_FILE).exists():
        status.update(state="cancelled", stage="cancelled", error=None, ended=utc_timestamp())
    else:
        tail = log_tail(run_id, 15)
        status.update(
            state="failed",
            error=f"{_DEATH} (pid {pid})" + (f"; last lines of its log:\n{tail}" if tail else ""),
            ended=utc_timestamp(),
        )
    atomic_write_json(path / STATUS_FILE, status)
    return status


def _age_s(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return float("inf")


def read_progress(run_id: str) -> pd.DataFrame:
    """One row per finished epoch (epoch, loss, train_acc, test_acc, ...); empty before the first.

    A half-written last line (the run is writing it) is skipped.
    """
    path = run_path(run_id) / PROGRESS_FILE
    rows = []
    try:
        text = path.read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return pd.DataFrame(rows, columns=None if rows else ["epoch", "loss", "train_acc", "test_acc"])


def log_tail(run_id: str, lines: int = 20) -> str:
    """The last lines of the run's log (stdout and stderr of its process)."""
    path = run_path(run_id) / LOG_FILE
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    text = text.replace("\r", "\n")
    return "\n".join([line for line in text.splitlines() if line.strip()][-lines:])


def read_predictions(run_id: str) -> pd.DataFrame | None:
    path = run_path(run_id) / PREDICTIONS_FILE
    if not path.is_file():
        return None
    try:
        return pd.read_parquet(path)
    except Exception:
        return None


def list_runs() -> pd.DataFrame:
    """Every run, newest first: id, state, task, mode, labels, depth, epochs, errors, times."""
    rows = []
    for path in sorted(runs_dir().iterdir(), reverse=True):
        if not path.is_dir() or not _RUN_ID.match(path.name):
            continue
        status = run_status(path.name)
        job = _read_json(path / JOB_FILE) or {}
        options = job.get("options", {})
        settings = (_read_json(path / CONFIG_FILE) or {}).get("settings", {})
        metrics = _read_json(path / METRICS_FILE) or {}
        scratch = bool(settings.get("scratch", options.get("scratch", False)))
        depth = settings.get("depth", options.get("depth", config.FINETUNE_DEPTH))
        rows.append(
            {
                "run_id": path.name,
                "state": status.get("state"),
                "task": settings.get("task", options.get("task", config.FINETUNE_TASK)),
                "mode": "scratch" if scratch else ("linear probe" if depth == 0 else "fine-tune"),
                "labels": _label_budget(settings.get("labels", options.get("labels")), metrics.get("n_train")),
                "depth": depth,
                "epochs": settings.get("epochs", options.get("epochs")),
                "epoch": status.get("epoch", 0),
                "seed": settings.get("seed", options.get("seed")),
                "test_error_percent": metrics.get("test_error_percent"),
                "ood_error_percent": metrics.get("ood_error_percent"),
                "wall_time_s": metrics.get("wall_time_s"),
                "started": status.get("started") or job.get("started"),
                "error": status.get("error"),
            }
        )
    columns = [
        "run_id",
        "state",
        "task",
        "mode",
        "labels",
        "depth",
        "epochs",
        "epoch",
        "seed",
        "test_error_percent",
        "ood_error_percent",
        "wall_time_s",
        "started",
        "error",
    ]
    return pd.DataFrame(rows, columns=columns)


def _label_budget(budget: int | None, n_train: int | None) -> str:
    """The label budget as asked: a number, or 'all' (with how many that was, once known)."""
    if budget:
        return str(budget)
    return f"all ({n_train})" if n_train else "all"


def active_runs() -> list[str]:
    """Ids of the runs still running, newest first."""
    runs = list_runs()
    return runs.loc[runs["state"] == "running", "run_id"].tolist()


# --- Cancelling -------------------------------------------------------------------------


def cancel_run(run_id: str, grace_s: float = config.JOB_CANCEL_GRACE_S) -> dict:
    """Ask a running run to stop (SIGTERM to its process group); return its status.

    The run writes status "cancelled" itself and exits. One that does not stop within
    ``grace_s`` seconds is killed (SIGKILL) and marked cancelled here.
    """
    path = run_path(run_id)
    status = run_status(run_id)
    if status.get("state") != "running":
        return status
    (path / CANCEL_FILE).write_text(utc_timestamp())  # so a run killed before it could say so counts as cancelled
    job = read_job(run_id)
    pid = job.get("pid")
    if pid is None or not _process_alive(pid, job.get("pid_start")):
        return run_status(run_id)
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not _process_alive(pid, job.get("pid_start")):
            break
        time.sleep(0.1)
    else:
        _signal_group(pid, signal.SIGKILL)
        for _ in range(50):  # bounded wait for the kill to land
            if not _process_alive(pid, job.get("pid_start")):
                break
            time.sleep(0.1)
    return run_status(run_id)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # the run is its session's leader: its group id is its pid
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


# --- Results on the map -----------------------------------------------------------------


def prediction_columns(space_source_ids, max_runs: int = 10) -> dict[str, pd.Series]:
    """Colour columns for the map from finished runs, aligned with ``space_source_ids``.

    For each of the ``max_runs`` newest finished runs whose predictions share sources
    with the space: ``"run <id>: P(<positive class>)"`` (float 0..1, NaN where the run has
    no prediction) and ``"run <id>: misclassified"`` ("correct", or "misclassified · <split>"
    saying whether the mistake is a training, test or out-of-distribution source
    (:func:`explorer.training_results.prediction_marks`), for sources with a label of the
    task; NaN otherwise). The Series carry the index of
    ``space_source_ids`` (a positional RangeIndex for a list or array).
    """
    from explorer.training_results import prediction_marks

    ids = space_source_ids if isinstance(space_source_ids, pd.Series) else pd.Series(list(space_source_ids))
    ids = ids.astype(str)
    columns: dict[str, pd.Series] = {}
    runs = list_runs()
    for run_id in runs.loc[runs["state"] == "finished", "run_id"].head(max_runs):
        predictions = read_predictions(run_id)
        if predictions is None or "source_id" not in predictions:
            continue
        prob_columns = [c for c in predictions.columns if c.startswith("prob_")]
        if not prob_columns:
            continue
        predictions = predictions.drop_duplicates("source_id").set_index("source_id")
        if not ids.isin(predictions.index).any():
            continue  # a run on other data than this space
        positive = prob_columns[0][len("prob_") :]
        prob = ids.map(predictions[prob_columns[0]].astype(float))
        marked = ids.map(prediction_marks(predictions))  # "misclassified · test" etc.: the split of each mistake
        columns[f"run {run_id}: P({positive})"] = pd.Series(prob.to_numpy(dtype=float), index=ids.index)
        columns[f"run {run_id}: misclassified"] = pd.Series(marked.to_numpy(dtype=object), index=ids.index)
    return columns


def prediction_colour_columns(space, max_runs: int = 10) -> dict[str, pd.Series]:
    """The same columns for the map page's colour menu, indexed by ``source_id``.

    ``space``: anything with a ``catalogue`` holding ``source_id`` (explorer's spaces).
    Called by ``explorer.colour_columns``; a space without shared sources gets nothing.
    """
    catalogue = getattr(space, "catalogue", None)
    if catalogue is None or "source_id" not in catalogue:
        return {}
    ids = catalogue["source_id"].astype(str)
    return {
        name: pd.Series(series.to_numpy(), index=ids.to_numpy(), name=name)
        for name, series in prediction_columns(ids.reset_index(drop=True), max_runs).items()
    }
