"""Reading radio-survey FITS cutouts into a plain 2-D image with its sky position.

Accepts what real services and archives write: the image in the primary HDU or in the
first image extension, tile-compressed HDUs (``.fits.fz``), gzip- or bzip2-compressed files
(``.fits.gz``), big-endian floats, degenerate frequency/Stokes axes (NAXIS 3 or 4 with
length-1 axes), NaN padding, and header cards that astropy's verifier complains about
(SkyView writes TAB characters into COMMENT cards).

Every size is bounded before the work it would cost is done: the file's bytes
(``config.FITS_MAX_BYTES``, from its length on disk, and while a compressed file is
decompressed), its pixels (``config.FITS_MAX_PIXELS``, from the header, before a
tile-compressed image is decompressed), and its pixels once resampled onto the model's
1.8" grid (``config.FITS_MAX_RESAMPLED_PIXELS``: a header with CDELT = 3 deg would make a
300-pixel image cover 900 deg). Every world coordinate is checked for its frame (RA/Dec in
ICRS, FK5 or FK4, Galactic, ecliptic and supergalactic are converted to ICRS; any other frame
is refused) and its range.
"""

from __future__ import annotations

import bz2
import io
import re
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import GeocentricMeanEcliptic, SkyCoord, Supergalactic
from astropy.io import fits
from astropy.io.fits.verify import VerifyWarning
from astropy.time import Time
from astropy.utils.exceptions import AstropyUserWarning, AstropyWarning
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import proj_plane_pixel_scales, wcs_to_celestial_frame

from pretrain import config
from pretrain.errors import FitsReadError

FITS_MAGIC = b"SIMPLE  ="
_GZIP_MAGIC = b"\x1f\x8b"
_BZIP2_MAGIC = b"BZh"
_ZIP_MAGIC = b"PK\x03\x04"


@dataclass
class Cutout:
    """A 2-D survey image with the sky position of its centre and its pixel scale."""

    data: np.ndarray  # float32, native byte order, shape (ny, nx); may contain NaN
    wcs: WCS  # the celestial (2-D) part of the header's WCS
    centre: SkyCoord  # sky position of the image centre (ICRS)
    pixel_scale_arcsec: float  # mean of the two axes' pixel scales
    header: fits.Header
    source: str = ""  # file name or URL it came from

    @property
    def shape(self) -> tuple[int, int]:
        return self.data.shape


def read_cutout(path_or_bytes: str | Path | bytes, source: str | None = None) -> Cutout:
    """Read the first image HDU of a FITS file (path or raw bytes) as a :class:`Cutout`.

    Raises :class:`FitsReadError` with a message saying what is wrong with the file.
    """
    if isinstance(path_or_bytes, (bytes, bytearray)):
        raw = bytes(path_or_bytes)
        name = source or "<bytes>"
    else:
        path = Path(path_or_bytes)
        name = source or str(path)
        raw = _read_bounded(path, name)
    raw = _decompressed(raw, name)
    _check_looks_like_fits(raw, name)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AstropyWarning)
        warnings.simplefilter("ignore", VerifyWarning)  # TABs in COMMENT cards are harmless
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            with fits.open(io.BytesIO(raw), memmap=False, ignore_missing_end=True) as hdul:
                hdu = _first_image_hdu(hdul, name)
                data = np.asarray(hdu.data)
                header = hdu.header.copy()
        except FitsReadError:
            raise
        except Exception as exc:  # astropy raises many kinds for damaged files
            raise FitsReadError(
                f"{name}: the file is damaged or truncated and cannot be read as FITS ({exc}). "
                "Download it again or check the source."
            ) from exc
    for w in caught:
        if issubclass(w.category, AstropyUserWarning) and "truncat" in str(w.message).lower():
            raise FitsReadError(f"{name}: the file is truncated ({w.message}). Download it again.")

    image = _squeeze_to_2d(data, name)
    if not np.isfinite(image).any():
        raise FitsReadError(f"{name}: every pixel is NaN or infinite; there is no image to use.")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VerifyWarning)  # header.tostring() re-verifies the cards
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = _celestial_wcs(header, name)
    ny, nx = image.shape
    lon, lat = wcs.wcs_pix2world([[(nx - 1) / 2.0, (ny - 1) / 2.0]], 0)[0]
    if not (np.isfinite(lon) and np.isfinite(lat)):
        raise FitsReadError(
            f"{name}: the header's WCS gives no sky position for the image centre (CRVAL/CRPIX/CDELT "
            "are NaN or unusable); fix the header or download the file again."
        )
    if not -90 <= lat <= 90:
        raise FitsReadError(f"{name}: the header's WCS puts the image centre at latitude {lat:.3f} deg; fix CRVAL2.")
    centre = SkyCoord(lon * u.deg, lat * u.deg, frame=_celestial_frame(wcs, name))  # Galactic etc. -> ICRS below
    scales_deg = proj_plane_pixel_scales(wcs)
    pixel_scale_arcsec = float(np.mean(np.abs(scales_deg)) * 3600.0)
    if not (np.isfinite(pixel_scale_arcsec) and pixel_scale_arcsec > 0):
        raise FitsReadError(f"{name}: the header's pixel scale is {pixel_scale_arcsec} arcsec; fix CDELT/CD.")
    _check_resampled_size(image.shape, pixel_scale_arcsec, name)
    return Cutout(
        data=image,
        wcs=wcs,
        centre=centre.icrs,
        pixel_scale_arcsec=pixel_scale_arcsec,
        header=header,
        source=name,
    )


