"""A similarity a user can read: a cosine's rank among all pairs of sources in a space.

Raw cosine similarities of one backbone crowd into a narrow band (most pairs of radio
sources score above 0.9), so "0.982" says little by itself. :class:`PairSimilarity`
learns the distribution of the cosine over random pairs of distinct sources of a space
(``fit``) and turns any cosine into the share of pairs that are *less* similar
(``percentile``): 99.6 means only 0.4 % of all pairs of the space are as similar. Fitting
costs one pass over 200,000 random pairs (well under a second at any space size), so the
app fits it when it opens a space instead of storing it.
"""

from __future__ import annotations

import numpy as np

N_PAIRS = 200_000  # random pairs sampled: the percentile's error is about 0.1 % near the top
N_QUANTILES = 2001  # stored levels: 0, 0.05 %, ..., 100 %
TOP_LEVELS = 200  # the top 1 % of pairs stored at 100x finer levels (where neighbours lie)


class PairSimilarity:
    """Cosine -> percentile among the space's random pairs (scikit-learn style: ``fit`` sets ``levels_``)."""

    def __init__(self, n_pairs: int = N_PAIRS, seed: int = 0):
        self.n_pairs = n_pairs
        self.seed = seed

    def fit(self, vectors: np.ndarray) -> PairSimilarity:
        """Learn the cosine distribution of random pairs of distinct rows of ``vectors`` (N, D)."""
        x = np.asarray(vectors, np.float32)
        if len(x) < 2:
            raise ValueError("a pair similarity scale needs at least two sources")
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        rng = np.random.default_rng(self.seed)
        n = min(self.n_pairs, len(x) * (len(x) - 1) // 2)
        first = rng.integers(0, len(x), n)
        second = (first + rng.integers(1, len(x), n)) % len(x)  # never the same row
        cosine = np.einsum("ij,ij->i", x[first], x[second])
        levels = np.concatenate(
            [np.linspace(0.0, 99.0, N_QUANTILES - TOP_LEVELS, endpoint=False), np.linspace(99.0, 100.0, TOP_LEVELS + 1)]
        )
        self.levels_ = levels
        self.quantiles_ = np.quantile(cosine, levels / 100.0)
        self.n_pairs_ = int(n)
        return self

    def percentile(self, cosine) -> np.ndarray:
        """The percentage (0..100) of random pairs less similar than each ``cosine``."""
        cosine = np.asarray(cosine, np.float64)
        # np.interp needs increasing x; ties in the quantiles (a discrete distribution) are fine.
        return np.interp(cosine, self.quantiles_, self.levels_, left=0.0, right=100.0)


def describe_percentile(percentile: float) -> str:
    """'top 0.4 %' for a neighbour's percentile: the share of pairs at least as similar."""
    top = 100.0 - float(percentile)
    if top < 0.01:
        return "top 0.01 %"
    if top < 1.0:
        return f"top {top:.2f} %"
    return f"top {top:.0f} %" if top >= 10 else f"top {top:.1f} %"
