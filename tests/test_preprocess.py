"""The one preprocessing path, on real FIRST / NVSS cutouts and processed PNGs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from pretrain import config
from pretrain.data.fits_io import read_cutout
from pretrain.data.preprocess import estimate_noise, preprocess_image, preprocess_processed_image
from pretrain.errors import BlankImageError

SIZE = config.IMAGE_SIZE_PX


def _check_model_image(image: np.ndarray) -> None:
    assert image.shape == (SIZE, SIZE) and image.dtype == np.uint8
    assert image.max() == 255
    assert image.min() == 0
    assert (image == 0).mean() > 0.5  # background set to zero: most of the field is empty sky


def test_every_skyview_raw_file_preprocesses(skyview_raw_dir):
    for path in sorted(skyview_raw_dir.glob("*.fits")):
        cutout = read_cutout(path)
        _check_model_image(preprocess_image(cutout.data, cutout.pixel_scale_arcsec))


def test_only_emission_above_k_sigma_survives(skyview_raw_dir):
    """Non-zero output pixels are exactly where the centre crop is >= 3 sigma above the sky."""
    for path in sorted(skyview_raw_dir.glob("*.fits"))[:6]:
        cutout = read_cutout(path)
        noise = estimate_noise(cutout.data)
        start = (cutout.shape[0] - SIZE) // 2
        crop = cutout.data[start : start + SIZE, start : start + SIZE] - noise.background
        significant = crop >= config.CLIP_SIGMA * noise.sigma
        image = preprocess_image(cutout.data, cutout.pixel_scale_arcsec)
        assert not (image > 0)[~significant].any()  # nothing below k sigma survives
        # emission keeps its brightness order (up to uint8 rounding of faint pixels)
        kept = image > 0
        assert kept.sum() >= 0.5 * significant.sum()
        peak = np.unravel_index(np.argmax(np.where(significant, crop, -np.inf)), crop.shape)
        assert image[peak] == 255
        # a stricter threshold keeps a subset
        strict = preprocess_image(cutout.data, cutout.pixel_scale_arcsec, k_sigma=10.0)
        assert not ((strict > 0) & ~kept).any() and (strict > 0).sum() < kept.sum()


def test_noise_is_astropys_median_and_mad_std_of_the_sky_pixels(skyview_raw_dir):
    """The one-pass noise estimate gives exactly what astropy's median and mad_std give."""
    from astropy.stats import mad_std

    for path in sorted(skyview_raw_dir.glob("*.fits"))[:6]:
        data = read_cutout(path).data
        sky = data[np.isfinite(data) & (data != 0)]
        noise = estimate_noise(data)
        assert noise.background == float(np.median(sky))
        assert noise.sigma == float(mad_std(sky))


def test_nan_padding_becomes_empty_sky(skyview_raw_dir):
    cutout = read_cutout(sorted(skyview_raw_dir.glob("*.fits"))[0])
    padded = cutout.data.copy()
    padded[:, :90] = np.nan  # outside the survey's coverage: the first 15 columns of the crop
    image = preprocess_image(padded, cutout.pixel_scale_arcsec)
    _check_model_image(image)
    assert not image[:, :15].any()


@pytest.mark.parametrize(
    "blank",
    [
        np.zeros((300, 300), np.float32),
        np.full((300, 300), np.nan, np.float32),
        np.full((300, 300), 0.002, np.float32),
    ],
)
def test_blank_images_are_reported(blank):
    with pytest.raises(BlankImageError):
        preprocess_image(blank, 1.8)


def test_emission_only_outside_the_field_is_blank(skyview_raw_dir):
    """Bright emission beyond the 270 arcsec field, nothing inside: no model image."""
    rng = np.random.default_rng(1)
    image = rng.normal(0.0, 1e-4, (300, 300)).astype(np.float32)
    image[5:10, 5:10] = 1.0  # a bright source in the corner, 220" from the centre
    image[70:230, 70:230] = np.clip(image[70:230, 70:230], None, 2e-4)  # the field holds noise only
    with pytest.raises(BlankImageError, match="no significant emission"):
        preprocess_image(image, 1.8)


