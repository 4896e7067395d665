"""The 2-D map of a representation: L2-normalise -> PCA -> UMAP, as in the reference study.

:class:`MapProjector` is fitted once on a space's embeddings; ``transform`` then places
new images (a looked-up cutout, a user's FITS file) on the same map. Parameters follow the
reference code (PCA to 200 components, UMAP with 50 neighbours, min_dist 0.0005, cosine
metric); for small sets the PCA components and UMAP neighbours are capped by the number of
samples. The map's axes carry no physical meaning.

Survey-sized sets (more than ``config.MAP_FIT_SAMPLE`` sources, 50,000 by default) are
fitted on a random sample of that size and the rest are placed on the sample's map
(``config.MAP_PLACE_METHOD``): UMAP's cost and memory grow with every source, placing one
does not. ``BENCHMARKS.md`` (bench_map_sample) measures how faithful that is against a map
fitted on everything.

New points are placed without UMAP: a point's map position is the similarity-weighted
mean of the map positions of its ``config.MAP_PLACE_NEIGHBOURS`` nearest fitted points
(cosine, in the representation), so a point equal to a fitted one lands on it. Saved as
arrays in an ``.npz`` read with ``allow_pickle=False`` plus a JSON sidecar: loading a map,
even one from a shared cache someone else can write, never runs code (a pickled UMAP would).
"""

from __future__ import annotations

import functools
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
        fit_sample: int | None = config.MAP_FIT_SAMPLE,
        place_method: str = config.MAP_PLACE_METHOD,
    ):
        if place_method not in config.MAP_PLACE_METHODS:
            raise ExplorerError(f"place_method must be one of {config.MAP_PLACE_METHODS}; got {place_method!r}.")
        if fit_sample is not None and fit_sample < config.MAP_MIN_SOURCES:
            raise ExplorerError(f"fit_sample must be at least {config.MAP_MIN_SOURCES} (or None: fit on every source).")
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.metric = metric
        self.random_state = random_state
        self.fit_sample = fit_sample
        self.place_method = place_method

    def get_params(self) -> dict:
        return {
            "n_components": self.n_components,
            "n_neighbors": self.n_neighbors,
            "min_dist": self.min_dist,
            "metric": self.metric,
            "random_state": self.random_state,
            "fit_sample": self.fit_sample,
            "place_method": self.place_method,
        }

    # --- fitting --------------------------------------------------------------------------

    def fit(self, embeddings: np.ndarray) -> MapProjector:
        self.fit_transform(embeddings)
        return self

    def fit_transform(self, embeddings: np.ndarray) -> np.ndarray:
        """Fit PCA and UMAP; return the map coordinates of every point (N, 2).

        More than ``fit_sample`` points: both are fitted on a random ``fit_sample`` of them
        (seeded by ``random_state``) and the others placed on that map by ``place_method``.
        """
        umap = _import_umap()  # slow import (numba): only when a map is made
        x = self._check(embeddings, fitted=False)
        n, dim = x.shape
        if n < config.MAP_MIN_SOURCES:
            raise ExplorerError(f"a map needs at least {config.MAP_MIN_SOURCES} sources; got {n}.")
        unit = l2_normalise(x)
        fitted = self._sample_rows(n)
        m = len(fitted)
        # PCA cannot have more components than samples - 1 or dimensions.
        self.n_components_ = int(min(self.n_components, m - 1, dim))
        self.n_neighbors_ = int(min(self.n_neighbors, m - 1))
        self.pca_ = PCA(n_components=self.n_components_, random_state=self.random_state)
        self.pca_.fit(unit[fitted])
        reduced = self._reduce(unit)
        self.umap_ = umap.UMAP(
            n_components=2,
            n_neighbors=self.n_neighbors_,
            min_dist=self.min_dist,
            metric=self.metric,
            random_state=self.random_state,
            # small sets: spectral init can fail on disconnected graphs
            init="spectral" if m > 3 * self.n_neighbors_ else "random",
        )
        xy = np.empty((n, 2), dtype=np.float32)
        with warnings.catch_warnings():
            # random_state forces single-threaded UMAP; umap warns about it every time.
            warnings.filterwarnings("ignore", message=".*n_jobs value.*overridden.*")
            warnings.filterwarnings("ignore", message=".*is too large for.*spectral.*")
            xy[fitted] = self.umap_.fit_transform(reduced[fitted])
            rest = np.setdiff1d(np.arange(n), fitted, assume_unique=True)
            if rest.size:
                xy[rest] = self._place_rest(reduced, fitted, rest, xy[fitted])
        self.n_samples_ = n
        self.n_fitted_ = m
        self.input_dim_ = dim
        self.explained_variance_ = float(np.sum(self.pca_.explained_variance_ratio_))
        self.pca_components_ = self.pca_.components_.astype(np.float32)
        self.pca_mean_ = self.pca_.mean_.astype(np.float32)
        self.reference_unit_, self.reference_xy_ = unit, xy  # new points are placed among all of them
        return xy

    def _sample_rows(self, n: int) -> np.ndarray:
        """Rows UMAP is fitted on: all of them, or a random ``fit_sample`` (sorted)."""
        if self.fit_sample is None or n <= self.fit_sample:
            return np.arange(n)
        rng = np.random.default_rng(self.random_state)
        return np.sort(rng.choice(n, size=self.fit_sample, replace=False))

    def _reduce(self, unit: np.ndarray, chunk: int = 65_536) -> np.ndarray:
        """PCA of L2-normalised embeddings, in chunks (float32: a 1 M x 512 set stays ~1 GB)."""
        out = np.empty((len(unit), self.n_components_), dtype=np.float32)
        for start in range(0, len(unit), chunk):
            out[start : start + chunk] = self.pca_.transform(unit[start : start + chunk])
        return out

    def _place_rest(self, reduced: np.ndarray, fitted: np.ndarray, rest: np.ndarray, fitted_xy: np.ndarray):
        """Map positions of the rows not in the UMAP sample, by ``place_method``."""
        if self.place_method == "umap":
            return np.asarray(self.umap_.transform(reduced[rest]), dtype=np.float32)
        reference = l2_normalise(reduced[fitted])
        if rest.size * len(fitted) <= config.MAP_PLACE_EXACT_MAX_PAIRS or not _has_faiss():
            return place_by_neighbours(l2_normalise(reduced[rest]), reference, fitted_xy, progress=True)
        from pretrain.neighbour_index import IndexSettings, build_index

        index = build_index(reference, IndexSettings(exact_max_vectors=0, nprobe=config.MAP_PLACE_NPROBE))
        return place_by_neighbours(
            l2_normalise(reduced[rest]), reference, fitted_xy, chunk=4096, progress=True, index_search=index.search
        )

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
        return place_by_neighbours(
            l2_normalise(x), self.reference_unit_, self.reference_xy_, index_search=self.reference_search_
        )

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
                "umap_fitted_on": getattr(self, "n_fitted_", self.n_samples_),
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
            projector.n_fitted_ = int(fitted.get("umap_fitted_on", fitted["n_samples"]))
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


