"""Distributed embedding and DDP pretraining against one process, side by side in one run.

1. **Embedding**: the same bundle embedded by ``pretrain.embed.embed_images`` in this process
   (all cores to torch) and by ``embed --engine dask``'s engine
   (:class:`pretrain.engines.dask_engine.DaskEmbedder`) on a local cluster of two workers
   (one torch thread each on two cores), interleaved; the Dask figure includes starting the
   cluster, which is also timed on its own. The largest difference between the two results
   is reported (they should agree to float rounding).
2. **DDP pretraining**: ``python -m pretrain train`` in one process and
   ``torchrun --nproc_per_node 2 -m pretrain train`` (gloo) with the same seed and the same
   global batch, one epoch each; time per step from each run's metrics.jsonl, and the largest
   difference between the two backbones.

On a 2-core CPU neither distributed path can be faster than one process using both cores:
the workers share the same two cores and add their start-up and communication. The point of
both is correctness on machines with many cores, GPUs or nodes; the figures say what the
machinery costs here.

    python bench/bench_distributed.py                      # synthetic bundle (512 images)
    python bench/bench_distributed.py --bundle BUNDLE --images 1024

Writes the section between ``<!-- bench_distributed:start -->`` and ``<!-- bench_distributed:end -->``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import BENCHMARKS, machine_description, today, write_section
from pretrain.data.bundle import IMAGES_FILE, load_bundle

NAME = "bench_distributed"
REPO = Path(__file__).resolve().parent.parent


def synthetic_bundle(folder: Path, n: int, seed: int = 0) -> Path:
    """A bundle (images.npy, catalogue.parquet, manifest.json) of ``n`` sparse synthetic
    sources: a few Gaussian blobs each, extents large enough to pass the pretraining cut."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 150, 150), np.uint8)
    yy, xx = np.mgrid[:150, :150]
    for image in images:
        for _ in range(3):
            cy, cx = rng.uniform(45, 105, 2)
            blob = 255 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * rng.uniform(2, 8) ** 2))
            image[:] = np.maximum(image, blob.astype(np.uint8))
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / IMAGES_FILE, images)
    catalogue = pd.DataFrame(
        {
            "source_id": [f"SYN{i:06d}" for i in range(n)],
            "ra": 150.0 + np.arange(n) * 1e-3,
            "dec": np.full(n, 2.0),
            "angular_extent_arcsec": np.full(n, 60.0),
            "angular_extent_estimated_arcsec": np.full(n, 60.0),
            "label": [""] * n,
            "confident": pd.array([False] * n, dtype="boolean"),
            "survey": ["FIRST"] * n,
            "file": [f"synthetic_{i}.fits" for i in range(n)],
        }
    )
    catalogue.to_parquet(folder / "catalogue.parquet", index=False)
    (folder / "manifest.json").write_text(json.dumps({"bundle_id": f"bench{n}", "n_images": n, "format_version": 1}))
    return folder


def bench_embedding(bundle_path: Path, n_images: int, batch_size: int, chunk: int, repeats: int) -> dict:
    import torch

    from pretrain.embed import embed_images
    from pretrain.engines.dask_engine import DaskEmbedder
    from pretrain.models.backbone import load_encoder
    from pretrain.provenance import default_backbone_path

    bundle = load_bundle(bundle_path)
    images = bundle.images[:n_images]
    weights = default_backbone_path()
    encoder = load_encoder(weights)
    results: dict[str, list[float]] = {"one": [], "dask": [], "cluster_start": []}
    difference = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        sliced = Path(tmp) / IMAGES_FILE  # the engine reads a file: the first n images as their own
        np.save(sliced, np.asarray(images))
        for repeat in range(repeats):
            torch.set_num_threads(os.cpu_count() or 1)
            t0 = time.perf_counter()
            one = embed_images(encoder, images, batch_size=batch_size, device="cpu")
            results["one"].append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            engine = DaskEmbedder(
                sliced, bundle.bundle_id, weights, Path(tmp) / f"parts{repeat}", workers=2, chunk_images=chunk
            )
            distributed = engine(None, images, batch_size, "cpu", symmetry="d4")
            results["dask"].append(time.perf_counter() - t0)
            difference = max(difference, float(np.abs(distributed - one).max()))

            from distributed import Client, LocalCluster

            t0 = time.perf_counter()
            with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster):
                results["cluster_start"].append(time.perf_counter() - t0)
    return {"images": len(images), "bundle_id": bundle.bundle_id, "difference": difference, **results}


def bench_ddp(bundle_path: Path, batch_size: int, width: int) -> dict:
    common = [
        "train", "--bundle", str(bundle_path), "--epochs", "1", "--batch-size", str(batch_size),
        "--width", str(width), "--device", "cpu", "--precision", "fp32", "--no-progress", "--seed", "0",
        "--include-held-out",  # synthetic positions: nothing to hold out
    ]  # fmt: skip
    out: dict[str, dict] = {}
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory() as tmp:
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "pretrain"]
        for name, launcher, threads in (
            ("one process", [sys.executable, "-m", "pretrain"], str(os.cpu_count() or 1)),  # every core to it
            ("torchrun, 2 processes", torchrun, "1"),
        ):
            run = Path(tmp) / name.replace(" ", "_").replace(",", "")
            t0 = time.perf_counter()
            command = [*launcher, *common, "--num-threads", threads, "--out", str(run)]
            subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True)
            wall = time.perf_counter() - t0
            record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
            info = json.loads((run / "config.json").read_text())
            out[name] = {
                "wall_s": wall,
                "steps": record["step"],
                "step_s": batch_size / record["images_per_s"],
                "loss": record["loss"],
                "threads": info["threads"],
                "backbone": _backbone(run),
            }
    a, b = (out[k]["backbone"] for k in out)
    names = [k for k in a if a[k].dtype.kind == "f"]
    flat_a = np.concatenate([a[k].astype(np.float64).ravel() for k in names])
    flat_b = np.concatenate([b[k].astype(np.float64).ravel() for k in names])
    out["difference"] = float(np.linalg.norm(flat_a - flat_b) / np.linalg.norm(flat_a))  # type: ignore[assignment]
    return out


