"""Synthetic clustered embeddings, for timing ``pretrain space`` and the neighbour index at survey scale.

Shaped like a survey's representations: ``clusters`` morphological groups on a
``latent``-dimensional manifold (each its own spread), mapped linearly to ``dim``
dimensions plus isotropic noise; positions uniform on the sphere above Dec -40 (the
sky a northern survey covers); a synthetic angular extent that follows the first latent
axis (so a map coloured by it shows structure). Nothing here comes from real data.

    python bench/make_synthetic_embeddings.py --n 1000000 --dim 128 --out runs/synthetic_1m.parquet
    python -m pretrain space --embeddings runs/synthetic_1m.parquet --out runs/space_1m
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

LATENT, CLUSTERS, NOISE = 32, 1000, 0.05


def clustered_embeddings(
    n: int, dim: int = 128, seed: int = 0, clusters: int = CLUSTERS, latent: int = LATENT, chunk: int = 200_000
) -> np.ndarray:
    """(n, dim) float32: ``clusters`` Gaussian groups of different spreads on a ``latent``-d
    manifold, mapped linearly to ``dim`` dimensions, plus noise."""
    rng = np.random.default_rng(seed)
    latent = min(latent, dim)
    centres = rng.normal(0.0, 1.0, (clusters, latent))
    spreads = rng.uniform(0.4, 1.2, clusters)  # overlapping groups: a continuum, as real ones are
    mixing = rng.normal(0.0, 1.0 / np.sqrt(latent), (latent, dim))
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        group = rng.integers(0, clusters, m)
        z = centres[group] + rng.normal(0.0, 1.0, (m, latent)) * spreads[group, None]
        out[start : start + m] = z @ mixing + rng.normal(0.0, NOISE, (m, dim))
    return out


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
