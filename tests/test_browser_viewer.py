"""The image viewer in Chromium: opened from the map's source panel (a dialog) at 1280 x 800 and
1920 x 1080, its stretch and contours changing the figure, the FITS download, and the Look-up
page's viewer of an uploaded large source with its warning. Screenshots go to ``artifacts/``."""

from __future__ import annotations

from pathlib import Path

import pytest
from astropy.io import fits

from pretrain.space import load_space
from tests.app_browser import REPO, click_and_time, launch_chromium, map_points, streamlit_server, wait_for_map
from tests.app_space import build_small_space, small_space_root

pytestmark = pytest.mark.browser
ARTIFACTS = REPO / "artifacts"
LARGE = "200_176.113+037.142_0.1148_0269.44.fits.fz"  # a 269″ FRII (the model sees 126″)
DIALOG = "[data-testid=stDialog]"
FIGURE_SRC_JS = """() => { const im = document.querySelector('[data-testid=stDialog] [data-testid=stImage] img');
  return im && im.complete && im.naturalWidth > 0 ? im.src : null; }"""


@pytest.fixture(scope="module")
def served(mirabest_dir, tmp_path_factory):
    small = build_small_space(mirabest_dir, small_space_root(tmp_path_factory))
    ARTIFACTS.mkdir(exist_ok=True)
    with streamlit_server({**small.env(), "EXPLORER_SPACES": ""}, log_path=ARTIFACTS / "viewer_streamlit.log") as url:
        yield url, load_space(small.cache / "spaces" / "mirabest")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


def _open_viewer(page):
    page.get_by_role("button", name="Image viewer").click()
    page.wait_for_function(FIGURE_SRC_JS, timeout=120_000, polling=200)
    return page.locator(DIALOG)


def _figure_changes(page, before: str) -> str:
    page.wait_for_function(
        f"(b) => {{ const s = ({FIGURE_SRC_JS})(); return s && s !== b; }}", arg=before, timeout=60_000
    )
    return page.evaluate(FIGURE_SRC_JS)


def test_the_viewer_of_a_clicked_source_at_1280x800(browser, served, tmp_path):
    url, space = served
    page = browser.new_page(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    page.goto(url)
    wait_for_map(page, min_points=len(space))
    clicked = click_and_time(page, map_points(page, limit=1, isolated=True)[0])
    source_id = clicked["query"]
    button = page.get_by_role("button", name="Image viewer")
    box = button.bounding_box()
    assert box is not None and box["y"] + box["height"] <= 800  # beside the facts, in view
    first_card = page.locator(".nb-gallery .nb-card").first.bounding_box()
    assert first_card is not None and first_card["y"] + first_card["height"] <= 800  # the neighbours stay in view

    dialog = _open_viewer(page)
    text = dialog.inner_text()
    assert "mJy/beam" in text and "beam 5.0″ (FIRST survey profile)" in text and "FIRST cutout" in text
    assert "the model's field" in text
    for stretch in ("linear", "sqrt", "asinh", "log"):
        assert dialog.get_by_role("radio", name=stretch, exact=True).is_visible()
    figure = dialog.locator("[data-testid=stImage] img").bounding_box()
    frame = dialog.bounding_box()
    assert figure is not None and frame is not None and figure["width"] >= 380
    assert frame["x"] >= 0 and frame["x"] + frame["width"] <= 1280
    assert figure["y"] + figure["height"] <= 800, figure  # the whole figure in view at 1280 x 800
    page.screenshot(path=str(ARTIFACTS / "viewer_1_dialog_1280x800.png"))

    before = page.evaluate(FIGURE_SRC_JS)
    dialog.get_by_role("radio", name="linear", exact=True).click()
    after = _figure_changes(page, before)
    dialog.get_by_text("Contours of the model input").click()
    _figure_changes(page, after)
    # the caption can arrive in a later message of the same rerun than the figure
    dialog.get_by_text("contours: the model input").first.wait_for(timeout=60_000)
    assert "contours: the model input" in dialog.inner_text() and "linear stretch" in dialog.inner_text()
    page.screenshot(path=str(ARTIFACTS / "viewer_2_linear_contours_1280x800.png"))

    with page.expect_download() as download:
        dialog.get_by_role("button", name="Download the cutout (FITS)").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    row = space.catalogue_map.index[space.catalogue_map["source_id"] == source_id][0]
    original = Path(space.catalogue_map["file"].iloc[row])
    assert saved.read_bytes() == original.read_bytes()  # the source's own FIRST file
    with fits.open(saved) as hdul:
        assert hdul[1].header["BUNIT"].strip() == "JY/BEAM" and hdul[1].header["CTYPE1"] == "RA---TAN"
    page.close()


def test_the_viewer_at_1920x1080_and_on_the_lookup_page(browser, served, mirabest_dir):
    url, space = served
    page = browser.new_page(viewport={"width": 1920, "height": 1080})
    page.goto(url)
    wait_for_map(page, min_points=len(space))
    click_and_time(page, map_points(page, limit=1, isolated=True)[0])
    dialog = _open_viewer(page)
    figure = dialog.locator("[data-testid=stImage] img").bounding_box()
    assert figure is not None and figure["y"] + figure["height"] <= 1080 and figure["width"] >= 450
    page.screenshot(path=str(ARTIFACTS / "viewer_3_dialog_1920x1080.png"))
    page.keyboard.press("Escape")

    page.set_viewport_size({"width": 1280, "height": 800})
    page.get_by_role("link", name="Look-up").click()
    page.locator("input[type=file][accept*='.fits']").set_input_files(str(mirabest_dir / LARGE))
    warning = page.get_by_text("larger than the 126″")
    warning.first.wait_for(timeout=180_000)
    viewer = page.locator("[data-testid=stImage] img").first
    assert viewer.bounding_box()["width"] >= 380
    assert page.get_by_role("button", name="Download the cutout (FITS)").is_visible()
    assert "mJy/beam" in page.locator("[data-testid=stCaptionContainer]").all_inner_texts().__str__()
    page.screenshot(path=str(ARTIFACTS / "viewer_4_lookup_large_source_1280x800.png"), full_page=True)
    page.close()
