"""Physical measurements of the source at a cutout's centre, from its pixels.

Built on the source that :mod:`pretrain.data.extent` finds (its islands: emission at full
resolution or in the smoothed map, the islands around the centre, linked ones and opposite
lobes), so every figure here describes the same source as its angular extent:

- ``integrated_flux_mjy``: the sum of the background-subtracted pixels of the source's
  islands over the beam's area in pixels, S = sum(I) / (pi BMAJ BMIN / (4 ln 2) / pixel^2),
  in mJy from a Jy/beam image. The islands reach below the full-resolution threshold where
  the smoothed map finds emission, so diffuse lobes count.
- ``peak_flux_mjy``: the brightest pixel of the source (mJy/beam, the catalogues' "peak flux").
- ``n_components``: full-resolution islands of the source (pixels above
  ``detection_sigma``, a peak above ``island_peak_sigma``), plus each diffuse island that only
  the smoothed map detects.
- ``fr_ratio``: the Fanaroff & Riley (1974) measure: the separation of the brightest points
  on the two sides of the core (the host galaxy) over the source's size (the members' largest
  size before the beam correction, so the ratio lies in 0..1). FRI are brightest near the
  core (< 0.5), FRII at their outer edges (> 0.5); how well it separates MiraBest's classes
  is in BENCHMARKS.md (bench/bench_measurements.py).
- ``lobe_flux_ratio``: the flux on the brighter side of the core over that on the fainter
  side. 1 = symmetric.
- ``bending_angle_deg``: the angle at the core between the two sides' flux-weighted
  centres: 180 = straight, smaller = bent (wide-angle and head-tail sources).

The core is the host's position, the image centre (cutouts are centred on the host), moved
to the brightest peak within a beam of it when there is one. The sides are made of the
source's emission above the detection threshold at full resolution (and its diffuse islands)
further than a beam from the core; they are found as follows: the emission's
directions from the core (flux-weighted) are split in two about an axis of their
orientation tensor and refined by a few rounds of two-means on the circle, so a straight
double splits into its lobes and a bent one (even one bent to less than 90 deg) into its arms.

A figure that does not exist for a source is NaN and :attr:`SourceMeasurements.note` says
why (a compact source or a one-sided jet, with emission beyond a beam from the core on one
side only, has no FR ratio, lobe ratio or bending angle; an image not in Jy/beam has no flux).
Pure: numpy and scipy, no torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage
from scipy.spatial.distance import pdist

from pretrain import config
from pretrain.data.extent import EIGHT_CONNECTED, _extent_arcsec, _outline, _source_islands
from pretrain.data.preprocess import estimate_noise
from pretrain.errors import BlankImageError
from pretrain.surveys import Survey, header_beam_arcsec, image_survey

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pretrain.data.fits_io import Cutout

# --- Settings ---------------------------------------------------------------------------
# FIRST's CLEAN beam (Becker, White & Helfand 1995; White et al. 1997, the FIRST catalogue's
# description): 5.4" FWHM circular north of Dec +4.5 deg, elongated north-south further
# south, 6.8" x 5.4" for -2.5 < Dec < +4.5 and 6.4" x 5.4" below -2.5 deg. SkyView's FIRST
# cutouts carry no BMAJ/BMIN; a header that does wins. (The southern values are as the FIRST
# catalogue's readme gives them, not re-checked here: no network. The extent keeps the study's
# 5" for its source mask: config.FIRST_BEAM_ARCSEC.)
FIRST_FLUX_BEAM_NORTH_ARCSEC = (5.4, 5.4)
FIRST_FLUX_BEAM_EQUATORIAL_ARCSEC = (6.8, 5.4)  # -2.5 < Dec < +4.5 deg
FIRST_FLUX_BEAM_SOUTH_ARCSEC = (6.4, 5.4)  # Dec < -2.5 deg
MIN_SIDE_BEAMS = 1.0  # a side of the core counts with at least this many beam areas of pixels
MIN_SIDE_ANGLE_DEG = 30.0  # ... and, split across the emission's main axis, this much between the sides
BRIGHTNESS_UNITS_MJY = {"JY/BEAM": 1000.0, "JY/BM": 1000.0, "MJY/BEAM": 1.0, "MJY/BM": 1.0}

COLUMNS = (  # the catalogue columns (bundle.py), in this order
    "integrated_flux_mjy",
    "peak_flux_mjy",
    "n_components",
    "fr_ratio",
    "lobe_flux_ratio",
    "bending_angle_deg",
    "measurements_note",
)
_LN2 = np.log(2.0)


@dataclass(frozen=True)
class SourceMeasurements:
    """The measurements of one source (see the module docstring); NaN where undefined."""

    angular_extent_arcsec: float
    integrated_flux_mjy: float
    peak_flux_mjy: float
    n_components: float  # a count; NaN for a blank image
    fr_ratio: float
    lobe_flux_ratio: float
    bending_angle_deg: float
    note: str = ""  # why a figure is NaN ("" when all are defined)

    def columns(self) -> dict[str, float | str]:
        """The catalogue columns (:data:`COLUMNS`); the extent is the bundle's own column."""
        values = asdict(self)
        values["measurements_note"] = values.pop("note")
        values.pop("angular_extent_arcsec")
        return values


