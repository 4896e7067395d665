"""Which library for the approximate neighbour index: FAISS (IVF and HNSW), hnswlib, usearch, side by side.

The same synthetic clustered 128-d unit vectors (``bench/make_synthetic_embeddings.py``), the
same queries (sources of the set, k = 12, one at a time, one search thread) and exact top 12
as the reference; for each library its build time (two threads) and, per search-effort
setting, recall@12 and median / p95 query time. The choice it informs is written in
``pretrain/neighbour_index.py``'s docstring. hnswlib and usearch are not dependencies of the
project: ``pip install hnswlib usearch`` to run this.

Writes the section ``bench_index_libraries`` of BENCHMARKS.md.

    nice python bench/bench_index_libraries.py --n 100000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.make_synthetic_embeddings import clustered_embeddings
from bench.report import machine_description, today, write_section
from pretrain.neighbour_index import exact_search
from pretrain.vectors import l2_normalise

NAME = "bench_index_libraries"
K, DIM = 12, 128


def measure(search, queries: np.ndarray, exact: np.ndarray) -> tuple[float, float, float]:
    times, found = [], []
    for q in queries:
        start = time.perf_counter()
        found.append(np.asarray(search(q[None])).reshape(-1)[:K])
        times.append(time.perf_counter() - start)
    recall = float(np.mean([len(set(f) & set(e)) / K for f, e in zip(found, exact)]))
    ms = np.asarray(times) * 1e3
    return recall, float(np.median(ms)), float(np.percentile(ms, 95))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args(argv)
    import faiss
    import hnswlib
    from usearch.index import Index

    x = l2_normalise(clustered_embeddings(args.n, DIM))
    rng = np.random.default_rng(5)
    queries = x[rng.choice(args.n, args.queries, replace=False)]
    exact, _ = exact_search(x, queries, K)
    rows = []

    def add(library: str, build_s: float, setting: str, search) -> None:
        recall, median, p95 = measure(search, queries, exact)
        rows.append((library, build_s, setting, recall, median, p95))
        print(rows[-1], flush=True)

    nlist = int(4 * np.sqrt(args.n))
    faiss.omp_set_num_threads(2)
    start = time.perf_counter()
    ivf = faiss.index_factory(DIM, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
    ivf.train(x[rng.choice(args.n, min(args.n, nlist * 40), replace=False)])
    ivf.add(x)
    build = time.perf_counter() - start
    faiss.omp_set_num_threads(1)
    for nprobe in (16, 32, 64, 96):
        ivf.nprobe = nprobe  # type: ignore[attr-defined]
        add(f"FAISS IVF{nlist},Flat", build, f"nprobe {nprobe}", lambda q: ivf.search(q, K)[1])
    faiss.omp_set_num_threads(2)
    start = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 80
    hnsw.add(x)
    build = time.perf_counter() - start
    faiss.omp_set_num_threads(1)
    for ef in (32, 64, 128):
        hnsw.hnsw.efSearch = ef
        add("FAISS HNSW32", build, f"efSearch {ef}", lambda q: hnsw.search(q, K)[1])
    start = time.perf_counter()
    graph = hnswlib.Index(space="ip", dim=DIM)
    graph.init_index(max_elements=args.n, M=16, ef_construction=100)
    graph.set_num_threads(2)
    graph.add_items(x)
    build = time.perf_counter() - start
    graph.set_num_threads(1)
    for ef in (32, 64, 128):
        graph.set_ef(ef)
        add("hnswlib M16", build, f"ef {ef}", lambda q: graph.knn_query(q, K)[0])
    start = time.perf_counter()
    usearch_index = Index(ndim=DIM, metric="ip", dtype="f32", connectivity=16, expansion_add=100)
    usearch_index.add(np.arange(args.n), x, threads=2)
    build = time.perf_counter() - start
    for ef in (32, 64, 128):
        usearch_index.expansion_search = ef  # type: ignore[misc, unused-ignore]  # misc only where usearch is installed
        add("usearch M16", build, f"expansion {ef}", lambda q: usearch_index.search(q, K, threads=1).keys)

    ivf_build = rows[0][1]
    graph_build = min(r[1] for r in rows if not r[0].startswith("FAISS IVF"))
    lines = [
        "## Approximate-index libraries compared (`bench/bench_index_libraries.py`)",
        "",
        f"Measured {today()} on {machine_description()}, shared with other jobs (so p95 times carry their "
        f"noise). {args.n:,} synthetic clustered {DIM}-d unit vectors, {args.queries} queries (sources of the "
        f"set, self included in both answers), k = {K}, one query and one search thread at a time; builds on "
        f"two threads. FAISS IVF built in {ivf_build:.0f} s, the fastest HNSW graph in {graph_build:.0f} s "
        f"({graph_build / ivf_build:.1f}x). FAISS IVF is what `pretrain/neighbour_index.py` uses: recall and "
        "query times comparable with the graphs', it loads memory-mapped (hnswlib cannot), and the same "
        "library gives the compressed codes of the 10 M plan.",
        "",
        "| library | build | search setting | recall@12 | median query | p95 query |",
        "|---|---:|---|---:|---:|---:|",
    ]
    lines += [f"| {lib} | {b:.0f} s | {s} | {r:.3f} | {m:.2f} ms | {p:.2f} ms |" for lib, b, s, r, m, p in rows]
    text = "\n".join(lines)
    print(text)
    write_section(NAME, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
