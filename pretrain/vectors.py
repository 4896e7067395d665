"""Row-wise vector arithmetic shared by the map, the similarity search and the evaluation."""

from __future__ import annotations

import numpy as np


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows (the last axis) scaled to unit L2 length, as float32; all-zero rows stay zero
    (so their cosine similarity to anything is 0)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
