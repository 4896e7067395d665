"""BYOL (Grill et al. 2020): online encoder -> projection -> prediction, and a momentum
(EMA) target copy of encoder + projection, updated as xi <- tau xi + (1 - tau) theta.

In the spirit of lucidrains/byol-pytorch, with the loss in ``pretrain.losses`` and the
heads in ``pretrain.models.heads``.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from pretrain import config
from pretrain.losses import symmetric_byol_loss
from pretrain.models.heads import prediction_head, projection_head
from pretrain.models.resnet import ResNet18Encoder, resnet18_encoder


def cosine_tau(step: int, total_steps: int, base: float = config.BYOL_TAU_BASE) -> float:
    """EMA coefficient: ``base`` at step 0 rising to 1 at ``total_steps`` on a cosine."""
    progress = min(max(step / max(total_steps, 1), 0.0), 1.0)
    return 1 - (1 - base) * (math.cos(math.pi * progress) + 1) / 2


class BYOL(nn.Module):
    """``forward(view_1, view_2)`` returns the symmetrised loss; call ``update_target(tau)``
    after each optimiser step. ``encoder`` is the backbone to keep afterwards."""

    def __init__(self, encoder: ResNet18Encoder | None = None):
        super().__init__()
        self.encoder = encoder if encoder is not None else resnet18_encoder()
        self.projector = projection_head(self.encoder.representation_dim)
        self.predictor = prediction_head()
        self.target_encoder = copy.deepcopy(self.encoder)
        self.target_projector = copy.deepcopy(self.projector)
        for p in self.target_parameters():
            p.requires_grad_(False)

    def online_parameters(self):
        for module in (self.encoder, self.projector, self.predictor):
            yield from module.parameters()

    def target_parameters(self):
        for module in (self.target_encoder, self.target_projector):
            yield from module.parameters()

    def _online(self, x: torch.Tensor) -> torch.Tensor:
        return self.predictor(self.projector(self.encoder(x)))

    @torch.no_grad()
    def _target(self, x: torch.Tensor) -> torch.Tensor:
        return self.target_projector(self.target_encoder(x))

    def forward(self, view_1: torch.Tensor, view_2: torch.Tensor) -> torch.Tensor:
        # Both views in one pass: BatchNorm sees the whole 2B batch, as in the reference code.
        views = torch.cat([view_1, view_2])
        p_1, p_2 = self._online(views).chunk(2)
        z_1, z_2 = self._target(views).chunk(2)
        return symmetric_byol_loss(p_1, p_2, z_1, z_2)

    @torch.no_grad()
    def update_target(self, tau: float) -> None:
        """xi <- tau xi + (1 - tau) theta for encoder and projection weights; BatchNorm
        running statistics are copied from the online network."""
        online: list[torch.Tensor] = [*self.encoder.parameters(), *self.projector.parameters()]
        target: list[torch.Tensor] = list(self.target_parameters())
        torch._foreach_mul_(target, tau)
        torch._foreach_add_(target, online, alpha=1 - tau)
        for src, dst in ((self.encoder, self.target_encoder), (self.projector, self.target_projector)):
            for b_online, b_target in zip(src.buffers(), dst.buffers()):
                b_target.copy_(b_online)
