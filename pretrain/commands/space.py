"""Make a space from embeddings made elsewhere (any model, any dimension): map, neighbour index, provenance.

Reads a Parquet file with one row per source: source_id, ra, dec (degrees), the embedding
(a list column, or numbered float columns emb_0 .. emb_N) and any catalogue columns; a
column cutout_file may name each source's FITS cutout (the app shows it; without one the
app fetches FIRST cutouts of the positions). Writes the space the app opens like any other
(put it under $EXPLORER_SPACES): map.parquet, embeddings.parquet, the fitted projector,
the neighbour index (index.faiss above 50,000 sources) and manifest.json, which records the
file the vectors came from and its SHA-256.

Examples:
  python -m pretrain space --embeddings zoobot_first.parquet --out spaces/zoobot
  python -m pretrain space --embeddings cat.parquet --column feat --out spaces/mine   # feat_0, feat_1, ...
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pretrain import config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--embeddings", type=Path, required=True, help="the Parquet file of embeddings")
    parser.add_argument("--out", type=Path, required=True, help="the space folder to write")
    parser.add_argument(
        "--column",
        default=None,
        help="the embedding's list column, or the prefix of its numbered columns (default: found by name)",
    )
    parser.add_argument("--seed", type=int, default=config.MAP_SEED, help="UMAP random state (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    from pretrain.space import space_from_embeddings

    started = time.perf_counter()

    def say(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f} s] {message}", file=sys.stderr, flush=True)

    space = space_from_embeddings(args.embeddings, args.out, column=args.column, seed=args.seed, progress=say)
    index = space.neighbour_index
    print(
        f"space written: {len(space):,} sources, {index.dim}-d -> {args.out} ({index.describe()}) "
        f"in {time.perf_counter() - started:.0f} s"
    )
    return 0