def _gaussian_field(n: int, scale: float, sources: list[tuple[float, float, float]], fwhm: float) -> np.ndarray:
    """Noise plus Gaussian sources at (dx, dy) arcsec from the image centre, with peak flux."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:n, :n].astype(np.float64)
    centre = (n - 1) / 2.0
    sigma = fwhm / 2.3548
    field = rng.normal(0.0, 1e-4, (n, n))
    for dx, dy, peak in sources:
        r2 = ((x - centre) * scale - dx) ** 2 + ((y - centre) * scale - dy) ** 2
        field += peak * np.exp(-r2 / (2 * sigma**2))
    return field.astype(np.float32)


def test_nvss_pixels_are_resampled_to_the_270_arcsec_field():
    """15"/px (NVSS) in, 1.8"/px out: sources land at their angular offsets; the field is 270"."""
    inside = [(100.0, 0.0, 5e-3), (-40.0, -100.0, 3e-3)]  # 50 and 30 sigma
    far = [(0.0, 600.0, 8e-3)]  # 10 arcmin away: beyond the field
    field = _gaussian_field(150, 15.0, inside + far, fwhm=45.0)
    image = preprocess_image(field, 15.0)
    _check_model_image(image)
    centre = (SIZE - 1) / 2.0
    labels, _ = ndimage.label(image > 0)
    found_labels = []
    for dx, dy, _ in inside:
        expected = np.array(
            [centre + dy / config.FIRST_PIXEL_SCALE_ARCSEC, centre + dx / config.FIRST_PIXEL_SCALE_ARCSEC]
        )
        label = labels[tuple(np.round(expected).astype(int))]
        assert label > 0
        island = np.where(labels == label, image, 0)
        found = ndimage.center_of_mass(np.where(island >= 0.5 * island.max(), island, 0))
        assert np.hypot(*(np.array(found) - expected)) < 2.0  # < 3.6 arcsec
        found_labels.append(label)
    assert len(set(found_labels)) == len(inside)
    assert np.isin(labels, found_labels)[image > 0].mean() > 0.95  # nothing else of note in the field


def test_real_nvss_cutouts_preprocess(frdeep_dir):
    for path in sorted((frdeep_dir / "NVSS").glob("*.fits.fz"))[:5]:
        cutout = read_cutout(path)
        assert cutout.pixel_scale_arcsec == pytest.approx(15.0, rel=1e-3)
        image = preprocess_image(cutout.data, cutout.pixel_scale_arcsec)
        assert image.shape == (SIZE, SIZE) and image.dtype == np.uint8 and image.max() == 255


def test_a_coarser_grid_of_the_same_sky_gives_the_same_picture(skyview_raw_dir):
    """A real FIRST cutout binned 2x2 (3.6"/px) preprocesses to nearly the same 270" field."""
    for path in sorted(skyview_raw_dir.glob("*.fits"))[:4]:
        cutout = read_cutout(path)
        binned = cutout.data.reshape(150, 2, 150, 2).mean(axis=(1, 3))
        native = preprocess_image(cutout.data, 1.8).astype(float)
        coarse = preprocess_image(binned, 3.6).astype(float)
        assert coarse.shape == (SIZE, SIZE)
        shift = np.subtract(ndimage.center_of_mass(native), ndimage.center_of_mass(coarse))
        assert np.hypot(*shift) < 3.0  # pixels of 1.8": the same field, not a zoomed one
        assert np.corrcoef(native.ravel(), coarse.ravel())[0, 1] > 0.7


def test_processed_png_is_cropped_and_rescaled_only(griese_dir):
    for path in sorted(griese_dir.rglob("*.png"))[:20]:
        pixels = np.asarray(Image.open(path), dtype=np.float32)
        assert pixels.shape == (300, 300)
        crop = pixels[75:225, 75:225]
        if crop.max() == 0:
            with pytest.raises(BlankImageError):
                preprocess_processed_image(pixels)
            continue
        image = preprocess_processed_image(pixels)
        assert image.dtype == np.uint8 and image.shape == (SIZE, SIZE)
        assert np.array_equal(image > 0, np.round(crop / crop.max() * 255) > 0)
        assert np.abs(image.astype(float) - crop / crop.max() * 255).max() <= 0.5 + 1e-6


