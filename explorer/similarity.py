"""Exact nearest-neighbour search: cosine similarity in the embedding space, distance on a map.

Cosine similarity of L2-normalised vectors is one matrix-vector product, so exact top-k over
a million 512-d sources costs one pass over the array (timings in BENCHMARKS.md) — no
index to build, nothing approximate. ``np.argpartition`` picks the k best in linear
time; only those k are sorted.

For a catalogue-only space (a published map without embeddings) :class:`MapIndex` gives the
nearest sources by Euclidean distance on the 2-D map, with the same interface.
"""

from __future__ import annotations

import numpy as np

from pretrain.vectors import l2_normalise


def top_k_indices(scores: np.ndarray, k: int, exclude: np.ndarray | list[int] | None = None) -> np.ndarray:
    """Indices of the ``k`` largest ``scores``, best first (ties broken by index).

    ``exclude`` lists indices that must not be returned (e.g. the query itself).
    """
    scores = np.asarray(scores)
    if exclude is not None and len(exclude):
        scores = scores.copy()
        scores[np.asarray(exclude, dtype=np.int64)] = -np.inf
        available = scores.size - len(np.unique(exclude))
    else:
        available = scores.size
    k = int(max(0, min(k, available)))
    if k == 0:
        return np.empty(0, dtype=np.int64)
    if k < scores.size:
        candidates = np.argpartition(-scores, k - 1)[:k]
    else:
        candidates = np.arange(scores.size)
    # Stable sort of the candidates by descending score, then ascending index.
    order = np.lexsort((candidates, -scores[candidates]))
    return candidates[order].astype(np.int64)


class CosineIndex:
    """Exact cosine-similarity search over a fixed set of vectors (sklearn-like ``fit``/``query``).

    >>> index = CosineIndex().fit(embeddings)
    >>> idx, sim = index.query(embeddings[0], k=10, exclude=[0])
    """

    metric_name = "cosine similarity"
    higher_is_closer = True

    def __init__(self, unit_vectors: np.ndarray | None = None):
        self.unit_vectors_: np.ndarray = np.ascontiguousarray(
            np.zeros((0, 0)) if unit_vectors is None else unit_vectors, dtype=np.float32
        )

    def fit(self, vectors: np.ndarray) -> CosineIndex:
        self.unit_vectors_ = np.ascontiguousarray(l2_normalise(vectors))
        return self

    def __len__(self) -> int:
        return len(self.unit_vectors_)

    def similarities(self, vector: np.ndarray) -> np.ndarray:
        """Cosine similarity of ``vector`` to every stored vector."""
        query = l2_normalise(np.asarray(vector, dtype=np.float32).reshape(1, -1))[0]
        return self.unit_vectors_ @ query

    def query(self, vector: np.ndarray, k: int, exclude=None) -> tuple[np.ndarray, np.ndarray]:
        """``(indices, similarities)`` of the ``k`` most similar stored vectors, best first."""
        scores = self.similarities(vector)
        idx = top_k_indices(scores, k, exclude)
        return idx, scores[idx]

    def query_index(self, index: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Neighbours of stored vector ``index`` (itself excluded)."""
        return self.query(self.unit_vectors_[index], k, exclude=[index])


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