def beam_area_px(beam_arcsec: tuple[float, float], pixel_scale_arcsec: float) -> float:
    """Area of a Gaussian beam (FWHM major, minor in arcsec) in pixels: pi a b / (4 ln 2) / pixel^2."""
    major, minor = beam_arcsec
    return float(np.pi * major * minor / (4.0 * _LN2) / pixel_scale_arcsec**2)


def flux_beam_arcsec(header: Mapping | None, profile: Survey, dec_deg: float | None = None) -> tuple[float, float]:
    """(BMAJ, BMIN) FWHM in arcsec for flux densities: the header's, else FIRST's by declination
    (:data:`FIRST_FLUX_BEAM_NORTH_ARCSEC` ...), else the survey profile's circle."""
    if header is not None and header_beam_arcsec(header) is not None:
        axes = [float(header[k]) * 3600.0 for k in ("BMAJ", "BMIN") if _positive_degrees(header.get(k))]
        return (axes[0], axes[-1])
    if profile.key == "first" and dec_deg is not None and np.isfinite(dec_deg):
        if dec_deg < -2.5:
            return FIRST_FLUX_BEAM_SOUTH_ARCSEC
        if dec_deg < 4.5:
            return FIRST_FLUX_BEAM_EQUATORIAL_ARCSEC
        return FIRST_FLUX_BEAM_NORTH_ARCSEC
    if profile.key == "first":
        return FIRST_FLUX_BEAM_NORTH_ARCSEC
    return (profile.beam_fwhm_arcsec, profile.beam_fwhm_arcsec)


def _positive_degrees(value: object) -> bool:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return bool(np.isfinite(number) and 0.0 < number < 1.0)


def brightness_to_mjy(header: Mapping | None) -> float | None:
    """Factor from the image's pixel unit to mJy/beam (BUNIT); None when it is not a brightness
    per beam. A header without BUNIT is taken as Jy/beam (FIRST, NVSS and VLASS images are)."""
    if header is None:
        return 1000.0
    unit = str(header.get("BUNIT", "") or "").strip().upper().replace(" ", "")
    if not unit:
        return 1000.0
    return BRIGHTNESS_UNITS_MJY.get(unit)


