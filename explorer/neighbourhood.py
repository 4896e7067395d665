"""Understanding a neighbourhood: how pure a source's neighbours are in label, how far the 2-D map
can be trusted around it, and which sources of a space are the most unusual.

- **Label purity**: of a source's (labelled) neighbours, the fraction sharing its label.
- **Map trust**: of its k nearest neighbours in the full representation space, how many are
  also among its k nearest on the 2-D map. UMAP keeps local structure only approximately;
  where this is low, what looks close on the map is not close to the model.
- **Outlier score**: the cosine distance (1 − cos) to a source's k-th most similar source.
  Chosen over an isolation forest because it uses the very metric of the similarity search
  (an outlier is exactly a source whose neighbour list is poor), it is deterministic and has
  one readable parameter, and k above 1 keeps a catalogue's twins (the same object listed
  twice) from hiding each other's oddness. An isolation forest's random axis-aligned splits
  of the 512-d space ignore the angular metric the representation is meant for.

No Streamlit here: :mod:`explorer.widgets.neighbourhood` shows these.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from explorer.similarity import MapIndex, top_k_indices
from pretrain.neighbour_index import NeighbourIndex, build_index


@dataclass(frozen=True)
class Purity:
    same: int  # labelled neighbours with the source's label
    labelled: int  # neighbours with any label
    total: int  # neighbours
    counts: dict[str, int]  # labels among the neighbours
    label: str = ""  # the source's own ('' : none, so no purity, only the counts)

    @property
    def fraction(self) -> float:
        return self.same / self.labelled if self.labelled and self.label else float("nan")


def label_purity(labels: Sequence[object] | np.ndarray, query_row: int, neighbour_rows: Iterable[int]) -> Purity:
    """Purity of ``neighbour_rows`` with respect to the label of ``query_row`` ('' / None: no label)."""

    def label(row: int) -> str:
        value = labels[int(row)]
        return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)

    own = label(query_row)
    found = [label(r) for r in neighbour_rows]
    labelled = [x for x in found if x]
    counts: dict[str, int] = {}
    for x in labelled:
        counts[x] = counts.get(x, 0) + 1
    same = sum(1 for x in labelled if own and x == own)
    return Purity(same, len(labelled), len(found), dict(sorted(counts.items(), key=lambda kv: -kv[1])), own)


def map_trust(map_xy: np.ndarray, query_row: int, full_space_rows: Iterable[int], k: int | None = None) -> float:
    """Fraction of the full-space neighbours (the first ``k`` of ``full_space_rows``) that are also
    among the source's ``k`` nearest on the 2-D map."""
    full = [int(r) for r in full_space_rows][: k or None]
    if not full:
        return float("nan")
    on_map, _ = MapIndex().fit(map_xy).query_index(int(query_row), len(full))
    return len(set(full) & {int(r) for r in on_map}) / len(full)


def knn_outlier_scores(vectors, k: int, block: int = 4096) -> np.ndarray:
    """1 − cos to each vector's ``k``-th most similar other vector (higher: more unusual).

    ``vectors``: (N, D) or a space's :class:`~pretrain.neighbour_index.NeighbourIndex` (whose
    search, exact or approximate, answers); ``block`` queries at a time.
    """
    index = vectors if isinstance(vectors, NeighbourIndex) else build_index(vectors)
    n = len(index)
    if n < 2:
        return np.zeros(n, dtype=np.float32)
    k = int(min(max(1, k), n - 1))
    scores = np.empty(n, dtype=np.float32)
    for start in range(0, n, block):
        rows = np.arange(start, min(n, start + block))
        _, sims = index.neighbours_of_rows(rows, k)
        scores[rows] = 1.0 - sims[:, k - 1]  # the k-th most similar other one
    return scores


def most_unusual(scores: np.ndarray, n: int) -> np.ndarray:
    """Rows of the ``n`` highest scores, most unusual first."""
    return top_k_indices(np.asarray(scores, dtype=np.float64), n)


OUTLIER_COLUMN = "outlier_score"


def space_outlier_scores(space) -> np.ndarray | None:
    """The outlier scores of an embedding space (None: no representations, or too many sources).

    Kept on the opened space object, so each is computed once, and a space rebuilt or refined
    on disk (a new object, same key and size) gets its own: a cache keyed by the space's
    name kept the first quick map's scores after its refinement."""
    from pretrain import config

    if not getattr(space, "has_embeddings", False) or len(space) > config.APP_OUTLIER_MAX_SOURCES:
        return None
    scores = getattr(space, "_outlier_scores", None)
    if scores is None:
        scores = knn_outlier_scores(space.index.neighbour_index, config.APP_OUTLIER_K)
        space._outlier_scores = scores
    return scores


def outlier_colour_columns(space) -> dict:
    """'outlier_score' as a colour of the map (a colour provider)."""
    import pandas as pd

    scores = space_outlier_scores(space)
    if scores is None:
        return {}
    ids = space.catalogue["source_id"].astype(str).to_numpy()
    return {OUTLIER_COLUMN: pd.Series(scores.astype(np.float64), index=ids, name=OUTLIER_COLUMN)}
