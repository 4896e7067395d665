"""The backbone as the rest of the project sees it: model input, saving and loading.

Weights are stored as safetensors (loading them cannot run code), with provenance in the
file's string metadata.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from pretrain import config
from pretrain.errors import ExplorerError
from pretrain.files import atomic_path
from pretrain.models.resnet import ResNet18Encoder, parse_architecture, resnet18_encoder
from pretrain.provenance import default_backbone_path


def to_model_input(
    images: np.ndarray | torch.Tensor, device: str | torch.device = "cpu", crop_px: int | None = config.MODEL_INPUT_PX
) -> torch.Tensor:
    """uint8 images (N, H, W) -> float tensor (N, 1, crop, crop) in 0..1, centre-cropped.

    The one conversion used by training, embedding and fine-tuning. ``crop_px=None`` keeps
    the full image (the augmentations crop themselves).
    """
    batch = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    batch = batch.to(device, non_blocking=True)
    if batch.ndim == 3:
        batch = batch[:, None]
    if crop_px is not None:
        h, w = batch.shape[-2:]
        top, left = (h - crop_px) // 2, (w - crop_px) // 2
        batch = batch[..., top : top + crop_px, left : left + crop_px]
    return batch.float().div_(255.0)


def save_encoder(
    encoder: ResNet18Encoder, path: str | Path, metadata: dict[str, str] | None = None, half: bool = False
) -> Path:
    """Write the encoder's weights to a safetensors file (optionally fp16, to halve its size)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in encoder.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    meta = {"architecture": encoder.architecture, **{k: str(v) for k, v in (metadata or {}).items()}}
    with atomic_path(path) as tmp:  # a killed job never leaves half a weights file
        save_file(state, str(tmp), metadata=meta)
    return path


def load_encoder(path: str | Path | None = None, device: str | torch.device = "cpu") -> ResNet18Encoder:
    """Read an encoder from safetensors (default: the backbone shipped in ``assets/``)."""
    path = Path(path) if path is not None else default_backbone_path()
    if not path.is_file():
        raise ExplorerError(
            f"backbone weights not found at {path}. Train one with `python -m pretrain train` or pass --weights."
        )
    try:
        state = load_file(str(path))
    except Exception as exc:
        raise ExplorerError(f"{path} is not a readable safetensors file ({exc}).") from exc
    try:
        stem, width, symmetry = parse_architecture(weights_metadata(path).get("architecture", "resnet18-1ch"))
    except ValueError as exc:
        raise ExplorerError(f"{path}: {exc}.") from exc
    encoder = resnet18_encoder(stem=stem, width=width, symmetry=symmetry)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ExplorerError(
            f"{path} does not hold a ResNet-18 encoder (missing {missing[:3]}, unexpected {unexpected[:3]})."
        )
    return encoder.to(device).eval()


def weights_metadata(path: str | Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})
