"""The files of a fine-tuning run folder (written by :mod:`pretrain.finetune`, read by
:mod:`explorer.jobs` while the run goes on). Torch-free: the app's Training page polls
these without loading the training code.

A process writing a run folder holds its lock (:func:`locked_run_folder`, an ``flock`` on
``.lock`` that the system drops when the process ends, however it ends), so a second
``finetune`` or ``train`` into the same ``--out`` is refused instead of interleaving with it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pretrain.clock import utc_timestamp
from pretrain.errors import ExplorerError
from pretrain.files import atomic_write_json, to_json

CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"
PROGRESS_FILE = "progress.jsonl"
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.parquet"
ENCODER_FILE = "encoder.safetensors"
HEAD_FILE = "head.safetensors"
LOCK_FILE = ".lock"


@contextmanager
def locked_run_folder(path: str | Path) -> Iterator[Path]:
    """Hold the run folder's lock while the block runs; ExplorerError when another process holds it."""
    from pretrain.files import make_dirs

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ExplorerError(f"--out {path}: exists and is not a folder; choose another --out.")
    try:
        make_dirs(path)
    except OSError as exc:
        raise ExplorerError(f"--out {path}: cannot create it ({exc.strerror or exc}); choose another --out.") from exc
    fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise ExplorerError(
                f"--out {path}: another run is writing into this folder right now (pid {holder}); "
                "wait for it to end, or choose another --out."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield path
    finally:
        os.close(fd)  # drops the lock


@dataclass
class RunFolder:
    """The files of one run; status updates merge into status.json (written atomically, so a
    reader polling it never sees half a file)."""

    path: Path
    status: dict = field(default_factory=dict)

    def set_status(self, state: str | None = None, **fields) -> None:
        if state is not None:
            self.status["state"] = state
        self.status.update(fields, pid=os.getpid(), updated=utc_timestamp())
        atomic_write_json(self.path / STATUS_FILE, self.status)

    def append_progress(self, record: dict) -> None:
        with open(self.path / PROGRESS_FILE, "a") as f:
            f.write(to_json(record) + "\n")
            f.flush()
