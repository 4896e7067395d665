"""The image viewer's pure part (explorer/image_view.py) on real FIRST and VLASS cutouts:
stretches and percentile limits, flux units from BUNIT, scale bar, beam, the model's field,
the extent warning, the figure, the FITS download; and the gallery's and facts' display details."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from PIL import Image

from explorer import image_view as iv
from explorer.facts import position_decimals, sexagesimal_to_precision
from explorer.gallery import Card, gallery_html
from pretrain.data.fits_io import read_cutout
from pretrain.data.preprocess import clip_background, preprocess_cutout

LARGE = "200_176.113+037.142_0.1148_0269.44.fits.fz"  # a 269″ FRII: larger than the model's 126″ field
SMALL = "100_173.095+055.972_0.0501_0042.73.fits.fz"  # a 43″ FRI


@pytest.fixture(scope="module")
def first_file(mirabest_dir):
    return mirabest_dir / SMALL


@pytest.fixture(scope="module")
def first_view(first_file):
    cutout = read_cutout(first_file)
    return iv.view_of_cutout(cutout, "J113222.8+555819", preprocess_cutout(cutout), 42.73, path=first_file)


@pytest.fixture(scope="module")
def vlass_cutout(vlass_dir):
    return read_cutout(sorted(vlass_dir.glob("*.fits.fz"))[0])


def test_each_stretch_keeps_the_order_of_brightness_and_clips_at_the_percentile_limits(first_view):
    data = first_view.data.astype(np.float64)
    order = np.argsort(data, axis=None)
    for stretch in iv.STRETCHES:
        settings = iv.ViewSettings(stretch=stretch, lower_percentile=0.5, upper_percentile=99.5)
        shown = iv.stretched(data, settings).ravel()[order]
        assert np.all(np.diff(shown) >= -1e-12), stretch  # monotonic
        vmin, vmax = iv.percentile_limits(data, 0.5, 99.5)
        assert (vmin, vmax) == tuple(np.percentile(data, [0.5, 99.5]))
        assert np.all(shown[data.ravel()[order] <= vmin] == 0.0) and np.all(shown[data.ravel()[order] >= vmax] == 1.0)
        inside = (data.ravel()[order] > vmin) & (data.ravel()[order] < vmax)
        assert shown[inside].min() > 0.0 and shown[inside].max() < 1.0
    middle = (vmin + vmax) / 2  # the stretches differ: sqrt, asinh and log lift the faint half
    lifted = {
        s: float(iv.stretched(np.array([vmin, middle, vmax]), iv.ViewSettings(s, 0, 100))[1]) for s in iv.STRETCHES
    }
    assert lifted["linear"] == pytest.approx(0.5) and lifted["sqrt"] == pytest.approx(0.5**0.5)
    assert lifted["log"] > lifted["asinh"] > lifted["sqrt"] > lifted["linear"]
    with pytest.raises(ValueError, match="below the upper"):
        iv.ViewSettings(lower_percentile=99.0, upper_percentile=1.0).checked()
    with pytest.raises(ValueError, match="unknown stretch"):
        iv.ViewSettings(stretch="histeq").checked()


def test_pixels_are_shown_in_mjy_per_beam_or_said_to_be_arbitrary(first_view, vlass_cutout):
    assert first_view.header["BUNIT"].strip() == "JY/BEAM"  # FIRST via SkyView
    assert iv.flux_unit(first_view.header) == iv.FluxUnit(1000.0, "mJy/beam", True)
    assert vlass_cutout.header["BUNIT"] == "Jy/beam"
    assert iv.flux_unit(vlass_cutout.header).scale == 1000.0
    assert iv.flux_unit(fits.Header({"BUNIT": "MJY/BEAM"})) == iv.FluxUnit(1.0, "mJy/beam", True)
    assert iv.flux_unit(fits.Header()) == iv.FluxUnit(1.0, iv.ARBITRARY_UNITS, False)
    assert iv.flux_unit(fits.Header({"BUNIT": "counts?"})).label == "counts? (as the file says)"
    # the caption's figures are in mJy/beam: FIRST's rms is ~0.15 mJy/beam
    text = iv.caption(first_view, iv.ViewSettings())
    rms = float(text.split("rms ")[1].split(" ")[0])
    assert 0.08 < rms < 0.4 and "mJy/beam" in text


def test_the_scale_bar_is_a_round_length_in_pixels_of_the_headers_cdelt(first_view, vlass_cutout):
    assert abs(first_view.header["CDELT2"]) == 0.0005 and first_view.pixel_scale_arcsec == pytest.approx(1.8)
    bar = iv.scale_bar(first_view.pixel_scale_arcsec, 300)  # 9′ shown: a quarter is 135″ -> 2′
    assert (bar.arcsec, bar.label) == (120.0, "2′") and bar.pixels == pytest.approx(120 / 1.8)
    bar = iv.scale_bar(first_view.pixel_scale_arcsec, 70)  # the model's field: 31.5″ -> 30″
    assert (bar.arcsec, bar.label) == (30.0, "30″") and bar.pixels == pytest.approx(30 / 1.8)
    vlass = iv.view_of_cutout(vlass_cutout, "v")
    assert vlass.pixel_scale_arcsec == pytest.approx(1.0)
    assert iv.scale_bar(vlass.pixel_scale_arcsec, vlass.data.shape[1]).pixels == pytest.approx(60.0)


def test_the_beam_comes_from_bmaj_bmin_bpa_else_from_the_surveys_profile(first_view, vlass_cutout):
    header = vlass_cutout.header
    beam = iv.view_of_cutout(vlass_cutout, "v").beam
    assert beam.origin == "header" and beam.pa_deg == pytest.approx(header["BPA"])
    assert beam.major_arcsec == pytest.approx(header["BMAJ"] * 3600) and beam.minor_arcsec == pytest.approx(
        header["BMIN"] * 3600
    )
    width, height, angle = iv.beam_ellipse_px(beam, 1.0)  # 1″ pixels: the axes in pixels are the arcsec
    assert (width, height, angle) == pytest.approx((header["BMIN"] * 3600, header["BMAJ"] * 3600, header["BPA"]))
    assert f"PA {header['BPA']:.0f}° (from the header)" in iv.beam_text(beam)
    written = read_cutout(iv.fits_bytes(iv.view_of_cutout(vlass_cutout, "v")))  # the download keeps the beam
    assert iv.view_of_cutout(written, "v").beam == beam
    assert "BMAJ" not in first_view.header  # SkyView's FIRST cutouts carry no beam: FIRST's 5″ profile
    first = first_view.beam
    assert (first.major_arcsec, first.minor_arcsec, first.origin) == (5.0, 5.0, "FIRST survey profile")
    assert iv.beam_ellipse_px(first, 1.8)[:2] == pytest.approx((5 / 1.8, 5 / 1.8))
    assert "beam 5.0″ (FIRST survey profile)" in iv.caption(first_view, iv.ViewSettings())


def test_the_outlined_field_is_exactly_the_pixels_the_model_sees(first_view, vlass_cutout):
    x0, y0, side = iv.model_field_box(first_view.data.shape, first_view.pixel_scale_arcsec)
    assert (x0, y0, side) == pytest.approx((114.5, 114.5, 70.0))  # pixels 115..184 of 300
    # The model's 70 px (the centre of its 150 px image) are the raw pixels inside the box, clipped.
    model = first_view.model_image
    clipped, _ = clip_background(first_view.data)
    inside = clipped[115:185, 115:185]
    assert np.array_equal(model[40:110, 40:110] > 0, inside > 0)
    assert np.corrcoef(model[40:110, 40:110].ravel(), inside.ravel())[0, 1] > 0.999
    assert iv.model_image_extent(first_view.data.shape, 1.8, model.shape) == pytest.approx((74.5, 224.5, 74.5, 224.5))
    vlass = iv.view_of_cutout(vlass_cutout, "v")  # 1″ pixels: the 126″ field is 126 of them
    assert iv.model_field_box(vlass.data.shape, vlass.pixel_scale_arcsec)[2] == pytest.approx(126.0)


def test_a_source_larger_than_the_models_field_is_warned_about(mirabest_dir, first_view):
    entry = pd.Series(
        {"source_id": "J114427.1+370831", "file": str(mirabest_dir / LARGE), "angular_extent_arcsec": 269.44}
    )
    view = iv.view_of_entry(entry, None)
    assert view is not None and view.path == mirabest_dir / LARGE
    warning = iv.extent_warning(view)
    assert warning is not None and "269″" in warning and "126″" in warning
    assert iv.extent_warning(first_view) is None  # 43″ fits
    assert iv.exceeds_model_field(192.0) and not iv.exceeds_model_field(126.0)  # 3C 236's 192″ does not fit


def test_the_fits_download_is_the_original_file_or_a_written_hdu_with_its_header_and_wcs(first_view, skyview_raw_dir):
    assert iv.fits_bytes(first_view) == first_view.path.read_bytes()
    assert iv.fits_file_name(first_view) == SMALL
    raw = sorted(skyview_raw_dir.glob("*.fits"))[0]
    cutout = read_cutout(raw.read_bytes(), source="https://skyview.example/cutout")  # as a look-up gets it
    view = iv.view_of_cutout(cutout, "139.148 +4.681")
    assert view.path is None and iv.fits_file_name(view) == "139.148_+4.681.fits"
    back = read_cutout(iv.fits_bytes(view))
    assert np.array_equal(back.data, cutout.data, equal_nan=True)
    assert back.centre.separation(cutout.centre).arcsec < 1e-6
    assert back.pixel_scale_arcsec == pytest.approx(cutout.pixel_scale_arcsec)
    assert back.header["BUNIT"] == cutout.header["BUNIT"] and back.header["SURVEY"] == cutout.header["SURVEY"]
    assert any("radio latent explorer" in str(h) for h in back.header["HISTORY"])


def test_a_model_image_without_its_file_gets_axes_from_its_position_and_no_unit(first_view):
    view = iv.view_of_model_image(first_view.model_image, 173.095, 55.972, "x")
    centre = view.wcs.pixel_to_world(74.5, 74.5)
    assert centre.ra.deg == pytest.approx(173.095) and centre.dec.deg == pytest.approx(55.972)
    assert view.pixel_scale_arcsec == pytest.approx(1.8) and not view.unit.known
    back = read_cutout(iv.fits_bytes(view))
    assert back.centre.separation(centre).arcsec < 1e-6


@pytest.mark.slow  # imports matplotlib and draws two figures: a few seconds on two busy cores
def test_the_figure_shows_the_chosen_stretch_and_the_contours(first_view):
    linear = iv.render_png(first_view, iv.ViewSettings(stretch="linear", field="model image"))
    sqrt_contours = iv.render_png(first_view, iv.ViewSettings(stretch="sqrt", contours=True, field="model image"))
    a, b = (np.asarray(Image.open(io.BytesIO(png)).convert("RGB")) for png in (linear, sqrt_contours))
    assert a.shape == b.shape == (iv.FIGURE_INCHES[1] * iv.FIGURE_DPI, iv.FIGURE_INCHES[0] * iv.FIGURE_DPI, 3)
    assert (a != b).any(axis=2).mean() > 0.05
    cyan = (b[..., 0] < 60) & (b[..., 1] > 200) & (b[..., 2] > 220)  # the contours' colour
    assert cyan.sum() > 50 and ((a[..., 0] < 60) & (a[..., 1] > 200) & (a[..., 2] > 220)).sum() < cyan.sum() / 10


def test_gallery_cards_read_rank_then_score_and_show_north_up():
    image = np.zeros((150, 150), np.uint8)
    image[40:45, 40:110] = 255  # bright along the southern edge of the central field (FITS row order)
    html = gallery_html([Card(rank=1, source_id="J1", image=image, score=0.987, ra=139.148, dec=4.681)])
    assert '<span class="nb-rank">#1</span> <span class="nb-score"' in html  # "#1 sim", not "#1sim"
    assert "139.148, +4.681" in html  # to the precision the position has
    assert "sim 0.987<" in html
    # nearly parallel vectors (an early training snapshot): the cosines still tell the cards apart
    close = gallery_html(
        [Card(rank=r, source_id=f"J{r}", image=image, score=s) for r, s in ((1, 0.99994), (2, 0.99961))]
    )
    assert "sim 0.99994<" in close and "sim 0.9996<" in close and "1.000" not in close
    distances = gallery_html(
        [Card(rank=1, source_id="J1", image=image, score=0.99994)], score_name="distance on the map"
    )
    assert "dist 1.000<" in distances  # a map distance keeps 3 decimals
    import base64
    import re

    thumb = np.asarray(Image.open(io.BytesIO(base64.b64decode(re.findall(r"base64,([^\"]+)", html)[0]))))
    assert thumb[-3:, 75].sum() > thumb[:3, 75].sum()  # the south drawn at the bottom


def test_positions_are_shown_to_the_precision_they_have():
    assert position_decimals(139.1) == 3 and position_decimals(10.450895) == 5
    assert sexagesimal_to_precision(139.148, 4.681) == "09:16:35.5 +04:40:52"  # 0.001°: 0.1 s, 1″
    assert sexagesimal_to_precision(139.147917, 4.681230) == "09:16:35.500 +04:40:52.43"  # a WCS position
