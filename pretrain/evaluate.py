"""How good is a representation? Label-free and labelled measures.

- :func:`fit_linear_probe` / :func:`linear_probe_error`: a logistic regression on frozen
  features (standardised on the training set; the regularisation strength chosen by
  5-fold cross-validation on the training set only, so the test set is never looked at).
  The one probe of the project: ``finetune --depth 0`` fits the same one.
- :func:`knn_accuracy`: accuracy of a k-nearest-neighbour vote under cosine similarity
  (cheap; used as a training-time monitor).
- :func:`mirabest_confident_split`: the MiraBest Confident FRI vs FRII task and its split.
- :func:`extent_ordering_spearman`: how strongly a map is ordered by angular extent.
- :func:`probe_over_splits`: the linear probe and kNN on the MiraBest task, one split per seed.
- :func:`neighbour_purity`: what a click in the app shows: the same-label share among a
  query's k most similar sources, per class (FRI, FRII, hybrid), leave-one-out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pretrain import config
from pretrain.errors import ExplorerError
from pretrain.neighbour_index import NeighbourIndex, build_index

FR_CLASSES = ("FRI", "FRII")  # label 0, 1
PROBE_CS = np.logspace(-4, 2, 7)  # inverse regularisation strengths tried by the probe's CV
KNN_K = 20  # neighbours voting in the kNN error reported beside the probe
PURITY_K = 8  # neighbours judged by neighbour purity: the first gallery row the app shows
PURITY_CLASSES = ("FRI", "FRII", "hybrid")


@dataclass
class LinearProbe:
    """A fitted probe: the standardised logistic regression and how its strength was chosen."""

    model: Any  # sklearn Pipeline(StandardScaler, LogisticRegression), fitted on the training rows
    C: float  # the inverse regularisation strength used
    cv_accuracy: dict[float, float]  # mean cross-validated accuracy per C tried (empty: C was given)
    folds: int  # cross-validation folds (0: none)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """(n, 2) class probabilities, columns in the order of the sorted training labels."""
        return self.model.predict_proba(np.asarray(x, np.float64))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(np.asarray(x, np.float64))


def fit_linear_probe(train_x: np.ndarray, train_y: np.ndarray, C: float | None = None, seed: int = 0) -> LinearProbe:
    """The linear probe every figure of this project uses (``evaluate`` and ``finetune --depth 0``).

    A logistic regression on standardised features. ``C`` None: chosen from
    :data:`PROBE_CS` by stratified 5-fold cross-validation on the training set (fewer folds
    when a class has fewer than 5 examples); the scaler is refitted inside each fold, so no
    fold sees statistics of its held-out part, and the test set is never looked at.
    """
    train_x, train_y = np.asarray(train_x, np.float64), np.asarray(train_y)
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0 if C is None else C, max_iter=5000))
    folds = min(5, int(np.min(np.unique(train_y, return_counts=True)[1])))
    if C is None and folds >= 2:
        search = GridSearchCV(
            probe, {"logisticregression__C": PROBE_CS}, cv=StratifiedKFold(folds, shuffle=True, random_state=seed)
        )
        search.fit(train_x, train_y)
        scores = dict(zip(map(float, PROBE_CS), map(float, search.cv_results_["mean_test_score"]), strict=True))
        best_C = float(search.best_params_["logisticregression__C"])
        return LinearProbe(search.best_estimator_, best_C, scores, folds)
    probe.fit(train_x, train_y)
    return LinearProbe(probe, 1.0 if C is None else float(C), {}, 0)


def linear_probe_error(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    C: float | None = None,
    seed: int = 0,
) -> float:
    """Test error (fraction, 0..1) of :func:`fit_linear_probe` fitted on the training rows."""
    probe = fit_linear_probe(train_x, train_y, C=C, seed=seed)
    return float(np.mean(probe.predict(test_x) != np.asarray(test_y)))


def knn_accuracy(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, k: int = 20
) -> float:
    """Accuracy of a majority vote of the ``k`` most cosine-similar training examples."""
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    k = int(min(k, len(train_y)))
    nearest, _ = build_index(train_x).search(test_x, k)  # (n_test, k)
    classes, encoded = np.unique(train_y, return_inverse=True)
    votes = np.zeros((len(test_y), len(classes)))
    np.add.at(votes, (np.arange(len(test_y))[:, None], encoded[nearest]), 1.0)
    return float(np.mean(classes[np.argmax(votes, axis=1)] == test_y))


def fr_task(catalogue: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Rows of MiraBest Confident FRI/FRII sources and their labels (FRI 0, FRII 1).

    Only rows with ``label`` in {FRI, FRII} and ``confident`` True count: hybrids and
    Uncertain sources are left out, as in the reference study.
    """
    label = catalogue["label"].astype(str)
    confident = (
        catalogue["confident"].fillna(False).astype(bool)
        if "confident" in catalogue
        else pd.Series(False, index=catalogue.index)
    )
    rows = np.flatnonzero((label.isin(FR_CLASSES) & confident).to_numpy())
    y = (label.to_numpy()[rows] == "FRII").astype(np.int64)
    return rows, y


