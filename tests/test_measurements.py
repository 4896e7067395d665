"""Pixel measurements (pretrain/data/measurements.py): synthetic sources with known answers,
real MiraBest cutouts against their labels and against independent aperture photometry, the
bundle's columns, the source panel and the map's colour menu."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from pretrain.data.measurements import COLUMNS, beam_area_px, flux_beam_arcsec, measure_source
from pretrain.surveys import survey

PIXEL = 1.8
BEAM = (5.4, 5.4)
NOISE = 1.5e-4  # FIRST's ~0.15 mJy/beam


def beam_blob(shape, row, col, peak_jy, beam_arcsec=5.4):
    """A point source as the survey sees it: a Gaussian of the beam's FWHM (integrated flux = peak)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    sigma = beam_arcsec / PIXEL / (2 * np.sqrt(2 * np.log(2)))
    return peak_jy * np.exp(-((yy - row) ** 2 + (xx - col) ** 2) / (2 * sigma**2))


def two_lobes(angle_deg, arm_px=20, peaks=(0.010, 0.005), size=151, seed=0):
    """Two point-like lobes at ``arm_px`` from the centre, the second at ``angle_deg`` from the first."""
    rng = np.random.default_rng(seed)
    image = rng.normal(0.0, NOISE, (size, size))
    centre = (size - 1) // 2
    for angle, peak in zip((0.0, np.radians(angle_deg)), peaks):
        row, col = centre + round(arm_px * np.sin(angle)), centre + round(arm_px * np.cos(angle))
        image += beam_blob(image.shape, row, col, peak)
    return image.astype(np.float32)


def test_beam_area_in_pixels_is_the_gaussian_integral():
    blob = beam_blob((101, 101), 50, 50, 1.0)
    assert beam_area_px(BEAM, PIXEL) == pytest.approx(blob.sum(), rel=1e-3)


def test_a_straight_double_gives_its_flux_ratio_and_no_bend():
    measured = measure_source(two_lobes(180.0), PIXEL, flux_beam_arcsec=BEAM)
    assert measured.integrated_flux_mjy == pytest.approx(15.0, rel=0.05)  # 10 + 5 mJy
    assert measured.peak_flux_mjy == pytest.approx(10.0, rel=0.05)
    assert measured.n_components == 2
    assert measured.lobe_flux_ratio == pytest.approx(2.0, rel=0.1)
    assert measured.bending_angle_deg > 175.0
    # the brightest points 40 px apart, over the outer size (40 px + the lobes' half-widths)
    assert 0.75 < measured.fr_ratio <= 1.0
    assert measured.note == ""


@pytest.mark.parametrize("angle", [120.0, 60.0])
def test_a_bent_double_gives_its_bending_angle(angle):
    measured = measure_source(two_lobes(angle, peaks=(0.01, 0.01)), PIXEL, flux_beam_arcsec=BEAM)
    assert measured.bending_angle_deg == pytest.approx(angle, abs=3.0)
    assert measured.lobe_flux_ratio == pytest.approx(1.0, abs=0.1)
    assert measured.integrated_flux_mjy == pytest.approx(20.0, rel=0.05)


def test_a_core_with_a_jet_has_a_low_fr_ratio_and_lobes_at_the_edges_a_high_one():
    """FRI: brightest at the core, fading outwards; FRII: brightest at the outer ends."""
    size, centre = 151, 75
    rng = np.random.default_rng(1)
    fri = rng.normal(0.0, NOISE, (size, size))
    frii = rng.normal(0.0, NOISE, (size, size))
    fri += beam_blob(fri.shape, centre, centre, 0.02)
    for step in range(1, 16):  # two jets fading away from the core
        for sign in (1, -1):
            fri += beam_blob(fri.shape, centre, centre + sign * 2 * step, 0.004 * np.exp(-step / 6))
            frii += beam_blob(frii.shape, centre, centre + sign * 2 * step, 0.0005)
    for sign in (1, -1):
        frii += beam_blob(frii.shape, centre, centre + sign * 32, 0.02)
    low = measure_source(fri.astype(np.float32), PIXEL, flux_beam_arcsec=BEAM)
    high = measure_source(frii.astype(np.float32), PIXEL, flux_beam_arcsec=BEAM)
    assert low.fr_ratio < 0.5 < high.fr_ratio


def test_a_point_source_has_no_fr_ratio_and_says_why():
    rng = np.random.default_rng(2)
    image = (rng.normal(0.0, NOISE, (151, 151)) + beam_blob((151, 151), 75, 75, 0.01)).astype(np.float32)
    measured = measure_source(image, PIXEL, flux_beam_arcsec=BEAM)
    assert measured.n_components == 1
    assert measured.integrated_flux_mjy == pytest.approx(10.0, rel=0.05)
    assert np.isnan(measured.fr_ratio) and np.isnan(measured.lobe_flux_ratio) and np.isnan(measured.bending_angle_deg)
    assert "fr_ratio" in measured.note and "two sides" in measured.note


