"""A survey-sized map (1 M sources) in a real browser: opening, clicks, zoom.

Writes a synthetic catalogue map (2-D positions of clustered sources, RA/Dec, an extent;
the layout of the published RGZ DR1 map, so the app opens it as a catalogue space through
``EXPLORER_RGZ_MAP``), starts ``streamlit run app.py`` and drives headless Chromium:

- **open**: from choosing the space in the sidebar until the map is drawn (density image
  and points) — the first time (the server reads the Parquet) and again in a new tab;
- **click**: from the mouse click until the neighbour gallery of the new source is
  complete, and until the map shows its star; whether the source picked is the one aimed at;
- **zoom**: from the end of a zoom drag until the points of the new view are drawn (the
  view keeper's script reports the view to the server), and whether a click then keeps
  the zoom and picks the point aimed at.

Side by side, the obvious alternative: the same map drawn as one plotly scatter of every
point (``EXPLORER_MAP_POINTS_MAX`` above the size), with a time limit.

Writes the section ``bench_big_map`` of BENCHMARKS.md.

    python bench/bench_big_map.py                       # 1,000,000 sources
    python bench/bench_big_map.py --n 200000 --clicks 6 --cache /tmp/bench-cache
    python bench/bench_big_map.py --space runs/space_1m   # a space made by `pretrain space --embeddings`

With ``--space`` the map is that space (opened through ``EXPLORER_SPACES``, neighbours from its
index), as a user who brought a survey's embeddings would open it; the alternative is skipped.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.app_setup import bench_env, prepare
from bench.report import machine_description, publish, today
from tests.app_browser import (
    GALLERY_QUERY_JS,
    choose_space,
    click_and_time,
    launch_chromium,
    map_points,
    streamlit_server,
    wait_for_map,
)

NAME = "bench_big_map"
TITLE = "RGZ DR1 published map (catalogue only)"  # the slot the synthetic map is served in
WARM_UP = 2
# The map is drawn: points with hover data, and (a density map) its image.
DRAWN_JS = """([minPoints, dense]) => {
  const gd = document.querySelector('.js-plotly-plot');
  if (!gd || !gd._fullData || !gd._fullLayout || !gd._fullLayout.xaxis) return false;
  if (dense && !(gd._fullLayout.images && gd._fullLayout.images.length)) return false;
  const n = gd._fullData.reduce((s, t) => s + (t.customdata && t.hoverinfo !== 'skip' ? t.x.length : 0), 0);
  return n >= minPoints;
}"""
RANGE_JS = """() => { const fl = document.querySelector('.js-plotly-plot')._fullLayout;
  return [...fl.xaxis.range, ...fl.yaxis.range]; }"""
# Where a source is drawn (page pixels), among the points with hover data: a click "picks the
# point under the mouse" when the source it picked is drawn where the mouse went (several
# sources can share a position to the sub-pixel on a survey map).
POSITION_JS = """(name) => { const gd = document.querySelector('.js-plotly-plot'); const fl = gd._fullLayout;
  const r = gd.getBoundingClientRect();
  for (const tr of gd._fullData) { if (!tr.customdata || tr.hoverinfo === 'skip' || !tr.text) continue;
    for (let i = 0; i < tr.x.length; i++) if (String(tr.text[i]).split(' · ')[0] === name)
      return {x: r.left + fl._size.l + fl.xaxis.l2p(tr.x[i]), y: r.top + fl._size.t + fl.yaxis.l2p(tr.y[i])}; }
  return null; }"""
PLOT_AREA_JS = """() => { const gd = document.querySelector('.js-plotly-plot'); const r = gd.getBoundingClientRect();
  const s = gd._fullLayout._size; return {left: r.left + s.l, top: r.top + s.t, width: s.w, height: s.h}; }"""


def synthetic_map(n: int, path: Path, seed: int = 0) -> Path:
    """``n`` sources in the RGZ DR1 map's layout: 80 clusters of different spreads on the
    map plus a thin background, positions on the northern sky, extents ordered along x."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    centres = rng.uniform(-12, 12, (80, 2))
    spreads = rng.uniform(0.2, 1.2, 80)
    group = rng.integers(0, 80, n)
    xy = centres[group] + rng.normal(size=(n, 2)) * spreads[group, None]
    background = rng.random(n) < 0.05
    xy[background] = rng.uniform(-14, 14, (int(background.sum()), 2))
    frame = pd.DataFrame(
        {
            "rgz_name": [f"SYNJ{i:07d}" for i in range(n)],
            "umap_x": xy[:, 0].astype(np.float32),
            "umap_y": xy[:, 1].astype(np.float32),
            "ra": rng.uniform(0, 360, n).astype(np.float32),
            "dec": np.degrees(np.arcsin(rng.uniform(-0.3, 1.0, n))).astype(np.float32),
            "size": np.exp(3.3 + 0.08 * xy[:, 0] + 0.3 * rng.normal(size=n)).astype(np.float32),
        }
    )
    frame.to_parquet(path, index=False)
    return path


