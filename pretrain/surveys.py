"""What the code needs to know about a radio survey: one profile per survey, in one table.

The model's own grid is FIRST's (1.8"/px, 150 px stored, 70 px seen: ``pretrain/config.py``);
an image of another survey is resampled onto it. What differs between surveys, and is read
from here by preprocessing, the angular-extent estimate, bundles and the cutout client:

- ``pixel_scale_arcsec``: the survey's usual pixel. Used to recognise a survey's files and
  as the pixel of requested cutouts; the image's own WCS always decides how it is resampled.
- ``beam_fwhm_arcsec``: the restoring beam, as a circle. A header's ``BMAJ``/``BMIN`` win
  when present (:meth:`Survey.beam_arcsec`): Quick-Look VLASS beams vary with declination.
- ``skyview_survey``: the survey's name at NASA SkyView, the one cutout service the client
  speaks, or ``None`` when SkyView does not serve it (the client then refuses at once).
- ``dec_min_deg`` / ``dec_max_deg``: positions outside cannot be in the survey and are
  refused without a network call. They are guards, not the coverage map: inside them the
  service's blank answer is what says "outside the footprint".
- ``noise_jy_per_beam``: a typical image rms (for messages and sanity checks; the noise
  used for clipping is always measured on the image itself).
- ``clip_sigma``: emission below this many sigma is set to zero before the model sees it.

Adding a survey is one more :class:`Survey` entry in :data:`SURVEYS` below; say where each
value comes from. This module imports only :mod:`pretrain.errors` (no torch, no astropy).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from pretrain.errors import ExplorerError

# Header keywords searched for a survey's name (SkyView writes SURVEY; VLASS writes its
# file-name parts, FILNAM01 = 'VLASS2'; TELESCOP for NVSS/FIRST files made elsewhere).
HEADER_NAME_KEYS = ("SURVEY", "TELESCOP", "FILNAM01", "PROJECT")
PIXEL_SCALE_MATCH = 0.03  # a file whose pixel is within 3 % of a survey's is taken as that survey's


class UnknownSurveyError(ExplorerError, ValueError):
    """A survey key that is not in :data:`SURVEYS`."""


@dataclass(frozen=True)
class Survey:
    """One radio survey, as the code needs to know it (see the module docstring)."""

    key: str  # what --survey takes: lower case
    name: str  # short name: the bundle catalogue's ``survey`` column and messages
    title: str  # one line for people
    frequency_ghz: float  # centre of the band
    pixel_scale_arcsec: float
    beam_fwhm_arcsec: float  # circular approximation; the header's BMAJ/BMIN win
    skyview_survey: str | None  # NASA SkyView's survey name; None: SkyView does not serve it
    dec_min_deg: float = -90.0
    dec_max_deg: float = 90.0
    noise_jy_per_beam: float = float("nan")  # typical rms of an image
    clip_sigma: float = 3.0  # the reference study's 3 sigma (config.CLIP_SIGMA)
    footprint: str = ""  # one sentence on the coverage, for "outside the footprint" messages
    header_names: tuple[str, ...] = ()  # names that identify the survey in HEADER_NAME_KEYS
    reference: str = ""  # where the values come from

    @property
    def has_cutout_service(self) -> bool:
        return self.skyview_survey is not None

    def covers_dec(self, dec_deg: float) -> bool:
        """Whether a declination lies within the survey's declination limits."""
        return self.dec_min_deg <= float(dec_deg) <= self.dec_max_deg

    def beam_arcsec(self, header: Mapping | None = None) -> float:
        """The beam FWHM of an image: the header's (``BMAJ``/``BMIN``) if it has one, else the survey's."""
        from_header = header_beam_arcsec(header) if header is not None else None
        return self.beam_fwhm_arcsec if from_header is None else from_header


