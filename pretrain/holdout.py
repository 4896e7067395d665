"""The fixed part of the sky kept out of every pretraining set, so neighbour figures are honest.

A source is *held out* when its J2000 position falls in a held-out sky cell. The sky is cut
into cells of :data:`CELL_DEG` in declination by about the same length in right ascension
(``CELL_DEG / cos(dec)``, so cells have nearly equal area); a cell is held out when the
SHA-256 of its integer indices, read as a number, is below :data:`FRACTION` of the range.
The rule needs nothing but the position, so the same object is held out whichever data set
it comes from (a MiraBest cutout, its Griese et al. PNG, its FRDEEP file): images of one
object lie far closer together than a cell, and the chance that two copies a few arcsec
apart straddle a cell edge is about ``2 x 5″ / CELL_DEG`` (0.1 %).

``python -m pretrain train`` leaves held-out sources out unless ``--include-held-out`` is
given, and records which it did; ``python -m pretrain evaluate`` reports neighbour purity
for held-out queries beside the leave-one-out figure over all sources.
"""

from __future__ import annotations

import hashlib

import numpy as np

CELL_DEG = 2.0  # a cell's side: far larger than any source, small enough that cells mix the sky
FRACTION = 0.2  # the share of cells (and so, on average, of sources) held out
_SALT = "radio-latent-explorer holdout v1"  # changing it changes the hold-out: don't


def cell_indices(ra_deg: np.ndarray, dec_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer (dec band, RA cell) of each position."""
    ra = np.mod(np.asarray(ra_deg, np.float64), 360.0)
    dec = np.asarray(dec_deg, np.float64)
    band = np.floor((dec + 90.0) / CELL_DEG).astype(np.int64)
    centre_dec = np.radians(-90.0 + (band + 0.5) * CELL_DEG)
    cells_in_band = np.maximum(1, np.floor(360.0 * np.cos(centre_dec) / CELL_DEG)).astype(np.int64)
    column = np.floor(ra / 360.0 * cells_in_band).astype(np.int64) % cells_in_band
    return band, column


def _cell_is_held_out(band: int, column: int) -> bool:
    digest = hashlib.sha256(f"{_SALT}:{band}:{column}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < FRACTION * 2**64


def held_out_rows(catalogue) -> np.ndarray | None:
    """Boolean mask of a catalogue's held-out rows; None when it has no ``ra``/``dec`` columns."""
    if not {"ra", "dec"} <= set(catalogue.columns):
        return None
    return is_held_out(catalogue["ra"].to_numpy(dtype=float), catalogue["dec"].to_numpy(dtype=float))


def is_held_out(ra_deg, dec_deg) -> np.ndarray:
    """Boolean array: True where the position lies in a held-out cell (NaN positions: False)."""
    ra = np.atleast_1d(np.asarray(ra_deg, np.float64))
    dec = np.atleast_1d(np.asarray(dec_deg, np.float64))
    finite = np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90.0)
    out = np.zeros(ra.shape, bool)
    if finite.any():
        bands, columns = cell_indices(ra[finite], dec[finite])
        out[finite] = [_cell_is_held_out(int(b), int(c)) for b, c in zip(bands, columns)]
    return out
