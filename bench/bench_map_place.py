"""Placing a survey's sources on its sample map: exact search of the sample vs a FAISS IVF index.

Above ``config.MAP_FIT_SAMPLE`` sources, ``pretrain.mapping.MapProjector`` fits UMAP on a
sample and places every other source at the weighted mean of the map positions of its
``config.MAP_PLACE_NEIGHBOURS`` most cosine-similar sample sources (PCA space). At 1 M
sources that is 950,000 searches of 50,000 vectors: exact, the slowest step of
``pretrain space``. Above ``config.MAP_PLACE_EXACT_MAX_PAIRS`` the project finds them
through an IVF index over the sample (``config.MAP_PLACE_NPROBE`` cells scanned).

This bench takes a space built on a sample (``--space``, e.g. from
``python -m pretrain space --embeddings`` on ``bench/make_synthetic_embeddings.py``'s
1 M vectors), recovers its sample and the sample's UMAP positions from the space itself,
and places ``--queries`` of the other sources both ways, side by side in one process:
time per source, how many of the exact 5 nearest the index finds, and how far each placed
source lands from where the exact search puts it (in units of the map's extent).

    python bench/bench_map_place.py --space runs/space_1m --queries 100000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.report import machine_description, publish, today
from pretrain import config
from pretrain.mapping import MapProjector, _top_k_search, place_by_neighbours
from pretrain.neighbour_index import IndexSettings, build_index
from pretrain.space import load_space
from pretrain.vectors import l2_normalise

NAME = "bench_map_place"


OVERLAP_K = 15


def _map_neighbour_overlap(queries, reference, reference_xy, *placements) -> list[float]:
    """Per placement: the mean share of each query's OVERLAP_K map-nearest reference sources
    that are among its OVERLAP_K most cosine-similar ones."""
    _, similar = _top_k_search(reference, OVERLAP_K)(queries)
    out = []
    for xy in placements:
        d = ((xy[: len(queries), None, :] - reference_xy[None]) ** 2).sum(-1)
        near = np.argpartition(d, OVERLAP_K - 1, axis=1)[:, :OVERLAP_K]
        out.append(float(np.mean([len(set(a) & set(b)) / OVERLAP_K for a, b in zip(near, similar)])))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", required=True, help="a space whose map was fitted on a sample")
    parser.add_argument("--queries", type=int, default=100_000, help="placed sources to place again (default 100,000)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)

    space = load_space(args.space)
    projector = space.projector
    n = len(space)
    fitted = MapProjector(fit_sample=projector.fit_sample, random_state=projector.random_state)._sample_rows(n)
    if len(fitted) == n:
        parser.error(f"{args.space}: its map was fitted on every source; nothing was placed.")
    rest = np.setdiff1d(np.arange(n), fitted, assume_unique=True)
    queries = np.sort(np.random.default_rng(0).choice(rest, size=min(args.queries, rest.size), replace=False))
    unit = space.unit_embeddings

    def reduce(rows: np.ndarray) -> np.ndarray:
        return l2_normalise((unit[rows] - projector.pca_mean_) @ projector.pca_components_.T)

    reference, reference_xy, placed = reduce(fitted), space.map_xy[fitted], reduce(queries)
    k = config.MAP_PLACE_NEIGHBOURS
    load_start = os.getloadavg()[0]

    started = time.perf_counter()
    exact_xy = place_by_neighbours(placed, reference, reference_xy)
    exact_s = time.perf_counter() - started
    started = time.perf_counter()
    index = build_index(reference, IndexSettings(exact_max_vectors=0, nprobe=config.MAP_PLACE_NPROBE))
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    ivf_xy = place_by_neighbours(placed, reference, reference_xy, chunk=4096, index_search=index.search)
    ivf_s = time.perf_counter() - started

    sample = placed[:5000]
    _, exact_rows = _top_k_search(reference, k)(sample)
    ivf_rows, _ = index.search(sample, k)
    recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(exact_rows, ivf_rows)]))
    overlap_exact, overlap_ivf = _map_neighbour_overlap(sample[:2000], reference, reference_xy, exact_xy, ivf_xy)
    scale = float(np.ptp(space.map_xy, axis=0).max())
    moved = np.linalg.norm(ivf_xy - exact_xy, axis=1) / scale
    stored = float(np.median(np.linalg.norm(exact_xy - space.map_xy[queries], axis=1) / scale))
    per = lambda seconds: seconds / len(queries) * 1e6  # noqa: E731

    text = "\n".join(
        [
            "## Placing a survey's sources on its sample map: exact search vs a FAISS IVF index",
            "",
            f"`bench/bench_map_place.py`, {today()}, {machine_description()}. The space `{Path(args.space).name}` "
            f"({n:,} sources, {unit.shape[1]}-d; map fitted on a sample of {len(fitted):,}); {len(queries):,} of "
            f"its placed sources placed again both ways, one after the other in one process, among the sample's "
            f"{reference.shape[1]}-d PCA vectors ({k} nearest, weighted). 1-minute load average {load_start:.1f} "
            f"at the start and {os.getloadavg()[0]:.1f} at the end (two niced training runs shared the machine).",
            "",
            "| search of the sample | time per source placed | whole rest of a 1 M space (950,000) | "
            f"of the exact {k} nearest found | distance from the exact placement, median / 90th percentile | "
            f"map-neighbour overlap ({OVERLAP_K}) |",
            "|---|---|---|---|---|---|",
            f"| exact (FAISS flat inner product) | {per(exact_s):.0f} µs | {per(exact_s) * 0.95:.0f} s | 1 | 0 | "
            f"{overlap_exact:.3f} |",
            f"| IVF {index.faiss_index.nlist} cells, {config.MAP_PLACE_NPROBE} scanned (the project) | "
            f"{per(ivf_s):.0f} µs (+ {build_s:.1f} s to build) | {per(ivf_s) * 0.95 + build_s:.0f} s | {recall:.3f} | "
            f"{np.median(moved):.1e} / {np.quantile(moved, 0.9):.1e} of the map | {overlap_ivf:.3f} |",
            "",
            f"The IVF search took {ivf_s / exact_s:.2f}x the exact search's time (build included: "
            f"{(ivf_s + build_s) / exact_s:.2f}x). Distances are in units of the map's larger side; the exact "
            f"placement here lands a median {stored:.1e} from where the space stored the source (the same "
            "computation, float rounding). Map-neighbour overlap: of a placed source's "
            f"{OVERLAP_K} nearest sample sources on the map, the share among its {OVERLAP_K} most cosine-similar "
            "sample sources (2,000 sources): what a placement is for. Within a synthetic cluster the vectors are "
            "isotropic noise, so a source whose IVF neighbours differ by one moves across its cluster (hence the "
            "90th percentile) without landing any less among the sources it resembles.",
        ]
    )
    publish(NAME, text, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