@functools.cache  # the switch is made once per process
def _import_umap():
    """umap-learn, with its numba functions compiled once per installation, not once per process.

    Most of UMAP's jitted functions are not marked ``cache=True``: each new process compiled
    them again (about 8 s here before every first map). numba's own on-disk cache is switched
    on for them (in umap's ``__pycache__``, else numba's user cache folder, ``NUMBA_CACHE_DIR``).
    """
    import umap
    from numba.core.registry import CPUDispatcher

    for module in (umap.umap_, umap.utils, umap.layouts, umap.distances, umap.sparse):
        for function in vars(module).values():
            if isinstance(function, CPUDispatcher):  # for one already cached: the same cache
                try:
                    function.enable_caching()
                except Exception:  # a function numba cannot cache is compiled as before
                    pass
    return umap


def compile_map_code(n: int = 200, dim: int = 32) -> np.ndarray:
    """Fit a map on ``n`` random vectors, so that UMAP's numba code is compiled or read from
    numba's cache (about 20 s in the first process of an installation here, 2 s from the cache,
    0.3 s once loaded). A first start runs this beside the bundle's preprocessing, which keeps
    the CPU busy in other processes meanwhile."""
    vectors = np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)
    return MapProjector(random_state=0).fit_transform(vectors)


def place_by_neighbours(
    unit: np.ndarray,
    reference_unit: np.ndarray,
    reference_xy: np.ndarray,
    k: int = config.MAP_PLACE_NEIGHBOURS,
    chunk: int = 512,
    progress: bool = False,
    index_search: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]] | None = None,
) -> np.ndarray:
    """Map positions of unit vectors (M, D) among placed ones: the mean of the positions of
    their ``k`` most cosine-similar reference points, weighted by 1 / cosine distance (a
    point equal to a reference point lands on it). In chunks of ``chunk`` queries, so that
    the similarity block stays ~100 MB whatever M is. The exact top k comes from FAISS's
    flat inner-product search when FAISS is installed (5x faster than NumPy's partition at
    10 k x 50 k here), else from NumPy; both give the same neighbours. ``index_search``
    ((queries, k) -> (rows, similarities), a space's neighbour index over the same reference
    rows) replaces that exact search."""
    from tqdm import tqdm

    k = int(min(k, len(reference_unit)))
    unit = np.ascontiguousarray(unit, dtype=np.float32)
    reference_unit = np.ascontiguousarray(reference_unit, dtype=np.float32)
    if index_search is not None:

        def search(queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            rows, similarity = index_search(queries, k)  # rows of -1: fewer than k found
            return np.maximum(similarity, -1.0), np.maximum(rows, 0)
    else:
        search = _top_k_search(reference_unit, k)
    out = np.empty((len(unit), 2), dtype=np.float32)
    starts = range(0, len(unit), chunk)
    for start in tqdm(starts, desc="placing on the map", unit="chunk", disable=not progress or len(starts) < 20):
        similarity, nearest = search(unit[start : start + chunk])
        distance = np.clip(1.0 - similarity, 0.0, None)
        weights = 1.0 / (distance + 1e-9)
        weights /= weights.sum(axis=1, keepdims=True)
        out[start : start + chunk] = np.einsum("mk,mkd->md", weights, reference_xy[nearest])
    return out


def _has_faiss() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _top_k_search(reference_unit: np.ndarray, k: int):
    """A function: queries (m, D) -> (cosine similarities (m, k), reference rows (m, k))."""
    if _has_faiss() and len(reference_unit) * reference_unit.shape[1] > 1_000_000:
        import faiss

        index = faiss.IndexFlatIP(reference_unit.shape[1])
        index.add(reference_unit)
        return lambda queries: index.search(queries, k)

    def numpy_search(queries: np.ndarray):
        similarity = queries @ reference_unit.T  # (m, N)
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        return np.take_along_axis(similarity, nearest, axis=1), nearest

    return numpy_search
