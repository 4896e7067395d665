"""ResNet-18 encoder for one-channel radio images (no torchvision needed).

The standard ResNet-18 (He et al. 2016) with a one-channel stem; the classification layer
is dropped, so the encoder maps a (B, 1, H, W) batch to (B, 512) representations.

Two stems (:data:`STEMS`): ``"imagenet"``, the standard 7x7 stride-2 convolution and
max-pool (70 px in, 18 x 18 after the stem, 3 x 3 at the last stage), and ``"reference"``,
the reference study's 3x3 stride-1 convolution and 3x3 stride-2 max-pool (35 x 35 after
the stem, 5 x 5 at the last stage: finer detail kept, about 4x the compute per image).
"""

from __future__ import annotations

import torch
from torch import nn

from pretrain import config

REPRESENTATION_DIM = 512  # at the standard width (64 channels after the stem)
STEMS = config.ENCODER_STEMS
WIDTH = 64  # channels after the stem; the stages have 1, 2, 4, 8 x this
_STEM_NAMES = {"imagenet": "", "reference": "-stem3x3"}  # in the weights file's architecture name


def architecture_name(stem: str = "imagenet", width: int = WIDTH) -> str:
    """The ``architecture`` metadata of a weights file: 'resnet18-1ch', 'resnet18-1ch-stem3x3-w32', ..."""
    return "resnet18-1ch" + _STEM_NAMES[stem] + ("" if width == WIDTH else f"-w{width}")


def parse_architecture(architecture: str) -> tuple[str, int]:
    """(stem, width) named by a weights file's ``architecture`` metadata (old files: 'resnet18-1ch')."""
    for stem in STEMS:
        base = "resnet18-1ch" + _STEM_NAMES[stem]
        if architecture == base:
            return stem, WIDTH
        if architecture.startswith(base + "-w") and architecture[len(base) + 2 :].isdigit():
            return stem, int(architecture[len(base) + 2 :])
    known = ", ".join(architecture_name(stem) + "[-wN]" for stem in STEMS)
    raise ValueError(f"unknown encoder architecture {architecture!r} (known: {known})")


def _stem(in_channels: int, stem: str, width: int) -> nn.Sequential:
    if stem == "imagenet":
        conv = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
    elif stem == "reference":
        conv = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
    else:
        raise ValueError(f"stem must be one of {STEMS}, not {stem!r}")
    return nn.Sequential(conv, nn.BatchNorm2d(width), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels)
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

    def __init__(self, in_channels: int = 1, stem: str = "imagenet", width: int = WIDTH):
        super().__init__()
        self.stem = _stem(in_channels, stem, width)
        self.stem_kind, self.width = stem, width
        self.architecture = architecture_name(stem, width)
        self.representation_dim = 8 * width
        self.layer1 = self._stage(width, width, stride=1)
        self.layer2 = self._stage(width, 2 * width, stride=2)
        self.layer3 = self._stage(2 * width, 4 * width, stride=2)
        self.layer4 = self._stage(4 * width, 8 * width, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for m in self.modules():  # zero-init the last BN of each block: starts as identity
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    @staticmethod
    def _stage(in_channels: int, channels: int, stride: int) -> nn.Sequential:
        return nn.Sequential(BasicBlock(in_channels, channels, stride), BasicBlock(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.pool(x), 1)


def resnet18_encoder(in_channels: int = 1, stem: str = "imagenet", width: int = WIDTH) -> ResNet18Encoder:
    return ResNet18Encoder(in_channels, stem, width)
