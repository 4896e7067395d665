"""The map (L2 -> PCA -> UMAP) and spaces on disk: fit, place, save, load, staleness."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from pretrain.errors import ExplorerError
from pretrain.mapping import MapProjector, compile_map_code
from pretrain.models.backbone import save_encoder
from pretrain.models.resnet import resnet18_encoder
from pretrain.provenance import weights_sha256
from pretrain.space import SpaceError, is_stale, load_space, save_space
from pretrain.vectors import l2_normalise

N_CLUSTERS, PER_CLUSTER, DIM = 3, 40, 512


@pytest.fixture(scope="module")
def clusters():
    """Three well-separated clouds of 512-d 'embeddings' and their cluster labels."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(N_CLUSTERS, DIM)) * 3.0
    x = np.concatenate([c + rng.normal(size=(PER_CLUSTER, DIM)) for c in centres]).astype(np.float32)
    return x, np.repeat(np.arange(N_CLUSTERS), PER_CLUSTER)


@pytest.fixture(scope="module")
def fitted(clusters):
    x, _ = clusters
    projector = MapProjector(random_state=7)
    return projector, projector.fit_transform(x)


def _nearest(points: np.ndarray, query: np.ndarray) -> np.ndarray:
    return np.argmin(((points[None] - query[:, None]) ** 2).sum(-1), axis=1)


