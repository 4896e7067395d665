"""A map fitted on a sample and the rest placed, against a map fitted on every source.

``pretrain.mapping.MapProjector`` fits PCA -> UMAP on a random ``config.MAP_FIT_SAMPLE``
of a survey-sized set and places the others. This bench measures, at a size where UMAP
on everything still runs here, how faithful that is and what it costs, side by side in one
process on the same vectors:

- **full**: UMAP on every source (what the project did before);
- **sample + neighbours**: UMAP on a sample, the rest at the weighted mean of their 5
  nearest fitted sources (cosine, PCA space) — ``place_method="neighbours"``;
- **sample + umap**: UMAP on the same sample, the rest by the fitted UMAP's ``transform``.

Faithfulness: **extent ordering** (``pretrain.evaluate.extent_ordering_spearman``, the
project's map measure: Spearman of a source's extent with the mean extent of its 15 map
neighbours) and **kNN overlap** (of a source's 15 nearest on the 2-D map, the share that
are among its 15 most cosine-similar in the full space; 1000 sources drawn at random,
neighbours among all), for fitted and placed sources separately.

The vectors are synthetic (:func:`synthetic_embeddings`: clusters on a low-dimensional
latent space that includes log extent, pushed through a random ReLU layer to 512-d, like a
ResNet's pooled features; made by ``bench/make_synthetic_embeddings.py``'s generator, the
same vectors as the script's own copy of it made before, for the sizes it runs at, up to
200,000); the real spaces here are too small to need a sample (MiraBest:
1,155) or have no embeddings (the RGZ DR1 map is 2-D only).

    python bench/bench_map_sample.py                 # 20,000 vectors, sample 5,000
    python bench/bench_map_sample.py --n 40000 --sample 10000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.make_synthetic_embeddings import clustered_embeddings_with_extent
from bench.report import machine_description, publish, today

NAME = "bench_map_sample"
K = 15
LATENT, CLUSTERS = 24, 40


def synthetic_embeddings(n: int, dim: int = 512, seed: int = 0):
    """(n, dim) float32 vectors and a catalogue whose extent the vectors encode.

    ``clustered_embeddings_with_extent``: 40 clusters on a 24-d latent space plus its own spread,
    with log extent as one more latent axis (so extent ordering is there to be found), through a
    random ReLU layer to ``dim`` and a little noise on top (the vectors are not all
    non-negative). Nothing here comes from real data."""
    import pandas as pd

    x, extent = clustered_embeddings_with_extent(
        n, dim, seed, clusters=CLUSTERS, latent=LATENT, spread=(0.2, 0.6), noise=0.02, relu="before_noise"
    )
    catalogue = pd.DataFrame({"source_id": [f"SYN{i:07d}" for i in range(n)], "angular_extent_arcsec": extent})
    return x, catalogue


def knn_overlap(xy: np.ndarray, unit: np.ndarray, rows: np.ndarray, k: int = K) -> float:
    """Mean share of each row's k nearest on the map that are among its k most similar in high-D."""
    from scipy.spatial import cKDTree

    _, on_map = cKDTree(xy).query(xy[rows], k=k + 1)
    similarity = unit[rows] @ unit.T
    similarity[np.arange(len(rows)), rows] = -np.inf  # not itself
    in_space = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    shares = [len(set(m[m != r][:k]) & set(s)) / k for r, m, s in zip(rows, on_map, in_space)]
    return float(np.mean(shares))


def measure(name: str, projector_kwargs: dict, x: np.ndarray, extent: np.ndarray, probe: np.ndarray) -> dict:
    from pretrain.evaluate import extent_ordering_spearman
    from pretrain.mapping import MapProjector
    from pretrain.vectors import l2_normalise

    projector = MapProjector(**projector_kwargs)
    start = time.perf_counter()
    xy = projector.fit_transform(x)
    seconds = time.perf_counter() - start
    unit = l2_normalise(x)
    fitted = projector._sample_rows(len(x))
    is_fitted = np.zeros(len(x), bool)
    is_fitted[fitted] = True
    row = {
        "name": name,
        "seconds": seconds,
        "fitted": int(is_fitted.sum()),
        "spearman": extent_ordering_spearman(xy, extent),
        "overlap_fitted": knn_overlap(xy, unit, probe[is_fitted[probe]]),
        "overlap_placed": knn_overlap(xy, unit, probe[~is_fitted[probe]]) if (~is_fitted[probe]).any() else None,
    }
    print(row, flush=True)
    return row