SURVEYS: dict[str, Survey] = {
    survey.key: survey
    for survey in (
        Survey(
            key="first",
            name="FIRST",
            title="VLA FIRST, Faint Images of the Radio Sky at Twenty centimetres (1.4 GHz)",
            frequency_ghz=1.4,
            pixel_scale_arcsec=1.8,
            beam_fwhm_arcsec=5.0,  # 5.4" in the north, 6.4" x 5.4" south of Dec ~ +4.5 deg; 5" as the study
            skyview_survey="VLA FIRST (1.4 GHz)",
            # FIRST's southern strip reaches about -11 deg; -40 is the project's long-standing
            # guard (nothing is refused that might be covered). No northern guard: SkyView's
            # blank image answers there (FIRST reaches about +57 deg).
            dec_min_deg=-40.0,
            noise_jy_per_beam=1.5e-4,  # ~0.15 mJy/beam (Becker et al. 1995; shared/data README)
            footprint=(
                "FIRST covers about 10,000 square degrees of the northern sky (mostly the north Galactic "
                "cap at Dec > -10 deg, plus an equatorial strip in the south Galactic cap); check the "
                "coverage map at https://sundog.stsci.edu or choose a position inside it"
            ),
            header_names=("FIRST",),
            reference="Becker, White & Helfand (1995); Helfand, White & Becker (2015)",
        ),
        Survey(
            key="nvss",
            name="NVSS",
            title="NRAO VLA Sky Survey (1.4 GHz)",
            frequency_ghz=1.4,
            pixel_scale_arcsec=15.0,  # SkyView's NVSS images (and the FRDEEP NVSS cutouts)
            beam_fwhm_arcsec=45.0,
            skyview_survey="NVSS",
            dec_min_deg=-40.0,  # the whole sky north of J2000 Dec -40 deg
            noise_jy_per_beam=4.5e-4,  # ~0.45 mJy/beam
            footprint="NVSS covers the whole sky north of Dec -40 deg",
            header_names=("NVSS",),
            reference="Condon et al. (1998)",
        ),
        Survey(
            key="vlass",
            name="VLASS",
            title="VLA Sky Survey, Quick-Look images (3 GHz)",
            frequency_ghz=3.0,  # 2-4 GHz band
            pixel_scale_arcsec=1.0,  # Quick-Look images (and the cutouts in shared/data/vlass)
            # ~2.5" at the design resolution; Quick-Look beams are elongated at low declination
            # (2.3"-5.3" BMAJ in the shared/data/vlass headers): every Quick-Look header has
            # BMAJ/BMIN, which win.
            beam_fwhm_arcsec=2.5,
            # Not served by NASA SkyView as far as we know (astroquery's list of SkyView surveys
            # has no VLASS); VLASS cutouts come from CIRADA / CADC, which this client does not speak.
            skyview_survey=None,
            dec_min_deg=-40.0,  # the sky north of Dec -40 deg
            noise_jy_per_beam=1.2e-4,  # ~0.12 mJy/beam per epoch (Quick-Look: 0.1-0.2 in practice)
            footprint="VLASS covers the whole sky north of Dec -40 deg",
            header_names=("VLASS",),
            reference="Lacy et al. (2020), PASP 132, 035001; shared/data/vlass headers",
        ),
        Survey(
            key="emu",
            name="EMU",
            title="ASKAP EMU, Evolutionary Map of the Universe (944 MHz)",
            frequency_ghz=0.944,  # 800-1088 MHz band, centre 943.5 MHz
            pixel_scale_arcsec=2.0,  # the pilot and main-survey images' pixel
            # Images are convolved to a common 15" circular beam in the main survey (pilot: 18" x 11",
            # Norris et al. 2021); headers carry BMAJ/BMIN, which win.
            beam_fwhm_arcsec=15.0,
            skyview_survey=None,  # served by CASDA, not by NASA SkyView
            # Uncertain: the planned survey covers the sky south of Dec +30 deg (Norris et al. 2011);
            # the main survey as scheduled reaches only about +5 deg (Hopkins et al. 2025). The
            # generous guard is used.
            dec_max_deg=30.0,
            noise_jy_per_beam=3.0e-5,  # ~25-30 uJy/beam (pilot and main survey)
            footprint="EMU covers the southern sky (planned: south of Dec +30 deg)",
            header_names=("EMU",),
            reference="Norris et al. (2011, 2021), Hopkins et al. (2025); values approximate",
        ),
    )
}
DEFAULT_SURVEY = "first"


def survey(key: str | Survey | None = None) -> Survey:
    """The profile of a survey key (case-insensitive; ``None``: the default, FIRST)."""
    if isinstance(key, Survey):
        return key
    if key is None:
        key = DEFAULT_SURVEY
    found = SURVEYS.get(str(key).strip().lower())
    if found is None:
        raise UnknownSurveyError(f"unknown survey {key!r}; known surveys: {', '.join(SURVEYS)}.")
    return found


def header_beam_arcsec(header: Mapping) -> float | None:
    """The circular beam FWHM (arcsec) of a header's ``BMAJ``/``BMIN`` (degrees), or ``None``.

    The circle of the same area as the elliptical beam: sqrt(BMAJ x BMIN). A header with only
    ``BMAJ`` gives ``BMAJ``; a value that is missing, not positive or above 1 deg is ignored.
    """
    axes = []
    for keyword in ("BMAJ", "BMIN"):
        try:
            value = float(header.get(keyword))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if math.isfinite(value) and 0.0 < value < 1.0:
            axes.append(value * 3600.0)
    if not axes:
        return None
    return math.sqrt(axes[0] * axes[-1])


def infer_survey(header: Mapping | None, pixel_scale_arcsec: float | None = None) -> Survey | None:
    """The survey an image comes from, by name in its header or else by its pixel scale; ``None`` if neither."""
    if header is not None:
        text = " ".join(str(header.get(keyword, "") or "") for keyword in HEADER_NAME_KEYS).upper()
        for profile in SURVEYS.values():
            if any(re.search(rf"(?<![A-Z]){re.escape(name.upper())}", text) for name in profile.header_names):
                return profile
    if pixel_scale_arcsec is not None and math.isfinite(pixel_scale_arcsec):
        for profile in SURVEYS.values():
            if abs(pixel_scale_arcsec / profile.pixel_scale_arcsec - 1.0) <= PIXEL_SCALE_MATCH:
                return profile
    return None


def image_survey(
    header: Mapping | None, pixel_scale_arcsec: float | None = None, key: str | Survey | None = None
) -> Survey:
    """The profile to process an image with: ``key`` if given, else :func:`infer_survey`, else the default (FIRST)."""
    if key is not None:
        return survey(key)
    return infer_survey(header, pixel_scale_arcsec) or survey(DEFAULT_SURVEY)
