"""ResNet-18 encoder for one-channel radio images (no torchvision needed).

The standard ResNet-18 (He et al. 2016) with a one-channel stem; the classification layer
is dropped, so the encoder maps a (B, 1, H, W) batch to (B, 512) representations.

Two stems (:data:`STEMS`): ``"imagenet"``, the standard 7x7 stride-2 convolution and
max-pool (70 px in, 18 x 18 after the stem, 3 x 3 at the last stage), and ``"reference"``,
the reference study's 3x3 stride-1 convolution and 3x3 stride-2 max-pool (35 x 35 after
the stem, 5 x 5 at the last stage: finer detail kept, about 4x the compute per image).

Two symmetries (:data:`SYMMETRIES`): ``"none"``, the plain network, and ``"d4"``, the same
layers as group convolutions over the 4 turns and mirror images (``pretrain/models/d4.py``):
``width`` channels per plane, 8 planes each, so a d4 network of width w costs about what a
plain one of width 8w does, with 8x fewer weights, and its representation (8 x width) is
exactly the same for a turned or mirrored image.
"""

from __future__ import annotations

import torch
from torch import nn

from pretrain import config
from pretrain.models import d4

REPRESENTATION_DIM = 512  # at the standard width (64 channels after the stem)
STEMS = config.ENCODER_STEMS
SYMMETRIES = config.ENCODER_SYMMETRIES
WIDTH = 64  # channels after the stem; the stages have 1, 2, 4, 8 x this
_STEM_NAMES = {"imagenet": "", "reference": "-stem3x3"}  # in the weights file's architecture name


def architecture_name(stem: str = "imagenet", width: int = WIDTH, symmetry: str = "none") -> str:
    """The ``architecture`` metadata of a weights file: 'resnet18-1ch', 'resnet18-1ch-stem3x3-w32', ...
    ('-d4' at the end for the group-convolution network)."""
    name = "resnet18-1ch" + _STEM_NAMES[stem] + ("" if width == WIDTH else f"-w{width}")
    return name + ("-d4" if symmetry == "d4" else "")


def parse_architecture(architecture: str) -> tuple[str, int, str]:
    """(stem, width, symmetry) named by a weights file's ``architecture`` metadata (old files: 'resnet18-1ch')."""
    symmetry = "d4" if architecture.endswith("-d4") else "none"
    plain = architecture.removesuffix("-d4")
    for stem in STEMS:
        base = "resnet18-1ch" + _STEM_NAMES[stem]
        if plain == base:
            return stem, WIDTH, symmetry
        if plain.startswith(base + "-w") and plain[len(base) + 2 :].isdigit():
            return stem, int(plain[len(base) + 2 :]), symmetry
    known = ", ".join(architecture_name(stem) + "[-wN][-d4]" for stem in STEMS)
    raise ValueError(f"unknown encoder architecture {architecture!r} (known: {known})")


def _conv(in_channels: int, channels: int, kernel: int, stride: int, symmetry: str, lifting: bool = False) -> nn.Module:
    if symmetry == "d4":
        return d4.D4Conv2d(in_channels, channels, kernel, stride, lifting=lifting)
    return nn.Conv2d(in_channels, channels, kernel, stride, kernel // 2, bias=False)


def _norm(channels: int, symmetry: str) -> nn.BatchNorm2d | d4.D4BatchNorm:
    return d4.D4BatchNorm(channels) if symmetry == "d4" else nn.BatchNorm2d(channels)


def _stem(in_channels: int, stem: str, width: int, symmetry: str = "none") -> nn.Sequential:
    if stem not in STEMS:
        raise ValueError(f"stem must be one of {STEMS}, not {stem!r}")
    kernel, stride = (7, 2) if stem == "imagenet" else (3, 1)
    conv = _conv(in_channels, width, kernel, stride, symmetry, lifting=True)
    pool = d4.D4MaxPool() if symmetry == "d4" else nn.MaxPool2d(3, 2, 1)
    return nn.Sequential(conv, _norm(width, symmetry), nn.ReLU(inplace=True), pool)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1, symmetry: str = "none"):
        super().__init__()
        self.conv1 = _conv(in_channels, channels, 3, stride, symmetry)
        self.bn1 = _norm(channels, symmetry)
        self.conv2 = _conv(channels, channels, 3, 1, symmetry)
        self.bn2 = _norm(channels, symmetry)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                _conv(in_channels, channels, 1, stride, symmetry), _norm(channels, symmetry)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18Encoder(nn.Module):
    """ResNet-18 trunk: (B, in_channels, H, W) -> (B, 8 x width); 512 at the standard width."""

    # Parameter-name prefixes from the input to the output; fine-tuning unfreezes the last D.
    BLOCKS = ("stem", "layer1", "layer2", "layer3", "layer4")

    def __init__(self, in_channels: int = 1, stem: str = "imagenet", width: int = WIDTH, symmetry: str = "none"):
        super().__init__()
        if symmetry not in SYMMETRIES:
            raise ValueError(f"symmetry must be one of {SYMMETRIES}, not {symmetry!r}")
        self.stem = _stem(in_channels, stem, width, symmetry)
        self.stem_kind, self.width, self.symmetry = stem, width, symmetry
        self.architecture = architecture_name(stem, width, symmetry)
        self.representation_dim = 8 * width
        self.invariant = symmetry == "d4"  # the same representation for all 8 turns and mirror images
        self.layer1 = self._stage(width, width, 1, symmetry)
        self.layer2 = self._stage(width, 2 * width, 2, symmetry)
        self.layer3 = self._stage(2 * width, 4 * width, 2, symmetry)
        self.layer4 = self._stage(4 * width, 8 * width, 2, symmetry)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for m in self.modules():  # zero-init the last BN of each block: starts as identity
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    @staticmethod
    def _stage(in_channels: int, channels: int, stride: int, symmetry: str) -> nn.Sequential:
        return nn.Sequential(
            BasicBlock(in_channels, channels, stride, symmetry), BasicBlock(channels, channels, 1, symmetry)
        )

    def pool_map(self, feature_map: torch.Tensor) -> torch.Tensor:
        """A stage's feature map -> one vector per image: the pixels' mean (and the planes' for d4)."""
        return d4.invariant_pool(feature_map) if self.invariant else feature_map.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        return self.pool_map(self.layer4(self.layer3(self.layer2(self.layer1(x)))))


def resnet18_encoder(
    in_channels: int = 1, stem: str = "imagenet", width: int = WIDTH, symmetry: str = "none"
) -> ResNet18Encoder:
    return ResNet18Encoder(in_channels, stem, width, symmetry)
