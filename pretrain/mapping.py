"""The 2-D map of a representation: L2-normalise -> PCA -> UMAP, as in the reference study.

:class:`MapProjector` is fitted once on a space's embeddings; ``transform`` then places
new images (a looked-up cutout, a user's FITS file) on the same map. Parameters follow the
reference code (PCA to 200 components, UMAP with 50 neighbours, min_dist 0.0005, cosine
metric); for small sets the PCA components and UMAP neighbours are capped by the number of
samples. The map's axes carry no physical meaning.

Saved with joblib (a pickle) plus a JSON sidecar of the parameters. A pickle can run code
when loaded, so :meth:`MapProjector.load` is meant only for files this project wrote
(:mod:`pretrain.space` checks the file's hash against its manifest before loading it).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import joblib
import numpy as np
from sklearn.decomposition import PCA

from pretrain import config
from pretrain.errors import ExplorerError
from pretrain.files import atomic_path, atomic_write_json
from pretrain.vectors import l2_normalise


class MapProjector:
    """Embeddings (N, D) -> map coordinates (N, 2), scikit-learn style."""

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
        self.n_samples_ = n
        self.input_dim_ = dim
        self.explained_variance_ = float(np.sum(self.pca_.explained_variance_ratio_))
        return np.asarray(xy, dtype=np.float32)

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        """Place new embeddings (M, D) on the fitted map -> (M, 2)."""
        x = self._check(embeddings, fitted=True)
        reduced = self.pca_.transform(l2_normalise(x))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning)
            xy = self.umap_.transform(reduced)
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
            if not hasattr(self, "umap_"):
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
        if hasattr(self, "umap_"):
            info["fitted"] = {
                "n_samples": self.n_samples_,
                "input_dim": self.input_dim_,
                "pca_components": self.n_components_,
                "umap_n_neighbors": self.n_neighbors_,
                "pca_explained_variance": self.explained_variance_,
            }
        return info

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (joblib) and ``path`` with suffix ``.json`` (parameters)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            joblib.dump(self, tmp, compress=3)
        atomic_write_json(path.with_suffix(".json"), self.describe())
        return path

    @staticmethod
    def load(path: str | Path) -> MapProjector:
        """Load a projector this project saved. Never use it on files from elsewhere."""
        path = Path(path)
        if not path.is_file():
            raise ExplorerError(f"map projector not found at {path}.")
        try:
            projector = joblib.load(path)
        except Exception as exc:  # truncated file, or one written by incompatible versions
            raise ExplorerError(
                f"{path} could not be loaded ({type(exc).__name__}: {exc}); "
                "re-create the space with `python -m pretrain embed`."
            ) from exc
        if not isinstance(projector, MapProjector):
            raise ExplorerError(f"{path} does not hold a map projector.")
        return projector
