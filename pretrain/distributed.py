"""Multi-process pretraining (DDP): the processes torchrun starts, and batch norm across them.

``torchrun --nproc_per_node N -m pretrain train ...`` starts N copies of the command with
``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` set; :func:`process_group` joins them (NCCL on
CUDA, one GPU per process; gloo on the CPU) and :class:`pretrain.train.Trainer` then trains
one model in step across them. How the N processes keep the single-process run's mathematics
(the same seed gives the same training, up to float rounding):

- the global batch (``--batch-size``) and so the learning rate and the schedule stay those of
  one process; each process trains on every N-th image of each global batch, which is the
  share ``torch.utils.data.DistributedSampler`` gives it of the epoch's permutation;
- every process draws the augmentation of the whole global batch from the same generator and
  keeps its own share, so each image gets the views it gets in one process (augmenting is a
  small part of a step; the ResNet's forward and backward are split N ways);
- batch norm normalises with the statistics of the whole global batch, not of one process's
  share (``nn.SyncBatchNorm`` on CUDA, :class:`CrossProcessBatchNorm` on the CPU, where
  SyncBatchNorm does not run), and DDP averages the gradients;
- only rank 0 writes the run folder (config, metrics, checkpoints, the backbone), holds its
  lock and shows progress; a resume reads the same checkpoint in every process; a stop
  (Ctrl-C, SIGTERM) asked of any process stops them all at the same step boundary.

Without torchrun (no ``WORLD_SIZE``, or 1) nothing here changes anything.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from pretrain.devices import choose_device
from pretrain.errors import ExplorerError

# A collective waits this long for the other processes (rank 0's monitor runs alone between epochs).
PROCESS_GROUP_TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class Processes:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and prints."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def mean(self, value: float) -> float:
        """The mean of a number over the processes (the global batch's loss from each share's)."""
        if not self.distributed:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        if self.backend == "nccl":
            tensor = tensor.cuda()
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.world_size

    def any(self, flag: bool) -> bool:
        """Whether any process says yes (a stop asked of one process stops all at the same step)."""
        if not self.distributed:
            return flag
        tensor = torch.tensor([int(flag)], dtype=torch.int32)
        if self.backend == "nccl":
            tensor = tensor.cuda()
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return bool(tensor.item())

    def share(self, batch: torch.Tensor) -> torch.Tensor:
        """This process's rows of a global batch: every world_size-th from its rank on
        (DistributedSampler's interleaving)."""
        return batch[self.rank :: self.world_size] if self.distributed else batch


def launched_processes() -> Processes:
    """What torchrun's environment says (RANK, LOCAL_RANK, WORLD_SIZE); one process without it."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError as exc:
        raise ExplorerError(f"WORLD_SIZE / RANK / LOCAL_RANK are not integers ({exc}); start with torchrun.") from exc
    return Processes(rank=rank, world_size=world, local_rank=local)


@contextmanager
def process_group(device_request: str = "auto") -> Iterator[tuple[Processes, torch.device]]:
    """Join the training processes (when torchrun started several); yields them and this
    process's device (its own GPU, ``cuda:LOCAL_RANK``, on CUDA)."""
    launched = launched_processes()
    device = choose_device(device_request)
    if not launched.distributed:
        yield launched, device
        return
    if device.type == "cuda":
        if launched.local_rank >= torch.cuda.device_count():
            raise ExplorerError(
                f"process {launched.rank} wants GPU {launched.local_rank} but {torch.cuda.device_count()} are "
                "visible: start at most that many processes per node (--nproc_per_node)."
            )
        device = torch.device("cuda", launched.local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    processes = Processes(launched.rank, launched.world_size, launched.local_rank, backend)
    dist.init_process_group(backend, timeout=PROCESS_GROUP_TIMEOUT)
    try:
        yield processes, device
    finally:
        dist.destroy_process_group()


class _SumOverProcesses(torch.autograd.Function):
    """all_reduce(SUM) with a gradient: the gradient of a sum over the processes is the sum
    of every process's gradient, given back to each."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        total = grad.clone()
        dist.all_reduce(total)
        return total


def sum_over_processes(tensor: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of ``tensor`` over the processes, differentiable."""
    return _SumOverProcesses.apply(tensor)


class CrossProcessBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics are those of the samples of every process (the
    global batch), for the CPU (``nn.SyncBatchNorm`` runs on GPUs only). Sums go through
    :func:`sum_over_processes`, which is differentiable: each process's
    gradient includes what its samples do to the others' normalisation, as in one process.
    Two passes (mean, then the centred squares) as ``F.batch_norm`` does, for its precision.
    Evaluation mode, or a single process, is plain batch norm."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (got {input.dim()}-D)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(input)
        x = input.float()
        dims = [0, *range(2, x.dim())]
        shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
        count = torch.tensor([x.numel() // x.shape[1]], dtype=torch.float32, device=x.device)
        totals = sum_over_processes(torch.cat([x.sum(dims), count]))
        n = totals[-1]
        mean = totals[:-1] / n
        centred = x - mean.reshape(shape)
        var = sum_over_processes(centred.square().sum(dims)) / n
        out = centred * torch.rsqrt(var + self.eps).reshape(shape)
        if self.affine:
            out = out * self.weight.reshape(shape) + self.bias.reshape(shape)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                assert self.num_batches_tracked is not None
                self.num_batches_tracked.add_(1)
                momentum = (
                    1.0 / float(self.num_batches_tracked) if self.momentum is None else float(self.momentum)
                )  # as nn.BatchNorm: the running variance is the unbiased one
                self.running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
                self.running_var.mul_(1 - momentum).add_(var.detach() * (n / (n - 1)), alpha=momentum)
        return out.to(input.dtype)


def batch_norm_across_processes(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` with every batch norm normalising over the global batch (see the docstring)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _convert(module)


def _convert(module: nn.Module) -> nn.Module:
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, CrossProcessBatchNorm):
        out = CrossProcessBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        if module.affine:  # the same tensors, not copies: requires_grad (the EMA target's False) is kept
            out.weight, out.bias = module.weight, module.bias
        out.running_mean, out.running_var = module.running_mean, module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, _convert(child))
    return out
