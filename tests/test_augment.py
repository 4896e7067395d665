"""Batch augmentations: geometry, probabilities, photometric changes, reproducibility."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pretrain import config
from pretrain.augment import (
    FINETUNING,
    PRETRAINING,
    AugmentationSettings,
    BatchAugmentation,
    finetuning_augment,
    gaussian_blur,
    pretraining_augment,
    rotate_and_centre_crop,
    sample_crop_fractions,
)

torch.set_num_threads(1)
SIZE = config.IMAGE_SIZE_PX
OUT = config.MODEL_INPUT_PX


def bar_image(angle_deg: float = 0.0, length: int = 50, width: int = 3) -> torch.Tensor:
    """A bright bar through the image centre at the given angle (degrees from the x axis)."""
    y, x = torch.meshgrid(torch.arange(SIZE) - (SIZE - 1) / 2, torch.arange(SIZE) - (SIZE - 1) / 2, indexing="ij")
    a = math.radians(angle_deg)
    along = x * math.cos(a) + y * math.sin(a)
    across = -x * math.sin(a) + y * math.cos(a)
    return ((along.abs() <= length / 2) & (across.abs() <= width / 2)).float()


def bar_orientation_deg(image: torch.Tensor) -> float:
    """Orientation (0..180 deg) of the principal axis of an image's brightness."""
    img = image.squeeze().double()
    h, w = img.shape
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.double), torch.arange(w, dtype=torch.double), indexing="ij")
    m = img.sum()
    cx, cy = (img * x).sum() / m, (img * y).sum() / m
    mxx = (img * (x - cx) ** 2).sum() / m
    myy = (img * (y - cy) ** 2).sum() / m
    mxy = (img * (x - cx) * (y - cy)).sum() / m
    return math.degrees(0.5 * math.atan2(2 * mxy, mxx - myy)) % 180


def angle_difference(a: float, b: float) -> float:
    d = abs(a - b) % 180
    return min(d, 180 - d)


def random_batch(n: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, SIZE, SIZE, generator=g) * 255).to(torch.uint8)


@pytest.mark.parametrize("augment", [pretraining_augment, finetuning_augment])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_shape_range_and_dtype(augment, dtype):
    batch = random_batch(16)
    if dtype == torch.float32:
        batch = batch.float() / 255
    out = augment(batch, torch.Generator().manual_seed(1))
    assert out.shape == (16, 1, OUT, OUT)
    assert out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert float(out.std()) > 0.1  # not blank


def test_accepts_three_dimensional_batch():
    out = pretraining_augment(random_batch(4)[:, 0], torch.Generator().manual_seed(0))
    assert out.shape == (4, 1, OUT, OUT)


def test_rotation_by_zero_is_the_centre_crop_and_by_90_rotates_exactly():
    image = random_batch(1).float() / 255
    top = (SIZE - OUT) // 2
    centre = image[..., top : top + OUT, top : top + OUT]
    same = rotate_and_centre_crop(image, torch.tensor([0.0]), OUT)
    assert torch.equal(same, centre)
    quarter = rotate_and_centre_crop(image, torch.tensor([math.pi / 2]), OUT)
    # Nearest neighbour keeps pixel values: a quarter turn is a pure permutation of pixels.
    assert torch.equal(quarter, torch.rot90(centre, 1, dims=(-2, -1))) or torch.equal(
        quarter, torch.rot90(centre, -1, dims=(-2, -1))
    )


def test_rotation_turns_a_bar_by_the_drawn_angle():
    bar = bar_image(0.0)[None, None]
    for degrees in (30.0, 75.0, 140.0):
        rotated = rotate_and_centre_crop(bar, torch.tensor([math.radians(degrees)]), OUT)
        assert angle_difference(bar_orientation_deg(rotated), degrees) < 3.0
        assert set(torch.unique(rotated).tolist()) <= {0.0, 1.0}  # nearest neighbour: no new values


def test_random_rotation_covers_all_orientations():
    bars = bar_image(0.0)[None, None].repeat(200, 1, 1, 1)
    out = finetuning_augment(bars, torch.Generator().manual_seed(3))
    orientations = np.array([bar_orientation_deg(img) for img in out])
    counts, _ = np.histogram(orientations, bins=6, range=(0, 180))
    assert counts.min() >= 15  # uniform over 0-180: ~33 per bin


@pytest.mark.parametrize("settings", [PRETRAINING, FINETUNING])
def test_crop_area_within_bounds(settings):
    width, height = sample_crop_fractions(
        5000, settings.crop_scale, settings.crop_ratio, "cpu", torch.Generator().manual_seed(0)
    )
    area = width * height
    low, high = settings.crop_scale
    assert float(area.min()) >= low - 1e-6 and float(area.max()) <= high + 1e-6
    assert float(width.max()) <= 1 and float(height.max()) <= 1
    assert float(area.mean()) == pytest.approx((low + high) / 2, abs=0.01)
    ratio = width / height
    assert float(ratio.min()) < 0.95 and float(ratio.max()) > 1.05  # aspect ratios do vary


def test_crop_zooms_in_by_the_expected_amount():
    """A disc's apparent area grows by 1 / (crop area fraction) on average."""
    y, x = torch.meshgrid(torch.arange(SIZE) - (SIZE - 1) / 2, torch.arange(SIZE) - (SIZE - 1) / 2, indexing="ij")
    disc = ((x**2 + y**2) <= 15**2).float()[None, None].repeat(400, 1, 1, 1)
    no_photometry = AugmentationSettings(crop_scale=PRETRAINING.crop_scale)
    out = BatchAugmentation(no_photometry)(disc, torch.Generator().manual_seed(0))
    growth = out.sum(dim=(1, 2, 3)) / disc[0].sum()
    expected = float(torch.tensor(1 / np.random.default_rng(0).uniform(0.8, 1.0, 100_000)).mean())
    assert float(growth.mean()) == pytest.approx(expected, rel=0.03)
    assert float(growth.min()) > 0.95 and float(growth.max()) < 1 / 0.8 + 0.05