def _read_bounded(path: Path, name: str) -> bytes:
    """The file's bytes, refused from its length before anything is read when it is too large
    (a sparse 6 GB file would otherwise be read whole)."""
    if path.is_symlink() and not path.exists():
        raise FitsReadError(f"{name}: a broken link (it points to {path.readlink()}, which does not exist).")
    if not path.is_file():
        raise FitsReadError(f"{name}: no such file." if not path.exists() else f"{name}: not a file.")
    limit = config.FITS_MAX_BYTES
    try:
        size = path.stat().st_size
        if size > limit:
            raise FitsReadError(
                f"{name}: the file holds {size / 1024**2:,.0f} MB, more than the {limit / 1024**2:.0f} MB a cutout "
                "may have; cut out the region around the source first."
            )
        with open(path, "rb") as f:
            raw = f.read(limit + 1)  # bounded even if the file grows while it is read
    except OSError as exc:
        raise FitsReadError(f"{name}: cannot be read ({exc.strerror or exc}).") from exc
    if len(raw) > limit:
        raise FitsReadError(f"{name}: the file grew past {limit / 1024**2:.0f} MB while it was read; not a cutout.")
    return raw


def _decompressed(raw: bytes, name: str) -> bytes:
    """A gzip or bzip2 file's content, decompressed in bounded steps: a small file that
    expands to gigabytes (a compression bomb) is refused once it passes ``FITS_MAX_BYTES``."""
    limit = config.FITS_MAX_BYTES
    if raw.startswith(_ZIP_MAGIC):
        raise FitsReadError(f"{name}: a zip archive, not a FITS file; unpack it and give the FITS file inside.")
    if raw.startswith(_GZIP_MAGIC):
        kind = "gzip"
    elif raw.startswith(_BZIP2_MAGIC):
        kind = "bzip2"
    else:
        return raw
    out = bytearray()
    try:
        if kind == "gzip":
            inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
            data = raw
            while data and not inflate.eof:
                out += inflate.decompress(data, limit + 1 - len(out))
                if len(out) > limit:
                    break
                data = inflate.unconsumed_tail
            finished = inflate.eof
        else:
            unpack = bz2.BZ2Decompressor()
            out += unpack.decompress(raw, limit + 1)
            while not unpack.eof and not unpack.needs_input and len(out) <= limit:
                out += unpack.decompress(b"", limit + 1 - len(out))
            finished = unpack.eof
    except (zlib.error, OSError, EOFError, ValueError) as exc:
        raise FitsReadError(f"{name}: the {kind} data is damaged or truncated ({exc}); download it again.") from exc
    if len(out) > limit:
        raise FitsReadError(
            f"{name}: the {kind} file expands to more than {limit / 1024**2:.0f} MB; that is not a cutout."
        )
    if not finished:
        raise FitsReadError(f"{name}: the {kind} data is truncated; download the file again.")
    content = bytes(out)
    del out  # one copy of the content at a time
    return content


def _check_resampled_size(shape: tuple[int, int], pixel_scale_arcsec: float, name: str) -> None:
    """Refuse an image whose pixels, resampled onto the model's grid, would be too many."""
    zoom = pixel_scale_arcsec / config.MODEL_PIXEL_SCALE_ARCSEC
    resampled = float(shape[0]) * float(shape[1]) * zoom * zoom
    if resampled > config.FITS_MAX_RESAMPLED_PIXELS:
        field_deg = max(shape) * pixel_scale_arcsec / 3600.0
        raise FitsReadError(
            f"{name}: {shape[1]} x {shape[0]} pixels of {pixel_scale_arcsec:.4g} arcsec cover {field_deg:.3g} deg; "
            f"on the model's {config.MODEL_PIXEL_SCALE_ARCSEC} arcsec grid that is {resampled:.3g} pixels, more "
            f"than the {config.FITS_MAX_RESAMPLED_PIXELS:.3g} a cutout may have. Check CDELT/CD (degrees per "
            "pixel), or cut out the region around the source first."
        )


def _check_looks_like_fits(raw: bytes, name: str) -> None:
    if len(raw) == 0:
        raise FitsReadError(f"{name}: the file is empty (0 bytes).")
    head = raw[:1024].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body")) or b"<html" in head:
        raise FitsReadError(f"{name}: this is an HTML/XML page, not a FITS image (a service returned an error page?).")
    if not raw.startswith(FITS_MAGIC):
        raise FitsReadError(f"{name}: not a FITS file (it does not begin with 'SIMPLE  =').")
    if len(raw) < 2880:
        raise FitsReadError(f"{name}: the file is truncated ({len(raw)} bytes, less than one FITS block).")


