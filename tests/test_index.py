"""The neighbour index: exact against brute force, approximate (FAISS IVF) against exact on clustered vectors,
files (memory-mapped loading, damaged or missing ones), and every search of the app going through it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from bench.make_synthetic_embeddings import clustered_embeddings
from explorer.similarity import CosineIndex
from pretrain.errors import ExplorerError
from pretrain.neighbour_index import (
    EXACT,
    INDEX_FILE,
    IVF_FLAT,
    IVF_SQ8,
    IndexSettings,
    build_index,
    exact_search,
    load_index,
    load_or_build,
)
from pretrain.vectors import l2_normalise

K = 12
APPROXIMATE = IndexSettings(exact_max_vectors=1_000)  # a few thousand vectors get the FAISS index


@pytest.fixture(scope="module")
def clustered() -> np.ndarray:
    return clustered_embeddings(6_000, dim=32, seed=3)


def _recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact)]))


def test_exact_index_matches_sklearn_brute_force():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3000, 24)).astype(np.float32)
    queries = rng.normal(size=(40, 24)).astype(np.float32)
    index = build_index(vectors)
    assert index.kind == EXACT and index.exact
    rows, sims = index.search(queries, K)
    reference = NearestNeighbors(n_neighbors=K, metric="cosine", algorithm="brute").fit(vectors)
    distance, expected = reference.kneighbors(queries)
    np.testing.assert_array_equal(rows, expected)
    np.testing.assert_allclose(sims, 1.0 - distance, atol=1e-5)


def test_approximate_index_finds_the_exact_top_12(clustered):
    index = build_index(clustered, APPROXIMATE)
    assert index.kind == IVF_FLAT and not index.exact
    assert index.faiss_index.nlist == APPROXIMATE.nlist_for(len(clustered))
    queries = np.arange(0, len(clustered), 37)
    found, _ = index.neighbours_of_rows(queries, K)
    exact, _ = build_index(clustered).neighbours_of_rows(queries, K)
    assert _recall(found, exact) >= 0.95
    assert not np.any(found == queries[:, None]), "a source is never its own neighbour"
    # one cell scanned instead of the default: the same index, visibly worse (the setting is used)
    one_cell = build_index(clustered, IndexSettings(exact_max_vectors=1_000, nprobe=1))
    assert _recall(one_cell.neighbours_of_rows(queries, K)[0], exact) < _recall(found, exact)


def test_compressed_index_reranks_to_exact_cosines(clustered):
    index = build_index(clustered, IndexSettings(exact_max_vectors=1_000, compress_above=2_000))
    assert index.kind == IVF_SQ8
    queries = clustered[::50] + 0.01
    rows, sims = index.search(queries, K)
    exact_rows, _ = exact_search(l2_normalise(clustered), l2_normalise(queries), K)
    assert _recall(rows, exact_rows) >= 0.95
    # the similarities are exact cosines of the rows returned (re-ranked against the full vectors)
    expected = np.einsum("md,mkd->mk", l2_normalise(queries), l2_normalise(clustered)[rows])
    np.testing.assert_allclose(sims, expected, atol=1e-5)


def test_query_excludes_and_is_complete_even_when_asking_for_most_of_the_space(clustered):
    index = build_index(clustered[:3_000], APPROXIMATE)
    rows, sims = index.query(clustered[5], 20, exclude=[5, 6])
    assert len(rows) == 20 and not {5, 6} & set(rows.tolist())
    assert np.all(np.diff(sims) <= 1e-6)
    many, _ = index.query(clustered[5], 2_500, exclude=[5])  # beyond what the scanned cells hold: exact
    assert len(many) == 2_500 and len(set(many.tolist())) == 2_500 and 5 not in many
    assert len(index.query(clustered[5], 10_000)[0]) == 3_000


def test_neighbours_of_rows_keeps_an_exact_twin():
    rng = np.random.default_rng(4)
    vectors = rng.normal(size=(200, 8)).astype(np.float32)
    vectors[9] = vectors[2]
    rows, sims = build_index(vectors).neighbours_of_rows([2, 9], 3)
    assert rows[0, 0] == 9 and rows[1, 0] == 2 and np.allclose(sims[:, 0], 1.0)
    assert 2 not in rows[0] and 9 not in rows[1]


def test_saved_index_loads_memory_mapped_with_the_same_answers(clustered, tmp_path):
    index = build_index(clustered, APPROXIMATE)
    entry = index.save(tmp_path)
    assert (tmp_path / INDEX_FILE).is_file() and entry["kind"] == IVF_FLAT and entry["vectors"] == len(clustered)
    json.dumps(entry)  # the manifest entry is plain JSON
    loaded = load_index(tmp_path, entry, index.unit_vectors)
    assert loaded.kind == IVF_FLAT and loaded.faiss_index.nprobe == index.faiss_index.nprobe
    queries = clustered[:30]
    np.testing.assert_array_equal(loaded.search(queries, K)[0], index.search(queries, K)[0])
    with pytest.raises(ExplorerError, match="holds 6,000 vectors"):
        load_index(tmp_path, entry, index.unit_vectors[:100])
    del loaded  # its mapping would point past the end of the file cut short below
    (tmp_path / INDEX_FILE).write_bytes(b"not an index")
    with pytest.raises(ExplorerError, match=r"cannot be read \(it holds 12 bytes"):
        load_index(tmp_path, entry, index.unit_vectors)
    older = {key: value for key, value in entry.items() if key != "bytes"}  # no size: read, not mapped
    with pytest.raises(ExplorerError, match="cannot be read"):
        load_index(tmp_path, older, index.unit_vectors)


def test_a_space_without_a_usable_index_builds_one_and_says_so(clustered, tmp_path):
    unit = l2_normalise(clustered)
    small = load_or_build(tmp_path, None, unit[:500], settings=APPROXIMATE)
    assert small.kind == EXACT and small.note == ""  # what an old small space always did
    saved = []
    built = load_or_build(tmp_path, None, unit, save=saved.append, settings=APPROXIMATE)
    assert built.kind == IVF_FLAT and saved == [built]
    assert "no neighbour index" in built.note and "saved into the space" in built.note

    def refuse(index):
        raise OSError("read-only folder")

    damaged = {"kind": IVF_FLAT, "file": INDEX_FILE, "settings": {"exact_max_vectors": 1_000}}
    rebuilt = load_or_build(tmp_path, damaged, unit, save=refuse, settings=APPROXIMATE)
    assert rebuilt.kind == IVF_FLAT and "unusable" in rebuilt.note and "could not be saved" in rebuilt.note


def test_the_apps_cosine_index_wraps_the_neighbour_index(clustered):
    index = CosineIndex().fit(clustered[:2_000])
    assert index.exact and len(index) == 2_000
    rows, sims = index.query_index(3, 5)
    assert 3 not in rows and len(rows) == 5
    np.testing.assert_allclose(index.similarities(clustered[3], rows), sims, atol=1e-6)
    approximate = CosineIndex(neighbour_index=build_index(clustered, APPROXIMATE))
    assert not approximate.exact
    assert approximate.query_index(3, 5)[0].tolist() == approximate.neighbour_index.query_row(3, 5)[0].tolist()


def test_outlier_scores_and_purity_use_the_index(clustered):
    from explorer.neighbourhood import knn_outlier_scores
    from pretrain.evaluate import neighbour_purity

    vectors = clustered[:1_500]
    unit = l2_normalise(vectors)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    kth = np.sort(similarity, axis=1)[:, -3]  # the 3rd most similar other vector, brute force
    np.testing.assert_allclose(knn_outlier_scores(vectors, 3), 1.0 - kth, atol=1e-5)
    labels = np.where(np.arange(1_500) % 2, "FRI", "FRII")
    from_vectors = neighbour_purity(vectors, labels, k=8)
    from_index = neighbour_purity(build_index(vectors), labels, k=8)
    assert from_vectors.equals(from_index) and len(from_vectors) == 2
