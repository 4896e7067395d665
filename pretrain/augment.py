"""Whole-batch image augmentations on the training device (science.md, "augmentations").

Every random draw is one tensor of shape (B,) and every geometric step is one
``grid_sample`` call for the whole batch: no per-image Python loop, so the pipeline runs at
the speed of the device instead of the speed of a DataLoader worker.

Order, as in the reference study:

1. random rotation 0-360 deg, nearest neighbour, about the image centre, then the centre
   crop to 70 px -- one nearest-neighbour sampling pass (150 -> 70);
2. random resized crop (area fraction in ``crop_scale``, aspect ratio 3/4..4/3, resized
   back to 70 px bilinearly as torchvision does) and horizontal / vertical flips
   (p = 0.5 each) -- one bilinear sampling pass (70 -> 70);
3. pretraining only: brightness / contrast jitter (strength s -> factors 1 +- 0.8 s, the
   SimCLR convention; random order per image) with p = 0.8, Gaussian blur with p = 0.1.

Rotation and resizing are two passes on purpose: the study rotates with nearest
neighbour (no smoothing of the sparse radio emission) and resizes bilinearly.

Input: (B, 1, 150, 150) or (B, 150, 150), uint8 (converted by
``backbone.to_model_input``) or float in 0..1. Output: (B, 1, 70, 70) float in 0..1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pretrain import config
from pretrain.models.backbone import to_model_input


@dataclass(frozen=True)
class AugmentationSettings:
    crop_scale: tuple[float, float]  # fraction of the 70 px crop's area kept
    crop_ratio: tuple[float, float] = config.AUG_CROP_RATIO
    flip_p: float = config.AUG_FLIP_P
    jitter_p: float = 0.0  # probability of brightness / contrast jitter
    jitter_strength: float = 0.0  # s; brightness and contrast factors in 1 +- 0.8 s
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = config.AUG_BLUR_SIGMA
    blur_kernel_px: int = config.AUG_BLUR_KERNEL_PX
    output_px: int = config.MODEL_INPUT_PX


PRETRAINING = AugmentationSettings(
    crop_scale=config.PRETRAIN_CROP_SCALE,
    jitter_p=config.PRETRAIN_JITTER_P,
    jitter_strength=config.PRETRAIN_JITTER_STRENGTH,
    blur_p=config.PRETRAIN_BLUR_P,
)
FINETUNING = AugmentationSettings(crop_scale=config.FINETUNE_CROP_SCALE)


def _uniform(n: int, low: float, high: float, device, generator) -> torch.Tensor:
    return torch.rand(n, device=device, generator=generator) * (high - low) + low


def _as_float_batch(batch: torch.Tensor) -> torch.Tensor:
    if batch.ndim == 3:
        batch = batch[:, None]
    if batch.dtype == torch.uint8:
        return to_model_input(batch, device=batch.device, crop_px=None)
    return batch.float()


def rotate_and_centre_crop(batch: torch.Tensor, angle_rad: torch.Tensor, crop_px: int) -> torch.Tensor:
    """Rotate each image by its angle about the centre (nearest) and keep the central crop."""
    b, _, h, w = batch.shape
    cos, sin = torch.cos(angle_rad), torch.sin(angle_rad)
    sx, sy = crop_px / w, crop_px / h  # output grid -> input normalised coordinates
    theta = torch.zeros(b, 2, 3, device=batch.device, dtype=batch.dtype)
    # Output (x, y) samples the input at R(-angle)(x, y): the image turns by +angle
    # (from +x towards +y, i.e. clockwise on screen with y pointing down).
    theta[:, 0, 0], theta[:, 0, 1] = cos * sx, sin * sy
    theta[:, 1, 0], theta[:, 1, 1] = -sin * sx, cos * sy
    grid = F.affine_grid(theta, [b, 1, crop_px, crop_px], align_corners=False)
    return F.grid_sample(batch, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def resized_crop_and_flip(
    batch: torch.Tensor,
    width_frac: torch.Tensor,
    height_frac: torch.Tensor,
    centre_x: torch.Tensor,
    centre_y: torch.Tensor,
    flip_x: torch.Tensor,
    flip_y: torch.Tensor,
    output_px: int,
) -> torch.Tensor:
    """Crop a (width_frac x height_frac) window at (centre_x, centre_y) (normalised -1..1),
    flip it where flip_x / flip_y is -1 and resize it to output_px, bilinearly."""
    b = batch.shape[0]
    theta = torch.zeros(b, 2, 3, device=batch.device, dtype=batch.dtype)
    theta[:, 0, 0] = width_frac * flip_x
    theta[:, 1, 1] = height_frac * flip_y
    theta[:, 0, 2], theta[:, 1, 2] = centre_x, centre_y
    grid = F.affine_grid(theta, [b, 1, output_px, output_px], align_corners=False)
    return F.grid_sample(batch, grid, mode="bilinear", padding_mode="border", align_corners=False)


def sample_crop_fractions(
    n: int, scale: tuple[float, float], ratio: tuple[float, float], device, generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Width and height (as fractions of the side) of crops with area fraction in ``scale``.

    Aspect ratios are log-uniform in ``ratio``; a side that would exceed the image is set
    to 1 and the other side shortened so that the area stays the drawn fraction.
    """
    area = _uniform(n, scale[0], scale[1], device, generator)
    log_ratio = _uniform(n, math.log(ratio[0]), math.log(ratio[1]), device, generator)
    aspect = torch.exp(log_ratio)
    width, height = torch.sqrt(area * aspect), torch.sqrt(area / aspect)
    too_wide, too_tall = width > 1, height > 1
    width, height = torch.where(too_wide, 1.0, width), torch.where(too_wide, area, height)
    height, width = torch.where(too_tall, 1.0, height), torch.where(too_tall, area, width)
    return width, height