def test_flips_happen_about_half_the_time():
    """With rotation fixed by symmetry-free content, count mirrored outputs via the crop pass."""
    from pretrain.augment import resized_crop_and_flip

    image = random_batch(1).float() / 255
    batch = image[..., :OUT, :OUT].repeat(2000, 1, 1, 1)
    aug = BatchAugmentation(FINETUNING)
    # Draw flips as the module does, then check the sampled images match the flip flags.
    g = torch.Generator().manual_seed(5)
    flip_x = torch.where(torch.rand(2000, generator=g) < aug.settings.flip_p, -1.0, 1.0)
    flip_y = torch.where(torch.rand(2000, generator=g) < aug.settings.flip_p, -1.0, 1.0)
    ones, zeros = torch.ones(2000), torch.zeros(2000)
    out = resized_crop_and_flip(batch, ones, ones, zeros, zeros, flip_x, flip_y, OUT)
    base = batch[0]
    for i in range(20):
        expected = base
        if flip_x[i] < 0:
            expected = torch.flip(expected, dims=(-1,))
        if flip_y[i] < 0:
            expected = torch.flip(expected, dims=(-2,))
        assert torch.allclose(out[i], expected, atol=1e-5)
    assert float((flip_x < 0).float().mean()) == pytest.approx(0.5, abs=0.04)
    assert float((flip_y < 0).float().mean()) == pytest.approx(0.5, abs=0.04)


def test_flips_are_drawn_at_half_inside_the_module(monkeypatch):
    """An L-shaped image (no symmetry): after a zero rotation and full crop, each quadrant
    arrangement (identity, h, v, hv flip) appears about a quarter of the time."""
    settings = AugmentationSettings(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0))
    image = torch.zeros(1, 1, OUT, OUT)
    image[..., 5:20, 5:10] = 1.0  # top-left vertical stroke
    image[..., 15:20, 5:30] = 1.0  # horizontal stroke: an "L"
    batch = image.repeat(800, 1, 1, 1)
    aug = BatchAugmentation(settings)
    from pretrain import augment as module

    # No rotation for this test: the rotation step passes the 70 px image through.
    monkeypatch.setattr(module, "rotate_and_centre_crop", lambda x, angle, crop_px: x)
    out = aug(batch, torch.Generator().manual_seed(2))
    variants = {
        "none": image[0],
        "h": torch.flip(image[0], (-1,)),
        "v": torch.flip(image[0], (-2,)),
        "hv": torch.flip(image[0], (-2, -1)),
    }
    counts = {name: int(sum(torch.allclose(o, v, atol=1e-5) for o in out)) for name, v in variants.items()}
    assert sum(counts.values()) == len(out)
    for name, count in counts.items():
        assert 150 <= count <= 250, counts


def test_finetuning_set_has_no_photometric_change():
    """Geometric steps only: the mean brightness of each image is kept."""
    settings = FINETUNING
    assert settings.jitter_p == 0 and settings.blur_p == 0
    batch = random_batch(200).float() / 255
    out = finetuning_augment(batch, torch.Generator().manual_seed(0))
    top = (SIZE - OUT) // 2
    centre_mean = batch[..., top : top + OUT, top : top + OUT].mean(dim=(1, 2, 3))
    # Bilinear resizing of <= 10 % keeps the mean brightness within a couple of percent;
    # brightness jitter (factors 0.6-1.4) would not.
    ratio = out.mean(dim=(1, 2, 3)) / centre_mean
    assert float((ratio - 1).abs().max()) < 0.03


def test_pretraining_photometric_changes_hit_about_p_of_the_images():
    """Same seed, same geometry: with and without the photometric steps the outputs differ
    for about jitter_p (+ blur_p of the rest) of the images, and only by brightness."""
    import dataclasses

    geometric = dataclasses.replace(PRETRAINING, jitter_p=0.0, blur_p=0.0)
    batch = random_batch(400)
    plain = BatchAugmentation(geometric)(batch, torch.Generator().manual_seed(0))
    full = BatchAugmentation(PRETRAINING)(batch, torch.Generator().manual_seed(0))
    changed = (full - plain).abs().amax(dim=(1, 2, 3)) > 1e-3
    expected = PRETRAINING.jitter_p + (1 - PRETRAINING.jitter_p) * PRETRAINING.blur_p
    assert float(changed.float().mean()) == pytest.approx(expected, abs=0.07)


def test_gaussian_blur_preserves_flux_and_smooths():
    image = torch.zeros(2, 1, OUT, OUT)
    image[:, :, OUT // 2, OUT // 2] = 1.0
    out = gaussian_blur(image, torch.tensor([0.5, 2.0]), 7)
    assert torch.allclose(out.sum(dim=(1, 2, 3)), torch.ones(2), atol=1e-4)
    assert float(out[1].max()) < float(out[0].max()) < 1.0


def test_seeded_generator_is_deterministic():
    batch = random_batch(8)
    a = pretraining_augment(batch, torch.Generator().manual_seed(42))
    b = pretraining_augment(batch, torch.Generator().manual_seed(42))
    c = pretraining_augment(batch, torch.Generator().manual_seed(43))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_two_views_of_one_image_differ():
    batch = random_batch(4)
    g = torch.Generator().manual_seed(0)
    assert not torch.allclose(pretraining_augment(batch, g), pretraining_augment(batch, g))
