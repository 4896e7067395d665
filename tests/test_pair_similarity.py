"""The cosine's percentile among a space's random pairs: what the gallery shows beside the raw cosine."""

from __future__ import annotations

import numpy as np
import pytest

from pretrain.pair_similarity import PairSimilarity, describe_percentile


def test_percentile_of_random_directions_follows_their_known_distribution():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 64))
    scale = PairSimilarity(n_pairs=50_000).fit(x)
    # Cosines of random directions in 64-d are symmetric about 0 with sd 1/8.
    assert scale.percentile(0.0) == pytest.approx(50.0, abs=1.0)
    assert scale.percentile(0.125) == pytest.approx(84.1, abs=1.5)
    assert scale.percentile(-1.0) == 0.0 and scale.percentile(1.0) == 100.0
    grid = np.linspace(-0.5, 0.5, 101)
    assert np.all(np.diff(scale.percentile(grid)) >= 0)


def test_a_nearest_neighbour_in_clustered_data_ranks_near_the_top_even_when_raw_cosines_crowd():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(20, 32))
    members = np.repeat(centres, 50, axis=0) + 0.3 * rng.normal(size=(1000, 32))
    members += 10.0  # a common offset: every raw cosine above ~0.9, as a real backbone's
    unit = members / np.linalg.norm(members, axis=1, keepdims=True)
    cosine = unit @ unit.T
    np.fill_diagonal(cosine, -np.inf)
    nearest = cosine.max(axis=1)
    scale = PairSimilarity().fit(members)
    assert np.median(cosine[np.isfinite(cosine)]) > 0.9
    assert np.min(scale.percentile(nearest)) > 90.0  # same-cluster pairs are ~5 % of pairs
    assert describe_percentile(99.6) == "top 0.40 %" and describe_percentile(85) == "top 15 %"


def test_the_scale_is_deterministic_and_refuses_a_single_source():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(500, 16))
    probe = np.linspace(-1, 1, 57)
    a, b = PairSimilarity(n_pairs=10_000, seed=3).fit(x), PairSimilarity(n_pairs=10_000, seed=3).fit(x)
    assert np.array_equal(a.percentile(probe), b.percentile(probe)) and a.n_pairs_ == 10_000
    with pytest.raises(ValueError, match="two sources"):
        PairSimilarity().fit(np.ones((1, 4)))