def _first_image_hdu(hdul: fits.HDUList, name: str):
    for hdu in hdul:
        is_image = isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU))
        if is_image and hdu.header.get("NAXIS", 0) >= 2:
            _check_size(hdu.header, name)  # from the header, before anything is decompressed
        if is_image and hdu.header.get("NAXIS", 0) >= 2 and hdu.data is not None:
            return hdu
    kinds = ", ".join(type(h).__name__ for h in hdul)
    raise FitsReadError(f"{name}: no image HDU with at least two axes (found: {kinds}).")


def _check_size(header: fits.Header, name: str) -> None:
    """Refuse an image too large to be a cutout (a tiny tile-compressed file can hold 16000²)."""
    shape = [header.get(f"NAXIS{i}", 0) for i in range(1, int(header.get("NAXIS", 0)) + 1)]
    if not all(isinstance(n, int) and n >= 0 for n in shape):
        raise FitsReadError(f"{name}: the header's axis lengths {shape} are not whole numbers.")
    pixels = int(np.prod(shape, dtype=np.float64))
    if pixels > config.FITS_MAX_PIXELS:
        raise FitsReadError(
            f"{name}: the image has {' x '.join(map(str, shape))} pixels, more than the "
            f"{config.FITS_MAX_PIXELS:,} a cutout may have; cut out the region around the source first."
        )


def _squeeze_to_2d(data: np.ndarray, name: str) -> np.ndarray:
    image = np.squeeze(data)  # drops length-1 frequency / Stokes axes
    if image.ndim != 2:
        raise FitsReadError(
            f"{name}: the image has shape {data.shape}; expected two sky axes (extra axes must have length 1)."
        )
    return image.astype(np.float32, copy=False)  # native byte order, float32


_EQUATORIAL_FRAMES = ("ICRS", "FK5", "FK4", "FK4-NO-E")


def _celestial_frame(wcs: WCS, name: str = "<bytes>"):
    """The WCS's own sky frame (a Galactic GLON/GLAT header is not RA/Dec); a frame this tool
    cannot convert to ICRS is refused, never read as RA/Dec."""
    ctype = [str(c) for c in wcs.wcs.ctype]
    axes = "/".join(c.split("-")[0] for c in ctype)
    kind = ctype[wcs.wcs.lng][:4].rstrip("-") if wcs.wcs.lng >= 0 else ""
    equinox = wcs.wcs.equinox if np.isfinite(wcs.wcs.equinox) else 2000.0
    if kind == "ELON":  # astropy would read ecliptic longitude as RA
        return GeocentricMeanEcliptic(equinox=Time(equinox, format="jyear"))
    if kind == "SLON":
        return Supergalactic()
    radesys = str(wcs.wcs.radesys or "").strip().upper()
    if kind == "RA" and radesys and radesys not in _EQUATORIAL_FRAMES:
        raise FitsReadError(
            f"{name}: the header's RADESYS is {radesys!r}, a frame this tool cannot convert to ICRS; "
            "give an image in ICRS, FK5, FK4 or Galactic coordinates."
        )
    if kind in ("RA", "GLON"):
        try:
            return wcs_to_celestial_frame(wcs)
        except ValueError:
            pass
    raise FitsReadError(
        f"{name}: the header's sky axes are {axes} (frame {radesys or 'unstated'}), which this tool cannot convert "
        "to RA/Dec; give an image in equatorial (RA/DEC), Galactic, ecliptic or supergalactic coordinates."
    )


_WCS_NUMBER_CARDS = re.compile(r"^(CRVAL|CRPIX|CDELT|CROTA)\d$|^(CD|PC)\d_\d$")


def _check_wcs_cards(header: fits.Header, name: str) -> None:
    """astropy's WCS reads an unparsable or missing CRVAL as 0 (RA 0, Dec 0): refuse instead."""
    for card in header.cards:
        if not _WCS_NUMBER_CARDS.match(card.keyword):
            continue
        try:
            value = float(card.value)
        except Exception:  # VerifyError for a card like "CRVAL1 = NaN"
            value = float("nan")
        if not np.isfinite(value):
            raise FitsReadError(
                f"{name}: the header card {card.keyword} is not a finite number ({card.image.strip()[10:40]!r}); "
                "fix the header, the image's sky position is unknown."
            )
    if any(str(header.get(f"CTYPE{i}", "")).strip() for i in (1, 2)):
        missing = [k for k in ("CRVAL1", "CRVAL2") if k not in header]
        if missing:
            raise FitsReadError(f"{name}: the header lacks {', '.join(missing)}; fix the header (position unknown).")


def _celestial_wcs(header: fits.Header, name: str) -> WCS:
    _check_wcs_cards(header, name)
    try:
        wcs = WCS(header)
        if not wcs.is_celestial:  # extra (frequency, Stokes) axes: .celestial copies the sky ones
            wcs = wcs.celestial
    except Exception as exc:
        raise FitsReadError(f"{name}: the header's WCS cannot be read ({exc}).") from exc
    if wcs.naxis != 2 or not wcs.has_celestial:
        raise FitsReadError(f"{name}: the header has no celestial WCS (RA/Dec axes); position unknown.")
    return wcs