def _blend(a: torch.Tensor, b: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """factor * a + (1 - factor) * b, clamped to 0..1 (torchvision's adjust_* arithmetic)."""
    return (factor * a + (1 - factor) * b).clamp_(0.0, 1.0)


def brightness_contrast_jitter(
    batch: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor, contrast_first: torch.Tensor
) -> torch.Tensor:
    """Per-image brightness and contrast factors (B,), applied in a per-image random order."""
    bf, cf = brightness.view(-1, 1, 1, 1), contrast.view(-1, 1, 1, 1)

    def adjust_brightness(x):
        return _blend(x, torch.zeros_like(x), bf)

    def adjust_contrast(x):
        return _blend(x, x.mean(dim=(1, 2, 3), keepdim=True), cf)

    brightness_then_contrast = adjust_contrast(adjust_brightness(batch))
    contrast_then_brightness = adjust_brightness(adjust_contrast(batch))
    return torch.where(contrast_first.view(-1, 1, 1, 1), contrast_then_brightness, brightness_then_contrast)


def gaussian_blur(batch: torch.Tensor, sigma: torch.Tensor, kernel_px: int) -> torch.Tensor:
    """Separable Gaussian blur with one sigma per image (grouped convolution, reflect padding)."""
    b, c, h, w = batch.shape
    half = kernel_px // 2
    x = torch.arange(-half, half + 1, device=batch.device, dtype=batch.dtype)
    kernel = torch.exp(-0.5 * (x[None] / sigma[:, None]) ** 2)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # (B, K)
    flat = batch.reshape(1, b * c, h, w)
    flat = F.pad(flat, (half, half, half, half), mode="reflect")
    kx = kernel.repeat_interleave(c, 0)[:, None, None, :]
    ky = kernel.repeat_interleave(c, 0)[:, None, :, None]
    flat = F.conv2d(flat, kx, groups=b * c)
    flat = F.conv2d(flat, ky, groups=b * c)
    return flat.reshape(b, c, h, w)


class BatchAugmentation(nn.Module):
    """Random augmentation of a whole batch: (B, 1, H, W) -> (B, 1, 70, 70) float 0..1.

    ``generator`` (a ``torch.Generator`` on the batch's device) makes the draws
    reproducible; without one the global RNG is used.
    """

    def __init__(self, settings: AugmentationSettings):
        super().__init__()
        self.settings = settings

    @torch.no_grad()
    def forward(self, batch: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        s = self.settings
        x = _as_float_batch(batch)
        n, dev = x.shape[0], x.device
        angle = _uniform(n, 0.0, 2 * math.pi, dev, generator)
        x = rotate_and_centre_crop(x, angle, s.output_px)

        width, height = sample_crop_fractions(n, s.crop_scale, s.crop_ratio, dev, generator)
        centre_x = _uniform(n, -1.0, 1.0, dev, generator) * (1 - width)
        centre_y = _uniform(n, -1.0, 1.0, dev, generator) * (1 - height)
        flip_x = torch.where(torch.rand(n, device=dev, generator=generator) < s.flip_p, -1.0, 1.0)
        flip_y = torch.where(torch.rand(n, device=dev, generator=generator) < s.flip_p, -1.0, 1.0)
        x = resized_crop_and_flip(x, width, height, centre_x, centre_y, flip_x, flip_y, s.output_px)

        if s.jitter_p > 0 and s.jitter_strength > 0:
            amount = 0.8 * s.jitter_strength
            brightness = _uniform(n, max(0.0, 1 - amount), 1 + amount, dev, generator)
            contrast = _uniform(n, max(0.0, 1 - amount), 1 + amount, dev, generator)
            contrast_first = torch.rand(n, device=dev, generator=generator) < 0.5
            apply = torch.rand(n, device=dev, generator=generator) < s.jitter_p
            jittered = brightness_contrast_jitter(x, brightness, contrast, contrast_first)
            x = torch.where(apply.view(-1, 1, 1, 1), jittered, x)
        if s.blur_p > 0:
            sigma = _uniform(n, s.blur_sigma[0], s.blur_sigma[1], dev, generator)
            apply = torch.rand(n, device=dev, generator=generator) < s.blur_p
            # Blur every image and keep the chosen ones: no host sync, and cheap next to the model.
            x = torch.where(apply.view(-1, 1, 1, 1), gaussian_blur(x, sigma, s.blur_kernel_px), x)
        return x.clamp_(0.0, 1.0)


def pretraining_augmentation() -> BatchAugmentation:
    return BatchAugmentation(PRETRAINING)


def pretraining_augment(batch: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The BYOL pretraining view: (B, 1, 150, 150) uint8 or 0..1 float -> (B, 1, 70, 70)."""
    return BatchAugmentation(PRETRAINING)(batch, generator)


def finetuning_augment(batch: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The fine-tuning / linear-probe view: geometric changes only, no photometric ones."""
    return BatchAugmentation(FINETUNING)(batch, generator)
