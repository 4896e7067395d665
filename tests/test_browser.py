"""The app in a real browser: ``streamlit run app.py`` driven through Debian's Chromium.

Clicks a hybrid source on the map and checks its neighbour gallery, runs look-ups against
the stand-in SkyView server (a hit, a position outside the footprint, a broken upload),
switches to the RGZ DR1 map and clicks there, and on the Training page starts a run, reloads
mid-run, follows it from a second tab, cancels it, lets another finish and colours the map
with its predictions. Screenshots go to ``artifacts/``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from pretrain.space import load_space
from tests.app_browser import (
    REPO,
    choose_space,
    click_and_time,
    launch_chromium,
    map_points,
    streamlit_server,
    wait_for_map,
)
from tests.app_space import TRAINABLE_SUBSET, build_small_space, wait_until
from tests.standins.skyview import SkyViewStandIn

pytestmark = pytest.mark.browser
ARTIFACTS = REPO / "artifacts"


@pytest.fixture(scope="module")
def app_url(mirabest_dir, shared_data, tmp_path_factory):
    if not Path("/usr/bin/chromium").exists() and "EXPLORER_CHROMIUM" not in __import__("os").environ:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    # Its own space, large enough for the fine-tuning task's standard split (Training page).
    small = build_small_space(mirabest_dir, tmp_path_factory.getbasetemp() / "browser_space", TRAINABLE_SUBSET)
    ARTIFACTS.mkdir(exist_ok=True)
    with SkyViewStandIn(shared_data) as skyview:
        env = {**small.env(), "EXPLORER_SKYVIEW_URL": skyview.url, "EXPLORER_SPACES": ""}
        with streamlit_server(env, log_path=ARTIFACTS / "browser_streamlit.log") as url:
            yield url, small


@pytest.fixture(scope="module")
def page(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1500, "height": 1900})
        page.goto(app_url[0])
        yield page
        browser.close()


def _shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def test_a_deep_link_as_the_first_request_opens_the_page_inside_the_app(app_url):
    """A tab that reconnects to /Lookup after a restart is the server's first session: the
    page must still come with the app's navigation (not a listing of the page files)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.goto(app_url[0] + "/Lookup")
            box = page.get_by_label("Position (RA Dec, degrees or sexagesimal) or object name")
            box.wait_for(timeout=120_000)
            nav = page.locator("[data-testid=stSidebarNav]")
            links = [text.strip() for text in nav.locator("a").all_inner_texts()]
            assert any("Look-up" in text for text in links), links
            assert not any(text.endswith("app") for text in links), links
            # the page handed over to app.py still works: its form answers
            box.fill("10.0 -60.0")
            box.press("Enter")
            error = page.locator("[data-testid=stAlertContentError]")
            error.wait_for(timeout=60_000)
            assert "outside the FIRST survey footprint" in error.inner_text()
        finally:
            browser.close()


def test_click_a_hybrid_and_see_its_neighbour_gallery(page, app_url):
    space = load_space(app_url[1].cache / "spaces" / "mirabest")
    wait_for_map(page, min_points=len(space))
    _shot(page, "browser_1_map")
    hybrids = map_points(page, contains="· hybrid")
    assert hybrids, "no hybrid source can be clicked on its own"
    result = click_and_time(page, hybrids[0])
    hybrid_id = hybrids[0]["text"].split(" · ")[0]
    assert result["query"] == hybrid_id
    gallery = page.locator(".nb-gallery")
    cards = gallery.locator(".nb-card")
    assert cards.count() == 12
    ids = [cards.nth(i).get_attribute("data-source-id") for i in range(12)]
    row = int(np.flatnonzero(space.catalogue_map["source_id"].to_numpy() == hybrid_id)[0])
    unit = space.unit_embeddings
    ranked = [space.catalogue_map["source_id"].iloc[i] for i in np.argsort(-(unit @ unit[row])) if i != row]
    assert ids[0] == ranked[0]  # the most similar source leads the gallery (no twin within 30")
    assert page.get_by_text(hybrid_id).first.is_visible()  # the source panel
    assert page.get_by_role("button", name="Download the list (CSV)").is_visible()
    gallery.scroll_into_view_if_needed()
    _shot(page, "browser_2_hybrid_neighbours")


