"""Exact cosine top-k, map neighbours and the sky-duplicate filter, against independent references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from sklearn.neighbors import NearestNeighbors

from explorer.similarity import CosineIndex, MapIndex, format_similarity, top_k_indices
from explorer.sky import nearest_on_sky, separation_arcsec, sky_duplicate_mask
from pretrain.vectors import l2_normalise


def test_cosine_top_k_matches_sklearn_brute_force():
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(2000, 64)).astype(np.float32)
    query = rng.normal(size=64).astype(np.float32)
    idx, sim = CosineIndex().fit(vectors).query(query, k=25)
    reference = NearestNeighbors(n_neighbors=25, metric="cosine", algorithm="brute").fit(vectors)
    ref_dist, ref_idx = reference.kneighbors(query[None])
    np.testing.assert_array_equal(idx, ref_idx[0])
    np.testing.assert_allclose(sim, 1.0 - ref_dist[0], atol=1e-5)
    assert np.all(np.diff(sim) <= 0), "similarities must be in descending order"


def test_top_k_excludes_and_handles_small_sets():
    scores = np.array([0.5, 0.9, 0.9, 0.1, 0.7])
    np.testing.assert_array_equal(top_k_indices(scores, 3), [1, 2, 4])  # tie broken by index
    np.testing.assert_array_equal(top_k_indices(scores, 3, exclude=[1]), [2, 4, 0])
    np.testing.assert_array_equal(top_k_indices(scores, 10, exclude=[0, 0]), [1, 2, 4, 3])
    assert top_k_indices(scores, 0).size == 0


def test_query_index_never_returns_the_query_itself():
    rng = np.random.default_rng(2)
    vectors = rng.normal(size=(300, 16))
    vectors[7] = vectors[3]  # an exact twin: similarity 1, must still come back (it is not the query)
    index = CosineIndex().fit(vectors)
    idx, sim = index.query_index(3, k=5)
    assert 3 not in idx
    assert idx[0] == 7 and sim[0] == pytest.approx(1.0, abs=1e-6)


def test_zero_vector_is_not_similar_to_anything():
    unit = l2_normalise(np.array([[0.0, 0.0], [3.0, 4.0]]))
    np.testing.assert_allclose(unit, [[0, 0], [0.6, 0.8]])


def test_a_similarity_below_one_never_reads_as_one():
    assert [format_similarity(v) for v in (0.987, 0.9994, 0.99961, 0.99994, 0.99991, 1.0, -0.25)] == [
        "0.987", "0.9994", "0.9996", "0.99994", "0.99991", "1.000", "-0.250",
    ]  # fmt: skip
    assert float(format_similarity(0.999994)) < 1.0  # as many places as it takes, up to 6


def test_map_index_matches_sklearn():
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 10, size=(5000, 2))
    idx, dist = MapIndex().fit(xy).query_index(42, k=10)
    ref_dist, ref_idx = NearestNeighbors(n_neighbors=11).fit(xy).kneighbors(xy[[42]])
    np.testing.assert_array_equal(idx, ref_idx[0][1:])
    np.testing.assert_allclose(dist, ref_dist[0][1:])


def test_separation_agrees_with_astropy():
    rng = np.random.default_rng(4)
    ra1, ra2 = rng.uniform(0, 360, 200), rng.uniform(0, 360, 200)
    dec1, dec2 = rng.uniform(-89, 89, 200), rng.uniform(-89, 89, 200)
    # include tiny separations, where naive formulas lose precision
    ra2[:50], dec2[:50] = ra1[:50] + 1e-4, dec1[:50] - 2e-4
    expected = SkyCoord(ra1 * u.deg, dec1 * u.deg).separation(SkyCoord(ra2 * u.deg, dec2 * u.deg)).arcsec
    np.testing.assert_allclose(separation_arcsec(ra1, dec1, ra2, dec2), expected, rtol=1e-7, atol=1e-6)


def test_sky_duplicate_filter_drops_twins_of_earlier_results_and_of_the_query():
    dec0 = 30.0
    step = 1.0 / 3600.0 / np.cos(np.radians(dec0))  # one arcsec in RA at this Dec
    ra = np.array([100.0, 100.0 + 10 * step, 101.0, 101.0 + 40 * step, 150.0 + 5 * step, 101.0 + 20 * step])
    dec = np.full(ra.size, dec0)
    keep = sky_duplicate_mask(ra, dec, 30.0, query_radec=(150.0, dec0))
    # 1: 10" from 0 -> dropped; 3: 40" from 2 -> kept; 4: 5" from the query -> dropped;
    # 5: 20" from 2 (kept) and from 3 -> dropped
    np.testing.assert_array_equal(keep, [True, False, True, True, False, False])
    assert sky_duplicate_mask(ra, dec, 0.0).all()
    assert sky_duplicate_mask(ra, dec, 5.0).all()


def test_sky_duplicate_filter_on_real_rgz_twins(rgz_map_path):
    """RGZ DR1 lists some objects twice: the filter keeps exactly one of each close pair."""
    rgz = pd.read_parquet(rgz_map_path)
    coords = SkyCoord(rgz["ra"].to_numpy() * u.deg, rgz["dec"].to_numpy() * u.deg)
    first, second, sep, _ = coords[:5000].search_around_sky(coords[:5000], 30 * u.arcsec)
    pairs = [(i, j) for i, j in zip(first, second) if i < j]
    assert pairs, "expected catalogue twins within 30 arcsec in RGZ DR1"
    i, j = pairs[0]
    far = int(np.argmax(separation_arcsec(rgz["ra"][i], rgz["dec"][i], rgz["ra"], rgz["dec"])))
    order = [i, j, far]
    keep = sky_duplicate_mask(rgz["ra"].to_numpy()[order], rgz["dec"].to_numpy()[order], 30.0)
    np.testing.assert_array_equal(keep, [True, False, True])
    row, distance = nearest_on_sky(float(rgz["ra"][j]), float(rgz["dec"][j]), rgz["ra"], rgz["dec"])
    assert distance == pytest.approx(0.0, abs=1e-6)  # j itself (or an entry at the very same position)
