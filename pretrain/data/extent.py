"""Angular extent (largest angular size, LAS) of a radio source, estimated from pixels.

A catalogued LAS of a radio galaxy is the distance between the outer edges of the
components that belong to it: core, jets and the two lobes, which can lie far apart with
nothing detected between them. The hard part is deciding which emission in the cutout
belongs to the source at its centre, so the method is mostly about that:

1. Emission: pixels above ``detection_sigma`` x the robust noise, and also pixels above it
   in a copy of the S/N map smoothed to ``smoothed_resolution_arcsec`` (about a lobe's
   size) and normalised by its own noise. Smoothing raises the surface-brightness
   sensitivity, so faint diffuse lobes and plumes that break into noise-sized specks at
   full resolution become one island, and gaps inside a source are bridged. A map already
   at that resolution (NVSS) is not smoothed. Islands count when significant: a peak above
   ``island_peak_sigma`` at full resolution (with about a beam of pixels) or in the
   smoothed map. With no island significant at full resolution the image is blank.
2. The source: every island reaching within ``seed_radius_arcsec`` of the image centre
   (cutouts are centred on the host galaxy), plus islands linked to them by gaps no wider
   than ``link_arcsec``. Islands fainter than ``relative_peak`` x the brightest member are
   ignored: a faint neighbour or an imaging artefact must not set the size of a bright
   source.
3. Lobes further out: two lobes of a double lie on opposite sides of the host. An island
   within ``max_arm_arcsec`` of the centre joins the source when another island (a
   candidate or a member) lies on the opposite side - directions within
   ``pair_tolerance_deg`` of opposite (bent sources), distances within a factor
   ``pair_arm_ratio`` (asymmetric ones), as catalogues that group survey components into
   double sources do. An unrelated neighbour rarely has such a counterpart; the arm limit
   keeps chance pairs of distant neighbours out.
4. The LAS is the largest distance between two source pixels (the full-resolution
   contour where an island has one), less the broadening of the detection contour by the
   beam: the ``detection_sigma`` contour of a beam-convolved source of peak P lies
   0.5 FWHM sqrt(ln(P / detection_sigma) / ln 2) outside its emission on each side.

The beam is ``beam_fwhm_arcsec`` (FIRST's by default) but at least 2.5 pixels, as survey
images are sampled (NVSS: 45" beam on 15" pixels), so a coarser image without a stated beam
is not treated as having FIRST's resolution. :func:`cutout_extent_arcsec` measures a read
cutout with its own beam: the header's ``BMAJ``/``BMIN``, else its survey's profile
(``pretrain/surveys.py``). An already-clipped image (``already_clipped``)
has no noise left to smooth: step 1 then uses the full-resolution islands only.

The defaults (pretrain/config.py) were chosen on the even-indexed half of the sorted MiraBest
files, the odd half kept for checking; the rank correlation with the catalogued LAS is in
BENCHMARKS.md (bench/bench_extent.py). The largest remaining misses are giant sources whose
catalogued size comes from diffuse emission that FIRST does not detect even smoothed (only
the core is seen), and compact sources with an unrelated neighbour within the seed radius.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import cdist, pdist

from pretrain import config
from pretrain.data.preprocess import estimate_noise
from pretrain.errors import BlankImageError
from pretrain.surveys import Survey, image_survey

if TYPE_CHECKING:
    from pretrain.data.fits_io import Cutout

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
MIN_PIXELS_PER_BEAM = 2.5  # survey images sample the beam FWHM with 2.5-4 pixels (FIRST 2.8, NVSS 3)
_GAUSSIAN_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


@dataclass(eq=False)  # islands compare by identity
class _Island:
    pixels: np.ndarray  # (n, 2) float32 row, column of every pixel of the island
    sharp: np.ndarray  # its full-resolution patches of a beam or more (all pixels if it has none)
    peak: float  # full-resolution peak S/N
    smoothed_peak: float  # peak S/N in the smoothed map
    detected: bool  # significant at full resolution
    centroid: np.ndarray  # S/N-weighted centre (row, column)
    distance_px: float  # from the image centre to its nearest pixel

    @functools.cached_property
    def outline(self) -> np.ndarray:
        """Its convex-hull pixels (gaps to other islands are measured between outlines)."""
        return _outline(self.pixels)

    @property
    def brightness(self) -> float:
        """A diffuse lobe stands out in the smoothed map, a compact component at full resolution."""
        return max(self.peak, self.smoothed_peak)


def angular_extent_arcsec(
    image: np.ndarray,
    pixel_scale_arcsec: float = config.MODEL_PIXEL_SCALE_ARCSEC,
    *,
    already_clipped: bool = False,
    beam_fwhm_arcsec: float = config.FIRST_BEAM_ARCSEC,
    detection_sigma: float = config.EXTENT_DETECTION_SIGMA,
    island_peak_sigma: float = config.EXTENT_ISLAND_PEAK_SIGMA,
    min_island_px: int = config.EXTENT_MIN_ISLAND_PX,
    seed_radius_arcsec: float = config.EXTENT_SEED_RADIUS_ARCSEC,
    link_arcsec: float = config.EXTENT_LINK_ARCSEC,
    relative_peak: float = config.EXTENT_RELATIVE_PEAK,
    smoothed_resolution_arcsec: float = config.EXTENT_SMOOTHED_RESOLUTION_ARCSEC,
    pair_tolerance_deg: float = config.EXTENT_PAIR_TOLERANCE_DEG,
    pair_arm_ratio: float = config.EXTENT_PAIR_ARM_RATIO,
    max_arm_arcsec: float = config.EXTENT_MAX_ARM_ARCSEC,
) -> float:
    """Largest angular size (arcsec) of the source at the centre of ``image``.

    ``image`` is a survey image in flux units (NaN allowed) or, with ``already_clipped=True``,
    an image whose background was already set to zero below ``detection_sigma`` (a
    preprocessed 8-bit image): its faintest non-zero level is then taken as that threshold.
    ``min_island_px`` is in FIRST pixels (1.8"); it is scaled with the beam's area in pixels.
    Returns ``nan`` when there is no significant emission.
    """
    signal = _signal_to_noise(image, already_clipped, detection_sigma)
    if signal is None:
        return float("nan")
    beam_px = max(beam_fwhm_arcsec / pixel_scale_arcsec, MIN_PIXELS_PER_BEAM)
    first_beam_px = max(config.FIRST_BEAM_ARCSEC / config.FIRST_PIXEL_SCALE_ARCSEC, MIN_PIXELS_PER_BEAM)
    min_px = max(1, round(min_island_px * (beam_px / first_beam_px) ** 2))
    smoothed = signal
    kernel_px = np.sqrt(max((smoothed_resolution_arcsec / pixel_scale_arcsec) ** 2 - beam_px**2, 0.0))
    if not already_clipped and kernel_px >= 1.0:  # a map already at that resolution is not smoothed
        smoothed = _smoothed_signal_to_noise(signal, kernel_px)
    islands = _islands(signal, smoothed, detection_sigma, island_peak_sigma, min_px)
    if not any(island.detected for island in islands):
        return float("nan")

    members, candidates = _central_islands(islands, seed_radius_arcsec / pixel_scale_arcsec, relative_peak)
    _link(members, candidates, link_arcsec / pixel_scale_arcsec)
    centre = (np.array(signal.shape, dtype=np.float32) - 1) / 2.0
    _add_opposite_lobes(
        members,
        candidates,
        centre,
        beam_px,
        max_arm_arcsec / pixel_scale_arcsec,
        pair_tolerance_deg,
        pair_arm_ratio,
        island_peak_sigma,
        link_arcsec / pixel_scale_arcsec,
    )

    extent = _largest_distance_px(np.concatenate([_outline(m.sharp) for m in members])) * pixel_scale_arcsec
    typical_peak = float(np.median([m.peak for m in members]))
    beam_arcsec = beam_px * pixel_scale_arcsec
    broadening = beam_arcsec * np.sqrt(np.log(max(typical_peak, detection_sigma) / detection_sigma) / np.log(2))
    return float(max(extent - broadening, pixel_scale_arcsec))


def cutout_extent_arcsec(cutout: Cutout, survey: Survey | str | None = None) -> float:
    """:func:`angular_extent_arcsec` of a read cutout, with the beam of its header or survey.

    ``survey``: a profile or key of ``pretrain.surveys``; ``None``: the survey its header or
    pixel scale names, else FIRST. The header's ``BMAJ``/``BMIN`` win over the profile's beam.
    """
    profile = image_survey(cutout.header, cutout.pixel_scale_arcsec, survey)
    return angular_extent_arcsec(
        cutout.data, cutout.pixel_scale_arcsec, beam_fwhm_arcsec=profile.beam_arcsec(cutout.header)
    )


def _signal_to_noise(image: np.ndarray, already_clipped: bool, detection_sigma: float) -> np.ndarray | None:
    image = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if already_clipped:
        positive = image[image > 0]
        if positive.size == 0:
            return None
        # The clipping threshold (detection_sigma x noise) is the faintest level kept.
        return image / (float(positive.min()) / detection_sigma)
    try:
        noise = estimate_noise(image)
    except BlankImageError:
        return None
    return (image - noise.background) / noise.sigma


def _smoothed_signal_to_noise(signal: np.ndarray, fwhm_px: float) -> np.ndarray:
    """The S/N map smoothed by a Gaussian of ``fwhm_px``, in units of its own (lower) noise."""
    smoothed = ndimage.gaussian_filter(signal, fwhm_px / _GAUSSIAN_FWHM_PER_SIGMA, mode="constant")
    try:
        noise = estimate_noise(smoothed)
    except BlankImageError:
        return signal
    return (smoothed - noise.background) / noise.sigma


def _islands(signal, smoothed, detection_sigma, island_peak_sigma, min_px) -> list[_Island]:
    """Connected regions above the threshold in either map, those that are significant."""
    sharp = signal >= detection_sigma
    emission = sharp | (smoothed >= detection_sigma)
    # Full-resolution outlines come from sharp patches of about a beam or more: a stray
    # noise pixel above the threshold inside a smoothed island must not set the size.
    sharp_labels, _ = ndimage.label(sharp, structure=EIGHT_CONNECTED)
    solid = sharp & (np.bincount(sharp_labels.ravel())[sharp_labels] >= min_px)
    labels, n_islands = ndimage.label(emission, structure=EIGHT_CONNECTED)
    if n_islands == 0:
        return []
    centre = (np.array(signal.shape, dtype=np.float32) - 1) / 2.0
    islands = []
    # Each island's peaks are taken inside its bounding box: ndimage.maximum(..., labels, index)
    # sorts the whole image for every call, which was a third of a bundle's build time.
    for i, box in enumerate(ndimage.find_objects(labels)):
        inside = labels[box] == i + 1
        island_signal = signal[box][inside]
        is_sharp = solid[box][inside]
        solid_signal = island_signal[is_sharp]
        solid_peak = float(solid_signal.max()) if solid_signal.size else -np.inf
        smoothed_peak = float(smoothed[box][inside].max())
        detected = solid_peak >= island_peak_sigma  # as significant islands always were
        if not (detected or smoothed_peak >= island_peak_sigma):
            continue  # noise: neither sharp nor extended emission stands out
        offset = np.array([box[0].start, box[1].start], dtype=np.float32)
        pixels = np.argwhere(inside).astype(np.float32) + offset
        weights = np.clip(island_signal, 0.0, None) + 1e-6
        islands.append(
            _Island(
                pixels=pixels,
                # A faint lobe found only in the smoothed map keeps its smoothed outline.
                sharp=pixels[is_sharp] if is_sharp.any() else pixels,
                peak=float(island_signal.max()),
                smoothed_peak=smoothed_peak,
                detected=bool(detected),
                centroid=(pixels * weights[:, None]).sum(axis=0) / weights.sum(),
                distance_px=float(np.sqrt(np.min(np.sum((pixels - centre) ** 2, axis=1)))),
            )
        )
    return islands


def _central_islands(islands, seed_radius_px, relative_peak):
    """(members, candidates): the islands around the centre, and the others bright enough to join."""
    members = [isl for isl in islands if isl.distance_px <= seed_radius_px]
    if not any(isl.detected for isl in members):
        members.append(min((isl for isl in islands if isl.detected), key=lambda isl: isl.distance_px))
    floor = relative_peak * max(isl.brightness for isl in members)
    members = [isl for isl in members if isl.brightness >= floor]
    candidates = [isl for isl in islands if isl.brightness >= floor and isl not in members]
    return members, candidates


def _link(members, candidates, link_px, start=None) -> None:
    """Move candidates separated from a member by a gap of at most ``link_px`` into members."""
    frontier = list(members if start is None else start)
    while frontier and candidates and link_px > 0:
        current = frontier.pop().outline
        for other in list(candidates):
            if np.min(cdist(current, other.outline)) <= link_px:
                members.append(other)
                frontier.append(other)
                candidates.remove(other)


def _add_opposite_lobes(
    members, candidates, centre, beam_px, max_arm_px, tolerance_deg, arm_ratio, island_peak_sigma, link_px
) -> None:
    """Add candidates that have a counterpart on the opposite side of the centre (two lobes)."""

    def arm(isl):
        return isl.centroid - centre

    def in_reach(isl):  # away from the core, but not so far that a chance pair is likely
        return beam_px <= float(np.hypot(*arm(isl))) <= max_arm_px

    # A lobe candidate must stand out in the smoothed map: a noise speck is not a lobe.
    lobes = [c for c in candidates if c.smoothed_peak >= island_peak_sigma and in_reach(c)]
    partners = lobes + [m for m in members if in_reach(m)]
    cos_opposite = -np.cos(np.radians(tolerance_deg))
    added = []
    for lobe in lobes:
        a = arm(lobe)
        for other in partners:
            if other is lobe:
                continue
            b = arm(other)
            ra, rb = float(np.hypot(*a)), float(np.hypot(*b))
            if np.dot(a, b) / (ra * rb) <= cos_opposite and max(ra, rb) <= arm_ratio * min(ra, rb):
                added.append(lobe)
                break
    for lobe in added:
        members.append(lobe)
        candidates.remove(lobe)
    _link(members, candidates, link_px, start=added)


def _outline(points: np.ndarray) -> np.ndarray:
    """Hull vertices of a pixel set (all points when too few for a hull): cheap distances."""
    if len(points) < 4:
        return points
    try:
        return points[ConvexHull(points).vertices]
    except QhullError:  # collinear pixels
        return points


def _largest_distance_px(points: np.ndarray) -> float:
    outline = _outline(points)
    if len(outline) < 2:
        return 1.0  # a single pixel: one pixel across
    # +1: distances between pixel centres miss half a pixel at each end.
    return float(pdist(outline).max()) + 1.0
