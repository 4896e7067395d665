"""Finding a source of a space from typed text: its id, a catalogued name, or a sky position.

Offline only (no name resolver): an object name such as '3C 236' is found when the
catalogue carries it (a ``name`` / ``rgz_name`` column); otherwise type its position.
Source ids hold '+' (J092730.00+182508.4), which a URL or a hand-typed link turns into a
space: a space is read as '+' when that names a source.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from explorer.sky import nearest_on_sky
from pretrain.errors import ExplorerError

NAME_COLUMNS = ("name", "rgz_name")  # catalogue columns searched for an object name


@dataclass(frozen=True)
class Found:
    """What the text named: a row of the catalogue (or None) and what to tell the user."""

    row: int | None
    message: str


def row_of_id(ids: pd.Series, text: str) -> int | None:
    """Row of a source id as typed or as a URL delivers it ('+' read as a space), else None."""
    text = (text or "").strip()
    if not text:
        return None
    upper = ids.astype(str).str.upper().to_numpy()
    for candidate in (text, text.replace(" ", "+")):
        hits = np.flatnonzero(upper == candidate.upper())
        if hits.size:
            return int(hits[0])
    return None


def find_source(catalogue: pd.DataFrame, text: str, match_arcsec: float) -> Found:
    """The source ``text`` names in ``catalogue`` (id, catalogued name, or position within ``match_arcsec``)."""
    text = (text or "").strip()
    if not text:
        return Found(None, "Type a source id, a catalogued name or a position (RA Dec).")
    row = row_of_id(catalogue["source_id"], text)
    if row is not None:
        return Found(row, f"{catalogue['source_id'].iloc[row]}")
    squashed = text.replace(" ", "").upper()
    for column in NAME_COLUMNS:
        if column in catalogue:
            names = catalogue[column].astype(str).str.replace(" ", "", regex=False).str.upper()
            hits = np.flatnonzero(names.to_numpy() == squashed)
            if hits.size:
                return Found(int(hits[0]), f"{text} is {catalogue['source_id'].iloc[hits[0]]}")
    from pretrain.data.positions import parse_position  # astropy: imported when a position is typed

    try:
        position = parse_position(text)
    except ExplorerError as exc:
        return Found(None, str(exc))
    if position is None:
        return Found(
            None,
            f"'{text}' is no source id or catalogued name of this space, and not a position. "
            "Names are not resolved here: type the position, or use the Look-up page.",
        )
    ra, dec = float(position.ra.deg), float(position.dec.deg)
    row, separation = nearest_on_sky(ra, dec, catalogue["ra"].to_numpy(), catalogue["dec"].to_numpy())
    if row < 0 or separation > match_arcsec:
        nearest = f" (the nearest source is {separation / 60:.1f}′ away)" if row >= 0 else ""
        return Found(
            None, f"No source of this space within {match_arcsec:.0f}″ of RA {ra:.4f}°, Dec {dec:+.4f}°{nearest}."
        )
    return Found(row, f"{catalogue['source_id'].iloc[row]}, {separation:.1f}″ from the position typed")
