"""Where torch runs, and how a machine is named in run records.

Torch is imported only when a device is chosen, so reading this module costs nothing.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING

from pretrain.errors import ExplorerError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")  # what the command lines offer


def choose_device(requested: str | torch.device | None = "auto") -> torch.device:
    """The torch device for ``requested``.

    ``"auto"`` (or None / ""): CUDA when torch sees a GPU, else the CPU. Anything else
    torch can name (``"cpu"``, ``"cuda"``, ``"cuda:1"``, a ``torch.device``) is used as
    given; a CUDA device without a visible GPU, or a name torch does not know, is an
    ExplorerError that says what to pass instead.
    """
    import torch

    if isinstance(requested, torch.device):
        device = requested
    elif requested in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(requested)
        except (RuntimeError, TypeError) as exc:
            raise ExplorerError(f"unknown device {requested!r}: use auto, cpu or cuda.") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ExplorerError(
            f"device {str(device)!r} was asked for but no CUDA GPU is visible to torch; use --device cpu or auto."
        )
    return device


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it (else what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_description() -> str:
    """``<model> (<n> cores)``."""
    return f"{cpu_model()} ({os.cpu_count()} cores)"
