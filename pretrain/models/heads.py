"""BYOL projection and prediction heads: Linear -> BatchNorm -> ReLU -> Linear."""

from __future__ import annotations

from torch import nn

HIDDEN_DIM = 1024
PROJECTION_DIM = 256


class MLPHead(nn.Sequential):
    def __init__(self, in_dim: int, hidden_dim: int = HIDDEN_DIM, out_dim: int = PROJECTION_DIM):
        super().__init__(
            nn.Linear(in_dim, hidden_dim),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim),
        )


def projection_head(in_dim: int = 512) -> MLPHead:
    return MLPHead(in_dim)


def prediction_head(in_dim: int = PROJECTION_DIM) -> MLPHead:
    return MLPHead(in_dim)
