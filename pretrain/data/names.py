"""What a file name says about its source, and stable source names from positions.

Data sets of radio galaxies encode their labels in file names:

- MiraBest (``CCC_RRR.RRR±DDD.DDD_Z_LAS.fits.fz``): class code, J2000 position in degrees,
  redshift and catalogued largest angular size (arcsec). Class code digits: first
  1 = FRI, 2 = FRII, 3 = hybrid; second 0 = confident, 1 = uncertain; third
  0 = standard, 1 = double-double, 2 = wide-angle tail, 3 = diffuse, 4 = head-tail.
- FRDEEP (``<object>_T.fits.fz``, e.g. ``1408+0281_II`` or ``3C 192_II``): the object
  name and ``T`` = ``I`` / ``II`` for FRI / FRII. (Any FITS name ending in ``_I`` or
  ``_II`` is read this way.)
- Processed PNGs (Griese et al. 2023, ``RA_DEC_I_CATALOGUE.png``): a position in degrees
  at the start of the name.
- VLASS Quick-Look cutouts (``VLASS_<epoch>_<RA><±DEC>.fits.fz``, e.g.
  ``VLASS_2.2_133.067+06.316.fits.fz``): the epoch and the image centre in J2000 degrees
  (rounded to 0.001 deg: the WCS gives it exactly).

:func:`source_id` gives the IAU-style name ``JHHMMSS.ss+DDMMSS.s`` of a position.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

MIRABEST_LABELS = {"1": "FRI", "2": "FRII", "3": "hybrid"}
MIRABEST_SUBTYPES = {
    "0": "standard",
    "1": "double-double",
    "2": "wide-angle tail",
    "3": "diffuse",
    "4": "head-tail",
}
FRDEEP_LABELS = {"I": "FRI", "II": "FRII"}

_NUMBER = r"\d+(?:\.\d*)?"
_MIRABEST = re.compile(
    rf"^(?P<code>[123][01][0-4])_(?P<ra>{_NUMBER})(?P<dec>[+-]{_NUMBER})"
    rf"_(?P<z>{_NUMBER})_(?P<las>{_NUMBER})\.fits?(?:\.fz)?$",
    re.IGNORECASE,
)
_FRDEEP = re.compile(r"^(?P<name>.+?)_(?P<fr>II|I)\.fits?(?:\.fz)?$")
_VLASS = re.compile(
    rf"^VLASS_(?P<epoch>\d+\.\d+)_(?P<ra>{_NUMBER})(?P<dec>[+-]{_NUMBER})\.fits?(?:\.fz)?$", re.IGNORECASE
)
_POSITION_PREFIX = re.compile(rf"^(?P<ra>{_NUMBER})_(?P<dec>[+-]?{_NUMBER})(?:_|\.|$)")


@dataclass(frozen=True)
class NameInfo:
    """What a file name tells about its source; ``None`` / empty where it says nothing."""

    label: str = ""
    confident: bool | None = None
    subtype: str = ""
    redshift: float | None = None
    las_arcsec: float | None = None  # catalogued largest angular size
    ra: float | None = None  # degrees (rounded, as in the name: use the WCS when there is one)
    dec: float | None = None
    name: str = ""  # object name, where the file name carries one
    scheme: str = ""  # "mirabest", "frdeep", "vlass" or "" (unrecognised)
    survey: str = ""  # key of the survey (pretrain.surveys) the name says the image is from
    epoch: str = ""  # observing epoch, where the name gives one (VLASS: "1.1" ... "3.1")

    @property
    def position_is_catalogued(self) -> bool:
        """The name's position is the source's catalogued one (MiraBest), not just the image centre."""
        return self.ra is not None and self.scheme == "mirabest"


def parse_mirabest_name(filename: str) -> NameInfo | None:
    """The fields of a MiraBest file name, or ``None`` if it is not one."""
    match = _MIRABEST.match(_basename(filename))
    if match is None:
        return None
    code = match["code"]
    return NameInfo(
        label=MIRABEST_LABELS[code[0]],
        confident=code[1] == "0",
        subtype=MIRABEST_SUBTYPES[code[2]],
        redshift=float(match["z"]),
        las_arcsec=float(match["las"]),
        ra=float(match["ra"]),
        dec=float(match["dec"]),
        scheme="mirabest",
    )


def parse_frdeep_name(filename: str) -> NameInfo | None:
    """Object name and FR label of an FRDEEP file name (``<object>_I|II.fits[.fz]``), or ``None``."""
    match = _FRDEEP.match(_basename(filename))
    if match is None:
        return None
    return NameInfo(label=FRDEEP_LABELS[match["fr"]], name=match["name"], scheme="frdeep")


def parse_vlass_name(filename: str) -> NameInfo | None:
    """Epoch and image centre of a VLASS cutout's name (``VLASS_<epoch>_<RA><±DEC>.fits[.fz]``), or ``None``."""
    match = _VLASS.match(_basename(filename))
    if match is None:
        return None
    ra, dec = float(match["ra"]), float(match["dec"])
    if not (0.0 <= ra < 360.0 and -90.0 <= dec <= 90.0):
        return None
    return NameInfo(ra=ra, dec=dec, scheme="vlass", survey="vlass", epoch=match["epoch"])


