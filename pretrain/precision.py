"""Mixed precision for training (pretraining and fine-tuning).

bf16 autocast needs no loss scaling and, with channels_last, speeds up a step on GPUs and
on CPUs with native bf16 instructions; elsewhere bf16 is emulated and slower than fp32
(BENCHMARKS.md, training throughput).
"""

from __future__ import annotations

import contextlib

import torch

from pretrain.errors import ExplorerError

PRECISIONS = ("auto", "bf16", "fp32")


def cpu_has_native_bf16() -> bool:
    """True on x86 CPUs with bf16 arithmetic in hardware (AVX512-BF16 or AMX-BF16).

    oneDNN's own ``_is_mkldnn_bf16_supported`` is not the right test: it also says yes on
    AVX-512 CPUs without those instructions, which emulate bf16 and then train slower
    than fp32.
    """
    try:  # private, but the capability table torch itself dispatches on
        capability = torch._C._cpu._get_cpu_capability()
    except (AttributeError, RuntimeError):
        return False
    return bool(capability.get("avx512_bf16") or capability.get("amx_bf16"))


def resolve_precision(name: str, device: torch.device) -> str:
    """'bf16' or 'fp32' for ``device`` from 'auto' | 'bf16' | 'fp32'."""
    if name not in PRECISIONS:
        raise ExplorerError(f"unknown precision {name!r}: use one of {', '.join(PRECISIONS)}.")
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16"
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"


def autocast(device: torch.device, precision: str):
    """The autocast context for a resolved precision."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
