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

What a run folder says is data, never trusted beyond that (a runs folder may be shared, or
a file planted): a process counts as the run's only when it runs on the host ``job.json``
names, started at the recorded time (a reused pid is not it) and its command line is this
very run's ``pretrain finetune --out``. Cancel signals it only when, in addition, this user
wrote the ``job.json`` and owns the process. A run on another host is shown as running
there, and is neither judged nor cancelled here. At most ``config.JOB_MAX_RUNNING`` runs
started from this host train at once (env ``EXPLORER_MAX_RUNS``). A damaged file (a status
that is not an object, an epoch that is not a number, a metric that is text) is read as
missing, so one damaged run folder never breaks the listing of the others.

Runs live in ``$EXPLORER_RUNS`` or ``pretrain.config.cache_dir() / "runs"``; a runs folder
its group may write is shared (:mod:`pretrain.files`): run folders made in it are too.
"""

from __future__ import annotations

import json
import math
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
from pretrain.files import atomic_write_json, make_dirs, written_by_someone_else
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
    return make_dirs(path)


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
            make_dirs(path, exist_ok=False)
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
    scratch, weights, bundle, device, batch_size, num_threads). Refused (ExplorerError) while
    :func:`max_running` runs started on this host are still training.
    """
    running = [r for r in active_runs() if _on_this_host(read_job(r))]
    if len(running) >= max_running():
        raise ExplorerError(
            f"{len(running)} training runs are already going on this machine (at most {max_running()} at once, "
            f"set by {config.MAX_RUNS_ENV}); wait for one to end or cancel one."
        )
    run_id, path = _new_run_folder()
    command = finetune_command(path, **options)
    # The run's own status, until the process writes its first: a run that dies before
    # that is still seen (as failed, by its pid). A linear probe (depth 0) is one fit, no
    # epochs: its progress counts one step.
    probe = options.get("depth") == 0 and not options.get("scratch")
    atomic_write_json(
        path / STATUS_FILE,
        {
            "state": "running",
            "stage": "starting",
            "error": None,
            "epoch": 0,
            "epochs": 1 if probe else int(options.get("epochs", config.FINETUNE_EPOCHS)),
            "mode": "linear probe" if probe else "",
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


def max_running() -> int:
    """How many runs may train at once on this host (``EXPLORER_MAX_RUNS``, else ``config.JOB_MAX_RUNNING``)."""
    text = os.environ.get(config.MAX_RUNS_ENV, "").strip()
    try:
        return max(1, int(text)) if text else config.JOB_MAX_RUNNING
    except ValueError:
        return config.JOB_MAX_RUNNING


def _this_host() -> str:
    return os.uname().nodename


def _on_this_host(job: dict) -> bool:
    """A job.json without a host (from before hosts were recorded) counts as this host's."""
    host = job.get("host")
    return not isinstance(host, str) or host == _this_host()


# --- Is the process alive? --------------------------------------------------------------


def _process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _run_process(run_id: str, job: dict) -> int | None:
    """The pid of the run's own process when it is alive on this host, else None.

    It must have started when ``job.json`` says (a reused pid is another process) and run
    ``pretrain finetune --out <this run>``: a job.json naming any other process (planted, or
    damaged) names no live run."""
    pid = job.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1:
        return None
    pid_start = job.get("pid_start")
    if not _process_alive(pid, pid_start if isinstance(pid_start, int) else None):
        return None
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return pid if not Path("/proc/self").exists() else None  # no /proc: the pid check is all there is
    if "pretrain" not in args or "finetune" not in args or "--out" not in args:
        return None
    out = args[args.index("--out") + 1] if args.index("--out") + 1 < len(args) else ""
    return pid if Path(out).name == run_id else None


def _process_uid(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _process_alive(pid: int | None, pid_start: int | None = None) -> bool:
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
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
    """A JSON object from a file; None when it is missing, unreadable or not an object."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _number(value) -> float | None:
    """A finite number, or None (text, null, a list, NaN: a damaged or partial file)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _whole(value, default: int | None = 0) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number == int(number) and number >= 0 else default


def _text(value) -> str | None:
    return value if isinstance(value, str) else None


_STATES = ("running", "finished", "failed", "cancelled")
# metrics.json fields the page formats as numbers / shows as text
_METRIC_NUMBERS = (
    "test_error_percent",
    "test_error",
    "ood_error_percent",
    "ood_error",
    "wall_time_s",
    "n_train",
    "n_test",
    "n_ood",
    "seed",
)


def read_job(run_id: str) -> dict:
    return _read_json(run_path(run_id) / JOB_FILE) or {}


def read_config(run_id: str) -> dict | None:
    return _read_json(run_path(run_id) / CONFIG_FILE)


def read_metrics(run_id: str) -> dict | None:
    """The run's metrics.json; None when it is missing or damaged (no test error as a number).
    A numeric field holding anything else (null, text) reads as None."""
    metrics = _read_json(run_path(run_id) / METRICS_FILE)
    if metrics is None:
        return None
    for name in _METRIC_NUMBERS:
        if name in metrics:
            metrics[name] = _number(metrics[name])
    for name in ("n_train", "n_test", "n_ood", "seed"):
        if metrics.get(name) is not None:
            metrics[name] = int(metrics[name])
    for name in _METRIC_NUMBERS:
        metrics.setdefault(name, None)
    for name in ("device", "device_name", "ood_name", "positive_class"):
        if not isinstance(metrics.get(name), str):
            metrics[name] = "" if metrics.get(name) is None else str(metrics[name])
    metrics["positive_class"] = metrics["positive_class"] or "FRII"
    if metrics.get("ood_error_percent") is None:
        metrics["ood_error"] = None  # the page shows the out-of-distribution error only with its figure
    complete = metrics.get("test_error_percent") is not None and metrics.get("wall_time_s") is not None
    return metrics if complete else None


def _clean_status(status: dict | None) -> dict:
    """status.json as the page can show it: a known state, whole epochs, text errors."""
    if status is None:
        return {"state": "failed", "error": "the run has no readable status file (missing or damaged)"}
    state = status.get("state")
    if state not in _STATES:
        status["error"] = f"the status file names no known state ({str(state)[:40]!r}); the run is damaged"
        status["state"] = "failed"
    status["epoch"] = _whole(status.get("epoch"), 0)
    status["epochs"] = _whole(status.get("epochs"), None)
    for name in ("stage", "error", "started", "ended"):
        if name in status and status[name] is not None and not isinstance(status[name], str):
            status[name] = str(status[name])
    return status


def run_status(run_id: str) -> dict:
    """The run's status (``state``: running, finished, failed, cancelled, and more fields).

    A run whose status says running but whose process is gone is marked failed here, with
    the reason and the log's last lines, and the status file is updated so it stays so.
    """
    path = run_path(run_id)
    if not path.is_dir():
        raise ExplorerError(f"no run {run_id} in {runs_dir()}.")
    status = _clean_status(_read_json(path / STATUS_FILE))
    if status.get("state") != "running":
        return status
    job = _read_json(path / JOB_FILE) or {}
    if not job and _age_s(path) < 30:
        return status  # being started right now
    if not _on_this_host(job):
        status["host"] = str(job["host"])  # another machine's run: only that machine can tell
        return status
    job = job or {"pid": status.get("pid")}  # a run started without the app: its status names its pid
    if _run_process(run_id, job) is not None:
        return status
    pid = job.get("pid")
    status = _clean_status(_read_json(path / STATUS_FILE) or status)  # it may have finished in between
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
    try:
        atomic_write_json(path / STATUS_FILE, status)
    except OSError:
        pass  # another user's run folder: the verdict is shown, not written
    return status


def _age_s(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return float("inf")


def read_progress(run_id: str) -> pd.DataFrame:
    """One row per finished epoch (epoch, loss, train_acc, test_acc, ...); empty before the first.

    A half-written last line (the run is writing it), a line that is not a JSON object and a
    value that is not a number (a damaged file) are skipped or read as NaN.
    """
    path = run_path(run_id) / PROGRESS_FILE
    rows = []
    try:
        text = path.read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(row, dict) and _whole(row.get("epoch"), None) is not None:
            rows.append(row)
    columns = ["epoch", "loss", "train_acc", "test_acc"]
    frame = pd.DataFrame(rows)
    for column in columns:
        values = frame[column] if column in frame else pd.Series([None] * len(frame), dtype=object)
        frame[column] = pd.to_numeric(values.map(_number), errors="coerce").astype(float)
    frame["epoch"] = frame["epoch"].astype(int) if len(frame) else frame["epoch"]
    return frame.drop_duplicates("epoch", keep="last").reset_index(drop=True)


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
        options: dict = job["options"] if isinstance(job.get("options"), dict) else {}
        recorded = (_read_json(path / CONFIG_FILE) or {}).get("settings")
        settings: dict = recorded if isinstance(recorded, dict) else {}
        metrics = read_metrics(path.name) or {}
        scratch = settings.get("scratch", options.get("scratch", False)) is True
        depth = _whole(settings.get("depth", options.get("depth", config.FINETUNE_DEPTH)), None)
        rows.append(
            {
                "run_id": path.name,
                "state": status.get("state"),
                "task": _text(settings.get("task", options.get("task", config.FINETUNE_TASK))) or "?",
                "mode": "scratch" if scratch else ("linear probe" if depth == 0 else "fine-tune"),
                "labels": _label_budget(
                    _whole(settings.get("labels", options.get("labels")), None), _whole(metrics.get("n_train"), None)
                ),
                "depth": depth,
                "epochs": _whole(settings.get("epochs", options.get("epochs")), None),
                "epoch": status.get("epoch", 0),
                "seed": _whole(settings.get("seed", options.get("seed")), None),
                "test_error_percent": metrics.get("test_error_percent"),
                "ood_error_percent": metrics.get("ood_error_percent"),
                "wall_time_s": metrics.get("wall_time_s"),
                "started": status.get("started") or _text(job.get("started")),
                "error": status.get("error"),
                "host": status.get("host"),
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
        "host",
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
    ``grace_s`` seconds is killed (SIGKILL) and marked cancelled here. Only a process this
    user started for this run on this host is ever signalled: ExplorerError otherwise.
    """
    path = run_path(run_id)
    status = run_status(run_id)
    if status.get("state") != "running":
        return status
    job = read_job(run_id)
    if not _on_this_host(job):
        raise ExplorerError(f"run {run_id} trains on {job.get('host')}; cancel it there, from that machine's app.")
    pid = _run_process(run_id, job)
    if pid is None:
        return run_status(run_id)
    if written_by_someone_else(path / JOB_FILE) or _process_uid(pid) != os.geteuid():
        raise ExplorerError(f"run {run_id} was started by another user; only they can cancel it.")
    try:  # so a run killed before it could say so counts as cancelled
        (path / CANCEL_FILE).write_text(utc_timestamp())
    except OSError:
        pass
    _signal_group(pid, signal.SIGTERM)
    # Wait for that process (pid and start time) to end. Not _run_process: a process that is
    # exiting has an empty cmdline for a moment, which read as "ended" while it still ran.
    pid_start = job.get("pid_start") if isinstance(job.get("pid_start"), int) else None
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not _process_alive(pid, pid_start):
            break
        time.sleep(0.1)
    else:
        if _process_alive(pid, pid_start):  # still the same process: not a pid reused meanwhile
            _signal_group(pid, signal.SIGKILL)
        for _ in range(50):  # bounded wait for the kill to land
            if not _process_alive(pid, pid_start):
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
