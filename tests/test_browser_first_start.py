"""A new user's first start in Chromium: the quick one-pass map first, then the refined d4 one.

An empty cache and ten real MiraBest files: the page shows the map of the quick space, the
background refinement swaps in the orientation-averaged space, and the open page reloads
into it by itself (its map is then the refined space's map, point for point).
"""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest

from tests.app_browser import launch_chromium, streamlit_server, wait_for_map
from tests.app_space import link_subset, random_weights

pytestmark = pytest.mark.browser

MAP_X_JS = """() => {
  const gd = document.querySelector('.js-plotly-plot');
  if (!gd || !gd._fullData) return [];
  return gd._fullData.filter(t => t.customdata).flatMap(t => Array.from(t.x));
}"""


def test_the_first_start_shows_a_quick_map_then_reloads_into_the_refined_space(mirabest_dir, tmp_path):
    from playwright.sync_api import sync_playwright

    folder = link_subset(mirabest_dir, tmp_path / "mirabest", {"10": 4, "20": 4, "30": 2})
    weights = random_weights(tmp_path / "weights.safetensors", seed=3)
    cache = tmp_path / "cache"
    env = {
        "EXPLORER_CACHE": str(cache),
        "EXPLORER_MIRABEST_DIR": str(folder),
        "EXPLORER_WEIGHTS": str(weights),
        "EXPLORER_SPACES": "",
    }
    space = cache / "spaces" / "mirabest"
    with streamlit_server(env) as url, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(url)
        wait_for_map(page, min_points=10)

        def refined_map_shown() -> bool:
            manifest = space / "manifest.json"
            if not manifest.is_file() or json.loads(manifest.read_text())["parameters"]["symmetry"] != "d4":
                return False
            expected = np.sort(pd.read_parquet(space / "map.parquet")["umap_x"].to_numpy())
            shown = np.sort(np.asarray(page.evaluate(MAP_X_JS), dtype=float))
            return len(shown) == len(expected) and np.allclose(shown, expected, atol=1e-4)

        deadline = time.monotonic() + 300  # the page polls every 2 s; ten images refine in seconds
        while not refined_map_shown():
            assert time.monotonic() < deadline, "the page did not reload into the refined (d4) space"
            page.wait_for_timeout(500)
        assert page.get_by_text("orientation-averaged representation").count() == 0
        assert sorted(p.name for p in space.parent.iterdir()) == ["mirabest"]
        browser.close()
