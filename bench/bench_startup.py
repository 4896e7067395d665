"""Start-up with a warm cache: from ``streamlit run app.py`` until the map is interactive.

The default MiraBest space is prepared first (not timed: that is the one-off first start).
Then, several times: start ``streamlit run app.py`` as a new process, open the page in
headless Debian Chromium and wait until the plotly map holds every source and accepts
events (its figure is drawn with all points). Measured from the process start:

- **server up**: the health endpoint answers;
- **map interactive**: the page shows the complete map;
- and, separately, a second page load on the already running server (imports, space
  and caches warm): navigation -> map interactive.

Writes the section ``bench_app_startup`` of BENCHMARKS.md.

    python bench/bench_startup.py --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.app_setup import bench_env, prepare
from bench.report import machine_description, publish, today
from tests.app_browser import launch_chromium, streamlit_server, wait_for_map

NAME = "bench_app_startup"


def one_start(env: dict[str, str], n_sources: int) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)  # started before the timer: the user's browser is open
        start = time.perf_counter()
        with streamlit_server(env) as url:
            up = time.perf_counter() - start
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.goto(url)
            wait_for_map(page, min_points=n_sources)
            interactive = time.perf_counter() - start
            # a second visitor on the running server
            second = browser.new_page(viewport={"width": 1500, "height": 1000})
            t0 = time.perf_counter()
            second.goto(url)
            wait_for_map(second, min_points=n_sources)
            reload = time.perf_counter() - t0
        browser.close()
    return {"up": up, "interactive": interactive, "second": reload}


def render(results: list[dict], n_sources: int, weights_note: str) -> str:
    def med(key):
        return statistics.median(r[key] for r in results)

    def span(key):
        values = [r[key] for r in results]
        return f"{min(values):.1f}-{max(values):.1f}"

    return "\n".join(
        [
            "## Start-up with a warm cache until the map is interactive",
            "",
            f"`bench/bench_startup.py`, {today()}, {machine_description()}. `streamlit run app.py` started as a new "
            f"process {len(results)} times, the default MiraBest space ({n_sources:,} sources) already in the cache; "
            f"{weights_note}. Browser: headless Debian Chromium (Playwright), already open, software WebGL.",
            "",
            "| from | to | median (min-max) |",
            "|---|---|---|",
            f"| process start | server answers (`/_stcore/health`) | {med('up'):.1f} s ({span('up')}) |",
            f"| process start | map drawn with every source (interactive) | **{med('interactive'):.1f} s** "
            f"({span('interactive')}) |",
            f"| a second visitor's page load (server running) | map interactive | {med('second'):.1f} s "
            f"({span('second')}) |",
            "",
            "The first start of a fresh installation also prepares the space (bundle -> embeddings -> map, "
            "with progress in the page); that is not included here. A new process pays for its imports "
            "(streamlit, plotly, astropy, scikit-learn; torch only at the first look-up) and for reading the "
            "space; a second visitor pays only for the page and the map drawing.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cache", help="EXPLORER_CACHE for the app (default: the user cache)")
    parser.add_argument("--weights", help="backbone weights (default: the shipped one, else random weights)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    env, weights_note = bench_env(args.cache, args.weights)
    n_sources = prepare(env)
    results = []
    for i in range(args.repeats):
        result = one_start(env, n_sources)
        print(f"start {i + 1}/{args.repeats}: {result}", flush=True)
        results.append(result)
    text = render(results, n_sources, weights_note)
    publish(NAME, text, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
