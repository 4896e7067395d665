"""Nearest-neighbour search for the app: cosine similarity in the embedding space, distance on a map.

:class:`CosineIndex` is the app's face of a space's :class:`pretrain.neighbour_index.NeighbourIndex`
(exact for small spaces, FAISS IVF above ``INDEX_EXACT_MAX_VECTORS``): every neighbour list
the app shows comes from it. Exact top-k is one matrix-vector product over the
L2-normalised vectors and ``np.argpartition`` (linear time; only the k best are sorted).

For a catalogue-only space (a published map without embeddings) :class:`MapIndex` gives the
nearest sources by Euclidean distance on the 2-D map, with the same interface.
"""

from __future__ import annotations

import math

import numpy as np

from pretrain.neighbour_index import IndexSettings, NeighbourIndex, build_index, top_k_indices

__all__ = ["CosineIndex", "MapIndex", "format_similarity", "top_k_indices"]


def format_similarity(value: float, decimals: int = 3, most: int = 6) -> str:
    """A cosine similarity to ``decimals`` places, or more (up to ``most``) close to 1: enough
    to show the first significant digit of 1 - cosine. A representation whose vectors are
    nearly parallel (an early training snapshot) would otherwise read as a list of "1.000"."""
    value = float(value)
    gap = 1.0 - value
    places = decimals if gap <= 0 else max(decimals, min(most, math.floor(-math.log10(gap)) + 1))
    return f"{value:.{places}f}"


class CosineIndex:
    """Cosine-similarity search over a fixed set of vectors (sklearn-like ``fit``/``query``).

    >>> index = CosineIndex().fit(embeddings)      # exact or approximate by size
    >>> idx, sim = index.query(embeddings[0], k=10, exclude=[0])

    ``CosineIndex(neighbour_index=space.neighbour_index)`` wraps a space's stored index.
    """

    metric_name = "cosine similarity"
    higher_is_closer = True

    def __init__(self, unit_vectors: np.ndarray | None = None, neighbour_index: NeighbourIndex | None = None):
        if neighbour_index is None:
            vectors = np.zeros((0, 1), np.float32) if unit_vectors is None else unit_vectors
            neighbour_index = build_index(vectors)
        self.neighbour_index = neighbour_index

    def fit(self, vectors: np.ndarray, exact: bool = False) -> CosineIndex:
        """Index ``vectors``: exact or approximate by their number (``pretrain.neighbour_index``), or
        exact whatever their number (``exact``: a reference to measure the index against)."""
        self.neighbour_index = build_index(vectors, IndexSettings(exact_max_vectors=len(vectors)) if exact else None)
        return self

    @property
    def unit_vectors_(self) -> np.ndarray:
        return self.neighbour_index.unit_vectors

    @property
    def exact(self) -> bool:
        return self.neighbour_index.exact

    def __len__(self) -> int:
        return len(self.neighbour_index)

    def similarities(self, vector: np.ndarray, rows=None) -> np.ndarray:
        """Cosine similarity of ``vector`` to the stored vectors ``rows`` (default: every one, a full pass)."""
        return self.neighbour_index.similarities(vector, rows)

    def query(self, vector: np.ndarray, k: int, exclude=None) -> tuple[np.ndarray, np.ndarray]:
        """``(indices, similarities)`` of the ``k`` most similar stored vectors, best first."""
        return self.neighbour_index.query(vector, k, exclude)

    def query_index(self, index: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Neighbours of stored vector ``index`` (itself excluded)."""
        return self.neighbour_index.query_row(index, k)


class MapIndex:
    """Exact nearest neighbours by Euclidean distance on 2-D map coordinates.

    Scores are *negative* distances so that, as for :class:`CosineIndex`, higher is closer;
    :meth:`query` returns the distances themselves.
    """

    metric_name = "distance on the map"
    higher_is_closer = False

    def __init__(self) -> None:
        self.points_: np.ndarray = np.zeros((0, 2))

    def fit(self, xy: np.ndarray) -> MapIndex:
        self.points_ = np.ascontiguousarray(np.asarray(xy, dtype=np.float64).reshape(-1, 2))
        return self

    def __len__(self) -> int:
        return len(self.points_)

    def query(self, xy, k: int, exclude=None) -> tuple[np.ndarray, np.ndarray]:
        """``(indices, distances)`` of the ``k`` nearest map points, nearest first."""
        delta = self.points_ - np.asarray(xy, dtype=np.float64).reshape(1, 2)
        distance = np.sqrt(np.einsum("ij,ij->i", delta, delta))
        idx = top_k_indices(-distance, k, exclude)
        return idx, distance[idx]

    def query_index(self, index: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.query(self.points_[index], k, exclude=[index])