def parse_fits_name(filename: str) -> NameInfo:
    """Whatever a FITS cutout's name says (MiraBest first, then VLASS, then FRDEEP); empty if nothing."""
    return parse_mirabest_name(filename) or parse_vlass_name(filename) or parse_frdeep_name(filename) or NameInfo()


def parse_position_prefix(filename: str) -> tuple[float, float] | None:
    """``(ra, dec)`` in degrees from a name beginning ``RA_DEC`` (e.g. ``10.451_-9.284_0_MiraBest.png``)."""
    match = _POSITION_PREFIX.match(_basename(filename))
    if match is None:
        return None
    ra, dec = float(match["ra"]), float(match["dec"])
    if not (0.0 <= ra < 360.0 and -90.0 <= dec <= 90.0):
        return None
    return ra, dec


def source_id(ra_deg: float, dec_deg: float) -> str:
    """IAU-style name ``JHHMMSS.ss+DDMMSS.s`` of a J2000 position (digits truncated, IAU style)."""
    ra_hours = (float(ra_deg) % 360.0) / 15.0
    # Work in integer hundredths of a second / tenths of an arcsecond so that truncation
    # never produces "60.00" seconds; the tiny epsilon absorbs binary rounding of exact values.
    ra_cs = math.floor(ra_hours * 3600.0 * 100.0 + 1e-6) % (24 * 3600 * 100)
    hh, rest = divmod(ra_cs, 3600 * 100)
    mm, ss_cs = divmod(rest, 60 * 100)
    sign = "-" if dec_deg < 0 else "+"
    dec_ds = math.floor(abs(float(dec_deg)) * 3600.0 * 10.0 + 1e-6)
    dd, rest = divmod(dec_ds, 3600 * 10)
    dm, ds_ds = divmod(rest, 60 * 10)
    return (
        f"J{hh:02d}{mm:02d}{ss_cs // 100:02d}.{ss_cs % 100:02d}{sign}{dd:02d}{dm:02d}{ds_ds // 10:02d}.{ds_ds % 10:d}"
    )


def unique_source_ids(ids: list[str]) -> list[str]:
    """Make names unique by suffixing repeats: ``J...``, ``J..._2``, ``J..._3`` in order."""
    seen: dict[str, int] = {}
    taken = set(ids)
    out = []
    for sid in ids:
        count = seen.get(sid, 0) + 1
        seen[sid] = count
        if count == 1:
            out.append(sid)
            continue
        candidate = f"{sid}_{count}"
        while candidate in taken:
            count += 1
            candidate = f"{sid}_{count}"
        seen[sid] = count
        taken.add(candidate)
        out.append(candidate)
    return out


def _basename(filename: str) -> str:
    return re.split(r"[\\/]", str(filename))[-1]
