"""Damaged FITS files made from real ones, as they turn up in practice (test helper).

Each maker writes one file into a folder and returns its path; ``DAMAGED`` maps a kind to
``(maker, words)``, where ``words`` are what a clear error message about it must mention.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.io.fits.verify import VerifyWarning


def truncated(real: Path, folder: Path) -> Path:
    """A download that broke off half way through the pixels."""
    raw = real.read_bytes()
    path = folder / f"truncated_{real.name}"
    path.write_bytes(raw[: len(raw) // 2])
    return path


def empty(real: Path, folder: Path) -> Path:
    path = folder / "empty.fits"
    path.write_bytes(b"")
    return path


def nan_only(real: Path, folder: Path) -> Path:
    """The real header (WCS and all) over pixels that are all NaN (a blank survey answer)."""
    with fits.open(real) as hdul:
        hdu = next(h for h in hdul if h.data is not None)
        header, shape = hdu.header.copy(), hdu.data.shape
    path = folder / "nan_only.fits"
    with warnings.catch_warnings():  # keep SkyView's TABs in COMMENT cards, quietly
        warnings.simplefilter("ignore", VerifyWarning)
        fits.PrimaryHDU(np.full(shape, np.nan, dtype=np.float32), header=_image_header(header)).writeto(
            path, output_verify="ignore"
        )
    return path


def html_page(real: Path, folder: Path) -> Path:
    """A service's error page saved under a FITS name."""
    path = folder / "error_page.fits"
    path.write_text(
        "<!DOCTYPE html>\n<html><head><title>SkyView error</title></head>\n"
        "<body><h1>Error</h1><p>Unable to process the request: service unavailable.</p></body></html>\n"
    )
    return path


def table_only(real: Path, folder: Path) -> Path:
    """A valid FITS file that holds only a binary table (a catalogue, not an image)."""
    path = folder / "table_only.fits"
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="RA", format="D", array=np.array([10.45, 16.24])),
            fits.Column(name="DEC", format="D", array=np.array([-9.28, 0.07])),
        ]
    )
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)
    return path


def _image_header(header: fits.Header) -> fits.Header:
    """The header of a compressed-image extension, as a plain primary image header."""
    header = header.copy()
    for key in ("XTENSION", "PCOUNT", "GCOUNT", "ZIMAGE", "ZBITPIX", "ZCMPTYPE"):
        header.remove(key, ignore_missing=True)
    return header


# kind -> (maker, words a clear message must contain (any of them, case-insensitive))
DAMAGED = {
    "truncated": (truncated, ("truncated",)),
    "empty": (empty, ("empty",)),
    "nan_only": (nan_only, ("nan",)),
    "html": (html_page, ("html",)),
    "table_only": (table_only, ("no image",)),
}
