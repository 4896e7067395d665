"""Click -> complete neighbour gallery, in a real browser, on MiraBest and on the RGZ DR1 map.

Starts ``streamlit run app.py`` (warm cache: the default MiraBest space prepared first),
opens it in headless Debian Chromium (Playwright) and clicks map points, as a mouse does,
at the pixel where plotly drew them (points spread over the map). For each click it
measures, from the mouse click:

- **gallery**: until the neighbour gallery of the new source is in the page with every
  thumbnail decoded (what the issue asks for);
- **map**: until the map has been redrawn with the new source's star and neighbour rings.

Two warm-up clicks per space are not counted. Also measured, in-process, the server-side
work of one click (neighbour search + map figure + its JSON + gallery HTML), to split
the browser's share from Python's.

Writes the section ``bench_app_clicks`` of BENCHMARKS.md.

    python bench/bench_click_latency.py                   # 25 clicks per space
    python bench/bench_click_latency.py --clicks 20 --cache /tmp/bench-cache
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.app_setup import bench_env, prepare
from bench.report import machine_description, publish, today
from tests.app_browser import (
    choose_space,
    click_and_time,
    launch_chromium,
    map_points,
    streamlit_server,
    wait_for_map,
)

NAME = "bench_app_clicks"
RGZ_TITLE = "RGZ DR1 published map (catalogue only)"
WARM_UP = 2


def browser_clicks(url: str, spaces: list[tuple[str, str | None, int]], clicks: int) -> dict[str, list[dict]]:
    from playwright.sync_api import sync_playwright

    results: dict[str, list[dict]] = {}
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        page.goto(url)
        for name, title, n_points in spaces:
            if title:
                choose_space(page, title)
            wait_for_map(page, min_points=n_points)
            time.sleep(1.0)
            points = map_points(page, limit=clicks + WARM_UP, isolated=False)
            done = []
            for i, point in enumerate(points):
                try:
                    result = click_and_time(page, point)
                except Exception as exc:  # a click that selected nothing new: count it, go on
                    result = {"failed": f"{type(exc).__name__}"}
                if i >= WARM_UP:
                    done.append(result)
                print(f"  {name} click {i + 1}/{len(points)}: {result}", flush=True)
            results[name] = done
        browser.close()
    return results


def server_side_ms(space_title: str | None, k: int = 12, repeats: int = 10) -> float:
    """Median ms of the Python work of one click (no Streamlit, no browser)."""
    import plotly.io as pio

    from explorer.figures import map_figure
    from explorer.gallery import Card, gallery_html
    from explorer.space_registry import discover_spaces, open_space

    entry = [e for e in discover_spaces() if (e.title == space_title if space_title else e.kind == "default")][0]
    space = open_space(entry)
    colour = space.catalogue["angular_extent_arcsec"]
    rng = np.random.default_rng(0)
    times = []
    for row in rng.choice(len(space), size=repeats, replace=False):
        start = time.perf_counter()
        nb = space.neighbours_of_row(int(row), k, 30.0)
        fig = map_figure(space.catalogue, colour, "angular_extent_arcsec", True, neighbours=nb.rows, query=int(row))
        pio.to_json(fig, validate=False)
        gallery_html(
            [
                Card(i + 1, str(space.catalogue["source_id"].iloc[r]), space.image(int(r)), float(s))
                for i, (r, s) in enumerate(zip(nb.rows, nb.scores))
            ]
        )
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def summarise(clicks: list[dict]) -> dict:
    ok = [c for c in clicks if "failed" not in c]
    out: dict[str, object] = {"n": len(ok), "failed": len(clicks) - len(ok)}
    for key in ("gallery_s", "map_s"):
        values = np.array([c[key] for c in ok])
        out[key] = (
            (float(np.median(values)), float(np.percentile(values, 10)), float(np.percentile(values, 90)))
            if len(values)
            else (float("nan"),) * 3
        )
    return out


def render(rows: list[dict], args, weights_note: str) -> str:
    lines = [
        "## Click on the map -> complete neighbour gallery, in a real browser",
        "",
        f"`bench/bench_click_latency.py`, {today()}, {machine_description()}. Browser: headless Debian "
        "Chromium (Playwright) on the same machine, `--disable-gpu` (WebGL drawn in software), viewport "
        f"1500 x 1000. Server: `streamlit run app.py` with a warm cache; {weights_note}. k = 12 neighbours, "
        f"sky-duplicate filter 30″. {args.clicks} timed clicks per space (after {WARM_UP} warm-up clicks), "
        "spread over the map; times from the mouse click.",
        "",
        "| space | sources | neighbours by | click -> complete gallery, median (p10-p90) | "
        "click -> map redrawn with the highlights, median (p10-p90) | Python work per click (median) | clicks |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        g, m = r["gallery_s"], r["map_s"]
        lines.append(
            f"| {r['name']} | {r['sources']:,} | {r['by']} | **{g[0]:.2f} s** ({g[1]:.2f}-{g[2]:.2f}) | "
            f"{m[0]:.2f} s ({m[1]:.2f}-{m[2]:.2f}) | {r['server_ms']:.0f} ms | {r['n']}"
            + (f" ({r['failed']} missed)" if r["failed"] else "")
            + " |"
        )
    lines += [
        "",
        "The gallery's thumbnails come from the bundle's memory map (MiraBest) inside the same message "
        "as the list, so there is no request per thumbnail; the RGZ DR1 map has no images of its own "
        "(its cards say so until the user fetches them from FIRST with one button). The page sends the "
        "source panel and gallery before the map, so the gallery is complete while the browser still "
        "redraws the WebGL map (the map column). Most of a click's time is the browser's: "
        "Streamlit replaces the whole plotly chart when its figure changes (new highlights), and "
        "without a GPU Chromium draws WebGL in software; the Python share is the last column but one.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clicks", type=int, default=25)
    parser.add_argument("--cache", help="EXPLORER_CACHE for the app (default: the user cache)")
    parser.add_argument("--weights", help="backbone weights (default: the shipped one, else random weights)")
    parser.add_argument("--no-rgz", action="store_true", help="MiraBest only")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)

    env, weights_note = bench_env(args.cache, args.weights)
    n_mirabest = prepare(env)
    spaces: list[tuple[str, str | None, int]] = [("MiraBest (default space)", None, n_mirabest)]
    if not args.no_rgz:
        spaces.append(("RGZ DR1 published map", RGZ_TITLE, 50_790))
    with streamlit_server(env, log_path=Path("/tmp") / "bench_click_latency_streamlit.log") as url:
        clicks = browser_clicks(url, spaces, args.clicks)
    rows = []
    for name, title, n in spaces:
        summary = summarise(clicks[name])
        rows.append(
            {
                "name": name,
                "sources": n,
                **summary,
                "server_ms": server_side_ms(title),
                "by": "cosine similarity, 512-d" if title is None else "distance on the 2-D map",
            }
        )
        print(name, summary, flush=True)
    text = render(rows, args, weights_note)
    publish(NAME, text, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