def mirabest_confident_split(
    catalogue: pd.DataFrame, seed: int, test_size: int = config.MIRABEST_TEST_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/test split of MiraBest Confident FRI vs FRII.

    Returns positional row indices into ``catalogue`` (``train``, ``test``); labels come
    from :func:`fr_task` / the ``label`` column. The test set has ``test_size`` sources
    (104, the standard MiraBest Confident test set size) with the FRI:FRII ratio of the
    whole task; everything else is training data. Each ``seed`` gives a different split
    (``sklearn.model_selection.train_test_split(stratify=labels, random_state=seed)``).
    """
    rows, y = fr_task(catalogue)
    if len(rows) <= test_size or min(np.sum(y == 0), np.sum(y == 1)) < 2:
        raise ExplorerError(
            f"the catalogue has {len(rows)} confident FRI/FRII sources "
            f"({int(np.sum(y == 0))} FRI, {int(np.sum(y == 1))} FRII): too few for a "
            f"test set of {test_size}."
        )
    train, test = train_test_split(rows, test_size=test_size, stratify=y, random_state=seed)
    return np.sort(train), np.sort(test)


def extent_ordering_spearman(map_xy: np.ndarray, extent: np.ndarray, k: int = config.EXTENT_ORDERING_K) -> float:
    """Spearman correlation of each source's extent with the mean extent of its k map neighbours.

    Near 1: neighbours on the map have similar angular extents (the map is ordered by
    extent); near 0: no order. Sources without a finite extent are left out (as points
    and as neighbours).
    """
    map_xy = np.asarray(map_xy, np.float64)
    extent = np.asarray(extent, np.float64)
    keep = np.isfinite(extent) & np.all(np.isfinite(map_xy), axis=1)
    map_xy, extent = map_xy[keep], extent[keep]
    if len(extent) <= k:
        raise ExplorerError(f"need more than k={k} sources with a finite extent; got {len(extent)}.")
    n = len(extent)
    _, nearest = cKDTree(map_xy).query(map_xy, k=k + 1)
    # Drop the source itself (not always column 0 when points coincide exactly).
    is_self = nearest == np.arange(n)[:, None]
    is_self[~is_self.any(axis=1), -1] = True
    neighbours = nearest[~is_self].reshape(n, k)
    rho = spearmanr(extent, extent[neighbours].mean(axis=1)).statistic
    return float(rho)


def probe_over_splits(
    features: np.ndarray, catalogue: pd.DataFrame, seeds, pca_components: int | None = None
) -> pd.DataFrame:
    """Linear-probe and kNN (k = :data:`KNN_K`) test errors (fractions) on the MiraBest Confident FRI vs
    FRII task, one stratified split per seed (:func:`mirabest_confident_split`); ``features``
    rows follow ``catalogue`` rows. ``pca_components``: first reduce the features by a PCA
    fitted on each split's training rows (for raw pixels). Columns: seed, probe_error,
    knn_error, n_train, n_test."""
    missing = [column for column in ("label", "confident") if column not in catalogue]
    rows = fr_task(catalogue)[0] if not missing else np.array([], np.int64)
    if len(rows) == 0:
        raise ExplorerError(
            "no MiraBest Confident FRI/FRII sources in this catalogue: the probe needs "
            "the columns label (FRI/FRII) and confident" + (f" (missing: {', '.join(missing)})." if missing else ".")
        )
    is_frii = (catalogue["label"].astype(str).to_numpy() == "FRII").astype(np.int64)
    records = []
    for seed in seeds:
        train, test = mirabest_confident_split(catalogue, seed)
        train_x, test_x = features[train], features[test]
        if pca_components:
            from sklearn.decomposition import PCA

            reducer = PCA(n_components=min(pca_components, len(train) - 1), random_state=int(seed))
            train_x, test_x = reducer.fit_transform(train_x), reducer.transform(test_x)
        args = (train_x, is_frii[train], test_x, is_frii[test])
        records.append(
            {
                "seed": int(seed),
                "probe_error": linear_probe_error(*args, seed=int(seed)),
                "knn_error": 1.0 - knn_accuracy(*args, k=KNN_K),
                "n_train": len(train),
                "n_test": len(test),
            }
        )
    return pd.DataFrame(records)


def neighbour_purity(
    features: np.ndarray,
    labels,
    query_rows=None,
    k: int = PURITY_K,
    classes=PURITY_CLASSES,
) -> pd.DataFrame:
    """Same-label share among each query's ``k`` most cosine-similar other sources.

    ``features``: (N, D), or a space's neighbour index (then searched as the app searches it).
    Every source is searched (the whole space, as the app searches it) except the query
    itself; ``query_rows`` (positional; default: every row) picks the queries, for example
    the held-out ones (:mod:`pretrain.holdout`). A neighbour with an empty label counts as
    a different label. One row per class in ``classes`` that has queries: ``label``,
    ``queries``, ``purity`` (mean share, 0..1), ``chance`` (that class's share of the other
    labelled sources: what random neighbours would score), ``none_found`` (queries with no
    same-label neighbour among their ``k``).
    """
    labels = np.asarray(pd.Series(labels).fillna("").astype(str))
    index = features if isinstance(features, NeighbourIndex) else build_index(features)
    n = len(labels)
    if n <= k:
        raise ExplorerError(f"need more than k={k} sources for neighbour purity; got {n}.")
    queries = np.arange(n) if query_rows is None else np.asarray(query_rows, np.int64)
    records = []
    for label in classes:
        rows = queries[labels[queries] == label]
        if len(rows) == 0:
            continue
        nearest, _ = index.neighbours_of_rows(rows, k)  # never the query itself
        share = (labels[nearest] == label).mean(axis=1)
        records.append(
            {
                "label": label,
                "queries": len(rows),
                "purity": float(share.mean()),
                "chance": float((np.sum(labels == label) - 1) / max(np.sum(labels != "") - 1, 1)),
                "none_found": int(np.sum(share == 0)),
            }
        )
    return pd.DataFrame(records, columns=["label", "queries", "purity", "chance", "none_found"])