def measure_source(
    image: np.ndarray,
    pixel_scale_arcsec: float,
    *,
    beam_fwhm_arcsec: float = config.FIRST_BEAM_ARCSEC,
    flux_beam_arcsec: tuple[float, float] | None = FIRST_FLUX_BEAM_NORTH_ARCSEC,
    to_mjy_per_beam: float | None = 1000.0,
    already_clipped: bool = False,
) -> SourceMeasurements:
    """Measure the source at the centre of ``image`` (flux units per beam, NaN allowed).

    ``beam_fwhm_arcsec``: the beam of the source mask, as :func:`~pretrain.data.extent.angular_extent_arcsec`
    takes it; ``flux_beam_arcsec``: (BMAJ, BMIN) of the flux densities; ``to_mjy_per_beam``:
    the factor from a pixel's unit to mJy/beam (1000 for Jy/beam). ``None`` for either, or an
    ``already_clipped`` image (8-bit, scaled), gives no fluxes; the shape figures still come.
    """
    found = _source_islands(
        image,
        pixel_scale_arcsec,
        already_clipped=already_clipped,
        beam_fwhm_arcsec=beam_fwhm_arcsec,
        detection_sigma=config.EXTENT_DETECTION_SIGMA,
        island_peak_sigma=config.EXTENT_ISLAND_PEAK_SIGMA,
        min_island_px=config.EXTENT_MIN_ISLAND_PX,
        seed_radius_arcsec=config.EXTENT_SEED_RADIUS_ARCSEC,
        link_arcsec=config.EXTENT_LINK_ARCSEC,
        relative_peak=config.EXTENT_RELATIVE_PEAK,
        smoothed_resolution_arcsec=config.EXTENT_SMOOTHED_RESOLUTION_ARCSEC,
        pair_tolerance_deg=config.EXTENT_PAIR_TOLERANCE_DEG,
        pair_arm_ratio=config.EXTENT_PAIR_ARM_RATIO,
        max_arm_arcsec=config.EXTENT_MAX_ARM_ARCSEC,
    )
    if found is None:
        nan = float("nan")
        return SourceMeasurements(nan, nan, nan, nan, nan, nan, nan, "no significant emission")
    signal, members, beam_px = found
    notes: list[str] = []
    extent = _extent_arcsec(members, beam_px, pixel_scale_arcsec, config.EXTENT_DETECTION_SIGMA)
    mask = np.zeros(signal.shape, dtype=bool)
    for member in members:
        rows, cols = member.pixels.astype(np.int64).T
        mask[rows, cols] = True

    integrated, peak = _fluxes(image, mask, pixel_scale_arcsec, flux_beam_arcsec, to_mjy_per_beam, already_clipped)
    if not np.isfinite(integrated):
        notes.append("fluxes: the image is not in a brightness per beam")

    n_components = _components(signal, members)
    outline = np.concatenate([_outline(m.sharp) for m in members])
    size_px = float(pdist(outline).max()) + 1.0 if len(outline) > 1 else 1.0  # before the beam correction
    # What the sides are made of: full-resolution emission and the diffuse islands (a compact
    # source's faint wings, which the smoothed map adds to its mask, are not lobes).
    significant = mask & (signal >= config.EXTENT_DETECTION_SIGMA)
    for member in members:
        if not member.detected:
            rows, cols = member.pixels.astype(np.int64).T
            significant[rows, cols] = True
    core = _core(signal, mask, beam_px)
    fr_ratio, lobe_ratio, bending = _sides(signal, significant, core, beam_px, size_px)
    if not np.isfinite(fr_ratio):
        notes.append("fr_ratio, lobe_flux_ratio, bending_angle_deg: no emission on two sides of the core")
    return SourceMeasurements(
        angular_extent_arcsec=extent,
        integrated_flux_mjy=integrated,
        peak_flux_mjy=peak,
        n_components=float(n_components),
        fr_ratio=fr_ratio,
        lobe_flux_ratio=lobe_ratio,
        bending_angle_deg=bending,
        note="; ".join(notes),
    )


def cutout_measurements(cutout: Cutout, survey: Survey | str | None = None) -> SourceMeasurements:
    """:func:`measure_source` of a read cutout: the source mask with the beam the extent uses
    (header, else survey profile), fluxes with :func:`flux_beam_arcsec` and the header's BUNIT.
    Its ``angular_extent_arcsec`` equals :func:`~pretrain.data.extent.cutout_extent_arcsec`'s."""
    profile = image_survey(cutout.header, cutout.pixel_scale_arcsec, survey)
    return measure_source(
        cutout.data,
        cutout.pixel_scale_arcsec,
        beam_fwhm_arcsec=profile.beam_arcsec(cutout.header),
        flux_beam_arcsec=flux_beam_arcsec(cutout.header, profile, float(cutout.centre.dec.deg)),
        to_mjy_per_beam=brightness_to_mjy(cutout.header),
    )


def _fluxes(image, mask, pixel_scale_arcsec, beam, to_mjy, already_clipped) -> tuple[float, float]:
    if already_clipped or beam is None or to_mjy is None:
        return float("nan"), float("nan")
    pixels = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    try:
        background = estimate_noise(pixels.astype(np.float32)).background
    except BlankImageError:
        return float("nan"), float("nan")
    values = pixels[mask] - background
    integrated = float(values.sum()) / beam_area_px(beam, pixel_scale_arcsec) * to_mjy
    return integrated, float(values.max()) * to_mjy


def _components(signal: np.ndarray, members) -> int:
    """Full-resolution islands of the source with a significant peak, plus diffuse-only islands."""
    count = 0
    sharp = np.zeros(signal.shape, dtype=bool)
    for member in members:
        if not member.detected:
            count += 1  # found only in the smoothed map: one diffuse component
            continue
        rows, cols = member.sharp.astype(np.int64).T
        sharp[rows, cols] = True
    sharp &= signal >= config.EXTENT_DETECTION_SIGMA
    labels, n = ndimage.label(sharp, structure=EIGHT_CONNECTED)
    if n:
        peaks = ndimage.maximum(signal, labels, np.arange(1, n + 1))
        count += int(np.sum(peaks >= config.EXTENT_ISLAND_PEAK_SIGMA))
    return max(count, 1)


