"""A new user's first start: an empty cache, ``streamlit run app.py``, until the map is there.

Each repeat starts with an empty ``EXPLORER_CACHE`` (the MiraBest FITS files are local, as
in ``../shared/data``), launches ``streamlit run app.py`` as a new process and opens the
page in headless Debian Chromium (already running: the user's browser is open), twice: as
a new installation (numba's cache empty as well, so UMAP's code is compiled during the
start) and as an installation that has made a map before. Measured from the process start:

- **map interactive**: the page shows the complete map of every source (the quick start:
  a bundle without the pixel measurements, one pass per image: :mod:`explorer.default_space`);
- **refined**: the measured bundle and the orientation-averaged (d4) space are swapped in
  and the page has reloaded them (the background refinement's notice is gone and the map
  is drawn again).

Side by side, in this process (no browser), the preparation itself with an empty cache:
``prepare_default_space(quick=True)`` (what the app does) against ``quick=False`` (the
measured bundle and d4 representation before the first map), with each stage's time.

Writes the section ``bench_first_start`` of BENCHMARKS.md.

    python bench/bench_first_start.py --repeats 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.report import machine_description, publish, today
from tests.app_browser import launch_chromium, streamlit_server, wait_for_map

NAME = "bench_first_start"
REFINED_JS = """(minPoints) => {
  const notice = [...document.querySelectorAll('[data-testid=stCaptionContainer]')]
    .some(e => e.innerText.includes('orientation-averaged representation'));
  const gd = document.querySelector('.js-plotly-plot');
  if (notice || !gd || !gd._fullData) return false;
  return gd._fullData.reduce((s, t) => s + (t.customdata ? t.x.length : 0), 0) >= minPoints;
}"""


def browser_start(n_sources: int, new_installation: bool) -> dict:
    """``new_installation``: numba's cache is empty too (``NUMBA_CACHE_DIR`` a new folder), as
    right after ``pip install``; else the compiled UMAP code of earlier processes is read."""
    from playwright.sync_api import sync_playwright

    cache = Path(tempfile.mkdtemp(prefix="first-start-"))
    env = {"EXPLORER_CACHE": str(cache), "EXPLORER_SPACES": ""}
    if new_installation:
        env["NUMBA_CACHE_DIR"] = str(cache / "numba")
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            start = time.perf_counter()
            with streamlit_server(env, timeout_s=300) as url:
                page = browser.new_page(viewport={"width": 1500, "height": 1000})
                page.goto(url)
                wait_for_map(page, min_points=n_sources, timeout_ms=600_000)
                interactive = time.perf_counter() - start
                page.wait_for_function(REFINED_JS, arg=n_sources, timeout=600_000, polling=250)
                refined = time.perf_counter() - start
            browser.close()
        return {"interactive": interactive, "refined": refined}
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def in_process(quick: bool) -> dict:
    """Stage times of one preparation with an empty cache (seconds from the start of each stage's first report)."""
    from explorer import default_space

    cache = Path(tempfile.mkdtemp(prefix="first-start-"))
    os.environ["EXPLORER_CACHE"] = str(cache)
    first: dict[str, float] = {}
    start = time.perf_counter()

    def progress(stage, fraction, message):
        first.setdefault(stage, time.perf_counter() - start)

    try:
        space = default_space.prepare_default_space(progress, quick=quick)
        total = time.perf_counter() - start
        marks = [first.get(stage, total) for stage in default_space.STAGES] + [total]
        stages = {stage: marks[i + 1] - marks[i] for i, stage in enumerate(default_space.STAGES)}
        return {"total": total, "n": len(space), **stages}
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        os.environ.pop("EXPLORER_CACHE", None)


def warm_up_umap() -> None:
    """Compile UMAP's numba code once, so neither in-process run pays for it alone."""
    import numpy as np

    from pretrain.mapping import MapProjector

    MapProjector(random_state=0).fit_transform(np.random.default_rng(0).normal(size=(300, 512)).astype(np.float32))


def render(browser: dict[str, list[dict]], quick: dict, full: dict) -> str:
    def med(rows, key):
        return statistics.median(r[key] for r in rows)

    n = quick["n"]
    repeats = len(next(iter(browser.values())))
    lines = [
        f"`bench/bench_first_start.py`, {today()}, {machine_description()}. A new user's first start with "
        f"an empty cache: the {n} MiraBest files local, the shipped backbone. *New installation*: numba's "
        "cache empty too (`NUMBA_CACHE_DIR` a new folder), so UMAP's code is compiled in this start, as "
        "right after `pip install`; *installed*: an earlier process of the installation has compiled it.",
        "",
        f"| in the browser (from `streamlit run app.py`) | installation | median of {repeats} | all |",
        "|---|---|---|---|",
    ]
    for label, key in (
        ("map interactive (one-pass representation, unmeasured bundle)", "interactive"),
        ("refined map shown (measured bundle, d4 representation swapped in)", "refined"),
    ):
        for kind, rows in browser.items():
            lines.append(
                f"| {label} | {kind} | {med(rows, key):.1f} s | " + ", ".join(f"{r[key]:.1f}" for r in rows) + " |"
            )
    lines += [
        "",
        "| preparation in one process, empty cache | quick (no measurements, one pass: now) | measured, d4 | ratio |",
        "|---|---|---|---|",
    ]
    for stage in ("data", "bundle", "embeddings", "map"):
        lines.append(
            f"| {stage} | {quick[stage]:.1f} s | {full[stage]:.1f} s | {full[stage] / max(quick[stage], 1e-9):.1f}x |"
        )
    lines.append(
        f"| **until the first map** | **{quick['total']:.1f} s** | **{full['total']:.1f} s** | "
        f"**{full['total'] / quick['total']:.2f}x** |"
    )
    lines += [
        "",
        "The quick start leaves the pixel measurements out of its bundle and embeds each image once; "
        "the app then builds the measured bundle, computes the orientation-averaged representation "
        "(8 passes) in the background and swaps both in, so neighbours and look-ups use the d4 "
        "representation from then on. The map's process start (imports, server) is in the browser "
        "figures, not in the in-process ones (which run after UMAP's code is compiled).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-write", action="store_true", help="print, do not write BENCHMARKS.md")
    args = parser.parse_args()
    warm_up_umap()
    quick = in_process(quick=True)
    print("quick", quick, flush=True)
    full = in_process(quick=False)
    print("full", full, flush=True)
    browser: dict[str, list[dict]] = {"new installation": [], "installed": []}
    for i in range(args.repeats):
        for kind, rows in browser.items():
            rows.append(browser_start(quick["n"], new_installation=kind == "new installation"))
            print(f"browser start {i + 1} ({kind}): {rows[-1]}", flush=True)
    markdown = render(browser, quick, full)
    publish(NAME, markdown, write=not args.no_write)


if __name__ == "__main__":
    main()