def test_similar_by_representation_and_measurements_in_the_sidebar(page, app_url):
    """The sidebar's "Similar by" changes the clicked source's neighbours, and says so; the
    map is the same; back to the representation, the first list returns."""
    gallery = page.locator(".nb-gallery")
    gallery.wait_for(timeout=60_000)

    def shown() -> list[str]:
        return page.locator(".nb-gallery .nb-card").evaluate_all("cs => cs.map(c => c.dataset.sourceId)")

    by_representation = shown()
    query = gallery.get_attribute("data-query")
    sidebar = page.locator("[data-testid=stSidebar]")
    sidebar.get_by_text("representation + extent, FR ratio").click()
    sidebar.get_by_role("button", name="Apply").click()
    page.get_by_text("with the pixel measurements appended (angular extent, FR ratio)").first.wait_for(timeout=60_000)
    page.wait_for_function(
        "([q, before]) => { const g = document.querySelector('.nb-gallery');"
        " if (!g || g.dataset.query !== q) return false;"
        " const ids = [...g.querySelectorAll('.nb-card')].map(c => c.dataset.sourceId);"
        " return ids.length === before.length && ids.join() !== before.join(); }",
        arg=[query, by_representation],
        timeout=60_000,
    )
    assert len(shown()) == 12 and shown() != by_representation
    _shot(page, "browser_2b_similar_by_measurements")
    sidebar.get_by_text("the representation", exact=True).click()
    sidebar.get_by_role("button", name="Apply").click()
    page.wait_for_function(
        "(before) => { const g = document.querySelector('.nb-gallery'); return !!g &&"
        " [...g.querySelectorAll('.nb-card')].map(c => c.dataset.sourceId).join() === before.join(); }",
        arg=by_representation,
        timeout=60_000,
    )


def test_look_up_a_position_then_failures(page, app_url):
    space = load_space(app_url[1].cache / "spaces" / "mirabest")
    page.get_by_role("link", name="Look-up").click()
    box = page.get_by_label("Position (RA Dec, degrees or sexagesimal) or object name")
    box.wait_for(timeout=60_000)
    cat = space.catalogue_map
    row = int(np.flatnonzero(cat["label"].to_numpy() == "FRII")[0])
    box.fill(f"{cat['ra'].iloc[row]:.5f} {cat['dec'].iloc[row]:+.5f}")
    box.press("Enter")
    page.get_by_text("Model input").wait_for(timeout=180_000)
    page.locator(".nb-gallery").wait_for(timeout=60_000)
    assert page.locator(".nb-gallery .nb-card").count() == 12
    assert page.get_by_text("Placed on the map").is_visible()
    _shot(page, "browser_3_lookup")

    box.fill("10.0 -60.0")
    box.press("Enter")
    error = page.locator("[data-testid=stAlertContentError]")
    error.wait_for(timeout=60_000)
    assert "outside the FIRST survey footprint" in error.inner_text()
    _shot(page, "browser_4_lookup_outside_footprint")

    page.locator("input[type=file][accept*='.fits']").set_input_files(
        files=[{"name": "broken.fits", "mimeType": "application/fits", "buffer": b"SIMPLE  =   T\nnot really"}]
    )
    page.get_by_text("broken.fits:").first.wait_for(timeout=60_000)
    assert re.search(r"truncated|not a FITS", page.locator("[data-testid=stAlertContentError]").inner_text())
    _shot(page, "browser_5_lookup_broken_upload")


def test_switch_to_the_rgz_map_and_click(page, app_url):
    page.get_by_role("link", name="Map").click()
    choose_space(page, "RGZ DR1 published map (catalogue only)")
    wait_for_map(page, min_points=50_000)
    points = map_points(page, limit=3, isolated=False)
    result = click_and_time(page, points[1])
    assert result["query"].startswith("RGZJ")
    assert page.locator(".nb-gallery .nb-card").count() == 12
    assert page.get_by_text("by distance on the 2-D map").first.is_visible()
    _shot(page, "browser_6_rgz_click")