def test_map_keeps_clusters_apart_and_caps_small_sets(clusters, fitted):
    x, labels = clusters
    projector, xy = fitted
    assert xy.shape == (len(x), 2) and xy.dtype == np.float32 and np.isfinite(xy).all()
    # 120 samples: PCA capped at n - 1 components (not 200), neighbours at the default 50.
    assert projector.n_components_ == len(x) - 1
    assert projector.n_neighbors_ == 50
    # Every point's nearest other point on the map belongs to its own cluster.
    d = ((xy[:, None] - xy[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert np.mean(labels[np.argmin(d, axis=1)] == labels) >= 0.98


def test_transform_places_points_near_their_own_map_position(clusters, fitted):
    x, labels = clusters
    projector, xy = fitted
    picks = np.array([0, 45, 100])
    placed = projector.transform(x[picks])
    assert placed.shape == (3, 2)
    # Each lands in its own cluster, near its own point on the scale of the map. (Inside
    # a cluster of isotropic noise there is no order for UMAP to reproduce.)
    assert np.array_equal(labels[_nearest(xy, placed)], labels[picks])
    centres = np.array([xy[labels == c].mean(0) for c in range(N_CLUSTERS)])
    gap = min(np.linalg.norm(a - b) for i, a in enumerate(centres) for b in centres[i + 1 :])
    assert np.all(np.linalg.norm(placed - xy[picks], axis=1) < 0.25 * gap)
    # A new point drawn from cluster 2 lands among cluster 2.
    rng = np.random.default_rng(5)
    new = x[labels == 2].mean(0) + rng.normal(size=DIM).astype(np.float32)
    assert labels[_nearest(xy, projector.transform(new))[0]] == 2


def test_projector_save_load_roundtrip_and_errors(tmp_path, clusters, fitted):
    x, _ = clusters
    projector, _ = fitted
    path = projector.save(tmp_path / "projector.npz")
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["params"]["min_dist"] == 0.0005 and sidecar["params"]["metric"] == "cosine"
    assert sidecar["fitted"]["pca_components"] == len(x) - 1
    loaded = MapProjector.load(path)
    np.testing.assert_allclose(loaded.transform(x[:2]), projector.transform(x[:2]), atol=1e-4)
    with pytest.raises(ExplorerError, match="dimensions"):
        projector.transform(x[:2, :100])
    with pytest.raises(ExplorerError, match="NaN"):
        projector.transform(np.full((1, DIM), np.nan, np.float32))
    with pytest.raises(ExplorerError, match="not fitted"):
        MapProjector().transform(x[:1])
    with pytest.raises(ExplorerError, match="at least"):
        MapProjector().fit(x[:3])
    (tmp_path / "broken.npz").write_bytes(path.read_bytes()[:100])
    (tmp_path / "broken.json").write_bytes(path.with_suffix(".json").read_bytes())
    with pytest.raises(ExplorerError, match="could not be loaded"):
        MapProjector.load(tmp_path / "broken.npz")


@pytest.mark.parametrize("method", ["neighbours", pytest.param("umap", marks=pytest.mark.slow)])
def test_a_set_over_the_sample_size_is_fitted_on_a_sample_and_the_rest_placed(clusters, method, tmp_path):
    x, labels = clusters
    projector = MapProjector(random_state=3, n_neighbors=15, fit_sample=60, place_method=method)
    xy = projector.fit_transform(x)
    fitted = projector._sample_rows(len(x))
    assert len(fitted) == 60 and len(np.unique(fitted)) == 60 and xy.shape == (len(x), 2) and np.isfinite(xy).all()
    assert projector.describe()["fitted"]["umap_fitted_on"] == 60 and projector.describe()["fitted"]["n_samples"] == 120
    assert projector.n_components_ == 59  # PCA capped by the sample, not the whole set
    # Every placed source lands among its own cluster's fitted sources.
    placed = np.setdiff1d(np.arange(len(x)), fitted)
    nearest_fitted = fitted[_nearest(xy[fitted], xy[placed])]
    assert np.mean(labels[nearest_fitted] == labels[placed]) >= 0.98
    # New points are placed among all sources (fitted and placed), also after a reload.
    loaded = MapProjector.load(projector.save(tmp_path / "p.npz"))
    assert loaded.get_params()["fit_sample"] == 60 and loaded.get_params()["place_method"] == method
    np.testing.assert_allclose(loaded.transform(x[placed[:3]]), xy[placed[:3]], atol=1e-4)


@pytest.mark.slow
def test_a_survey_sized_rest_is_placed_through_an_approximate_index_as_the_exact_search_places_it(monkeypatch):
    from pretrain import config

    rng = np.random.default_rng(5)
    centres = rng.normal(size=(4, 64)) * 2.0
    labels = np.repeat(np.arange(4), 500)
    x = (centres[labels] + rng.normal(size=(len(labels), 64))).astype(np.float32)
    exact = MapProjector(random_state=3, n_neighbors=15, fit_sample=400).fit_transform(x)
    monkeypatch.setattr(config, "MAP_PLACE_EXACT_MAX_PAIRS", 0)  # every placement a "survey"
    approximate = MapProjector(random_state=3, n_neighbors=15, fit_sample=400).fit_transform(x)
    fitted = MapProjector(fit_sample=400, random_state=3)._sample_rows(len(x))
    np.testing.assert_array_equal(approximate[fitted], exact[fitted])  # the same UMAP
    placed = np.setdiff1d(np.arange(len(x)), fitted)
    scale = np.ptp(exact, axis=0).max()
    moved = np.linalg.norm(approximate[placed] - exact[placed], axis=1) / scale
    assert np.median(moved) < 1e-3 and np.mean(moved < 0.02) >= 0.98
    nearest_fitted = fitted[_nearest(approximate[fitted], approximate[placed])]
    assert np.mean(labels[nearest_fitted] == labels[placed]) >= 0.98


def test_the_first_starts_warm_up_fits_a_real_map():
    xy = compile_map_code()  # what a first start runs beside the bundle: UMAP's own code path
    assert xy.shape == (200, 2) and np.isfinite(xy).all() and np.ptp(xy, axis=0).min() > 0


@pytest.mark.slow
def test_umaps_compiled_code_is_kept_on_disk_for_the_next_process(tmp_path):
    """The functions umap-learn does not cache itself (its k-NN, smooth k-NN distances and
    layout) are written to numba's cache by the first map of a process, so the next process
    reads them instead of compiling them again."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    code = "from pretrain.mapping import compile_map_code; compile_map_code()"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=600)
    cached = {p.name for p in tmp_path.rglob("*.nbi")}
    for function in ("fast_knn_indices", "smooth_knn_dist", "compute_membership_strengths"):
        assert any(function in name for name in cached), (function, sorted(cached)[:10])
    assert any("optimize_layout_euclidean" in name for name in cached)


def test_sample_settings_are_checked():
    with pytest.raises(ExplorerError, match="place_method"):
        MapProjector(place_method="tsne")
    with pytest.raises(ExplorerError, match="fit_sample"):
        MapProjector(fit_sample=2)


# --- spaces on disk -------------------------------------------------------------------------


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(0)
    return save_encoder(resnet18_encoder(), tmp_path / "w.safetensors")


@pytest.fixture
def saved_space(tmp_path, clusters, fitted, weights):
    x, labels = clusters
    projector, xy = fitted
    ids = [f"J{i:06d}" for i in range(len(x))]
    catalogue = pd.DataFrame(
        {
            "source_id": ids,
            "ra": np.arange(len(x), dtype=float),
            "label": np.where(labels == 0, "FRI", "FRII"),
            "angular_extent_arcsec": np.linspace(10, 200, len(x)),
        }
    )
    provenance = {
        "weights": {"sha256": weights_sha256(weights), "file": weights.name},
        "bundle": {"id": "b123", "path": None},
        "parameters": {"seed": 7, "symmetry": "d4"},
    }
    save_space(tmp_path / "space", ids, x, xy, catalogue, projector, provenance)
    return tmp_path / "space"


def test_space_roundtrip(saved_space, clusters, fitted, weights):
    x, _ = clusters
    _, xy = fitted
    table = pq.read_table(saved_space / "embeddings.parquet")
    embedding_type = table.schema.field("embedding").type
    assert pa.types.is_list(embedding_type) and embedding_type.value_type == pa.float32()
    space = load_space(saved_space)
    assert len(space) == len(x)
    np.testing.assert_array_equal(space.embeddings, x)  # raw, bit for bit
    np.testing.assert_allclose(np.linalg.norm(space.unit_embeddings, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(space.unit_embeddings, l2_normalise(x))
    np.testing.assert_array_equal(space.map_xy, xy)
    assert list(space.catalogue_map.columns[:3]) == ["source_id", "umap_x", "umap_y"]
    assert {"ra", "label", "angular_extent_arcsec"} <= set(space.catalogue_map.columns)
    assert space.catalogue_map["source_id"].is_unique
    m = space.manifest
    assert m["weights"]["sha256"] == weights_sha256(weights) and m["bundle"]["id"] == "b123"
    assert m["counts"] == {"sources": len(x), "embedding_dim": DIM}
    assert {"torch", "umap-learn", "scikit-learn"} <= set(m["versions"])
    assert m["parameters"]["projector"]["params"]["n_neighbors"] == 50
    np.testing.assert_allclose(space.projector.transform(x[:1]), fitted[0].transform(x[:1]), atol=1e-4)


def test_is_stale_reasons(saved_space, weights, tmp_path):
    assert is_stale(saved_space, weights, "b123") is False
    assert is_stale(saved_space, weights) is False  # bundle not checked
    torch.manual_seed(1)
    other = save_encoder(resnet18_encoder(), tmp_path / "other.safetensors")
    assert "other weights" in is_stale(saved_space, other, "b123")
    assert "bundle" in is_stale(saved_space, weights, "b999")
    # Embedded one way, asked for the other: the representations would not be comparable.
    assert "symmetry 'd4', not 'none'" in is_stale(saved_space, weights, "b123", symmetry="none")
    assert "does not exist" in is_stale(saved_space, tmp_path / "nope.safetensors", "b123")
    assert "incomplete" in is_stale(tmp_path / "no-space", weights, "b123")
    (saved_space / "map.parquet").unlink()
    assert "map.parquet" in is_stale(saved_space, weights, "b123")


def test_a_space_opens_its_embeddings_memory_mapped_and_reads_the_parquet_copy_when_the_array_is_damaged(
    saved_space, clusters
):
    x, _ = clusters
    space = load_space(saved_space)
    assert isinstance(space.embeddings, np.memmap)  # nothing read until used
    np.testing.assert_array_equal(np.asarray(space.embeddings), x)
    assert list(space.catalogue_map["source_id"][:2]) == ["J000000", "J000001"]
    array = saved_space / "embeddings.npy"
    array.write_bytes(array.read_bytes()[:-512])  # cut short: the manifest's size no longer matches
    fallback = load_space(saved_space)
    assert not isinstance(fallback.embeddings, np.memmap)
    np.testing.assert_array_equal(fallback.embeddings, x)


def test_load_space_says_what_is_wrong(saved_space, tmp_path):
    with pytest.raises(SpaceError, match="does not exist"):
        load_space(tmp_path / "missing")
    # A changed projector file is refused.
    (saved_space / "projector.npz").write_bytes(b"not arrays")
    space = load_space(saved_space)
    with pytest.raises(SpaceError, match="does not match"):
        _ = space.projector
    # A truncated Parquet file.
    data = (saved_space / "embeddings.parquet").read_bytes()
    (saved_space / "embeddings.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(SpaceError, match="corrupt"):
        load_space(saved_space)
    # An interrupted write leaves no manifest.
    (saved_space / "manifest.json").unlink()
    with pytest.raises(SpaceError, match="incomplete"):
        load_space(saved_space)


def test_save_space_refuses_inconsistent_input(tmp_path, clusters, fitted, weights):
    x, _ = clusters
    projector, xy = fitted
    provenance = {"weights": {"sha256": "x", "file": "w"}, "bundle": {"id": "b"}}
    ids = [f"s{i}" for i in range(len(x))]
    with pytest.raises(SpaceError, match="inconsistent"):
        save_space(tmp_path / "s", ids[:-1], x, xy, None, projector, provenance)
    with pytest.raises(SpaceError, match="unique"):
        save_space(tmp_path / "s", ["same"] * len(x), x, xy, None, projector, provenance)
