"""The files of a fine-tuning run folder (written by :mod:`pretrain.finetune`, read by
:mod:`explorer.jobs` while the run goes on). Torch-free: the app's Training page polls
these without loading the training code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pretrain.clock import utc_timestamp
from pretrain.files import atomic_write_json, to_json

CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"
PROGRESS_FILE = "progress.jsonl"
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.parquet"
ENCODER_FILE = "encoder.safetensors"
HEAD_FILE = "head.safetensors"


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
