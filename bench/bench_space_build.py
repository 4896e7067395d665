"""A survey-sized space from given embeddings: ``python -m pretrain space --embeddings`` end to end.

Writes ``--n`` synthetic clustered embeddings (``bench/make_synthetic_embeddings.py``) to a
Parquet file, runs the command a user runs on it in a fresh process, and records its wall
time, the time of each stage (from the command's own progress lines), and its peak memory.

    python bench/bench_space_build.py                      # 1,000,000 x 128-d
    python bench/bench_space_build.py --n 200000 --dim 256 --keep runs/space_200k
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.make_synthetic_embeddings import write_parquet
from bench.report import machine_description, publish, today

NAME = "bench_space_build"
STAGE = re.compile(r"^\[\s*([\d.]+) s\] (.*)$")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--keep", help="write the space here (default: a temporary folder, removed)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "embeddings.parquet"
        write_parquet(source, args.n, args.dim)
        out = Path(args.keep) if args.keep else Path(tmp) / "space"
        load_start = os.getloadavg()[0]
        started = time.perf_counter()
        command = [sys.executable, "-m", "pretrain", "space", "--embeddings", str(source), "--out", str(out)]
        done = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
        wall_s = time.perf_counter() - started
        if done.returncode != 0:
            print(done.stdout, done.stderr, sep="\n")
            return done.returncode
        peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
        stages = [
            (float(m[1]), m[2])
            for line in done.stdout.splitlines() + done.stderr.splitlines()
            if (m := STAGE.match(line))
        ]
    rows = [f"| {what} | {at:.0f} s |" for at, what in stages]
    text = "\n".join(
        [
            f"## A {args.n:,}-source space from given embeddings (`pretrain space --embeddings`)",
            "",
            f"`bench/bench_space_build.py`, {today()}, {machine_description()}. {args.n:,} synthetic clustered "
            f"{args.dim}-d vectors (`bench/make_synthetic_embeddings.py`) in a Parquet file; the command run in a "
            f"fresh process. 1-minute load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the "
            "end (two niced background training runs took the idle CPU).",
            "",
            f"**{wall_s:.0f} s in all ({wall_s / 60:.1f} min; the aim: 30 min), peak memory {peak_gb:.1f} GB.**",
            "",
            "| stage begun (the command's own progress) | at |",
            "|---|---|",
            *rows,
            "",
            "The map is fitted on a sample (`config.MAP_FIT_SAMPLE`) and the rest placed through an IVF index "
            "over the sample (`bench_map_place`: 0.10x the time of the exact search, the same map-neighbour "
            "overlap); the neighbour index is FAISS IVF (`bench_index`). The same command with the exact "
            "placement took 851 s (14.2 min) on this machine on 2026-12-02 (one run, by hand, before the change).",
        ]
    )
    publish(NAME, text, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
