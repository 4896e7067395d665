"""Shared by the app benchmarks: a prepared default space and the environment to start the app with.

The benchmarks use the default MiraBest space as a user gets it (``EXPLORER_CACHE``, the
user cache by default), embedded with the shipped backbone. While the shipped weights do
not exist yet, a randomly initialised encoder stands in (``EXPLORER_WEIGHTS``): the
latency of the app does not depend on the weights' values.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def bench_env(cache: str | None, weights: str | None) -> tuple[dict[str, str], str]:
    """Environment for the app and a note on the weights used."""
    from pretrain import config
    from pretrain.provenance import default_backbone_path

    env = {"EXPLORER_SPACES": ""}
    if cache:
        env["EXPLORER_CACHE"] = str(Path(cache).resolve())
    os.environ.update(env)
    if weights:
        env["EXPLORER_WEIGHTS"] = str(Path(weights).resolve())
        note = f"weights {Path(weights).name}"
    elif default_backbone_path().is_file():
        note = f"the shipped backbone ({default_backbone_path().name})"
    else:
        import torch

        from pretrain.models.backbone import save_encoder
        from pretrain.models.resnet import resnet18_encoder

        path = config.cache_dir() / "bench_random_encoder.safetensors"
        if not path.is_file():
            torch.manual_seed(0)
            save_encoder(resnet18_encoder(), path, metadata={"note": "random weights for app benchmarks"})
        env["EXPLORER_WEIGHTS"] = str(path)
        note = (
            "a randomly initialised ResNet-18 (the shipped backbone was not there yet; the app's "
            "speed does not depend on the weights)"
        )
    os.environ.update(env)
    return env, note


def prepare(env: dict[str, str]) -> int:
    """Prepare (or reuse) the default space in the bench's cache; the number of its sources."""
    from explorer import default_space
    from pretrain.space import load_space

    os.environ.update(env)
    state = default_space.default_space_state()
    if not state.ready:
        print(f"preparing the default space ({state.reason}) ...", flush=True)
        last = [0.0]

        def progress(stage, fraction, message):
            if time.monotonic() - last[0] > 5 or fraction >= 1.0:
                last[0] = time.monotonic()
                print(f"  {stage}: {fraction:4.0%} {message}", flush=True)

        default_space.prepare_default_space(progress)
    return len(load_space(default_space.space_path()))
