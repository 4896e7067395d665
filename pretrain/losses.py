"""The BYOL loss (Grill et al. 2020): 2 - 2 cos between prediction and target projection.

Equal to the mean squared error between the L2-normalised vectors. The target side never
carries gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def byol_loss(prediction: torch.Tensor, target_projection: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``2 - 2 cos(prediction, target_projection)`` (0..4)."""
    p = F.normalize(prediction.float(), dim=-1)
    z = F.normalize(target_projection.detach().float(), dim=-1)
    return (2 - 2 * (p * z).sum(dim=-1)).mean()


def symmetric_byol_loss(
    prediction_1: torch.Tensor, prediction_2: torch.Tensor, target_1: torch.Tensor, target_2: torch.Tensor
) -> torch.Tensor:
    """Each view's prediction against the other view's target, summed as in the paper (0..8)."""
    return byol_loss(prediction_1, target_2) + byol_loss(prediction_2, target_1)
