"""The one preprocessing path from a survey image to the model's input.

Training, embedding and look-up all call :func:`preprocess_image`, so a looked-up FIRST
cutout reaches the model exactly as the training images did:

1. NaN -> 0 (NaN padding at survey edges carries no emission);
2. robust noise estimate (median absolute deviation of the non-zero pixels);
3. emission below ``k`` sigma above the background set to zero (k = 3 by default);
4. resampled to the model's grid (FIRST's 1.8"/px) if needed, centred on the image
   centre, and cropped to a 150 x 150 px (270") field;
5. scaled to 0..255 ``uint8`` by the brightest remaining pixel.

A blank result (nothing above ``k`` sigma in the field) raises :class:`BlankImageError`.
:func:`preprocess_cutout` does the same for a read cutout with its survey's profile
(``pretrain/surveys.py``: the clipping threshold).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from pretrain import config
from pretrain.errors import BlankImageError, ExplorerError
from pretrain.surveys import Survey, image_survey

if TYPE_CHECKING:
    from pretrain.data.fits_io import Cutout


# the standard deviation of a Gaussian per median absolute deviation (astropy.stats.mad_std's factor)
MAD_TO_SIGMA = 1.482602218505602


@dataclass(frozen=True)
class Noise:
    background: float  # median of the sky pixels
    sigma: float  # robust standard deviation (MAD-based)


def estimate_noise(image: np.ndarray) -> Noise:
    """Robust background level and noise of an image (NaN and exact zeros ignored).

    Exact zeros are ignored because they are padding (outside a survey's coverage or
    already clipped), not sky.
    """
    pixels = image[np.isfinite(image) & (image != 0)]
    if pixels.size < 16:
        raise BlankImageError("the image has fewer than 16 finite, non-zero pixels: no sky to measure noise on.")
    median = np.median(pixels)
    background = float(median)
    # astropy's mad_std, without the second median it would take of the same pixels
    sigma = float(np.median(np.abs(pixels - median)) * MAD_TO_SIGMA)
    if not np.isfinite(sigma) or sigma <= 0:
        # A constant image (or one quantised to a few levels): fall back to the plain std.
        sigma = float(np.std(pixels))
    if sigma <= 0:
        raise BlankImageError("the image is constant: there is no noise and no emission.")
    return Noise(background=background, sigma=sigma)


def clip_background(image: np.ndarray, k_sigma: float = config.CLIP_SIGMA) -> tuple[np.ndarray, Noise]:
    """NaN -> 0, subtract the background, and zero everything below ``k_sigma`` x noise."""
    image = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    noise = estimate_noise(image)
    above = image - noise.background
    clipped = np.where(above >= k_sigma * noise.sigma, above, 0.0).astype(np.float32)
    return clipped, noise


def crop_to_field(
    image: np.ndarray,
    pixel_scale_arcsec: float,
    size_px: int = config.IMAGE_SIZE_PX,
    target_scale_arcsec: float = config.MODEL_PIXEL_SCALE_ARCSEC,
) -> np.ndarray:
    """Centre crop to ``size_px`` pixels of ``target_scale_arcsec``, resampling if needed.

    The centre is the image's centre pixel, ``((n - 1) / 2)`` on each axis, which is where
    :func:`~pretrain.data.fits_io.read_cutout` asks the WCS for the image's sky position: a
    resampled image keeps that position at its own centre exactly (linear interpolation).
    Images smaller than the field are padded with zeros (no emission) around the centre.
    """
    image = np.asarray(image, dtype=np.float32)
    zoom = pixel_scale_arcsec / target_scale_arcsec
    if not (np.isfinite(zoom) and zoom > 0):
        raise ExplorerError(f"the pixel scale {pixel_scale_arcsec!r} arcsec is not a positive number.")
    if image.size * zoom * zoom > config.FITS_MAX_RESAMPLED_PIXELS:  # bounded before any work on it
        raise ExplorerError(
            f"a {image.shape[1]} x {image.shape[0]} image of {pixel_scale_arcsec:.4g} arcsec pixels would be "
            f"{image.size * zoom * zoom:.3g} pixels on the model's grid, more than the "
            f"{config.FITS_MAX_RESAMPLED_PIXELS:.3g} a cutout may have; check its pixel scale."
        )
    if abs(zoom - 1.0) > 1e-3:
        image = _resample_centred(image, 1.0 / zoom, size_px)
        return np.clip(image, 0.0, None) if image.min() >= -1e-6 else image
    return _centre_window(image, size_px)


def _resample_centred(image: np.ndarray, step: float, size: int) -> np.ndarray:
    """``size`` x ``size`` samples ``step`` input pixels apart, centred on the input's centre."""
    centre_in = (np.array(image.shape, dtype=np.float64) - 1.0) / 2.0
    offset = centre_in - step * (size - 1) / 2.0  # input coordinate of output pixel 0
    return ndimage.affine_transform(
        image, [step, step], offset=offset, output_shape=(size, size), order=1, mode="grid-constant", cval=0.0
    ).astype(np.float32, copy=False)


