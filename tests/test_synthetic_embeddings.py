"""The benches' one generator of synthetic representations (bench/make_synthetic_embeddings.py)."""

from __future__ import annotations

import numpy as np

from bench.make_synthetic_embeddings import (
    EXTENT_RANGE_ARCSEC,
    clustered_embeddings,
    clustered_embeddings_with_extent,
)


def test_the_same_arguments_give_the_same_vectors_and_the_options_shape_them():
    x = clustered_embeddings(3000, dim=64, seed=4, clusters=20, latent=8)
    assert x.dtype == np.float32 and x.shape == (3000, 64)
    assert np.array_equal(x, clustered_embeddings(3000, dim=64, seed=4, clusters=20, latent=8))
    assert not np.array_equal(x, clustered_embeddings(3000, dim=64, seed=5, clusters=20, latent=8))
    assert (x < 0).mean() > 0.3  # a linear mapping: signed
    # its latent structure: 8 directions carry nearly all the variance of 64
    variance = np.linalg.svd(x - x.mean(0), compute_uv=False) ** 2
    assert variance[:8].sum() / variance.sum() > 0.95

    shape = dict(dim=64, seed=1, clusters=10, latent=8, noise=0.1)
    signed = clustered_embeddings(2000, **shape)
    after = clustered_embeddings(2000, **shape, relu="after_noise")
    assert after.min() >= 0.0 and (after == 0).mean() > 0.2  # non-negative, like a ReLU's output
    before = clustered_embeddings(2000, **shape, relu="before_noise")
    assert signed.min() < -1.0 < -0.6 < before.min() < 0.0  # ReLU features with the noise on top: small negatives

    # clusters=0: one Gaussian at the origin, where clusters' centres move the mean away from it
    one = clustered_embeddings(20_000, dim=16, seed=2, clusters=0, latent=16, spread=0.5)
    three = clustered_embeddings(20_000, dim=16, seed=2, clusters=3, latent=16, spread=0.5)
    assert np.abs(one.mean(0)).max() < 0.05 < 0.2 < np.abs(three.mean(0)).max()


def test_the_extent_axis_is_encoded_in_the_vectors():
    x, extent = clustered_embeddings_with_extent(4000, dim=64, seed=0, clusters=10, latent=6, spread=(0.2, 0.6))
    assert x.shape == (4000, 64) and extent.shape == (4000,)
    assert EXTENT_RANGE_ARCSEC[0] <= extent.min() and extent.max() <= EXTENT_RANGE_ARCSEC[1]
    design = np.column_stack([x, np.ones(len(x))])

    def explained(target: np.ndarray) -> float:  # R^2 of a linear fit of the target on the vectors
        residual = target - design @ np.linalg.lstsq(design, target, rcond=None)[0]
        return 1.0 - float(residual.var() / target.var())

    assert explained(np.log(extent)) > 0.99  # a linear mapping keeps the axis
    unrelated = np.random.default_rng(9).uniform(np.log(5.0), np.log(300.0), len(x))
    assert explained(unrelated) < 0.05  # what the vectors do not encode is not found