def _backbone(run: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(run / "backbone.safetensors"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, help="a bundle to embed (default: a synthetic one)")
    parser.add_argument("--images", type=int, default=512, help="images embedded (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64, help="embedding batch (default %(default)s)")
    parser.add_argument("--chunk-size", type=int, default=128, help="images per Dask task (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs of each (default %(default)s)")
    parser.add_argument("--train-images", type=int, default=256, help="DDP: synthetic training images")
    parser.add_argument("--train-batch", type=int, default=64, help="DDP: global batch (default %(default)s)")
    parser.add_argument("--width", type=int, default=64, help="DDP: encoder width (default %(default)s)")
    parser.add_argument("--out", type=Path, default=BENCHMARKS)
    args = parser.parse_args(argv)

    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        bundle = args.bundle or synthetic_bundle(Path(tmp) / "bundle", args.images)
        embedding = bench_embedding(bundle, args.images, args.batch_size, args.chunk_size, args.repeats)
        train_bundle = synthetic_bundle(Path(tmp) / "train", args.train_images, seed=1)
        ddp = bench_ddp(train_bundle, args.train_batch, args.width)
    minutes = (time.perf_counter() - t_start) / 60

    n = embedding["images"]
    one, dask = min(embedding["one"]), min(embedding["dask"])
    start = min(embedding["cluster_start"])
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    single, multi = ddp["one process"], ddp["torchrun, 2 processes"]
    faster_note = (
        " (likely because the machine is shared: under this load two processes get a larger share"
        " of its cores than one process does)"
        if one / dask > 1.1 and os.getloadavg()[0] > (os.cpu_count() or 1)
        else ""
    )
    section = f"""## Distributed embedding (Dask, 2 workers) and DDP pretraining (2 processes) against one process

Measured {today()} by `bench/bench_distributed.py` in {minutes:.1f} min; machine: {machine_description()};
load average {load} at the end (the machine is shared with other work: both sides of each
comparison ran interleaved under the same load).

**Embedding** {n} images of bundle {embedding["bundle_id"]} with the shipped backbone (d4,
batch {args.batch_size}), best of {args.repeats}: one process (`embed`, all cores to torch) against
`embed --engine dask` on a local cluster of two worker processes (one torch thread each,
chunks of {args.chunk_size} images, each written as a part file and assembled), the cluster's
start included; starting a 2-worker LocalCluster alone takes {start:.1f} s here.

| engine | wall time (s) | images/s | largest difference from one process |
|---|---|---|---|
| local (one process) | {one:.1f} | {n / one:.1f} | - |
| dask, local cluster of 2 workers | {dask:.1f} | {n / dask:.1f} | {embedding["difference"]:.1e} |

Ratio dask / one process: {one / dask:.2f}x the throughput{faster_note}. The two workers have
the same two cores as the one process; what the cluster brings is more cores or machines
(`--address`), where the chunks spread out, and on any machine resumability (a killed job
keeps its finished chunks).

**DDP pretraining**, one epoch of BYOL on {args.train_images} synthetic images, global batch
{args.train_batch}, width {args.width}, fp32, the same seed: `python -m pretrain train` against
`torchrun --nproc_per_node 2 -m pretrain train` (gloo, {args.train_batch // 2} images per process, batch
norm over the global batch).

| launch | torch threads per process | steps | time per step (s) | wall time incl. start-up (s) | final loss |
|---|---|---|---|---|---|
| one process | {single["threads"]} | {single["steps"]} | {single["step_s"]:.2f} | {single["wall_s"]:.0f} | {single["loss"]:.5f} |
| torchrun, 2 processes (gloo) | {multi["threads"]} | {multi["steps"]} | {multi["step_s"]:.2f} | {multi["wall_s"]:.0f} | {multi["loss"]:.5f} |

Ratio: 2 processes take {multi["step_s"] / single["step_s"]:.2f}x the time per step of one. The two
backbones differ by {ddp["difference"]:.1e} (|a - b| / |a| over all weights; the final losses by
{abs(multi["loss"] / single["loss"] - 1):.1e}): float rounding (other thread counts and batch shapes),
which BYOL amplifies step by step; with batch norm per process instead of over the global
batch, the tiny run of `tests/test_ddp.py` differed by ~7e-2 (measured once, by hand). On 2 CPU cores DDP cannot be faster — the two processes
split the cores one process already uses and add gradient all-reduces and the global batch
norm's — its point is multi-GPU training, where each process has its own device
(`tests/test_ddp.py` checks the equivalence; no GPU was used here).
"""
    write_section(NAME, section, args.out)
    print(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
