"""Batch look-up: cutouts of a list fetched 4 at a time vs one at a time, against a SkyView stand-in with latency.

NASA SkyView takes of the order of a second or more per request; the stand-in on 127.0.0.1
answers at once, so it is given a fixed delay per request (``--latency``) to stand for it.
Both ways run :func:`pretrain.batch_lookup.fetch_rows` on the same list of real FIRST
positions (MiraBest files, which the stand-in serves) with a fresh cache each time,
interleaved; then the same list again from the cache (no request).

    python bench/bench_batch_lookup.py --rows 24 --latency 0.5
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.report import machine_description, today, write_section
from pretrain import batch_lookup as batch
from pretrain import config
from pretrain.data.first_client import FirstCutoutClient

# The tests' stand-in (not type-checked with the packages: imported by name)
_standin = importlib.import_module("tests.standins.skyview")
real_files = _standin.real_files


class DelayedSkyView(_standin.SkyViewStandIn):  # type: ignore[name-defined]
    """The stand-in, every request answered after ``latency_s`` (a remote service's round trip and work)."""

    latency_s = 0.5

    def _sleep_if_slow(self) -> None:
        self._stop.wait(self.latency_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=24)
    parser.add_argument("--latency", type=float, default=0.5, help="seconds per request (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    files = [f for f in real_files(config.SHARED_DATA_DIR)[0] if f.kind == "mirabest"][: args.rows]
    text = "\n".join(f"{f.ra:.5f} {f.dec:+.5f}" for f in files)
    times: dict[str, list[float]] = {"1 worker": [], f"{batch.WORKERS} workers": [], "from the cache": []}
    with DelayedSkyView(config.SHARED_DATA_DIR) as server:
        server.latency_s = args.latency
        for _ in range(args.repeats):
            for label, workers in (("1 worker", 1), (f"{batch.WORKERS} workers", batch.WORKERS)):
                cache = Path(tempfile.mkdtemp(prefix="bench-batch-"))
                try:

                    def client(cache: Path = cache) -> FirstCutoutClient:
                        return FirstCutoutClient(base_url=server.url, cache_dir=cache)

                    rows = batch.parse_list(text)
                    start = time.perf_counter()
                    batch.fetch_rows(rows, client, workers=workers)
                    times[label].append(time.perf_counter() - start)
                    assert all(r.ok for r in rows), batch.summary(rows)
                    if workers > 1:
                        again = batch.parse_list(text)
                        start = time.perf_counter()
                        batch.fetch_rows(again, client, workers=workers)
                        times["from the cache"].append(time.perf_counter() - start)
                        assert all(r.from_cache for r in again)
                finally:
                    shutil.rmtree(cache, ignore_errors=True)
    best = {label: min(values) for label, values in times.items()}
    sequential = best["1 worker"]
    rows_table = "\n".join(
        f"| {label} | {seconds:.1f} | {args.rows / seconds:.1f} | {sequential / seconds:.1f} |"
        for label, seconds in best.items()
    )
    load = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    markdown = f"""## Batch look-up: a list's cutouts fetched {batch.WORKERS} at a time vs one at a time

Measured {today()} by `bench/bench_batch_lookup.py`; machine: {machine_description()}, load average {load}
(1/5/15 min, at the end; the machine is shared). A list of {args.rows} real FIRST positions (MiraBest files)
through `pretrain.batch_lookup.fetch_rows` (cutout client, validation, preprocessing and extent per row) against
the SkyView stand-in with {args.latency:g} s added to every request (each cutout takes three: form, query, file),
a fresh cache per run; best of {args.repeats} interleaved runs. "From the cache": the same list again (no request).

| how | seconds | rows / s | speed-up over 1 worker |
|---|---|---|---|
{rows_table}

With SkyView's real latency (seconds per request) the gain from {batch.WORKERS} workers is of this order; the
cached rerun is bounded by reading, validating and preprocessing each cutout (CPU).
"""
    write_section("bench_batch_lookup", markdown)
    print(markdown)


if __name__ == "__main__":
    main()
