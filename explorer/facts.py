"""A source's main catalogue facts as a compact HTML table (the source panel shows it).

No Streamlit here: the panel in :mod:`explorer.widgets.source_panel` hands the HTML to
``st.html``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from explorer.figures import pretty_name
from pretrain import config

FACT_COLUMNS = (  # shown first in a source's panel, when the space has them
    ("label", "label"),
    ("confident", "confident"),
    ("subtype", "subtype"),
    ("angular_extent_arcsec", "angular extent (″)"),
    ("angular_extent_estimated_arcsec", "estimated extent (″)"),
    ("redshift", "redshift"),
    ("ra", "RA (°)"),
    ("dec", "Dec (°)"),
    ("survey", "survey"),
)

FACTS_CSS = """<style>
.facts{border-collapse:collapse;font-size:14px;margin:2px 0 6px 0}
.facts td{padding:3px 14px 3px 0;border-bottom:1px solid rgba(127,127,127,.2)}
.facts td:first-child{opacity:.7}
.facts td:last-child{font-variant-numeric:tabular-nums}
</style>"""


def is_missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and not np.isfinite(value))


def colour_fact(colour_name: str, colour: pd.Series | None, row: int) -> tuple[str, object] | None:
    """(title, value) of the map's colour for one source, when it is not a catalogue fact
    already shown (a fine-tuned run's P(FRII) or its misclassified mark, say)."""
    if colour is None or row >= len(colour) or colour_name in dict(FACT_COLUMNS):
        return None
    return pretty_name(colour_name), colour.iloc[row]


def facts_html(entry: pd.Series, extra: Iterable[tuple[str, object]] = (), compact: bool = False) -> str:
    """The main catalogue facts of a source as a compact two-column table; ``extra``:
    more (title, value) rows first (the map's colour, when it is not a catalogue column).
    ``compact``: the position once (J2000 sexagesimal, degrees in its tooltip), no survey row:
    the map page's panel, where the neighbours must stay in view."""
    rows = [_extra_row(title, value) for title, value in extra if not is_missing(value)]
    skipped = ("ra", "survey") if compact else ()
    for column, title in FACT_COLUMNS:
        if column not in entry.index or is_missing(entry[column]) or column in skipped:
            continue
        if compact and column == "dec":
            if "ra" in entry.index and not is_missing(entry["ra"]):
                degrees = f"{entry['ra']}, {entry['dec']}"
                position = html.escape(sexagesimal_to_precision(entry["ra"], entry["dec"]))
                rows.append(f'<tr><td>J2000</td><td title="{html.escape(degrees)} deg">{position}</td></tr>')
            continue
        value = entry[column]
        if isinstance(value, (float, np.floating)):
            value = f"{value:.{position_decimals(float(value))}f}" if column in ("ra", "dec") else f"{value:.4g}"
        if str(value) == "":
            continue
        rows.append(f"<tr><td>{html.escape(title)}</td><td>{html.escape(str(value))}</td></tr>")
        if column == "dec" and "ra" in entry.index:
            position = sexagesimal_to_precision(entry["ra"], entry["dec"])
            rows.append(f"<tr><td>J2000 (h:m:s, d:m:s)</td><td>{html.escape(position)}</td></tr>")
    return FACTS_CSS + '<table class="facts">' + "".join(rows) + "</table>" if rows else ""


FEWEST_POSITION_DECIMALS = 3  # catalogue positions are given to 0.001 deg (3.6″) or better


def position_decimals(degrees: float, most: int = 5) -> int:
    """Decimals a position in degrees has (at most ``most``): a MiraBest position read from a
    file name is rounded to 0.001 deg and is shown so, not padded to look more precise. Never
    fewer than 3 (a name's 139.100 is read as 139.1, but it is 139.100)."""
    for decimals in range(FEWEST_POSITION_DECIMALS, most):
        if abs(degrees - round(degrees, decimals)) < 1e-9:
            return decimals
    return most


def sexagesimal_to_precision(ra_deg: float, dec_deg: float) -> str:
    """J2000 'hh:mm:ss.s ±dd:mm:ss' to the precision of the degrees given: a 0.001° (3.6″)
    position gets RA to 0.1 s (1.5″) and Dec to 1″; a WCS position (1e-5°) 0.001 s and 0.01″."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    step_deg = 10.0 ** -min(position_decimals(float(ra_deg)), position_decimals(float(dec_deg)))
    ra_digits = max(0, math.ceil(-math.log10(step_deg * 240.0) - 1e-9))  # 1 deg of RA = 240 s of time
    dec_digits = max(0, math.ceil(-math.log10(step_deg * 3600.0) - 1e-9))
    position = SkyCoord(float(ra_deg) * u.deg, float(dec_deg) * u.deg)
    ra = position.ra.to_string(unit=u.hourangle, sep=":", precision=ra_digits, pad=True)
    dec = position.dec.to_string(unit=u.deg, sep=":", precision=dec_digits, alwayssign=True, pad=True)
    return f"{ra} {dec}"


def _extra_row(title: str, value: object) -> str:
    shown = f"{value:.3f}" if isinstance(value, (float, np.floating)) else str(value)
    return f"<tr><td>{html.escape(str(title))}</td><td><b>{html.escape(shown)}</b></td></tr>"


def field_warning(extent_arcsec: object) -> str | None:
    """A note when a source is larger than the field the model sees (its lobes lie outside)."""
    field = config.MODEL_INPUT_PX * config.FIRST_PIXEL_SCALE_ARCSEC
    if is_missing(extent_arcsec) or not isinstance(extent_arcsec, (int, float, np.number)):
        return None
    if float(extent_arcsec) <= field:
        return None
    return (
        f"{float(extent_arcsec):.0f}″ across: larger than the {field:.0f}″ ({field / 60:.1f}′) field the "
        "model sees: its outer parts (lobes) lie outside the box and play no part in its neighbours."
    )
