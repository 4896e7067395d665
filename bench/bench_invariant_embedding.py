"""Embedding cost of a turn-invariant representation: 8 passes of a plain network vs one of a D4 network.

The app's representation is invariant to the 8 turns and mirror images of a source. A
plain ResNet-18 gets that by averaging its outputs over the 8 views (``symmetry="d4"``,
8 forward passes per image); the group-convolution network of ``pretrain/models/d4.py``
is invariant by construction and takes one pass (``embed_images`` skips the views for
it). Side by side in one process, timings interleaved, on the same images, through the
same ``pretrain.embed.embed_images``:

- the shipped architecture (ImageNet stem, width 64), d4 average;
- the study's plain candidate (reference stem, width 32), d4 average;
- the D4 network (reference stem, 4 channels per plane), one pass.

A second table times a single-image look-up (the app's coordinate look-up and upload
path: one image through ``embed_images``): the D4 network with its turned filters kept
between calls in eval mode (``D4Conv2d.full_weight``) against the same network rebuilding
them on every call, and the shipped architecture's 8 passes beside them.

The figures (images/s, best of ``--repeats``; seconds for the 1,155 MiraBest sources) go
into BENCHMARKS.md between ``<!-- bench_invariant_embedding:start -->`` and ``:end -->``.

    python bench/bench_invariant_embedding.py [--bundle BUNDLE] [--images 512] [--threads 2]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_embedding import make_images
from bench.report import machine_description, publish, today
from pretrain.embed import embed_images
from pretrain.models.d4 import D4Conv2d
from pretrain.models.resnet import resnet18_encoder

NAME = "bench_invariant_embedding"
MIRABEST_SOURCES = 1155
CANDIDATES = (  # (what, stem, width, symmetry of the network, symmetry asked of embed_images)
    ("shipped architecture: ResNet-18, ImageNet stem, width 64, d4 average (8 passes)", "imagenet", 64, "none"),
    ("plain candidate: ResNet-18, reference stem, width 32, d4 average (8 passes)", "reference", 32, "none"),
    ("D4 network: reference stem, 4 channels x 8 planes, one pass", "reference", 4, "d4"),
)


LOOKUPS = 50  # single-image calls per timing


@contextlib.contextmanager
def filters_rebuilt_every_call() -> Iterator[None]:
    """The D4 layers as they were before the cache: turned filters rebuilt on every forward."""
    cached = D4Conv2d.full_weight
    D4Conv2d.full_weight = D4Conv2d._build_full_weight  # type: ignore[method-assign]
    try:
        yield
    finally:
        D4Conv2d.full_weight = cached  # type: ignore[method-assign]


def lookup_ms(encoder, image, repeats: int) -> float:
    """Best of ``repeats`` mean milliseconds of one single-image ``embed_images`` call."""
    embed_images(encoder, image, device="cpu", symmetry="d4")  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(LOOKUPS):
            embed_images(encoder, image, device="cpu", symmetry="d4")
        best = min(best, (time.perf_counter() - start) / LOOKUPS * 1000)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", help="images from this bundle (default: synthetic)")
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images, data_note = make_images(args.images, args.bundle)
    torch.manual_seed(0)
    encoders = [resnet18_encoder(stem=stem, width=width, symmetry=sym).eval() for _, stem, width, sym in CANDIDATES]
    for encoder in encoders:  # warm-up
        embed_images(encoder, images[: args.batch_size], batch_size=args.batch_size, device="cpu", symmetry="d4")
    rates: list[list[float]] = [[] for _ in encoders]
    for _ in range(args.repeats):  # interleaved, so drifting load hits every candidate alike
        for encoder, runs in zip(encoders, rates, strict=True):
            start = time.perf_counter()
            embed_images(encoder, images, batch_size=args.batch_size, device="cpu", symmetry="d4")
            runs.append(len(images) / (time.perf_counter() - start))
    best = [max(runs) for runs in rates]
    lines = [
        "## Embedding a turn-invariant representation: 8 passes vs a D4 network's one "
        "(`bench/bench_invariant_embedding.py`)",
        "",
        f"Measured {today()}; machine: {machine_description()}. Data: {data_note}; input the central 70 x 70 "
        f"pixels; batches of {args.batch_size} through `pretrain.embed.embed_images` (symmetry d4 asked of all "
        "three), CPU, fp32. Randomly initialised networks (speed does not depend on the weights). Best of "
        f"{args.repeats} interleaved runs.",
        "",
        "| network | weights | images/s | 1,155 sources | vs the shipped architecture |",
        "|---|---|---|---|---|",
    ]
    for (what, *_), encoder, rate in zip(CANDIDATES, encoders, best, strict=True):
        weights = sum(p.numel() for p in encoder.parameters())
        lines.append(
            f"| {what} | {weights / 1e6:.2f} M | {rate:.1f} | {MIRABEST_SOURCES / rate:.0f} s | {rate / best[0]:.2f} x |"
        )
    lines += [
        "",
        "The D4 network's representation is the same for all 8 views by construction "
        "(`tests/test_d4_network.py`), so its one pass gives what the plain networks need 8 for.",
    ]
    shipped, d4_network = encoders[0], encoders[2]
    one_image = images[:1]
    timings: dict[str, list[float]] = {"cached": [], "rebuilt": [], "shipped": []}
    for _ in range(args.repeats):  # interleaved
        timings["cached"].append(lookup_ms(d4_network, one_image, 1))
        with filters_rebuilt_every_call():
            timings["rebuilt"].append(lookup_ms(d4_network, one_image, 1))
        timings["shipped"].append(lookup_ms(shipped, one_image, 1))
    ms = {name: min(runs) for name, runs in timings.items()}
    lines += [
        "",
        f"**A single-image look-up** (one image through `embed_images`, as the coordinate look-up and uploads "
        f"do; mean of {LOOKUPS} calls, best of {args.repeats} interleaved runs):",
        "",
        "| network | ms per look-up | vs filters rebuilt |",
        "|---|---|---|",
        f"| D4 network, turned filters kept between calls in eval mode (the code) | {ms['cached']:.1f} | "
        f"{ms['rebuilt'] / ms['cached']:.1f} x faster |",
        f"| D4 network, turned filters rebuilt on every call | {ms['rebuilt']:.1f} | 1 |",
        f"| shipped architecture, d4 average (8 passes) | {ms['shipped']:.1f} | |",
    ]
    publish(NAME, "\n".join(lines), write=not args.no_write)


if __name__ == "__main__":
    main()
