"""Angular extent (largest angular size, LAS) of a radio source, estimated from pixels.

Emission is every pixel above ``detection_sigma`` x the robust noise. Connected islands of
emission count when they are significant (peak above ``island_peak_sigma``, at least about
a beam of pixels). The source is the island nearest the image centre (cutouts are centred
on their source) together with every significant island linked to it by a chain of gaps
no wider than ``link_arcsec`` (a lobe separated from its core). The LAS is the largest
distance between two pixels of the source, in arcsec.
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
    detection_sigma: float = config.EXTENT_DETECTION_SIGMA,
    island_peak_sigma: float = config.EXTENT_ISLAND_PEAK_SIGMA,
    min_island_px: int = config.EXTENT_MIN_ISLAND_PX,
    link_arcsec: float = config.EXTENT_LINK_ARCSEC,
    already_clipped: bool = False,
) -> float:
    """Largest angular size (arcsec) of the source at the centre of ``image``.

    ``image`` is a survey image in flux units (NaN allowed), or, with
    ``already_clipped=True``, an image whose background is already zero (a preprocessed
    uint8 image): then every non-zero pixel is emission and islands need no peak test.
    Returns ``nan`` when there is no significant emission.
    """
    image = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if already_clipped:
        emission = image > 0
        peak_threshold = 0.0
        signal = image
    else:
        try:
            noise = estimate_noise(image)
        except BlankImageError:
            return float("nan")
        signal = (image - noise.background) / noise.sigma
        emission = signal >= detection_sigma
        peak_threshold = island_peak_sigma
    labels, n_islands = ndimage.label(emission, structure=EIGHT_CONNECTED)
    if n_islands == 0:
        return float("nan")
    index = np.arange(1, n_islands + 1)
    sizes = ndimage.sum_labels(emission, labels, index)
    peaks = ndimage.maximum(signal, labels, index)
    significant = index[(sizes >= min_island_px) & (peaks >= peak_threshold)]
    if significant.size == 0:
        return float("nan")

    islands = {i: np.argwhere(labels == i).astype(np.float32) for i in significant}
    source = _islands_linked_to_centre(islands, image.shape, link_arcsec / pixel_scale_arcsec)
    points = np.concatenate([islands[i] for i in source])
    return _largest_distance_px(points) * pixel_scale_arcsec


def _islands_linked_to_centre(islands: dict[int, np.ndarray], shape, link_px: float) -> list[int]:
    centre = (np.array(shape, dtype=np.float32) - 1) / 2.0
    nearest = min(islands, key=lambda i: float(np.min(np.sum((islands[i] - centre) ** 2, axis=1))))
    members, frontier = [nearest], [nearest]
    remaining = set(islands) - {nearest}
    while frontier and remaining:
        current = frontier.pop()
        for other in list(remaining):
            if np.min(cdist(_outline(islands[current]), _outline(islands[other]))) <= link_px:
                members.append(other)
                frontier.append(other)
                remaining.discard(other)
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
