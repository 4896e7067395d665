"""The 2-D map of a representation: L2-normalise -> PCA -> UMAP, as in the reference study.

:class:`MapProjector` is fitted once on a space's embeddings; ``transform`` then places
new images (a looked-up cutout, a user's FITS file) on the same map. Parameters follow the
reference code (PCA to 200 components, UMAP with 50 neighbours, min_dist 0.0005, cosine
metric); for small sets the PCA components and UMAP neighbours are capped by the number of
samples. The map's axes carry no physical meaning.

New points are placed without UMAP: a point's map position is the similarity-weighted
mean of the map positions of its ``config.MAP_PLACE_NEIGHBOURS`` nearest fitted points
(cosine, in the representation), so a point equal to a fitted one lands on it. Saved as
arrays in an ``.npz`` read with ``allow_pickle=False`` plus a JSON sidecar: loading a map,
even one from a shared cache someone else can write, never runs code (a pickled UMAP would).
"""

from __future__ import annotations

import json
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA

from pretrain import config
from pretrain.errors import ExplorerError
from pretrain.files import atomic_path, atomic_write_json
from pretrain.vectors import l2_normalise


class MapProjector:
    """Embeddings (N, D) -> map coordinates (N, 2), scikit-learn style."""

    # (queries, k) -> (rows, similarities) of the nearest fitted points: a space's neighbour index
    # (pretrain.neighbour_index) sets it, so placing an image does not scan every source.
    reference_search_: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]] | None = None

    def __init__(
        self,
        n_components: int = config.MAP_PCA_COMPONENTS,
        n_neighbors: int = config.MAP_N_NEIGHBORS,
        min_dist: float = config.MAP_MIN_DIST,
        metric: str = config.MAP_METRIC,
        random_state: int | None = config.MAP_SEED,
    ):
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.metric = metric
        self.random_state = random_state

    def get_params(self) -> dict:
        return {
            "n_components": self.n_components,
            "n_neighbors": self.n_neighbors,
            "min_dist": self.min_dist,
            "metric": self.metric,
            "random_state": self.random_state,
        }

    # --- fitting --------------------------------------------------------------------------

    def fit(self, embeddings: np.ndarray) -> MapProjector:
        self.fit_transform(embeddings)
        return self

    def fit_transform(self, embeddings: np.ndarray) -> np.ndarray:
        """Fit PCA and UMAP; return the map coordinates of the fitted points (N, 2)."""
        import umap  # slow import (numba): only when a map is made

        x = self._check(embeddings, fitted=False)
        n, dim = x.shape
        if n < config.MAP_MIN_SOURCES:
            raise ExplorerError(f"a map needs at least {config.MAP_MIN_SOURCES} sources; got {n}.")
        # PCA cannot have more components than samples - 1 or dimensions.
        self.n_components_ = int(min(self.n_components, n - 1, dim))
        self.n_neighbors_ = int(min(self.n_neighbors, n - 1))
        self.pca_ = PCA(n_components=self.n_components_, random_state=self.random_state)
        reduced = self.pca_.fit_transform(l2_normalise(x))
        self.umap_ = umap.UMAP(
            n_components=2,
            n_neighbors=self.n_neighbors_,
            min_dist=self.min_dist,
            metric=self.metric,
            random_state=self.random_state,
            # small sets: spectral init can fail on disconnected graphs
            init="spectral" if n > 3 * self.n_neighbors_ else "random",
        )
        with warnings.catch_warnings():
            # random_state forces single-threaded UMAP; umap warns about it every time.
            warnings.filterwarnings("ignore", message=".*n_jobs value.*overridden.*")
            warnings.filterwarnings("ignore", message=".*is too large for.*spectral.*")
            xy = self.umap_.fit_transform(reduced)
        xy = np.asarray(xy, dtype=np.float32)
        self.n_samples_ = n
        self.input_dim_ = dim
        self.explained_variance_ = float(np.sum(self.pca_.explained_variance_ratio_))
        self.pca_components_ = self.pca_.components_.astype(np.float32)
        self.pca_mean_ = self.pca_.mean_.astype(np.float32)
        self.set_reference(x, xy)
        return xy

    def set_reference(self, embeddings: np.ndarray, map_xy: np.ndarray) -> None:
        """The fitted points new ones are placed among (a space's own embeddings and map)."""
        unit = l2_normalise(np.asarray(embeddings, dtype=np.float32))
        xy = np.asarray(map_xy, dtype=np.float32)
        if unit.ndim != 2 or xy.shape != (len(unit), 2):
            raise ExplorerError(f"map reference: {unit.shape} embeddings for {xy.shape} map positions.")
        self.reference_unit_, self.reference_xy_ = unit, xy

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        """Place new embeddings (M, D) on the fitted map -> (M, 2): the weighted mean of
        the positions of their nearest fitted points (weights 1 / cosine distance)."""
        x = self._check(embeddings, fitted=True)
        k = int(min(config.MAP_PLACE_NEIGHBOURS, len(self.reference_unit_)))
        if self.reference_search_ is not None:
            nearest, nearest_similarity = self.reference_search_(x, k)
            nearest, nearest_similarity = np.maximum(nearest, 0), np.maximum(nearest_similarity, -1.0)
        else:
            similarity = l2_normalise(x) @ self.reference_unit_.T  # (M, N)
            nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
            nearest_similarity = np.take_along_axis(similarity, nearest, axis=1)
        distance = np.clip(1.0 - nearest_similarity, 0.0, None)
        weights = 1.0 / (distance + 1e-9)  # a point equal to a fitted one lands on it
        weights /= weights.sum(axis=1, keepdims=True)
        xy = np.einsum("mk,mkd->md", weights, self.reference_xy_[nearest])
        return np.asarray(xy, dtype=np.float32)

    def _check(self, embeddings: np.ndarray, fitted: bool) -> np.ndarray:
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2:
            raise ValueError(f"expected embeddings (N, D), got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ExplorerError("embeddings contain NaN or infinite values; the encoder or its input is broken.")
        if fitted:
            if not hasattr(self, "reference_xy_"):
                raise ExplorerError("the map projector is not fitted yet; call fit() first.")
            if x.shape[1] != self.input_dim_:
                raise ExplorerError(
                    f"embeddings have {x.shape[1]} dimensions; this map was fitted on {self.input_dim_}."
                )
        return x

    # --- files ------------------------------------------------------------------------------

    def describe(self) -> dict:
        """Parameters and fitted facts, for the JSON sidecar and a space's manifest."""
        info = {"params": self.get_params()}
        if hasattr(self, "pca_components_"):
            info["fitted"] = {
                "n_samples": self.n_samples_,
                "input_dim": self.input_dim_,
                "pca_components": self.n_components_,
                "umap_n_neighbors": self.n_neighbors_,
                "pca_explained_variance": self.explained_variance_,
            }
        return info

    def save(self, path: str | Path, with_reference: bool = True) -> Path:
        """Write ``path`` (``.npz`` of arrays) and ``path`` with suffix ``.json`` (parameters).

        ``with_reference=False`` leaves out the fitted points (a space stores them in its own
        files and hands them to :meth:`load`)."""
        path = Path(path)
        if not hasattr(self, "pca_components_"):
            raise ExplorerError("the map projector is not fitted yet; call fit() first.")
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"pca_components": self.pca_components_, "pca_mean": self.pca_mean_}
        if with_reference:
            arrays |= {"reference_unit": self.reference_unit_, "reference_xy": self.reference_xy_}
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
        atomic_write_json(path.with_suffix(".json"), self.describe())
        return path

    @staticmethod
    def load(path: str | Path, reference: tuple[np.ndarray, np.ndarray] | None = None) -> MapProjector:
        """Load a projector saved by :meth:`save` (arrays only: nothing in the file is run).

        ``reference``: (embeddings, map positions) of the fitted points, when the file was
        saved without them."""
        path = Path(path)
        if not path.is_file():
            raise ExplorerError(f"map projector not found at {path}.")
        hint = "re-create the space with `python -m pretrain embed`."
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: np.asarray(data[name]) for name in data.files}
            info = json.loads(path.with_suffix(".json").read_text())
            params, fitted = info["params"], info["fitted"]
            projector = MapProjector(**params)
            projector.n_components_ = int(fitted["pca_components"])
            projector.n_neighbors_ = int(fitted["umap_n_neighbors"])
            projector.n_samples_ = int(fitted["n_samples"])
            projector.input_dim_ = int(fitted["input_dim"])
            projector.explained_variance_ = float(fitted["pca_explained_variance"])
            projector.pca_components_ = arrays["pca_components"].astype(np.float32)
            projector.pca_mean_ = arrays["pca_mean"].astype(np.float32)
            if reference is None:
                reference = (arrays["reference_unit"], arrays["reference_xy"])
            projector.set_reference(*reference)
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
            raise ExplorerError(f"{path} could not be loaded ({type(exc).__name__}: {exc}); {hint}") from exc
        if projector.reference_unit_.shape[1] != projector.input_dim_:
            raise ExplorerError(f"{path} does not match its fitted points' dimensions; {hint}")
        return projector