def _centre_window(image: np.ndarray, size: int) -> np.ndarray:
    """The central ``size`` x ``size`` window, zero-padded where the image is smaller."""
    out = np.zeros((size, size), dtype=np.float32)
    ny, nx = image.shape
    y0, x0 = (ny - size) // 2, (nx - size) // 2
    src_y = slice(max(y0, 0), min(y0 + size, ny))
    src_x = slice(max(x0, 0), min(x0 + size, nx))
    dst_y = slice(src_y.start - y0, src_y.stop - y0)
    dst_x = slice(src_x.start - x0, src_x.stop - x0)
    out[dst_y, dst_x] = image[src_y, src_x]
    return out


def scale_to_uint8(image: np.ndarray) -> np.ndarray:
    """Scale a clipped image (zero background) to 0..255 by its brightest pixel."""
    peak = float(np.max(image)) if image.size else 0.0
    if not np.isfinite(peak) or peak <= 0:
        raise BlankImageError(
            "no significant emission in the field (nothing above the clipping threshold): "
            "the position may be empty sky or outside the survey."
        )
    scaled = np.clip(image, 0.0, None) / peak * 255.0
    return np.round(scaled).astype(np.uint8)


def preprocess_image(
    image: np.ndarray,
    pixel_scale_arcsec: float = config.MODEL_PIXEL_SCALE_ARCSEC,
    k_sigma: float = config.CLIP_SIGMA,
    size_px: int = config.IMAGE_SIZE_PX,
) -> np.ndarray:
    """Survey image (Jy/beam, any pixel scale) -> ``size_px`` x ``size_px`` uint8 model image."""
    clipped, _ = clip_background(image, k_sigma)
    return scale_to_uint8(crop_to_field(clipped, pixel_scale_arcsec, size_px))


def preprocess_cutout(cutout: Cutout, survey: Survey | str | None = None) -> np.ndarray:
    """A read cutout -> the model image, with its survey's clipping threshold.

    ``survey``: a profile or key of ``pretrain.surveys``; ``None``: the survey its header or
    pixel scale names, else FIRST (:func:`pretrain.surveys.image_survey`).
    """
    profile = image_survey(cutout.header, cutout.pixel_scale_arcsec, survey)
    return preprocess_image(cutout.data, cutout.pixel_scale_arcsec, k_sigma=profile.clip_sigma)


def preprocess_processed_image(
    image: np.ndarray, pixel_scale_arcsec: float = config.MODEL_PIXEL_SCALE_ARCSEC, size_px: int = config.IMAGE_SIZE_PX
) -> np.ndarray:
    """An image that was already sigma-clipped and scaled (e.g. an 8-bit PNG): crop and rescale only."""
    return scale_to_uint8(crop_to_field(np.asarray(image, dtype=np.float32), pixel_scale_arcsec, size_px))