def render(rows: list[dict], n: int, sample: int, load: str) -> str:
    lines = [
        "## A map fitted on a sample, the rest placed, against UMAP on every source",
        "",
        f"`bench/bench_map_sample.py`, {today()}, {machine_description()}. {n:,} synthetic 512-d vectors "
        "(`synthetic_embeddings` in the script: 40 clusters on a 24-d latent space that includes log extent, through a "
        f"random ReLU layer); PCA -> UMAP with the project's parameters (`pretrain/config.py`); sample {sample:,} "
        f"(seeded). Extent ordering: `extent_ordering_spearman` (k = 15) over all {n:,} sources; kNN overlap: of "
        "a source's 15 nearest on the map, the share among its 15 most cosine-similar in 512-d (1,000 random "
        "sources, neighbours among all), for sources in the UMAP sample and for placed ones. The machine was "
        f"shared with other jobs (1-minute load average {load} on 2 cores, at the start and the end): the times "
        "are upper bounds, their ratios (one process, one after the other) the figure to read.",
        "",
        "| map | UMAP fitted on | time (s) | extent ordering (Spearman) | kNN overlap, fitted sources | "
        "kNN overlap, placed sources |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        placed = "-" if r["overlap_placed"] is None else f"{r['overlap_placed']:.3f}"
        lines.append(
            f"| {r['name']} | {r['fitted']:,} | {r['seconds']:.1f} | {r['spearman']:.3f} | "
            f"{r['overlap_fitted']:.3f} | {placed} |"
        )
    full = rows[0]
    nb = next(r for r in rows if "neighbours" in r["name"])
    um = next(r for r in rows if "umap" in r["name"] and r is not full)
    lines += [
        "",
        "Inside a synthetic cluster the vectors are isotropic noise, so no 2-D map keeps a source's exact 15 "
        "nearest (hence the low overlaps): read the rows against each other. "
        f"Sample + neighbours took {nb['seconds'] / full['seconds']:.2f}x the time of the full fit "
        f"(sample + UMAP transform: {um['seconds'] / full['seconds']:.2f}x); extent ordering "
        f"{nb['spearman']:.3f} and {um['spearman']:.3f} against {full['spearman']:.3f}. "
        "Placing is linear in the sources placed (a scan of the sample per chunk of sources), UMAP's fit is "
        "not (and its memory grows with every source), so the gap widens with size: the project fits on a "
        "sample above `config.MAP_FIT_SAMPLE` sources and places the rest by `config.MAP_PLACE_METHOD`.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--sample", type=int, default=5_000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)

    from pretrain.mapping import MapProjector

    load_start = os.getloadavg()[0]
    MapProjector(fit_sample=None).fit_transform(synthetic_embeddings(300, seed=9)[0])  # numba's JIT, not timed
    x, catalogue = synthetic_embeddings(args.n, seed=0)
    extent = catalogue["angular_extent_arcsec"].to_numpy()
    probe = np.random.default_rng(1).choice(args.n, size=min(1000, args.n), replace=False)
    rows = [
        measure("UMAP on every source", {"fit_sample": None}, x, extent, probe),
        measure("sample + neighbours", {"fit_sample": args.sample, "place_method": "neighbours"}, x, extent, probe),
        measure("sample + umap transform", {"fit_sample": args.sample, "place_method": "umap"}, x, extent, probe),
    ]
    text = render(rows, args.n, args.sample, f"{load_start:.1f} and {os.getloadavg()[0]:.1f}")
    publish(NAME, text, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