def test_blank_noise_is_all_nan_with_a_reason():
    image = np.random.default_rng(3).normal(0.0, NOISE, (151, 151)).astype(np.float32)
    measured = measure_source(image, PIXEL)
    assert all(np.isnan(v) for k, v in measured.columns().items() if k != "measurements_note")
    assert measured.note == "no significant emission"


def test_an_already_clipped_image_has_shape_but_no_flux():
    image = two_lobes(180.0)
    clipped = np.where(image > 3 * NOISE, image, 0.0)
    measured = measure_source(clipped / clipped.max() * 255, PIXEL, already_clipped=True)
    assert np.isnan(measured.integrated_flux_mjy) and "not in a brightness per beam" in measured.note
    assert measured.bending_angle_deg > 175.0


def test_the_flux_beam_follows_the_header_then_firsts_declination():
    first = survey("first")
    assert flux_beam_arcsec({}, first, 30.0) == (5.4, 5.4)
    assert flux_beam_arcsec({}, first, 0.0)[0] > 5.4 and flux_beam_arcsec({}, first, -5.0)[0] > 5.4  # south
    header = {"BMAJ": 2.5 / 3600, "BMIN": 1.7 / 3600}
    assert flux_beam_arcsec(header, survey("vlass"), 10.0) == pytest.approx((2.5, 1.7))
    assert flux_beam_arcsec({}, survey("nvss"), 10.0) == (45.0, 45.0)


# --- Real MiraBest cutouts ----------------------------------------------------------------


