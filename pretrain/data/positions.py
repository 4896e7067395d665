"""Sky positions typed by people: parsing, checking and printing them.

:func:`parse_position` reads what users type into a look-up box or a command line —
decimal degrees (``139.148 4.681``, ``139.148, +4.681``) or sexagesimal hours/degrees
(``09h16m35.5s +04d40m52s``, ``09 16 35.5 +04 40 52``, ``09:16:35.5 +04:40:52``) —
and returns ``None`` for anything else, which callers then treat as an object name
(``3C 236``, ``M 87``). Positions are ICRS (J2000) throughout.
"""

from __future__ import annotations

import re

from astropy import units as u
from astropy.coordinates import SkyCoord

from pretrain import config
from pretrain.errors import PositionError

# Each number has one way to match (no "\d+\.?\d*", whose split points backtrack quadratically).
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
# Two decimal numbers (degrees), separated by a comma and/or blanks; an optional "d" or "°".
_DECIMAL = re.compile(rf"^\s*({_NUMBER})\s*(?:d|deg|°)?\s*[,\s]\s*({_NUMBER})\s*(?:d|deg|°)?\s*$", re.I)
# Sexagesimal: 3 + 3 numbers separated by blanks or colons, or with h/m/s and d/m/s markers.
_SEXAGESIMAL_PLAIN = re.compile(
    r"^\s*(\d{1,2})[\s:]+(\d{1,2})[\s:]+(\d+(?:\.\d*)?)\s*,?\s*([+-]?\d{1,2})[\s:]+(\d{1,2})[\s:]+(\d+(?:\.\d*)?)\s*$"
)
_SEXAGESIMAL_MARKED = re.compile(
    rf"^\s*\d{{1,2}}h\s*\d{{1,2}}m\s*{_NUMBER}s?\s*,?\s*[+-]?\d{{1,2}}[d°]\s*\d{{1,2}}[m']\s*{_NUMBER}(?:s|\")?\s*$",
    re.I,
)


def parse_position(text: str) -> SkyCoord | None:
    """A sky position from typed text, or ``None`` if the text is not coordinates.

    Decimal numbers are degrees (RA, Dec); sexagesimal RA is in hours. Raises
    :class:`PositionError` for text that is clearly meant as coordinates but is out of
    range (RA outside 0..360 deg, Dec outside -90..+90 deg).
    """
    if not isinstance(text, str) or not text.strip():
        return None
    if len(text) > config.POSITION_MAX_CHARS:  # bounded before any regex sees it
        raise PositionError(
            f"the text is {len(text)} characters long; a position or object name has at most "
            f"{config.POSITION_MAX_CHARS}. Type a shorter one (e.g. 139.148 +4.681 or 3C 236)."
        )
    # one blank between tokens: runs of blanks would give the regexes' \s* many ways to match
    text = " ".join(text.split())
    match = _DECIMAL.match(text)
    if match:
        return sky_position(float(match.group(1)), float(match.group(2)))
    match = _SEXAGESIMAL_PLAIN.match(text)
    if match:
        h, m, s, d, dm, ds = match.groups()
        text = f"{h}h{m}m{s}s {d}d{dm}m{ds}s"
    elif not _SEXAGESIMAL_MARKED.match(text):
        return None
    try:
        coord = SkyCoord(
            text.replace("°", "d").replace("'", "m").replace('"', "s").replace(",", " "),
            unit=(u.hourangle, u.deg),
            frame="icrs",
        )
    except ValueError as exc:  # e.g. minutes >= 60, Dec beyond 90 deg
        raise PositionError(f"'{text.strip()}' looks like coordinates but cannot be read: {exc}") from exc
    return sky_position(coord.ra.deg, coord.dec.deg)


def sky_position(ra_deg: float, dec_deg: float) -> SkyCoord:
    """An ICRS position from RA/Dec in degrees, checking their ranges."""
    if not (0.0 <= ra_deg <= 360.0):
        raise PositionError(f"RA {ra_deg} deg is outside 0..360 deg (decimal RA is in degrees, not hours).")
    if not (-90.0 <= dec_deg <= 90.0):
        raise PositionError(f"Dec {dec_deg} deg is outside -90..+90 deg.")
    return SkyCoord(ra_deg % 360.0 * u.deg, dec_deg * u.deg, frame="icrs")


def format_position(coord: SkyCoord) -> str:
    """``RA 139.14792 deg, Dec +4.68111 deg (09h16m35.50s +04d40m52.0s)``."""
    c = coord.icrs
    sexagesimal = c.to_string("hmsdms", precision=2)
    return f"RA {c.ra.deg:.5f} deg, Dec {c.dec.deg:+.5f} deg ({sexagesimal})"
