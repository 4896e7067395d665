"""The nearest neighbours of sources of a space, from its neighbour index, with the time per query.

Searches the space's stored index (exact for small spaces, FAISS IVF above 50,000 sources;
see pretrain/neighbour_index.py) for each --source and prints its k most cosine-similar
sources and how long the search took (the index is loaded memory-mapped first; loading is
reported apart). --exact also runs the full scan, for comparison: it prints the exact
time and how many of the exact top k the index found (recall).

Examples:
  python -m pretrain neighbours --space spaces/mirabest --source 12 -k 8
  python -m pretrain neighbours --space runs/space_1m --source SYN00000042 --source SYN00000043 -k 12 --json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", type=Path, required=True, help="a space folder")
    parser.add_argument("--source", action="append", required=True, help="a source_id of the space (repeatable)")
    parser.add_argument("-k", type=int, default=12, help="neighbours per source (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    parser.add_argument("--exact", action="store_true", help="also search exactly: its time and the index's recall")


def run(args: argparse.Namespace) -> int:
    from pretrain.errors import ExplorerError
    from pretrain.neighbour_index import top_k_indices
    from pretrain.space import load_space

    if args.k < 1:
        raise ExplorerError("-k must be at least 1.")
    started = time.perf_counter()
    space = load_space(args.space)
    ids = space.source_ids.astype(str)
    row_of = {source_id: row for row, source_id in enumerate(ids)}
    unknown = [s for s in args.source if s not in row_of]
    if unknown:
        raise ExplorerError(
            f"{', '.join(unknown)}: not in the space at {args.space} ({len(ids):,} sources, e.g. {', '.join(ids[:3])})."
        )
    index = space.neighbour_index
    load_s = time.perf_counter() - started
    results = []
    for source in args.source:
        row = row_of[source]
        start = time.perf_counter()
        rows, sims = index.query_row(row, args.k)
        elapsed = time.perf_counter() - start
        result = {
            "source_id": source,
            "query_ms": round(elapsed * 1e3, 3),
            "neighbours": [
                {"rank": rank, "source_id": str(ids[r]), "cosine_similarity": round(float(s), 6)}
                for rank, (r, s) in enumerate(zip(rows, sims), start=1)
            ],
        }
        if args.exact:
            start = time.perf_counter()
            best = top_k_indices(index.similarities(index.unit_vectors[row]), args.k, exclude=[row])
            result["exact_ms"] = round((time.perf_counter() - start) * 1e3, 3)
            result["recall"] = len(set(best.tolist()) & set(rows.tolist())) / max(len(best), 1)
        results.append(result)
    times = [r["query_ms"] for r in results]
    summary = {
        "space": str(args.space),
        "sources": len(space),
        "index": index.kind,
        "index_description": index.describe(),
        "load_s": round(load_s, 3),
        "median_query_ms": float(np.median(times)),
        "results": results,
    }
    if index.note:
        summary["note"] = index.note
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{args.space}: {index.describe()} (opened in {load_s:.2f} s)")
    if index.note:
        print(index.note)
    for result in results:
        extra = f", exact scan {result['exact_ms']:.2f} ms, recall {result['recall']:.2f}" if args.exact else ""
        print(f"\n{result['source_id']}: query {result['query_ms']:.2f} ms{extra}")
        for neighbour in result["neighbours"]:
            print(f"  {neighbour['rank']:>3}  {neighbour['source_id']:<30} {neighbour['cosine_similarity']:.4f}")
    print(f"\nmedian query time: {summary['median_query_ms']:.2f} ms over {len(times)} queries")
    return 0