def _sample(mirabest_dir, per_class=12):
    """Confident standard FRI and FRII files, evenly spread over the sorted names."""
    files = sorted(mirabest_dir.glob("*.fits.fz"))
    fri = [f for f in files if f.name.startswith("100_")]
    frii = [f for f in files if f.name.startswith("200_")]
    return fri[:: max(1, len(fri) // per_class)][:per_class], frii[:: max(1, len(frii) // per_class)][:per_class]


def _aperture_flux_mjy(cutout, las_arcsec):
    from astropy.stats import SigmaClip
    from photutils.aperture import ApertureStats, CircularAnnulus, CircularAperture, aperture_photometry

    image = np.nan_to_num(cutout.data.astype(np.float64))
    beam = flux_beam_arcsec(cutout.header, survey("first"), float(cutout.centre.dec.deg))
    radius = (0.5 * las_arcsec + 2 * beam[0]) / cutout.pixel_scale_arcsec
    centre = ((image.shape[1] - 1) / 2, (image.shape[0] - 1) / 2)
    background = ApertureStats(image, CircularAnnulus(centre, radius + 3, radius + 20), sigma_clip=SigmaClip(3.0))
    aperture = CircularAperture(centre, radius)
    total = aperture_photometry(image, aperture)["aperture_sum"][0] - float(background.median) * aperture.area
    return total / beam_area_px(beam, cutout.pixel_scale_arcsec) * 1000


@pytest.mark.slow
def test_real_mirabest_fr_ratio_follows_the_labels_and_fluxes_match_aperture_photometry(mirabest_dir):
    from pretrain.data.extent import cutout_extent_arcsec
    from pretrain.data.fits_io import read_cutout
    from pretrain.data.measurements import cutout_measurements
    from pretrain.data.names import parse_fits_name

    fri_files, frii_files = _sample(mirabest_dir)
    ratios: dict[str, list[float]] = {"FRI": [], "FRII": []}
    flux_ratios = []
    for label, files in (("FRI", fri_files), ("FRII", frii_files)):
        for path in files:
            cutout = read_cutout(path)
            measured = cutout_measurements(cutout)
            if path in files[:3]:  # one source mask: the same extent as the extent function's
                assert measured.angular_extent_arcsec == pytest.approx(cutout_extent_arcsec(cutout))
            assert measured.integrated_flux_mjy > 0 and measured.peak_flux_mjy > 0
            assert measured.integrated_flux_mjy >= 0.8 * measured.peak_flux_mjy  # a source is a beam or more
            ratios[label].append(measured.fr_ratio)
            aperture = _aperture_flux_mjy(cutout, parse_fits_name(path).las_arcsec)
            flux_ratios.append(measured.integrated_flux_mjy / aperture)
    assert np.nanmean(ratios["FRII"]) > np.nanmean(ratios["FRI"]) + 0.1
    assert np.nanmedian(ratios["FRI"]) < 0.5 < np.nanmedian(ratios["FRII"])
    flux_ratios = np.array(flux_ratios)
    assert np.median(flux_ratios) == pytest.approx(1.0, abs=0.05)
    assert np.mean(np.abs(flux_ratios - 1) < 0.2) >= 0.75


def test_the_bundle_has_the_measurement_columns(mirabest_bundle):
    from pretrain.data.fits_io import read_cutout
    from pretrain.data.measurements import cutout_measurements

    catalogue = mirabest_bundle.catalogue
    assert set(COLUMNS) <= set(catalogue.columns)
    for column in COLUMNS[:-1]:
        assert pd.api.types.is_float_dtype(catalogue[column]), column
    assert (catalogue["integrated_flux_mjy"].dropna() > 0).mean() > 0.99
    labelled = catalogue[catalogue["label"].isin(["FRI", "FRII"])]
    medians = labelled.groupby("label")["fr_ratio"].median()
    assert medians["FRI"] < 0.5 < medians["FRII"]
    row = catalogue.iloc[7]
    measured = cutout_measurements(read_cutout(row["file"]))
    again = measured.columns()
    for column in COLUMNS:
        expected = again[column]
        if isinstance(expected, str):
            assert row[column] == expected
        else:
            assert row[column] == pytest.approx(expected, nan_ok=True)
    assert row["angular_extent_estimated_arcsec"] == pytest.approx(measured.angular_extent_arcsec)


# --- The app: panel facts and colour options -------------------------------------------------


def _catalogue(with_measurements=True):
    frame = pd.DataFrame(
        {
            "source_id": ["J1", "J2", "J3"],
            "ra": [10.0, 11.0, 12.0],
            "dec": [5.0, 6.0, 7.0],
            "label": ["FRI", "FRII", "FRII"],
            "angular_extent_arcsec": [30.0, 60.0, 90.0],
            "umap_x": [0.0, 1.0, 2.0],
            "umap_y": [0.0, 1.0, 2.0],
        }
    )
    if with_measurements:
        frame["integrated_flux_mjy"] = [12.0, 340.0, 5100.0]
        frame["peak_flux_mjy"] = [5.0, 20.0, 300.0]
        frame["n_components"] = [1.0, 2.0, 3.0]
        frame["fr_ratio"] = [0.31, 0.72, np.nan]
        frame["lobe_flux_ratio"] = [1.2, 1.9, np.nan]
        frame["bending_angle_deg"] = [170.0, 120.0, np.nan]
        frame["measurements_note"] = ["", "", "fr_ratio, lobe_flux_ratio, bending_angle_deg: no emission on two sides"]
    return frame


def test_the_colour_menu_offers_the_measurements_and_log_fluxes():
    from explorer.colour_columns import LOG_FLUX_COLUMNS, _log_fluxes, extra_colour_columns
    from explorer.figures import colour_columns

    catalogue = _catalogue()
    space = SimpleNamespace(catalogue=catalogue, key="test", has_embeddings=False)
    logged = _log_fluxes(space)
    assert set(logged) == set(LOG_FLUX_COLUMNS.values())
    assert logged["log10 flux density (mJy)"].loc["J2"] == pytest.approx(np.log10(340.0))
    extra = {name: series for name, series in extra_colour_columns(space).items() if name in logged}
    options = colour_columns(catalogue, extra)
    for column in ("integrated_flux_mjy", "peak_flux_mjy", "n_components", "fr_ratio", "bending_angle_deg"):
        assert column in options
    assert "measurements_note" not in options  # free text
    assert "log10 flux density (mJy)" in options


def test_a_space_without_the_measurements_still_offers_its_columns():
    from explorer.colour_columns import _log_fluxes
    from explorer.facts import facts_html
    from explorer.figures import colour_columns

    catalogue = _catalogue(with_measurements=False)
    assert _log_fluxes(SimpleNamespace(catalogue=catalogue)) == {}
    assert "angular_extent_arcsec" in colour_columns(catalogue)
    html = facts_html(catalogue.iloc[0], compact=True)
    assert "flux" not in html and "FR ratio" not in html and "angular extent" in html


def test_the_panel_shows_flux_and_fr_ratio_compactly_and_every_measurement_in_full():
    from explorer.facts import facts_html

    entry = _catalogue().iloc[1]
    compact = facts_html(entry, compact=True)
    assert "340 mJy · FR 0.72" in compact
    assert "bending" not in compact and "lobe flux ratio" not in compact and "components" not in compact
    full = facts_html(entry)
    titles = ("flux density (mJy)", "FR ratio", "peak (mJy/beam)", "components", "lobe flux ratio", "bending angle")
    assert all(title in full for title in titles)
    assert "<td>120</td>" in full  # bending angle, degrees
    no_fr = facts_html(_catalogue().iloc[2], compact=True)
    assert "<td>5100 mJy</td>" in no_fr and "FR 0" not in no_fr  # no FR ratio: the flux alone
