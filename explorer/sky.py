"""Positions on the sky: angular separations and the near-duplicate filter for neighbour lists.

Catalogues list some objects twice (two components, or two slightly offset cutouts of the
same galaxy). Such twins are each other's most similar images and would fill a neighbour
list with the same object, so a result closer than ``radius_arcsec`` on the sky to an
earlier result (the query counts as the first result) is dropped, as the reference app did.
"""

from __future__ import annotations

import numpy as np


def separation_arcsec(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Great-circle separation (arcsec) between positions in degrees (broadcasting; haversine)."""
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(a, dtype=np.float64)) for a in (ra1, dec1, ra2, dec2))
    sin_ddec = np.sin((dec2 - dec1) / 2.0)
    sin_dra = np.sin((ra2 - ra1) / 2.0)
    a = sin_ddec**2 + np.cos(dec1) * np.cos(dec2) * sin_dra**2
    return np.degrees(2.0 * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))) * 3600.0


def sky_duplicate_mask(
    ra_deg, dec_deg, radius_arcsec: float, query_radec: tuple[float, float] | None = None
) -> np.ndarray:
    """Which results of an ordered list to keep (bool array).

    Result ``i`` is dropped when it lies within ``radius_arcsec`` of an earlier *kept*
    result or of ``query_radec``. Positions that are NaN (unknown) are always kept.
    ``radius_arcsec <= 0`` keeps everything.
    """
    ra = np.asarray(ra_deg, dtype=np.float64)
    dec = np.asarray(dec_deg, dtype=np.float64)
    keep = np.ones(ra.shape[0], dtype=bool)
    if radius_arcsec <= 0 or ra.size == 0:
        return keep
    kept_ra, kept_dec = [], []
    if query_radec is not None and np.all(np.isfinite(query_radec)):
        kept_ra.append(float(query_radec[0]))
        kept_dec.append(float(query_radec[1]))
    for i in range(ra.size):
        if not (np.isfinite(ra[i]) and np.isfinite(dec[i])):
            continue
        if kept_ra and np.min(separation_arcsec(ra[i], dec[i], kept_ra, kept_dec)) < radius_arcsec:
            keep[i] = False
            continue
        kept_ra.append(ra[i])
        kept_dec.append(dec[i])
    return keep


def nearest_on_sky(ra_deg: float, dec_deg: float, catalogue_ra, catalogue_dec) -> tuple[int, float]:
    """Index of the catalogue position nearest to (ra, dec) and its separation in arcsec."""
    sep = separation_arcsec(ra_deg, dec_deg, catalogue_ra, catalogue_dec)
    if sep.size == 0:
        return -1, float("inf")
    i = int(np.nanargmin(sep))
    return i, float(sep[i])


def sexagesimal(ra_deg: float, dec_deg: float) -> str:
    """J2000 position as astronomers write it: 'hh:mm:ss.s ±dd:mm:ss.s'."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    return SkyCoord(float(ra_deg) * u.deg, float(dec_deg) * u.deg).to_string("hmsdms", sep=":", precision=1)