def _wait_drawn(page, min_points: int, dense: bool, timeout_s: float) -> float:
    start = time.perf_counter()
    page.wait_for_function(DRAWN_JS, arg=[min_points, dense], timeout=timeout_s * 1e3, polling=100)
    return time.perf_counter() - start


def _zoom(page) -> list[float]:
    area = page.evaluate(PLOT_AREA_JS)
    x0, y0 = area["left"] + 0.4 * area["width"], area["top"] + 0.4 * area["height"]
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + 0.06 * area["width"], y0 + 0.06 * area["height"], steps=8)
    page.mouse.up()
    return page.evaluate(RANGE_JS)


def _picked_under_mouse(page, point: dict, picked: str) -> bool:
    """The source picked is the one aimed at, or one drawn at the same spot (within half a pixel)."""
    if picked == point["text"].split(" · ")[0]:
        return True
    at = page.evaluate(POSITION_JS, picked)
    return at is not None and abs(at["x"] - point["x"]) <= 0.5 and abs(at["y"] - point["y"]) <= 0.5


def browse(url: str, n: int, clicks: int, dense: bool, timeout_s: float, points_max: int | None = None) -> dict:
    """Open the map twice, click, zoom, click: the figures of one way of drawing it."""
    from playwright.sync_api import sync_playwright

    from explorer.figures import DENSITY_POINTS_MAX

    expected = min(n, points_max or DENSITY_POINTS_MAX) if dense else n
    out: dict[str, object] = {}
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        page.goto(url)
        wait_for_map(page)
        start = time.perf_counter()
        choose_space(page, TITLE)
        try:
            _wait_drawn(page, int(0.99 * expected), dense, timeout_s)
        except Exception:  # the alternative may not finish: say so
            out["open_s"] = None
            browser.close()
            return out
        out["open_s"] = time.perf_counter() - start
        space_url = page.url
        again = browser.new_page(viewport={"width": 1500, "height": 1000})
        start = time.perf_counter()
        again.goto(space_url)
        _wait_drawn(again, int(0.99 * expected), dense, timeout_s)
        out["reopen_s"] = time.perf_counter() - start
        again.close()
        time.sleep(1.0)
        results = []
        for i, point in enumerate(map_points(page, limit=clicks + WARM_UP, isolated=False)):
            try:
                result = click_and_time(page, point, timeout_ms=int(timeout_s * 1e3))
                result["hit"] = _picked_under_mouse(page, point, result["query"])
            except Exception as exc:
                result = {"failed": type(exc).__name__}
            print(f"  click {i + 1}: {result}", flush=True)
            if i >= WARM_UP:
                results.append(result)
        out["clicks"] = results
        if dense:
            page.evaluate("() => { window.__benchFig = document.querySelector('.js-plotly-plot').data; }")
            zoomed = _zoom(page)
            start = time.perf_counter()
            page.wait_for_function(
                "() => { const gd = document.querySelector('.js-plotly-plot'); return !!gd && gd.data !== window.__benchFig; }",
                timeout=timeout_s * 1e3,
                polling="raf",
            )
            _wait_drawn(page, 1, dense, timeout_s)
            out["zoom_s"] = time.perf_counter() - start
            shown = page.evaluate(GALLERY_QUERY_JS)  # a point other than the source shown: the gallery changes
            point = [p for p in map_points(page, limit=20, isolated=False) if p["text"].split(" · ")[0] != shown][10]
            try:
                result = click_and_time(page, point, timeout_ms=int(timeout_s * 1e3))
            except Exception:
                page.screenshot(path="/tmp/bench_big_map_zoom_click_failed.png")
                raise
            out["zoom_click_hit"] = _picked_under_mouse(page, point, result["query"])
            after = page.evaluate(RANGE_JS)
            out["zoom_kept"] = all(abs(a - b) <= 1e-6 * max(1.0, abs(a)) for a, b in zip(after, zoomed))
            out["zoom_click_gallery_s"] = result["gallery_s"]
            page.screenshot(path="/tmp/bench_big_map_zoomed.png")
        browser.close()
    return out


