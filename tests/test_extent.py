"""Angular extent from pixels: synthetic sources with a known answer, and the real MiraBest figure."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from pretrain import config
from pretrain.data.extent import angular_extent_arcsec
from pretrain.data.names import parse_mirabest_name

NOISE = 1.5e-4  # FIRST's rms, Jy/beam
SCALE = config.FIRST_PIXEL_SCALE_ARCSEC


def _sky(rng, size=300):
    return rng.normal(0.0, NOISE, (size, size)).astype(np.float32)


def _add_blob(image, row_arcsec, col_arcsec, peak_sigma, fwhm_arcsec=config.FIRST_BEAM_ARCSEC, scale=SCALE):
    """A Gaussian at an offset (arcsec) from the image centre, peak in units of the noise."""
    rows, cols = np.indices(image.shape, dtype=np.float32)
    centre = (np.array(image.shape) - 1) / 2.0
    r0, c0 = centre[0] + row_arcsec / scale, centre[1] + col_arcsec / scale
    sigma_px = fwhm_arcsec / scale / 2.3548
    image += (peak_sigma * NOISE * np.exp(-((rows - r0) ** 2 + (cols - c0) ** 2) / (2 * sigma_px**2))).astype(
        np.float32
    )
    return image


def test_blank_images_have_no_extent():
    rng = np.random.default_rng(1)
    assert all(np.isnan(angular_extent_arcsec(_sky(rng))) for _ in range(5))
    assert np.isnan(angular_extent_arcsec(np.zeros((64, 64), np.float32)))
    assert np.isnan(angular_extent_arcsec(np.full((64, 64), np.nan, np.float32)))
    assert np.isnan(angular_extent_arcsec(np.zeros((64, 64), np.uint8), already_clipped=True))


def test_point_source_is_about_unresolved():
    image = _add_blob(_sky(np.random.default_rng(2)), 0, 0, 200)
    # The 3-sigma contour of a 200-sigma point source is ~15" across; the beam correction removes that.
    assert angular_extent_arcsec(image) < config.FIRST_BEAM_ARCSEC


def test_double_with_lobes_beyond_the_seed_radius_is_measured_lobe_to_lobe():
    rng = np.random.default_rng(3)
    image = _add_blob(_sky(rng), 0, 0, 30)  # core
    for side in (+1, -1):  # two resolved lobes 75" either side, beyond the 45" seed radius
        _add_blob(image, side * 40, side * 64, 25, fwhm_arcsec=12)
    separation = 2 * np.hypot(40, 64)  # 151"
    estimate = angular_extent_arcsec(image)
    assert separation < estimate < separation + 25
    # The same image as a clipped 8-bit picture gives about the same size.
    clipped = np.where(image >= 3 * NOISE, image, 0)
    pixels = np.round(clipped / clipped.max() * 255)
    assert abs(angular_extent_arcsec(pixels, already_clipped=True) - estimate) < 10


def test_unrelated_neighbour_without_a_counterpart_is_left_out():
    rng = np.random.default_rng(4)
    image = _add_blob(_sky(rng), 0, 0, 100, fwhm_arcsec=10)
    alone = angular_extent_arcsec(image)
    _add_blob(image, 50, 60, 60)  # a compact source 78" away, nothing opposite
    assert angular_extent_arcsec(image) == pytest.approx(alone, abs=2)


def test_faint_diffuse_lobes_are_found_by_smoothing():
    rng = np.random.default_rng(5)
    image = _add_blob(_sky(rng), 0, 0, 40)  # bright compact core
    for side in (+1, -1):  # lobes 1.5 sigma per pixel at full resolution, 25" wide, 90" out
        _add_blob(image, side * 30, side * 85, 1.5, fwhm_arcsec=25)
    assert angular_extent_arcsec(image) > 150
    assert angular_extent_arcsec(image, smoothed_resolution_arcsec=0) < 20  # the core alone


def test_coarse_survey_pixels_use_at_least_a_sampled_beam():
    # NVSS-like: 15"/px, 45" beam. A point source must not come out several beams wide.
    image = _add_blob(_sky(np.random.default_rng(6), 150), 0, 0, 100, fwhm_arcsec=45, scale=15.0)
    assert angular_extent_arcsec(image, 15.0) < 45


def test_extent_follows_catalogued_las_on_real_mirabest(mirabest_bundle):
    """The estimate ranks the 1155 real MiraBest sources like their catalogued LAS.

    BENCHMARKS.md has the figures (0.81 on all files and on the held-out half at the time of
    writing; the previous method had 0.72): the floor only catches a broken method.
    """
    cat = mirabest_bundle.catalogue
    names = cat["file"].map(lambda f: str(f).rsplit("/", 1)[-1])
    assert names.map(lambda n: parse_mirabest_name(n) is not None).all()
    estimated = cat["angular_extent_estimated_arcsec"].to_numpy()
    catalogued = cat["angular_extent_catalogued_arcsec"].to_numpy()
    assert np.isfinite(estimated).mean() > 0.99
    held_out = np.zeros(len(cat), dtype=bool)
    held_out[np.argsort(names.to_numpy(dtype=str), kind="stable")[1::2]] = True  # odd-indexed files
    for part in (np.ones(len(cat), dtype=bool), held_out):
        assert spearmanr(catalogued[part], estimated[part], nan_policy="omit").statistic > 0.75


# --- Another survey's beam: VLASS Quick-Look (1" pixels, ~2.5" beam in the header) ----------
def _synthetic_cutout(data, scale_arcsec, header_cards):
    from astropy.coordinates import SkyCoord
    from astropy.io import fits
    from astropy.wcs import WCS

    from pretrain.data.fits_io import Cutout

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [(data.shape[1] + 1) / 2, (data.shape[0] + 1) / 2]
    wcs.wcs.cdelt = [-scale_arcsec / 3600, scale_arcsec / 3600]
    header = wcs.to_header()
    header.update(fits.Header(header_cards))
    return Cutout(
        data=data, wcs=wcs, centre=SkyCoord(150.0, 2.0, unit="deg"), pixel_scale_arcsec=scale_arcsec, header=header
    )


def test_a_vlass_double_is_measured_with_the_vlass_beam():
    """Two unresolved components 12" apart at VLASS resolution: the beam correction is VLASS's 2.5", not FIRST's 5"."""
    from pretrain.data.extent import cutout_extent_arcsec
    from pretrain.surveys import survey

    vlass = survey("vlass")
    image = _sky(np.random.default_rng(7), 360)
    for side in (+1, -1):
        _add_blob(image, 0, side * 6, 100, fwhm_arcsec=vlass.beam_fwhm_arcsec, scale=1.0)
    cards = {"TELESCOP": "EVLA", "FILNAM01": "VLASS2"}  # as the Quick-Look headers say; no BMAJ here
    with_profile = cutout_extent_arcsec(_synthetic_cutout(image, 1.0, cards))
    assert with_profile == angular_extent_arcsec(image, 1.0, beam_fwhm_arcsec=vlass.beam_fwhm_arcsec)
    assert 12 <= with_profile < 12 + vlass.beam_fwhm_arcsec
    # FIRST's 5" beam would over-correct the broadening: the double would come out several arcsec too small
    assert angular_extent_arcsec(image, 1.0) < 12 - 3
    # a point source stays unresolved
    point = _add_blob(_sky(np.random.default_rng(8), 360), 0, 0, 200, fwhm_arcsec=vlass.beam_fwhm_arcsec, scale=1.0)
    assert cutout_extent_arcsec(_synthetic_cutout(point, 1.0, cards)) < vlass.beam_fwhm_arcsec
    # the header's beam wins over the profile's
    beam_cards = {**cards, "BMAJ": 3.0 / 3600, "BMIN": 2.0 / 3600}
    from_header = cutout_extent_arcsec(_synthetic_cutout(image, 1.0, beam_cards))
    assert from_header == angular_extent_arcsec(image, 1.0, beam_fwhm_arcsec=np.sqrt(6.0))


def test_real_vlass_extents_use_each_files_beam(vlass_dir):
    from pretrain.data.extent import cutout_extent_arcsec
    from pretrain.data.fits_io import read_cutout
    from pretrain.surveys import header_beam_arcsec

    differs = measured = 0
    for path in sorted(vlass_dir.glob("*.fits.fz"))[::15]:
        cutout = read_cutout(path)
        beam = header_beam_arcsec(cutout.header)
        assert beam is not None and 2.0 < beam < 6.0
        extent = cutout_extent_arcsec(cutout, "vlass")
        assert extent == cutout_extent_arcsec(cutout) or (np.isnan(extent) and np.isnan(cutout_extent_arcsec(cutout)))
        expected = angular_extent_arcsec(cutout.data, cutout.pixel_scale_arcsec, beam_fwhm_arcsec=beam)
        assert extent == expected or (np.isnan(extent) and np.isnan(expected))
        if np.isfinite(extent):
            measured += 1
            differs += extent != angular_extent_arcsec(cutout.data, cutout.pixel_scale_arcsec)  # FIRST's beam
    assert measured >= 10 and differs >= measured // 2
