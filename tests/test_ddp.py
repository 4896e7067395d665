"""`torchrun --nproc_per_node 2 -m pretrain train` (DDP, gloo on the CPU) against one process.

The equivalence tested: with the same seed and the same global batch (--batch-size 8: 4 per
process), two processes train the same model as one process does: the same epoch losses and
the same weights, up to float rounding (other batch shapes and reduction orders). That holds
because each process trains on its share of the same global batch with the views one
process would draw, batch norm uses the global batch's statistics
(pretrain.distributed.CrossProcessBatchNorm) and DDP averages the gradients; measured with
per-process batch norm instead, the weights differ ~30 times the tolerance. A
checkpoint resumes under torchrun as it does in one process, and only rank 0 writes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import DistributedSampler

from pretrain.__main__ import main
from pretrain.distributed import Processes
from pretrain.train import BACKBONE_FILE, CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE
from tests.test_train import write_synthetic_bundle

REPO = Path(__file__).resolve().parent.parent
SEED = 3


def test_each_process_trains_on_the_share_distributed_sampler_gives_it():
    """Process r's rows of a global batch (Processes.share) are DistributedSampler's shard of the
    epoch's permutation (pretrain.train.Trainer._permutation) for that step."""
    n, batch, world, epoch = 30, 8, 2, 1
    order = torch.randperm(n, generator=torch.Generator().manual_seed(SEED * 100_003 + epoch))
    for rank in range(world):
        sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=SEED * 100_003)
        sampler.set_epoch(epoch)
        shard = list(sampler)
        for step in range(n // batch):
            ours = Processes(rank=rank, world_size=world).share(order[step * batch : (step + 1) * batch])
            assert ours.tolist() == shard[step * batch // world : (step + 1) * batch // world]


def _args(bundle: Path, out: Path, epochs: int, resume: bool = False) -> list[str]:
    common = ["--out", str(out), "--epochs", str(epochs), "--device", "cpu", "--precision", "fp32", "--no-progress"]
    common += ["--num-threads", "1"]  # one process as each of the two: the same kernels
    if resume:
        return ["train", "--resume", *common]
    return ["train", "--bundle", str(bundle), *common, "--batch-size", "8", "--width", "8", "--seed", str(SEED)]


def _torchrun(args: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "pretrain", *args]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-1500:] + done.stderr[-3000:]
    assert done.stdout.count("trained ") == 1  # rank 0 reports, rank 1 does not


def _losses(run: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / METRICS_FILE).read_text().splitlines()]


def _relative_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """|a - b| / |a| over every floating-point tensor together (L2)."""
    names = [k for k in a if a[k].is_floating_point()]
    flat_a = torch.cat([a[k].double().flatten() for k in names])
    flat_b = torch.cat([b[k].double().flatten() for k in names])
    return float((flat_a - flat_b).norm() / flat_a.norm())


def _assert_same_training(single: Path, ddp: Path) -> None:
    # Tolerances: rounding differences grow fast in a network this small (one process on 1
    # thread vs 2 threads already differs by ~6e-4 in the weights after 6 steps); DDP with
    # per-process batch norm differs by ~3 % in the first epoch's loss and ~7 % in the weights.
    np.testing.assert_allclose(_losses(ddp), _losses(single), rtol=1e-3)
    a, b = load_file(str(single / BACKBONE_FILE)), load_file(str(ddp / BACKBONE_FILE))
    assert a.keys() == b.keys()
    assert _relative_difference(a, b) < 2e-3
    state_a = torch.load(single / CHECKPOINT_FILE, weights_only=True)
    state_b = torch.load(ddp / CHECKPOINT_FILE, weights_only=True)
    assert state_a["global_step"] == state_b["global_step"]
    assert torch.equal(state_a["aug_generator"], state_b["aug_generator"])  # the same views were drawn
    assert state_a["model"].keys() == state_b["model"].keys()
    assert _relative_difference(state_a["model"], state_b["model"]) < 2e-3  # EMA target, batch-norm buffers too


@pytest.mark.slow
def test_two_gloo_processes_train_and_resume_as_one_process(tmp_path):
    bundle = write_synthetic_bundle(tmp_path / "bundle")  # 24 sources above the extent cut: 3 steps an epoch
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    assert main(_args(bundle, single, epochs=2)) == 0
    _torchrun(_args(bundle, ddp, epochs=2))
    _assert_same_training(single, ddp)
    info = json.loads((ddp / CONFIG_FILE).read_text())
    assert info["processes"] == {"world_size": 2, "backend": "gloo"}
    assert info["resolved"]["batch_size"] == 8 and info["resolved"]["batch_per_process"] == 4
    assert sorted(p.name for p in ddp.iterdir()) == sorted(p.name for p in single.iterdir())  # no stray files

    # The one-process run's checkpoint continued to a third epoch, under torchrun and without.
    # (From the same checkpoint: the rounding differences above grow tenfold an epoch on a
    # network this small, so the two runs' own checkpoints would compare drift, not resume.)
    resumed = tmp_path / "resumed"
    shutil.copytree(single, resumed)
    assert main(_args(bundle, single, epochs=3, resume=True)) == 0
    _torchrun(_args(bundle, resumed, epochs=3, resume=True))
    _assert_same_training(single, resumed)
    assert len(_losses(resumed)) == 3  # one line per epoch: rank 1 wrote none
    assert json.loads((resumed / CONFIG_FILE).read_text())["processes"]["world_size"] == 2


def test_a_batch_that_cannot_be_shared_evenly_is_refused(tmp_path):
    from pretrain.errors import ExplorerError
    from pretrain.train import TrainConfig, Trainer

    bundle = write_synthetic_bundle(tmp_path / "bundle")
    cfg = TrainConfig(bundles=[str(bundle)], epochs=1, batch_size=7, device="cpu", width=8)
    with pytest.raises(ExplorerError, match="cannot be shared evenly by 2 processes: choose a --batch-size"):
        Trainer(cfg, tmp_path / "run", progress=False, processes=Processes(rank=0, world_size=2))