def _median(clicks: list[dict], key: str) -> str:
    values = [c[key] for c in clicks if key in c]
    return f"{statistics.median(values):.2f} s" if values else "-"


def render(n: int, rows: list[tuple[str, dict]], timeout_s: float, weights_note: str, load: str) -> str:
    lines = [
        f"## A {n:,}-source map in a real browser: open, click, zoom",
        "",
        f"`bench/bench_big_map.py`, {today()}, {machine_description()}. Browser: headless Debian Chromium "
        "(Playwright), `--disable-gpu` (WebGL drawn in software), viewport 1500 x 1000; server `streamlit run "
        f"app.py` ({weights_note} for the default space). A synthetic map of {n:,} sources (80 clusters on the "
        "map, the RGZ DR1 map's file layout, served as a catalogue space: neighbours by distance on the map). "
        f"Open: choosing the space in the sidebar -> map drawn (the server reads the Parquet), and the same "
        f"link in a new tab; clicks at points spread over the map (after {WARM_UP} warm-up clicks), times from "
        f"the mouse click; a time limit of {timeout_s:.0f} s per step. The machine was shared with other jobs "
        f"(1-minute load average {load} on 2 cores, at the start and the end): the times are upper bounds.",
        "",
        "| drawn as | open (first) | open (new tab) | click -> complete gallery, median | click -> map redrawn, "
        "median | clicks that picked the source aimed at | zoom -> the view's points drawn | zoom kept by a click |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows:
        if r.get("open_s") is None:
            lines.append(f"| {name} | not drawn within {timeout_s:.0f} s | - | - | - | - | - | - |")
            continue
        clicks = [c for c in r["clicks"] if "failed" not in c]
        hits = sum(bool(c.get("hit")) for c in clicks)
        zoom = f"{r['zoom_s']:.2f} s" if "zoom_s" in r else "-"
        kept = ("yes" if r.get("zoom_kept") else "no") + (", pick exact" if r.get("zoom_click_hit") else "")
        lines.append(
            f"| {name} | {r['open_s']:.1f} s | {r['reopen_s']:.1f} s | **{_median(clicks, 'gallery_s')}** | "
            f"{_median(clicks, 'map_s')} | {hits} of {len(r['clicks'])} | {zoom} | "
            f"{kept if 'zoom_kept' in r else '-'} |"
        )
    lines += [
        "",
        "The density map: the server sends a PNG of every source (960 x 720, each pixel the mean colour of its "
        "sources, opacity by their number) and points, with hover and click, for at most "
        "`EXPLORER_MAP_DENSITY_POINTS` (30,000 by default) of the sources in view; after a zoom or pan the page's view keeper "
        "reports the view to the server (a hidden text box; the view is also in the address as `?view=`), which "
        "reruns the map fragment with that view's points, so zoomed in far enough every source is a point. A "
        "click picks the drawn point nearest where the mouse went down, to the sub-pixel (a click counts as picking "
        "the source aimed at when it picked that source or one drawn at the same spot, within half a pixel).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--clicks", type=int, default=8)
    parser.add_argument("--cache", help="EXPLORER_CACHE for the app (default: the user cache)")
    parser.add_argument("--weights", help="backbone weights (default: the shipped one, else random weights)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds allowed per step")
    parser.add_argument("--no-alternative", action="store_true", help="skip the all-points scatter")
    parser.add_argument(
        "--points-max",
        type=int,
        action="append",
        help="EXPLORER_MAP_DENSITY_POINTS for the app (default: its own; repeat to compare)",
    )
    parser.add_argument("--space", help="a prepared space folder to open instead of the synthetic catalogue map")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if args.space:
        return main_space(args)

    env, weights_note = bench_env(args.cache, args.weights)
    prepare(env)
    load_start = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = synthetic_map(args.n, Path(tmp) / "synthetic_map.parquet")
        ways: list[tuple[str, dict[str, str], bool]] = [("density image + the view's points (the app)", {}, True)]
        if not args.no_alternative:
            ways.append(("one plotly scatter of every point", {"EXPLORER_MAP_POINTS_MAX": str(args.n + 1)}, False))
        for name, extra, dense in ways:
            print(name, flush=True)
            with streamlit_server(
                {**env, "EXPLORER_RGZ_MAP": str(path), **extra}, log_path=Path(tmp) / "streamlit.log"
            ) as url:
                rows.append((name, browse(url, args.n, args.clicks, dense, args.timeout)))
            print(rows[-1], flush=True)
    text = render(args.n, rows, args.timeout, weights_note, f"{load_start:.1f} and {os.getloadavg()[0]:.1f}")
    publish(NAME, text, write=not args.no_write)
    return 0


def main_space(args) -> int:
    """The bench on a prepared space (``--space``): open, click, zoom; no alternative."""
    import json

    from explorer.space_registry import _title

    folder = Path(args.space).resolve()
    n = int(json.loads((folder / "manifest.json").read_text())["counts"]["sources"])
    env, weights_note = bench_env(args.cache, args.weights)
    prepare(env)
    load_start = os.getloadavg()[0]
    global TITLE
    TITLE = _title(folder)
    from explorer.figures import DENSITY_POINTS_MAX

    rows = []
    for points_max in args.points_max or [DENSITY_POINTS_MAX]:
        run_env = {**env, "EXPLORER_SPACES": str(folder), "EXPLORER_MAP_DENSITY_POINTS": str(points_max)}
        with tempfile.TemporaryDirectory() as tmp, streamlit_server(run_env, log_path=Path(tmp) / "st.log") as url:
            clicked = browse(url, n, args.clicks, True, args.timeout, points_max)
        default = " (the app's default)" if points_max == DENSITY_POINTS_MAX else ""
        rows.append((f"density image + at most {points_max:,} of the view's points{default}", clicked))
        print(rows[-1], flush=True)
    text = render(n, rows, args.timeout, weights_note, f"{load_start:.1f} and {os.getloadavg()[0]:.1f}")
    text = text.replace(
        f"## A {n:,}-source map in a real browser", f"## A {n:,}-source space of given embeddings in a real browser"
    ).replace(
        f"A synthetic map of {n:,} sources (80 clusters on the map, the RGZ DR1 map's file layout, served as a "
        "catalogue space: neighbours by distance on the map).",
        f"The space `{folder.name}` ({n:,} sources, made by `python -m pretrain space --embeddings`; opened "
        "through `EXPLORER_SPACES`; neighbours from its index).",
    )
    publish(NAME + "_space", text, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