def _start_training(page, epochs: int) -> None:
    sidebar = page.locator("[data-testid=stSidebar]")
    epochs_box = sidebar.get_by_role("spinbutton", name="Epochs")
    epochs_box.wait_for(timeout=60_000)
    epochs_box.fill(str(epochs))
    epochs_box.press("Tab")  # commit the value inside the form
    sidebar.get_by_role("button", name="Start training").click()


def _epoch_shown(page) -> int:
    """The epoch in the first progress bar of *In progress* (-1 while there is none)."""
    texts = page.get_by_text(re.compile(r"^epoch \d+ / \d+")).all_inner_texts()
    return int(re.match(r"epoch (\d+)", texts[0]).group(1)) if texts else -1


def test_training_page_start_reload_second_tab_cancel_finish_and_colour_the_map(page, app_url):
    from explorer import jobs

    env = app_url[1].env()
    runs_root = Path(env["EXPLORER_CACHE"]) / "runs"

    def states() -> dict[str, str]:
        with pytest.MonkeyPatch.context() as mp:  # read the app's runs folder from this process
            mp.setenv("EXPLORER_CACHE", env["EXPLORER_CACHE"])
            mp.delenv("EXPLORER_RUNS", raising=False)
            runs = jobs.list_runs()
        return dict(zip(runs["run_id"], runs["state"]))

    page.get_by_role("link", name="Training").click()
    page.get_by_role("heading", name="Training").wait_for(timeout=60_000)
    before = set(states())

    # A long run: start it, see it progress, reload the page mid-run, then see it in another tab.
    _start_training(page, epochs=1000)
    wait_until(lambda: len(set(states()) - before) == 1, 60, "the run to be created")
    long_run = (set(states()) - before).pop()
    wait_until(lambda: _epoch_shown(page) >= 1, 180, "the first epoch on the page")
    page.reload()
    wait_until(lambda: _epoch_shown(page) >= 1, 120, "the progress after the reload")
    first = _epoch_shown(page)
    wait_until(lambda: _epoch_shown(page) > first, 120, "the progress to move on by itself")
    assert states()[long_run] == "running"
    _shot(page, "browser_7_training_in_progress")

    other = page.context.browser.new_page(viewport={"width": 1500, "height": 1900})  # another tab
    other.goto(page.url)
    wait_until(lambda: _epoch_shown(other) >= 1, 120, "the run in a second tab")
    assert other.get_by_text(long_run).count() > 0
    other.close()

    page.get_by_role("button", name="Cancel this run").click()
    wait_until(lambda: states()[long_run] == "cancelled", 60, "the run to stop")
    page.get_by_text(re.compile("No run in progress")).wait_for(timeout=60_000)

    # A short run that finishes; its predictions then colour the map.
    _start_training(page, epochs=3)
    wait_until(lambda: len(set(states()) - before) == 2, 60, "the second run to be created")
    short_run = (set(states()) - before - {long_run}).pop()
    wait_until(lambda: states()[short_run] == "finished", 300, "the short run to finish")
    page.locator("[data-testid=stMetricLabel]").filter(has_text="test error").first.wait_for(timeout=60_000)
    assert (runs_root / short_run / "metrics.json").is_file()
    _shot(page, "browser_8_training_finished")

    page.get_by_role("link", name="Map").click()
    choose_space(page, "MiraBest (default)")
    space = load_space(app_url[1].cache / "spaces" / "mirabest")
    wait_for_map(page, min_points=len(space))
    option = f"run {short_run}: P(FRII)"

    def choose_colour() -> bool:
        # the map's colour menu: its label starts the box's text (another box may mention it)
        page.locator("[data-testid=stSelectbox]").filter(has_text=re.compile(r"^Colour by")).first.click()
        found = page.get_by_role("option", name=option)
        if found.count():
            found.click()
            return True
        page.keyboard.press("Escape")  # the colour menu caches its columns for a few seconds
        return False

    wait_until(choose_colour, 60, f"the colour option {option!r}")
    wait_for_map(page, min_points=len(space))
    page.get_by_text(option).first.wait_for(timeout=60_000)  # the colour bar's title
    _shot(page, "browser_9_map_coloured_by_run")