def _core(signal: np.ndarray, mask: np.ndarray, beam_px: float) -> np.ndarray:
    """The host's position: the image centre, or the brightest source pixel within a beam of it."""
    centre = (np.array(signal.shape, dtype=np.float64) - 1.0) / 2.0
    rows, cols = np.nonzero(mask)
    near = np.hypot(rows - centre[0], cols - centre[1]) <= beam_px
    if not near.any():
        return centre
    values = signal[rows[near], cols[near]]
    best = int(np.argmax(values))
    if values[best] < config.EXTENT_ISLAND_PEAK_SIGMA:
        return centre
    return np.array([rows[near][best], cols[near][best]], dtype=np.float64)


def _sides(
    signal: np.ndarray, mask: np.ndarray, core: np.ndarray, beam_px: float, size_px: float
) -> tuple[float, float, float]:
    """(FR ratio, lobe flux ratio, bending angle in degrees) from the emission in ``mask``
    further than a beam from the core, split into its two sides; NaNs when it lies on one side only.

    S/N is flux over a constant, so ratios and directions are the same as in flux. The split
    weighs directions by the positive S/N; the sides' fluxes and centres sum the S/N as it is,
    so the noise in a faint lobe's pixels averages out instead of adding up."""
    nan = float("nan")
    rows, cols = np.nonzero(mask)
    offsets = np.column_stack([rows, cols]).astype(np.float64) - core
    distance = np.hypot(offsets[:, 0], offsets[:, 1])
    outer = distance > beam_px
    if not (outer & (signal[rows, cols] > 0)).any():
        return nan, nan, nan
    offsets, distance, values = offsets[outer], distance[outer], signal[rows[outer], cols[outer]].astype(np.float64)
    flux = np.clip(values, 0.0, None)
    directions = offsets / distance[:, None]
    min_pixels = MIN_SIDE_BEAMS * np.pi * beam_px**2 / (4.0 * _LN2)
    tensor = (directions * flux[:, None]).T @ directions
    _, axes = np.linalg.eigh(tensor)  # ascending: axes[:, 1] is the main axis
    side = None
    for axis, check_angle in ((axes[:, 1], False), (axes[:, 0], True)):
        trial = directions @ axis >= 0
        if min(trial.sum(), (~trial).sum()) < min_pixels:
            continue
        trial = _two_means(directions, flux, trial)
        if min(trial.sum(), (~trial).sum()) < min_pixels:
            continue
        if check_angle and _angle_deg(directions, flux, trial) < MIN_SIDE_ANGLE_DEG:
            continue  # a one-sided jet cut along its length is not two lobes
        side = trial
        break
    if side is None:
        return nan, nan, nan
    # Fanaroff & Riley: the brightest regions on opposite sides of the host, apart over the size.
    brightest = [offsets[s][np.argmax(flux[s])] for s in (side, ~side)]
    fr_ratio = min(float(np.hypot(*(brightest[0] - brightest[1]))) / size_px, 1.0)
    fluxes = sorted([float(values[side].sum()), float(values[~side].sum())])
    if fluxes[0] <= 0:
        return nan, nan, nan
    centres = [(offsets[s] * values[s, None]).sum(axis=0) / values[s].sum() for s in (side, ~side)]
    cosine = np.dot(*centres) / (np.linalg.norm(centres[0]) * np.linalg.norm(centres[1]))
    return fr_ratio, fluxes[1] / fluxes[0], float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))


def _two_means(directions: np.ndarray, flux: np.ndarray, side: np.ndarray, rounds: int = 10) -> np.ndarray:
    """Refine a split of directions into two groups: each direction joins the nearer mean direction."""
    for _ in range(rounds):
        if side.all() or not side.any():
            return side
        first = (directions[side] * flux[side, None]).sum(axis=0)
        second = (directions[~side] * flux[~side, None]).sum(axis=0)
        updated = directions @ (first / np.linalg.norm(first)) >= directions @ (second / np.linalg.norm(second))
        if np.array_equal(updated, side):
            break
        side = updated
    return side


def _angle_deg(directions: np.ndarray, flux: np.ndarray, side: np.ndarray) -> float:
    first = (directions[side] * flux[side, None]).sum(axis=0)
    second = (directions[~side] * flux[~side, None]).sum(axis=0)
    cosine = np.dot(first, second) / (np.linalg.norm(first) * np.linalg.norm(second))
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))