# --- VLASS Quick-Look: 1" pixels resampled onto the model's 1.8" grid ---------------------
def test_real_vlass_cutouts_preprocess_through_the_vlass_profile(vlass_dir):
    from pretrain.data.preprocess import preprocess_cutout
    from pretrain.surveys import survey

    for path in sorted(vlass_dir.glob("*.fits.fz"))[::20]:
        cutout = read_cutout(path)
        image = preprocess_cutout(cutout, "vlass")
        _check_model_image(image)
        assert np.array_equal(image, preprocess_cutout(cutout))  # the header says VLASS
        expected = preprocess_image(cutout.data, cutout.pixel_scale_arcsec, k_sigma=survey("vlass").clip_sigma)
        assert np.array_equal(image, expected)


def test_a_source_at_a_sky_offset_lands_there_on_the_model_grid(vlass_dir):
    """A compact source injected into a real VLASS cutout, 40" N and 30" E of the WCS image centre."""
    from astropy import units as u

    from pretrain.data.preprocess import preprocess_cutout

    tested = 0
    for path in sorted(vlass_dir.glob("*.fits.fz"))[:40:8]:
        cutout = read_cutout(path)
        target = cutout.centre.spherical_offsets_by(30 * u.arcsec, 40 * u.arcsec)
        x, y = cutout.wcs.world_to_pixel(target)
        rows, cols = np.indices(cutout.shape, dtype=np.float32)
        sigma_px = 8.0 / 2.3548  # an 8" source on 1" pixels: well sampled on the 1.8" grid too
        peak = 3 * float(np.nanmax(cutout.data))  # the brightest thing in the field, by far
        if np.nanmax(np.where(np.hypot(rows - y, cols - x) < 20, cutout.data, 0)) > 0.05 * peak:
            continue  # a bright real source there would move the centroid
        tested += 1
        cutout.data = cutout.data + peak * np.exp(-((rows - y) ** 2 + (cols - x) ** 2) / (2 * sigma_px**2))
        image = preprocess_cutout(cutout, "vlass").astype(float)
        ny, nx = cutout.shape
        expected = (
            (SIZE - 1) / 2 + (y - (ny - 1) / 2) * cutout.pixel_scale_arcsec / config.MODEL_PIXEL_SCALE_ARCSEC,
            (SIZE - 1) / 2 + (x - (nx - 1) / 2) * cutout.pixel_scale_arcsec / config.MODEL_PIXEL_SCALE_ARCSEC,
        )
        near = np.hypot(*(np.indices(image.shape) - np.reshape(expected, (2, 1, 1)))) < 8  # 14": the source alone
        found = ndimage.center_of_mass(np.where(near & (image >= 64), image, 0))
        assert np.hypot(*np.subtract(found, expected)) < 0.1, path.name  # model pixels (0.18")
        # East is to the left (RA falls with column), north up the rows: 40" N, 30" E of the centre.
        assert expected[0] - (SIZE - 1) / 2 == pytest.approx(40 / 1.8, abs=0.5)
        assert expected[1] - (SIZE - 1) / 2 == pytest.approx(-30 / 1.8, abs=0.5)
    assert tested >= 3


@pytest.mark.parametrize("shape", [(361, 361), (362, 361), (300, 361), (361, 326)])
def test_resampling_keeps_the_image_centre_at_the_field_centre(shape):
    """Odd, even and cut-off (non-square) VLASS cutouts: the centre pixel stays the centre."""
    rows, cols = np.indices(shape, dtype=np.float32)
    centre = (np.array(shape) - 1) / 2
    point = np.exp(-((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) / (2 * 1.1**2))
    field = (point + np.random.default_rng(0).normal(0, 1e-3, shape)).astype(np.float32)
    image = preprocess_image(field, 1.0)
    found = ndimage.center_of_mass(np.where(image >= 64, image, 0))
    assert np.allclose(found, (SIZE - 1) / 2, atol=0.05)
