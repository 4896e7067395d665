"""Driving the real app in Debian's Chromium: a ``streamlit run`` server, and map clicks from JS.

Used by tests/test_browser.py and by the latency benchmarks in bench/. Clicks go to the
pixel where plotly drew a point (computed from the figure's own axes in the page), just
as a person's mouse click would.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("EXPLORER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_server(env: dict[str, str], timeout_s: float = 120.0, log_path: Path | None = None):
    """``streamlit run app.py`` on a free localhost port; yields its URL; stops it afterwards."""
    port = free_port()
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    log = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115 (kept open for the server's whole life)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(REPO / "app.py"),
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=REPO,
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:  # bounded wait for the health endpoint
            if process.poll() is not None:
                raise RuntimeError(f"streamlit exited with code {process.returncode}")
            try:
                if requests.get(f"{url}/_stcore/health", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.3)
        else:
            raise RuntimeError(f"streamlit did not answer within {timeout_s:.0f} s")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if not isinstance(log, int):  # a log file (not subprocess.DEVNULL)
            log.close()


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


# --- the map in the page -------------------------------------------------------------------

MAP_READY_JS = """(minPoints) => {
  const gd = document.querySelector('.js-plotly-plot');
  if (!gd || !gd._fullData || !gd._fullLayout || !gd._fullLayout.xaxis) return false;
  const n = gd._fullData.reduce((s, t) => s + (t.customdata ? t.x.length : 0), 0);
  return n >= minPoints;
}"""

# Pixel positions (page coordinates) of points whose hover text contains `prefix` (all
# points when null), at most `limit` spread over the list, optionally only points with no
# other point within 6 px (a click there hits exactly that point), with their hover text.
POINTS_JS = """([prefix, limit, isolated]) => {
  const gd = document.querySelector('.js-plotly-plot');
  const fl = gd._fullLayout; const rect = gd.getBoundingClientRect();
  const px = (tr, i) => ({x: rect.left + fl._size.l + fl.xaxis.l2p(tr.x[i]),
                         y: rect.top + fl._size.t + fl.yaxis.l2p(tr.y[i])});
  const all = [], marks = [];  // points that take a click; and the rings and the star over them
  for (const tr of gd._fullData) {
    if (!tr.customdata || !tr.text) continue;
    const into = tr.hoverinfo === 'skip' ? marks : all;
    for (let i = 0; i < tr.x.length; i++) into.push({...px(tr, i), text: tr.text[i]});
  }
  // only points inside the plot area (a zoomed survey map also draws a margin of points outside it)
  const inside = (p) => p.x > rect.left + fl._size.l + 2 && p.x < rect.left + fl._size.l + fl._size.w - 2 &&
    p.y > rect.top + fl._size.t + 2 && p.y < rect.top + fl._size.t + fl._size.h - 2;
  const spread = (list, n) => list.length <= n ? list :
    Array.from({length: n}, (_, k) => list[Math.floor(k * list.length / n)]);
  let chosen = (prefix === null ? all : all.filter(p => p.text && p.text.includes(prefix))).filter(inside);
  // keep points with no other point within 6 px: a click there hits exactly that point
  // (nor under a ring or the star: the source shown and its neighbours are not "isolated")
  const others = all.concat(marks);
  const alone = (list) => list.filter(p => others.every(q => q === p || Math.abs(q.x - p.x) > 6 || Math.abs(q.y - p.y) > 6));
  let picked = chosen;
  if (isolated) {
    picked = alone(limit ? spread(chosen, 5 * limit) : chosen);  // a sample first: quick on a big map
    if (limit && picked.length < limit) picked = alone(chosen);  // too few isolated there: every point
  }
  return limit ? spread(picked, limit) : picked;
}"""

# The map shows the star of `query` (the map has been redrawn for that click).
MAP_SHOWS_QUERY_JS = """(query) => {
  const gd = document.querySelector('.js-plotly-plot');
  if (!gd || !gd._fullData) return false;
  const star = gd._fullData.find(t => t.name === 'selected source');
  return !!(star && star.text && String(star.text[0]).startsWith(query));
}"""

GALLERY_QUERY_JS = """() => { const g = document.querySelector('.nb-gallery'); return g ? g.dataset.query : null; }"""

# The gallery for a new query is in the page and every thumbnail in it is decoded.
GALLERY_DONE_JS = """(previous) => {
  const g = document.querySelector('.nb-gallery');
  if (!g || g.dataset.query === previous) return false;
  const cards = g.querySelectorAll('.nb-card');
  if (cards.length !== Number(g.dataset.count)) return false;
  return [...g.querySelectorAll('img')].every(im => im.complete && im.naturalWidth > 0);
}"""


def wait_for_map(page, min_points: int = 1, timeout_ms: int = 180_000) -> None:
    page.wait_for_function(MAP_READY_JS, arg=min_points, timeout=timeout_ms, polling=100)


def map_points(page, contains: str | None = None, limit: int | None = None, isolated: bool = True) -> list[dict]:
    return page.evaluate(POINTS_JS, [contains, limit, isolated])


def click_and_time(page, point: dict, timeout_ms: int = 60_000) -> dict:
    """Click a map point; seconds until the complete gallery is there and until the map shows it."""
    previous = page.evaluate(GALLERY_QUERY_JS)
    start = time.perf_counter()
    page.mouse.click(point["x"], point["y"])
    page.wait_for_function(GALLERY_DONE_JS, arg=previous, timeout=timeout_ms, polling="raf")
    gallery_s = time.perf_counter() - start
    query = page.evaluate(GALLERY_QUERY_JS)
    page.wait_for_function(MAP_SHOWS_QUERY_JS, arg=query, timeout=timeout_ms, polling="raf")
    map_s = time.perf_counter() - start
    return {"query": query, "gallery_s": gallery_s, "map_s": map_s, "clicked": point.get("text")}


def choose_space(page, title: str) -> None:
    """Pick a space in the sidebar's selector."""
    page.locator("[data-testid=stSidebar] [data-testid=stSelectbox]").first.click()
    page.get_by_role("option", name=title).click()
