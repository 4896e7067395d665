"""Issue #17: several browser sessions at once against one app server.

Six sessions open the app together; three paste 30,000 digits into the Look-up box at the
same moment (the probe froze every session for 42 s that way) while the other three look up
a real position and open the Map page. Every session must get its own answer, and the
server's health check must answer all the while.
"""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from pretrain.space import load_space
from tests.app_browser import launch_chromium, streamlit_server, wait_for_map
from tests.app_space import build_small_space
from tests.standins.skyview import SkyViewStandIn

pytestmark = pytest.mark.browser
SESSIONS = 6
BOX = "Position (RA Dec, degrees or sexagesimal) or object name"


@pytest.fixture(scope="module")
def app(mirabest_dir, shared_data, tmp_path_factory):
    if not Path("/usr/bin/chromium").exists() and "EXPLORER_CHROMIUM" not in __import__("os").environ:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    small = build_small_space(mirabest_dir, tmp_path_factory.getbasetemp() / "sessions_space")
    with SkyViewStandIn(shared_data) as skyview:
        env = {**small.env(), "EXPLORER_SKYVIEW_URL": skyview.url, "EXPLORER_SPACES": ""}
        with streamlit_server(env) as url:
            yield url, small


def _health_s(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(f"{url.rstrip('/')}/_stcore/health", timeout=30) as answer:
        assert answer.status == 200
    return time.perf_counter() - start


def test_six_sessions_at_once_with_pasted_walls_of_digits(app):
    from playwright.sync_api import sync_playwright

    url, small = app
    space = load_space(small.cache / "spaces" / "mirabest")
    cat = space.catalogue_map
    row = int(np.flatnonzero(cat["label"].to_numpy() == "FRII")[0])
    position = f"{cat['ra'].iloc[row]:.5f} {cat['dec'].iloc[row]:+.5f}"
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        pages = [browser.new_context(viewport={"width": 1400, "height": 1600}).new_page() for _ in range(SESSIONS)]
        for page in pages:
            page.goto(url, wait_until="commit", timeout=180_000)  # six at once, on a busy machine
        for page in pages:
            wait_for_map(page)
        for page in pages:
            page.get_by_role("link", name="Look-up").click()
        for page in pages:
            page.get_by_label(BOX).wait_for(timeout=120_000)
        # all at once: half paste a wall of digits, half a real position
        for i, page in enumerate(pages):
            box = page.get_by_label(BOX)
            box.fill("1" * 30_000 if i % 2 == 0 else position)
            box.press("Enter")
        health = [_health_s(url) for _ in range(3)]
        for i, page in enumerate(pages):
            if i % 2 == 0:
                error = page.locator("[data-testid=stAlertContentError]")
                error.first.wait_for(timeout=120_000)
                assert len(page.get_by_label(BOX).input_value()) <= 200  # the box caps what is pasted
            else:
                page.get_by_text("Model input").first.wait_for(timeout=240_000)
                page.locator(".nb-gallery").wait_for(timeout=120_000)
                assert page.locator(".nb-gallery .nb-card").count() == 12
        for page in pages[1::2]:
            page.get_by_role("link", name="Map").click()
        for page in pages[1::2]:
            wait_for_map(page)
        browser.close()
    assert len(health) == 3  # each health check answered (within its 30 s time-out) while six sessions worked
