"""Training throughput: batched on-device augmentation vs a per-image DataLoader pipeline.

Both pipelines train the same BYOL model (ResNet-18, 70 x 70 views) with the same batch
size, side by side in one process:

- **batched** (this package): uint8 images in memory; each step indexes a batch, moves it
  to the device as uint8 and augments the whole batch there (``pretrain.augment``);
- **per-image DataLoader** (how the reference code fed its model): a ``Dataset`` whose
  ``__getitem__`` augments one image at a time (two views), batched by a ``DataLoader``
  with worker processes, then copied to the device.

Reported: images/s of full training steps, and of the augmentation pipeline alone (no
model), for each device measured. The figures go into the ``bench_training`` section of
BENCHMARKS.md (``bench/report.py``).

    python bench/bench_training.py                       # CPU (and CUDA when visible)
    python bench/bench_training.py --bundle runs/pooled_bundle --steps 8 --batch-size 64
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# Idle OpenMP threads sleep instead of spinning: on a shared, busy CPU spinning threads
# slowed torch several-fold. Must be set before torch loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from bench.report import machine_description, publish, today
from pretrain import config
from pretrain.augment import PRETRAINING, BatchAugmentation
from pretrain.precision import autocast
from pretrain.train import TrainConfig, Trainer, TrainingData

SECTION = "bench_training"


class PerImageViews(Dataset):
    """Two augmented views of one image per item, augmented on the CPU one image at a time."""

    def __init__(self, images: np.ndarray):
        self.images = images
        self.augment = BatchAugmentation(PRETRAINING)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        image = torch.from_numpy(np.array(self.images[i]))[None, None]  # (1, 1, 150, 150) uint8
        return self.augment(image)[0], self.augment(image)[0]


def make_images(n: int, bundle: str | None) -> tuple[np.ndarray, str]:
    if bundle:
        from pretrain.data.bundle import load_bundle

        b = load_bundle(bundle)
        return np.asarray(b.images[:n]), f"bundle {b.bundle_id} ({min(n, len(b))} images)"
    rng = np.random.default_rng(0)  # throughput does not depend on the pixel values
    images = (rng.random((n, config.IMAGE_SIZE_PX, config.IMAGE_SIZE_PX)) ** 8 * 255).astype(np.uint8)
    return images, f"synthetic ({n} random images)"


def make_trainer(images: np.ndarray, device: str, batch_size: int, run_dir: Path, precision: str) -> Trainer:
    cfg = TrainConfig(
        bundles=[], epochs=1000, batch_size=batch_size, device=device, warmup_epochs=0, precision=precision
    )
    data = TrainingData(images=images, bundle_ids=["bench"])
    return Trainer(cfg, run_dir, data=data, progress=False)


def step_on_views(trainer: Trainer, view_1: torch.Tensor, view_2: torch.Tensor) -> float:
    """One optimiser step on views that are already augmented (the DataLoader pipeline)."""
    view_1 = view_1.to(trainer.device, non_blocking=True)
    view_2 = view_2.to(trainer.device, non_blocking=True)
    if trainer.channels_last:
        view_1 = view_1.contiguous(memory_format=torch.channels_last)
        view_2 = view_2.contiguous(memory_format=torch.channels_last)
    with autocast(trainer.device, trainer.precision):
        loss = trainer.model(view_1, view_2)
    trainer.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    trainer.optimizer.step()
    trainer.model.update_target(0.996)
    return float(loss.detach())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_batched(trainer: Trainer, steps: int, warmup: int, with_model: bool) -> tuple[int, float]:
    n, b = len(trainer.images), trainer.batch_size
    gen = torch.Generator().manual_seed(0)
    for i in range(warmup + steps):
        if i == warmup:
            _sync(trainer.device)
            t0 = time.perf_counter()
        idx = torch.randint(0, n, (b,), generator=gen).to(trainer.images.device)
        batch = trainer.images[idx]
        if with_model:
            trainer.train_step(batch)
        else:
            batch = batch.to(trainer.device, non_blocking=True)
            trainer.augment(batch, trainer.aug_generator), trainer.augment(batch, trainer.aug_generator)
    _sync(trainer.device)
    return steps * b, time.perf_counter() - t0


def time_dataloader(
    trainer: Trainer, images: np.ndarray, steps: int, warmup: int, workers: int, with_model: bool
) -> tuple[int, float]:
    loader = DataLoader(
        PerImageViews(images),
        batch_size=trainer.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        pin_memory=trainer.cuda,
        prefetch_factor=2 if workers > 0 else None,
    )
    done = 0
    it = iter(loader)
    for i in range(warmup + steps):
        if i == warmup:
            _sync(trainer.device)
            t0 = time.perf_counter()
        try:
            view_1, view_2 = next(it)
        except StopIteration:
            it = iter(loader)
            view_1, view_2 = next(it)
        if with_model:
            step_on_views(trainer, view_1, view_2)
        else:
            view_1.to(trainer.device), view_2.to(trainer.device)
        done += 1  # noqa: SIM113 (counts steps, the loop may restart its iterator)
    _sync(trainer.device)
    seconds = time.perf_counter() - t0
    del it, loader  # stops the workers: none prefetches while the other pipeline is timed
    return steps * trainer.batch_size, seconds


def measure(
    device: str,
    images: np.ndarray,
    batch_size: int,
    steps: int,
    warmup: int,
    workers: int,
    run_dir: Path,
    rounds: int,
    precision: str,
) -> dict:
    trainer = make_trainer(images, device, batch_size, run_dir, precision)
    out: dict[str, str | int | float] = {
        "device": trainer._device_name(),
        "precision": trainer.precision,
        "batch_size": trainer.batch_size,
        "workers": workers,
    }
    # Alternate the two pipelines in blocks, so that drifting machine load hits both alike.
    totals = {key: (0, 0.0) for key in ("aug_batched", "aug_per_image", "train_batched", "train_per_image")}
    for _ in range(rounds):
        for key, timer in (
            ("aug_batched", lambda: time_batched(trainer, steps, warmup, with_model=False)),
            ("aug_per_image", lambda: time_dataloader(trainer, images, steps, warmup, workers, with_model=False)),
            ("train_batched", lambda: time_batched(trainer, steps, warmup, with_model=True)),
            ("train_per_image", lambda: time_dataloader(trainer, images, steps, warmup, workers, with_model=True)),
        ):
            done, seconds = timer()
            totals[key] = (totals[key][0] + done, totals[key][1] + seconds)
    out.update({key: images_done / total_s for key, (images_done, total_s) in totals.items()})
    return out


def render(results: list[dict], args, data_note: str) -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        "## Training throughput: batched on-device augmentation vs per-image DataLoader",
        "",
        f"Measured {today()} by `bench/bench_training.py` on {machine_description()}; "
        f"load average at the end {load} (above 2 on these 2 cores: other work shared them). Data: {data_note}. Same BYOL model (ResNet-18, two 70 x 70 views per image), same batch "
        f"size; each figure: {args.rounds} blocks of {args.steps} timed steps (after {args.warmup} "
        "untimed), the pipelines' blocks alternating. Per-image pipeline: augmentation in "
        "`Dataset.__getitem__`, `DataLoader` with the stated workers (started afresh for each block). "
        "OMP_WAIT_POLICY=PASSIVE.",
        "",
        "| device | precision | batch | workers | training, batched (img/s) | training, per-image (img/s) | ratio "
        "| augmentation only, batched (img/s) | augmentation only, per-image (img/s) | ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['device']} | {r['precision']} | {r['batch_size']} | {r['workers']} | {r['train_batched']:.1f} | "
            f"{r['train_per_image']:.1f} | {r['train_batched'] / r['train_per_image']:.2f} | "
            f"{r['aug_batched']:.0f} | {r['aug_per_image']:.0f} | {r['aug_batched'] / r['aug_per_image']:.1f} |"
        )
    if not any(r["device"].startswith("cuda") for r in results):
        lines.append("| GPU | - | - | - | not measured: no GPU lent to this task | | | | | |")
    lines += [
        "",
        "On a CPU the ResNet-18 forward/backward dominates each step, so the training ratio stays "
        "near 1 while the augmentation-only ratio shows the pipelines' own cost; the per-image "
        "workers also take cores away from the model. On a GPU the per-image pipeline caps the "
        "step rate at the workers' augmentation rate. On a shared machine (see the load average) "
        "the training figures are noisy: compare them only within one row. Precision: bf16 = "
        "autocast + channels_last (the default where the hardware has native bf16, "
        "`pretrain/precision.py`); compare the fp32 and bf16 rows for its gain.",
        "",
        _bf16_note(),
    ]
    return "\n".join(lines)


def _bf16_note() -> str:
    from pretrain.precision import cpu_has_native_bf16

    if cpu_has_native_bf16():
        return "This CPU has native bf16 (AVX512-BF16 or AMX): `--precision auto` trains in bf16 on it."
    return (
        "This CPU has no native bf16 (AVX-512 without AVX512-BF16/AMX): bf16 is emulated and slower "
        "than fp32 (the bf16 row), so `--precision auto` trains in fp32 here."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", help="take the images from this bundle (default: synthetic images)")
    parser.add_argument("--images", type=int, default=512, help="images held in memory (default 512)")
    parser.add_argument("--batch-size", type=int, default=64, help="CPU batch size (default 64)")
    parser.add_argument("--gpu-batch-size", type=int, default=1024, help="CUDA batch size (default 1024)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per block (default 3)")
    parser.add_argument(
        "--rounds", type=int, default=2, help="blocks per pipeline, alternating batched / per-image (default 2)"
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before each block (default 1)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers, CPU (default 2)")
    parser.add_argument("--gpu-workers", type=int, default=8, help="DataLoader workers with CUDA (default 8)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads in the main process (default 2)")
    parser.add_argument("--devices", default="auto", help="cpu, cuda, or auto = cpu and cuda when visible")
    parser.add_argument(
        "--precisions", default="fp32,bf16", help="training precisions to measure, comma-separated (default fp32,bf16)"
    )
    parser.add_argument("--no-write", action="store_true", help="print the section, leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    devices = ["cpu", "cuda"] if args.devices == "auto" else args.devices.split(",")
    devices = [d for d in devices if d != "cuda" or torch.cuda.is_available()]
    if not devices:
        raise SystemExit(
            f"--devices {args.devices}: no CUDA GPU is visible to torch, so there is nothing "
            "to measure; use --devices cpu or auto."
        )
    results = []
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for device in devices:
            cuda = device == "cuda"
            n = max(args.images, 2 * args.gpu_batch_size) if cuda else args.images
            images, note = make_images(n, args.bundle)
            for precision in args.precisions.split(","):
                r = measure(
                    device,
                    images,
                    args.gpu_batch_size if cuda else args.batch_size,
                    args.steps,
                    args.warmup,
                    args.gpu_workers if cuda else args.workers,
                    Path(tmp) / f"{device}-{precision}",
                    args.rounds,
                    precision,
                )
                print(r, flush=True)
                results.append(r)
    text = render(results, args, note)
    publish(SECTION, text, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
