"""Convolutions that share their weights over the dihedral group D4 (4 turns x mirror).

A radio source's orientation on the sky carries no meaning, so a network whose
representation is the same for the 8 turned and mirrored copies of an image needs no d4
average at embedding time (one pass instead of 8) and spends no capacity learning the
symmetry. This is the group convolution of Cohen & Welling (2016, "p4m"): a feature map
holds, per channel, one plane per group element, stored as ``(B, C * 8, H, W)`` with
plane ``c * 8 + g``; turning or mirroring the input turns or mirrors every plane and
permutes the 8 planes of each channel. Averaging over the planes and the pixels at the
end gives an exactly invariant vector.

Exactness needs a downsampling whose sampling grid is symmetric: a 3x3 stride-2 window
with one pixel of padding on odd sizes, and a 2x2 average (or max) pool on even sizes;
:class:`D4Conv2d` and :class:`D4MaxPool` choose by the size they are given. (The
libraries for this, escnn and e2cnn, do not install beside numpy 2.)
"""

from __future__ import annotations

import math
from functools import cache

import torch
import torch.nn.functional as F
from torch import nn

ORDER = 8  # elements of D4: g = 4 * mirrored + quarter_turns


def transform(x: torch.Tensor, g: int) -> torch.Tensor:
    """The group element g acting on the last two (spatial) axes: mirror (if g >= 4), then turn."""
    mirrored, turns = divmod(g, 4)
    if mirrored:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, turns, dims=(-2, -1))


@cache
def _tables() -> tuple[tuple[tuple[int, ...], ...], tuple[int, ...]]:
    """(product[g][h] = index of g*h, inverse[g]), found from the action on an asymmetric image."""
    probe = torch.arange(9.0).reshape(3, 3)
    images = [transform(probe, g) for g in range(ORDER)]

    def index(image: torch.Tensor) -> int:
        return next(k for k, other in enumerate(images) if torch.equal(image, other))

    product = tuple(tuple(index(transform(transform(probe, h), g)) for h in range(ORDER)) for g in range(ORDER))
    inverse = tuple(product[g].index(0) for g in range(ORDER))
    return product, inverse


def plane_permutation(g: int) -> list[int]:
    """perm[k] = g^-1 k: which input plane a filter turned by g reads for input plane k."""
    product, inverse = _tables()
    return [product[inverse[g]][k] for k in range(ORDER)]


class D4Conv2d(nn.Module):
    """Group convolution: (B, in * [1 or 8], H, W) -> (B, out * 8, H', W'), equivariant under D4.

    ``lifting=True`` for the first layer, whose input is a plain image (one plane per
    channel). Odd kernels, 'same' padding; stride 2 on an even size is a stride-1
    convolution followed by a 2x2 average, so that the sampling grid stays symmetric.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, lifting: bool = False):
        super().__init__()
        if kernel_size % 2 == 0 or stride not in (1, 2):
            raise ValueError("D4Conv2d takes odd kernels and stride 1 or 2")
        planes_in = 1 if lifting else ORDER
        self.in_channels, self.out_channels, self.lifting = in_channels, out_channels, lifting
        self.kernel_size, self.stride, self.padding = kernel_size, stride, kernel_size // 2
        # Stored 4-D, (out, in * planes, k, k), like a Conv2d's, so that the model can go
        # channels_last (bf16 training, CUDA embedding); viewed as (out, in, planes, k, k) below.
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels * planes_in, kernel_size, kernel_size))
        # He initialisation for the full (in * planes) fan-in of each output plane
        nn.init.normal_(self.weight, std=math.sqrt(2.0 / (in_channels * planes_in * kernel_size**2)))
        self._inference_weight: tuple[tuple, torch.Tensor] | None = None

    def full_weight(self) -> torch.Tensor:
        """The (out * 8, in * planes, k, k) filters: the learned ones turned by each g, planes permuted.

        Without gradients and in eval mode (embedding, look-ups) the filters are built once
        and kept until the weights change, so that a single-image look-up does not rebuild
        them on every call.
        """
        if self.training or torch.is_grad_enabled():
            self._inference_weight = None
            return self._build_full_weight()
        w = self.weight
        key = (w._version, w.device, w.dtype, w.data_ptr(), torch.is_inference_mode_enabled())
        if self._inference_weight is None or self._inference_weight[0] != key:
            self._inference_weight = (key, self._build_full_weight())
        return self._inference_weight[1]

    def _build_full_weight(self) -> torch.Tensor:
        k = self.kernel_size
        w = self.weight.reshape(self.out_channels, self.in_channels, -1, k, k)
        turned = []
        for g in range(ORDER):
            wg = w if self.lifting else w[:, :, plane_permutation(g)]
            turned.append(transform(wg, g))
        full = torch.stack(turned, dim=1)  # (out, 8, in, planes, k, k)
        return full.reshape(self.out_channels * ORDER, -1, self.kernel_size, self.kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.full_weight()
        if self.stride == 1:
            return F.conv2d(x, weight, padding=self.padding)
        if x.shape[-1] % 2:  # odd size: the 3x3 stride-2 grid is symmetric
            return F.conv2d(x, weight, stride=2, padding=self.padding)
        return F.avg_pool2d(F.conv2d(x, weight, padding=self.padding), 2)


class D4BatchNorm(nn.Module):
    """Batch norm with one mean, variance, scale and shift per channel, shared by its 8 planes."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.BatchNorm3d(channels)

    @property
    def weight(self) -> nn.Parameter:  # so that zero-initialising a block's last norm reads as for BatchNorm2d
        return self.norm.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, cg, h, w = x.shape
        return self.norm(x.reshape(b, cg // ORDER, ORDER, h, w)).reshape(b, cg, h, w)


class D4MaxPool(nn.Module):
    """Halve the size with a symmetric grid: 3x3 stride 2 on odd sizes, 2x2 on even ones."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, 3, 2, 1) if x.shape[-1] % 2 else F.max_pool2d(x, 2)


def invariant_pool(x: torch.Tensor) -> torch.Tensor:
    """(B, C * 8, H, W) -> (B, C): the mean over pixels and the 8 planes, unchanged by any g."""
    b, cg = x.shape[:2]
    return x.mean(dim=(2, 3)).reshape(b, cg // ORDER, ORDER).mean(dim=2)
