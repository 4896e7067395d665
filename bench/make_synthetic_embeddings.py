"""Synthetic clustered embeddings, for timing ``pretrain space`` and the neighbour index at survey scale.

Shaped like a survey's representations: ``clusters`` morphological groups on a
``latent``-dimensional manifold (each its own spread), mapped linearly to ``dim``
dimensions plus isotropic noise; positions uniform on the sphere above Dec -40 (the
sky a northern survey covers); an angular extent drawn log-normal, independent of the
vectors. Nothing here comes from real data.

The one generator of synthetic representations for the benches and tests:
:func:`clustered_embeddings` (``bench_index``, ``bench_index_libraries``, ``bench_neighbours``
with its own regimes, ``tests/test_index.py``, ``tests/test_byo_space.py``) and
:func:`clustered_embeddings_with_extent`, whose vectors encode an extent on one more latent
axis (``bench_map_sample``, which measures how well a map keeps it).

    python bench/make_synthetic_embeddings.py --n 1000000 --dim 128 --out runs/synthetic_1m.parquet
    python -m pretrain space --embeddings runs/synthetic_1m.parquet --out runs/space_1m
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Literal

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

LATENT, CLUSTERS, NOISE = 32, 1000, 0.05
SPREAD = (0.4, 1.2)  # each cluster's spread drawn from this range: overlapping groups, a continuum as real ones are
EXTENT_RANGE_ARCSEC = (5.0, 300.0)  # the extents an extent-bearing latent axis spans (log-uniform)
Relu = Literal["none", "before_noise", "after_noise"]


def clustered_embeddings(
    n: int,
    dim: int = 128,
    seed: int = 0,
    clusters: int = CLUSTERS,
    latent: int = LATENT,
    chunk: int = 200_000,
    *,
    spread: float | tuple[float, float] = SPREAD,
    noise: float = NOISE,
    relu: Relu = "none",
) -> np.ndarray:
    """(n, dim) float32: ``clusters`` Gaussian groups on a ``latent``-d manifold, mapped linearly to
    ``dim`` dimensions, plus isotropic noise.

    ``clusters=0``: one Gaussian at the origin instead. ``spread``: every group's spread, or a
    (low, high) range each group's is drawn from. ``relu``: like a ResNet's pooled features,
    ``"after_noise"`` makes the vectors non-negative (ReLU of the noisy mapping), ``"before_noise"``
    adds the noise to ReLU features. Generated ``chunk`` sources at a time (memory at a million);
    the same arguments give the same vectors."""
    return _generate(n, dim, seed, clusters, latent, chunk, spread, noise, relu, extent_weight=None)[0]


def clustered_embeddings_with_extent(
    n: int,
    dim: int = 512,
    seed: int = 0,
    clusters: int = CLUSTERS,
    latent: int = LATENT,
    chunk: int = 200_000,
    *,
    spread: float | tuple[float, float] = SPREAD,
    noise: float = NOISE,
    relu: Relu = "none",
    extent_weight: float = 1.5,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`clustered_embeddings` with one more latent axis, log angular extent (log-uniform over
    :data:`EXTENT_RANGE_ARCSEC`, standardised within each chunk and scaled by ``extent_weight``), so
    the vectors encode an extent a map can be coloured and ordered by. Returns (vectors, extents in
    arcsec)."""
    vectors, extent = _generate(n, dim, seed, clusters, latent, chunk, spread, noise, relu, extent_weight)
    assert extent is not None
    return vectors, extent


def _generate(
    n: int,
    dim: int,
    seed: int,
    clusters: int,
    latent: int,
    chunk: int,
    spread: float | tuple[float, float],
    noise: float,
    relu: Relu,
    extent_weight: float | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    # The order of the draws is part of what a bench measured: change it and the vectors change.
    rng = np.random.default_rng(seed)
    latent = min(latent, dim)
    centres = rng.normal(0.0, 1.0, (clusters, latent)) if clusters else np.zeros((1, latent))
    groups = len(centres)
    spreads = rng.uniform(spread[0], spread[1], groups) if isinstance(spread, tuple) else np.full(groups, float(spread))
    axes = latent + (extent_weight is not None)
    mixing = rng.normal(0.0, 1.0 / np.sqrt(axes), (axes, dim))
    out = np.empty((n, dim), dtype=np.float32)
    extent = np.empty(n) if extent_weight is not None else None
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        group = rng.integers(0, groups, m)
        if extent is not None:
            log_extent = rng.uniform(np.log(EXTENT_RANGE_ARCSEC[0]), np.log(EXTENT_RANGE_ARCSEC[1]), m)
            extent[start : start + m] = np.exp(log_extent)
        z = centres[group] + rng.normal(0.0, 1.0, (m, latent)) * spreads[group, None]
        if extent is not None:
            axis = extent_weight * (log_extent[:, None] - log_extent.mean()) / log_extent.std()
            z = np.concatenate([z, axis], axis=1)
        x = z @ mixing
        if relu == "before_noise":
            x = np.maximum(x, 0.0)
        x = x + rng.normal(0.0, noise, (m, dim))
        if relu == "after_noise":
            x = np.maximum(x, 0.0)
        out[start : start + m] = x
    return out, extent


def synthetic_catalogue(n: int, seed: int = 0):
    """source_id, ra, dec (uniform on the sphere above Dec -40) and an angular extent."""
    import pandas as pd

    rng = np.random.default_rng(seed + 1)
    ra = rng.uniform(0.0, 360.0, n)
    sin_dec = rng.uniform(np.sin(np.radians(-40.0)), 1.0, n)
    dec = np.degrees(np.arcsin(sin_dec))
    return pd.DataFrame(
        {
            "source_id": [f"SYN{i:08d}" for i in range(n)],
            "ra": ra,
            "dec": dec,
            "angular_extent_arcsec": rng.lognormal(3.0, 0.6, n),
        }
    )


def write_parquet(path: Path, n: int, dim: int, seed: int = 0) -> Path:
    """The Parquet ``pretrain space --embeddings`` reads: catalogue columns + a list<float32> embedding."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    vectors = clustered_embeddings(n, dim, seed)
    table = pa.Table.from_pandas(synthetic_catalogue(n, seed), preserve_index=False)
    offsets = pa.array(np.arange(0, n * dim + 1, dim, dtype=np.int64))
    column = pa.LargeListArray.from_arrays(offsets, pa.array(vectors.reshape(-1), type=pa.float32()))
    table = table.append_column("embedding", column)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="sources (default %(default)s)")
    parser.add_argument("--dim", type=int, default=128, help="embedding dimensions (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="the Parquet file to write")
    args = parser.parse_args(argv)
    path = write_parquet(args.out, args.n, args.dim, args.seed)
    print(f"wrote {args.n:,} synthetic {args.dim}-d embeddings -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
