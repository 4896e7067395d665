"""The neighbour index against exact search, side by side: build time, memory, recall@12, query latency.

For each size (100 k and 1 M synthetic clustered 128-d vectors, ``bench/make_synthetic_embeddings.py``)
three searches over the same vectors, in one process: the exact scan (one matrix-vector
product, what ``pretrain.neighbour_index`` does below its threshold), the FAISS IVF index with
full vectors (what a space above the threshold stores) and the IVF index with 8-bit codes and
exact re-ranking (the compressed kind, for 10 M sources). Queries are sources of the set (k =
12 neighbours, the source itself left out), one at a time as the app asks them; recall is the
share of the exact top 12 found. At 1 M the IVF index's ``nprobe`` is also swept. Memory: the
index's bytes (its file, memory-mapped when a space opens it) and, for exact search, the
normalised vectors. The 10 M plan is the measured bytes per vector times 10 M.

Writes the section ``bench_index`` of BENCHMARKS.md.

    nice python bench/bench_index.py                      # 100 k and 1 M (several minutes)
    python bench/bench_index.py --sizes 20000 --queries 50
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.make_synthetic_embeddings import clustered_embeddings
from bench.report import machine_description, publish, today
from pretrain.neighbour_index import IndexSettings, build_index, load_index

NAME = "bench_index"
K, DIM = 12, 128
SWEEP = (32, 64, 96, 128, 192)


def timed_queries(index, rows: np.ndarray) -> tuple[np.ndarray, list[float]]:
    found, times = [], []
    for row in rows:
        start = time.perf_counter()
        neighbours, _ = index.query_row(int(row), K)
        times.append(time.perf_counter() - start)
        found.append(neighbours)
    return np.array(found), times


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(e)) / K for f, e in zip(found, exact)]))


def row(n: int, method: str, build_s: float, memory_bytes: int, rec: float, times: list[float], note: str = "") -> dict:
    ms = np.asarray(times) * 1e3
    return {
        "n": n,
        "method": method,
        "build_s": build_s,
        "memory_mb": memory_bytes / 1e6,
        "recall": rec,
        "median_ms": float(np.median(ms)),
        "p95_ms": float(np.percentile(ms, 95)),
        "note": note,
    }


def bench_size(n: int, n_queries: int, seed: int) -> tuple[list[dict], list[dict]]:
    x = clustered_embeddings(n, DIM, seed=seed)
    rng = np.random.default_rng(seed + 1)
    rows = rng.choice(n, size=min(n_queries, n), replace=False)
    results, sweep = [], []

    start = time.perf_counter()
    exact = build_index(x, IndexSettings(exact_max_vectors=n))
    exact_build = time.perf_counter() - start
    del x
    exact_found, exact_times = timed_queries(exact, rows)
    results.append(row(n, "exact scan", exact_build, exact.unit_vectors.nbytes, 1.0, exact_times, "normalising only"))
    print(f"{n:,} exact: median {np.median(exact_times) * 1e3:.1f} ms", flush=True)

    unit = exact.unit_vectors
    for method, settings in (
        ("FAISS IVF, full vectors", IndexSettings(exact_max_vectors=0)),
        ("FAISS IVF, SQ8 codes + exact re-rank", IndexSettings(exact_max_vectors=0, compress_above=0)),
    ):
        start = time.perf_counter()
        built = build_index(unit, settings)
        build_s = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as folder:
            entry = built.save(folder)
            del built
            index = load_index(folder, entry, unit)  # memory-mapped, as a space opens it
            found, times = timed_queries(index, rows)
            rec = recall(found, exact_found)
            note = f"nlist {index.faiss_index.nlist}, nprobe {index.faiss_index.nprobe}"
            results.append(row(n, method, build_s, entry["bytes"], rec, times, note))
            print(f"{n:,} {method}: build {build_s:.0f} s, recall {rec:.3f}, median {np.median(times) * 1e3:.2f} ms")
            if method.endswith("full vectors") and n >= 1_000_000:
                for nprobe in SWEEP:
                    probe = load_index(folder, {**entry, "settings": {**entry["settings"], "nprobe": nprobe}}, unit)
                    found, times = timed_queries(probe, rows)
                    sweep.append(row(n, f"nprobe {nprobe}", 0.0, 0, recall(found, exact_found), times))
            del index
    return results, sweep


def markdown(results: list[dict], sweep: list[dict], n_queries: int, seconds: float) -> str:
    lines = [
        "## Neighbour index: exact scan vs FAISS IVF (`bench/bench_index.py`)",
        "",
        f"Measured {today()} on {machine_description()} (shared with other jobs), in {seconds / 60:.0f} min. "
        f"Synthetic clustered {DIM}-d vectors (`bench/make_synthetic_embeddings.py`: 1,000 overlapping groups "
        f"on a 32-d manifold); {n_queries} queries, each a source of the set, k = {K}, one query at a time; "
        "recall = share of the exact top 12 found. Memory: the index's bytes (its file, memory-mapped on "
        "opening) or, for the exact scan, the normalised vectors. Defaults: `pretrain/neighbour_index.py`.",
        "",
        "| vectors | search | build | memory | recall@12 | median query | p95 query | note |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['n']:,} | {r['method']} | {r['build_s']:.1f} s | {r['memory_mb']:.0f} MB | {r['recall']:.3f} | "
            f"{r['median_ms']:.2f} ms | {r['p95_ms']:.2f} ms | {r['note']} |"
        )
    by_size: dict[int, dict[str, dict]] = {}
    for r in results:
        by_size.setdefault(r["n"], {})[r["method"]] = r
    lines.append("")
    for n, methods in by_size.items():
        exact, ivf = methods["exact scan"], methods["FAISS IVF, full vectors"]
        lines.append(
            f"- {n:,} vectors: the IVF index answers {exact['median_ms'] / ivf['median_ms']:.0f}x faster than "
            f"the exact scan (median), finding {ivf['recall']:.1%} of the exact top 12."
        )
    if sweep:
        lines += ["", "IVF `nprobe` (cells scanned per query) at 1 M, the same index:", ""]
        lines += ["| nprobe | recall@12 | median query | p95 query |", "|---:|---:|---:|---:|"]
        lines += [
            f"| {s['method'].split()[1]} | {s['recall']:.3f} | {s['median_ms']:.2f} ms | {s['p95_ms']:.2f} ms |"
            for s in sweep
        ]
    largest = max(by_size)
    methods = by_size[largest]
    per_flat = methods["FAISS IVF, full vectors"]["memory_mb"] * 1e6 / largest
    per_sq8 = methods["FAISS IVF, SQ8 codes + exact re-rank"]["memory_mb"] * 1e6 / largest
    lines += [
        "",
        f"**10 M plan** (measured bytes per vector at {largest:,}, times 10 M, {DIM}-d): the full-vector IVF "
        f"index would take {per_flat * 1e7 / 1e9:.1f} GB, the SQ8 codes {per_sq8 * 1e7 / 1e9:.1f} GB "
        f"({per_flat / per_sq8:.1f}x less), with the re-rank reading only its candidates' rows of the full "
        f"vectors from a memory map on disk ({DIM * 4 * 1e7 / 1e9:.1f} GB there, not in RAM). "
        "Spaces above `INDEX_COMPRESS_ABOVE` (4 M) get the SQ8 kind. At 512-d every figure is 4x larger "
        "(the codes stay one byte a dimension). Not yet done for 10 M: the space itself still reads "
        "embeddings.parquet whole into memory; it would have to be memory-mapped too.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print, do not write BENCHMARKS.md")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results, sweep = [], []
    for n in args.sizes:
        r, s = bench_size(n, args.queries, args.seed)
        results += r
        sweep += s
    text = markdown(results, sweep, args.queries, time.perf_counter() - started)
    publish(NAME, text, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
