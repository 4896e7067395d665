"""Angular extent (largest angular size, LAS) of a radio source, estimated from pixels.

1. Emission: pixels above ``detection_sigma`` x the robust noise, grouped into connected
   islands; an island counts when it is significant (peak above ``island_peak_sigma``, at
   least about a beam of pixels).
2. The source: islands reaching within ``seed_radius_arcsec`` of the image centre
   (cutouts are centred on their source), plus islands linked to them by gaps no wider
   than ``link_arcsec`` (a lobe apart from its core). Islands fainter than
   ``relative_peak`` x the brightest member are dropped: a faint unrelated neighbour or an
   imaging artefact should not set the size of a bright source.
3. The LAS is the largest distance between two source pixels, less the broadening of the
   detection contour by the beam: the ``detection_sigma`` contour of a beam-convolved source
   of peak P lies 0.5 FWHM sqrt(ln(P / detection_sigma) / ln 2) outside its emission on
   each side, so bright compact sources would otherwise look several beams wide.

On the 1155 MiraBest cutouts the estimate's Spearman rank correlation with the catalogued
LAS is reported in BENCHMARKS.md (bench/bench_extent.py). The largest outliers are giant
sources whose catalogued size comes from faint diffuse emission that FIRST barely detects.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import cdist, pdist

from pretrain import config
from pretrain.data.preprocess import estimate_noise
from pretrain.errors import BlankImageError

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def angular_extent_arcsec(
    image: np.ndarray,
    pixel_scale_arcsec: float = config.FIRST_PIXEL_SCALE_ARCSEC,
    *,
    already_clipped: bool = False,
    beam_fwhm_arcsec: float = config.FIRST_BEAM_ARCSEC,
    detection_sigma: float = config.EXTENT_DETECTION_SIGMA,
    island_peak_sigma: float = config.EXTENT_ISLAND_PEAK_SIGMA,
    min_island_px: int = config.EXTENT_MIN_ISLAND_PX,
    seed_radius_arcsec: float = config.EXTENT_SEED_RADIUS_ARCSEC,
    link_arcsec: float = config.EXTENT_LINK_ARCSEC,
    relative_peak: float = config.EXTENT_RELATIVE_PEAK,
) -> float:
    """Largest angular size (arcsec) of the source at the centre of ``image``.

    ``image`` is a survey image in flux units (NaN allowed) or, with ``already_clipped=True``,
    an image whose background was already set to zero below ``detection_sigma`` (a
    preprocessed 8-bit image): its faintest non-zero level is then taken as that threshold.
    Returns ``nan`` when there is no significant emission.
    """
    signal = _signal_to_noise(image, already_clipped, detection_sigma)
    if signal is None:
        return float("nan")
    emission = signal >= detection_sigma
    labels, n_islands = ndimage.label(emission, structure=EIGHT_CONNECTED)
    if n_islands == 0:
        return float("nan")
    index = np.arange(1, n_islands + 1)
    sizes = ndimage.sum_labels(emission, labels, index)
    peaks = dict(zip(index, ndimage.maximum(signal, labels, index)))
    min_px = max(1, int(round(min_island_px * (config.FIRST_PIXEL_SCALE_ARCSEC / pixel_scale_arcsec) ** 2)))
    significant = [i for i, n in zip(index, sizes) if n >= min_px and peaks[i] >= island_peak_sigma]
    if not significant:
        return float("nan")

    islands = {i: np.argwhere(labels == i).astype(np.float32) for i in significant}
    members = _source_islands(islands, peaks, signal.shape, seed_radius_arcsec / pixel_scale_arcsec,
                              link_arcsec / pixel_scale_arcsec, relative_peak)
    points = np.concatenate([islands[i] for i in members])
    extent = _largest_distance_px(points) * pixel_scale_arcsec
    typical_peak = float(np.median([peaks[i] for i in members]))
    broadening = beam_fwhm_arcsec * np.sqrt(np.log(max(typical_peak, detection_sigma) / detection_sigma) / np.log(2))
    return float(max(extent - broadening, pixel_scale_arcsec))


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


def _source_islands(islands, peaks, shape, seed_radius_px, link_px, relative_peak) -> list[int]:
    centre = (np.array(shape, dtype=np.float32) - 1) / 2.0
    distance = {i: float(np.sqrt(np.min(np.sum((p - centre) ** 2, axis=1)))) for i, p in islands.items()}
    members = [i for i in islands if distance[i] <= seed_radius_px] or [min(islands, key=distance.get)]
    floor = relative_peak * max(peaks[i] for i in members)
    members = [i for i in members if peaks[i] >= floor]
    candidates = [i for i in islands if i not in members and peaks[i] >= floor]
    frontier = list(members)
    while frontier and candidates and link_px > 0:
        current = _outline(islands[frontier.pop()])
        for other in list(candidates):
            if np.min(cdist(current, _outline(islands[other]))) <= link_px:
                members.append(other)
                frontier.append(other)
                candidates.remove(other)
    return members


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
