"""Embedding throughput: the batched inference path vs one forward call per image.

Both embed the same images with the same ResNet-18 encoder, side by side in one process
(timings interleaved, so drifting machine load hits both alike):

- **batched** (this package): :func:`pretrain.embed.embed_images` — batches of
  ``--batch-size`` under ``torch.inference_mode``, read from the (memory-mapped) array a
  batch at a time; on CUDA in bf16 autocast with channels_last;
- **per image** (the obvious alternative): ``encoder(to_model_input(image[None]))`` under
  ``torch.no_grad`` for each image in turn, fp32; for the symmetrised representation
  ("d4", the default) the image's 8 turned and mirrored views go through in one call.

Each is measured for both representations (``--symmetries``): "d4" costs 8 forward passes
per image, "none" one.

The figures (images/s, best of ``--repeats``) go into BENCHMARKS.md between
``<!-- bench_embedding:start -->`` and ``<!-- bench_embedding:end -->``.

    python bench/bench_embedding.py                           # synthetic images, CPU (+ CUDA if visible)
    python bench/bench_embedding.py --bundle BUNDLE --images 1024
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import publish, today
from pretrain.devices import cpu_model
from pretrain.embed import embed_images, symmetric_views
from pretrain.models.backbone import load_encoder, to_model_input
from pretrain.models.resnet import resnet18_encoder
from pretrain.provenance import weights_sha256

NAME = "bench_embedding"


def make_images(n: int, bundle: str | None) -> tuple[np.ndarray, str]:
    """``n`` uint8 150 x 150 images: the first ``n`` of a bundle (memory-mapped), or synthetic."""
    if bundle:
        from pretrain.data.bundle import load_bundle

        b = load_bundle(bundle)
        n = min(n, len(b))
        return b.images[:n], f"the first {n} images of bundle {b.bundle_id} (memory-mapped)"
    rng = np.random.default_rng(0)
    images = np.zeros((n, 150, 150), np.uint8)
    yy, xx = np.mgrid[:150, :150]
    for image in images:  # sparse blobs on zero background, like clipped radio images
        for _ in range(3):
            cy, cx = rng.uniform(45, 105, 2)
            blob = 255 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * rng.uniform(2, 8) ** 2))
            image[:] = np.maximum(image, blob.astype(np.uint8))
    return images, f"{n} synthetic 150 x 150 uint8 images (speed does not depend on content)"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_batched(encoder, images: np.ndarray, batch_size: int, device: torch.device, symmetry: str) -> float:
    _sync(device)
    start = time.perf_counter()
    embed_images(encoder, images, batch_size=batch_size, device=device, symmetry=symmetry)
    _sync(device)
    return len(images) / (time.perf_counter() - start)


def time_per_image(encoder, images: np.ndarray, device: torch.device, symmetry: str) -> float:
    encoder.eval().to(device)
    _sync(device)
    start = time.perf_counter()
    with torch.no_grad():
        for image in images:
            views = torch.cat(list(symmetric_views(to_model_input(np.array(image)[None], device=device), symmetry)))
            encoder(views).mean(0).cpu()
    _sync(device)
    return len(images) / (time.perf_counter() - start)


def measure(
    encoder, images: np.ndarray, batch_size: int, device: torch.device, repeats: int, per_image_n: int, symmetry: str
) -> dict:
    # The per-image path gets its own copy in torch's default memory format: on CUDA
    # embed_images turns the encoder it is given channels_last.
    single_encoder = copy.deepcopy(encoder).to(memory_format=torch.contiguous_format)
    embed_images(encoder, images[:batch_size], batch_size=batch_size, device=device, symmetry=symmetry)  # warm-up
    time_per_image(single_encoder, images[:4], device, symmetry)
    batched, single = [], []
    for _ in range(repeats):
        batched.append(time_batched(encoder, images, batch_size, device, symmetry))
        single.append(time_per_image(single_encoder, images[:per_image_n], device, symmetry))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {
        "device": f"{device.type} ({name})" if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "symmetry": symmetry,
        "batch_size": batch_size,
        "n": len(images),
        "n_single": per_image_n,
        "batched": max(batched),
        "single": max(single),
        "batched_all": batched,
        "single_all": single,
    }


def render(results: list[dict], args, data_note: str, weights_note: str) -> str:
    load_note = "unknown"
    if hasattr(os, "getloadavg"):
        load_note = " / ".join(f"{x:.1f}" for x in os.getloadavg()) + " (1/5/15 min, at the end)"
    lines = [
        "## Embedding throughput: batched inference vs one forward call per image",
        "",
        f"Measured {today()} by `bench/bench_embedding.py` "
        f"(torch {torch.__version__}, numpy {np.__version__}, Python {platform.python_version()}); "
        f"machine: {cpu_model()}, {os.cpu_count()} cores visible, load average {load_note} "
        "(the machine is shared: other work running at the same time slows both paths, the "
        "per-image one most when torch uses more than one thread). "
        f"Data: {data_note}. Encoder: {weights_note}; input the central 70 x 70 pixels. "
        f"Best of {args.repeats} interleaved runs per figure. Batched = `pretrain.embed.embed_images` "
        "(inference_mode, batches read from the array one at a time; bf16 autocast + channels_last on "
        "CUDA); per image = `encoder(to_model_input(image[None]))` under no_grad, fp32. Symmetry d4 "
        "(the default representation, `config.EMBED_SYMMETRY`) = the mean over 8 forward passes of the "
        "image turned by 0/90/180/270 degrees and mirrored (per image: the 8 views in one call); "
        "none = one pass.",
        "",
        "| device | torch threads | symmetry | batched: batch size | batched (img/s) | per image (img/s) | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['device']} | {r['threads']} | {r['symmetry']} | {r['batch_size']} | {r['batched']:.0f} | "
            f"{r['single']:.0f} | {r['batched'] / r['single']:.1f} |"
        )
    if not any(r["device"].startswith("cuda") for r in results):
        lines.append("| GPU | - | - | - | not measured: no GPU lent to this task | | |")
    lines += [
        "",
        f"Images timed: batched {results[0]['n']}, per image {results[0]['n_single']} (it is the slow "
        "one) per run. At the MiraBest scale (1,155 sources) the batched path embeds everything in "
        f"about {1155 / max(r['batched'] for r in results if r['device'] == 'cpu' and r['symmetry'] == 'd4'):.0f} s "
        "on this CPU with the default d4 representation (the app does this once, then reads the cache).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--weights",
        help="encoder .safetensors (default: a randomly initialised ResNet-18; speed does not depend on the weights)",
    )
    parser.add_argument("--bundle", help="take the images from this bundle (default: synthetic images)")
    parser.add_argument("--images", type=int, default=512, help="images per batched run (default 512)")
    parser.add_argument("--per-image", type=int, default=128, help="images per per-image run (default 128)")
    parser.add_argument("--batch-size", type=int, default=256, help="batch size (default 256)")
    parser.add_argument("--gpu-images", type=int, default=16384, help="images per batched CUDA run")
    parser.add_argument("--gpu-batch-size", type=int, default=1024, help="CUDA batch size (default 1024)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure; the best counts")
    parser.add_argument("--threads", default="1,2", help="CPU torch thread counts to measure (default 1,2)")
    parser.add_argument("--symmetries", default="d4,none", help="representations to time (default d4,none)")
    parser.add_argument("--devices", default="auto", help="cpu, cuda, or auto = cpu and cuda when visible")
    parser.add_argument("--no-write", action="store_true", help="print the section, leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)

    if args.weights:
        encoder = load_encoder(args.weights)
        weights_note = f"`{Path(args.weights).name}` (sha256 {weights_sha256(args.weights)[:12]}...)"
    else:
        torch.manual_seed(0)
        encoder = resnet18_encoder()
        weights_note = "ResNet-18, randomly initialised (speed does not depend on the weights)"
    devices = ["cpu", "cuda"] if args.devices == "auto" else args.devices.split(",")
    devices = [d for d in devices if d != "cuda" or torch.cuda.is_available()]
    if not devices:
        raise SystemExit(
            f"--devices {args.devices}: no CUDA GPU is visible to torch, so there is nothing "
            "to measure; use --devices cpu or auto."
        )
    results = []
    note = ""
    runs = [
        (d, t, s)
        for d in devices
        for t in ([int(x) for x in args.threads.split(",")] if d == "cpu" else [torch.get_num_threads()])
        for s in args.symmetries.split(",")
    ]
    for device, threads, symmetry in runs:
        torch.set_num_threads(threads)
        cuda = device == "cuda"
        images, note = make_images(args.gpu_images if cuda else args.images, args.bundle)
        r = measure(
            encoder,
            images,
            args.gpu_batch_size if cuda else args.batch_size,
            torch.device(device),
            args.repeats,
            min(args.per_image, len(images)),
            symmetry,
        )
        print(r, flush=True)
        results.append(r)
    text = render(results, args, note, weights_note)
    publish(NAME, text, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
