"""Images -> 512-d representations with a frozen encoder, in batches.

The images go through :func:`pretrain.models.backbone.to_model_input` (the one uint8 ->
model-input conversion, centre crop 70 px), so an image is embedded exactly as it was
seen in training. With ``symmetry="d4"`` (the default, ``config.EMBED_SYMMETRY``) the
representation is the mean over the image's 8 rotations by multiples of 90 degrees and
their mirror images, so it does not depend on the source's orientation on the sky. On
CUDA the forward pass runs in bf16 autocast with channels_last memory (tensor cores); on
the CPU it runs in fp32 in the default memory layout (channels_last gains nothing there). The input may be a
memory-mapped array: only one batch (plus the next, read ahead in a thread) is in memory at a time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Union

import numpy as np
import torch
from torch import nn

from pretrain import config
from pretrain.devices import choose_device
from pretrain.models.backbone import to_model_input

SYMMETRIES = config.EMBED_SYMMETRIES
ProgressCallback = Callable[[int, int], None]  # (images done, images in total)
Progress = Union[None, bool, ProgressCallback]  # noqa: UP007 (a runtime alias: | needs 3.10 types)


def embed_images(
    encoder: nn.Module,
    images_uint8: np.ndarray,
    batch_size: int = config.EMBED_BATCH_SIZE,
    device: str | torch.device = "auto",
    progress: Progress = None,
    symmetry: str = config.EMBED_SYMMETRY,
) -> np.ndarray:
    """Representations (N, 512) float32 of uint8 images (N, H, W) (H, W >= 70).

    ``symmetry``: "d4" averages the encoder's outputs over the 8 symmetries of the square
    (see :func:`symmetric_views`); "none" is one forward pass per image. An invariant
    encoder (``encoder.invariant``, the d4 network) takes one pass either way: its 8 views
    give the same representation.

    ``progress``: None/False for silence, True for a tqdm bar, or a callable
    ``progress(done, total)`` (the app feeds ``st.progress``). The encoder is moved to
    ``device`` and put in eval mode (its training flag is restored afterwards); on CUDA an
    encoder that is not training is also left in channels_last memory.
    """
    if symmetry not in SYMMETRIES:
        raise ValueError(f"symmetry must be one of {SYMMETRIES}, not {symmetry!r}")
    images = images_uint8
    if images.ndim == 2:
        images = images[None]
    if images.ndim != 3:
        raise ValueError(f"expected uint8 images (N, H, W), got shape {images.shape}")
    if images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {images.dtype}")
    if min(images.shape[1:]) < config.MODEL_INPUT_PX:
        raise ValueError(
            f"images of {images.shape[1]} x {images.shape[2]} px are smaller than the "
            f"model's {config.MODEL_INPUT_PX} x {config.MODEL_INPUT_PX} px input"
        )
    device = choose_device(device)
    was_training = encoder.training
    # The module is changed outside inference mode: parameters re-created inside it would
    # become inference tensors, and an encoder that is being trained (the training monitor
    # embeds with the live encoder) could not be trained further. A training encoder keeps
    # its memory format; any other goes channels_last on CUDA (tensor cores).
    encoder.eval().to(device)
    channels_last = _use_channels_last(device, encoder, was_training)
    if channels_last and not was_training:
        encoder.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    try:
        with torch.inference_mode():
            return _embed(encoder, images, batch_size, device, progress, symmetry, channels_last)
    finally:
        encoder.train(was_training)


def views_for(encoder: nn.Module, symmetry: str) -> str:
    """The views an encoder needs for ``symmetry``: "none" (one pass) for an invariant one.

    A d4 network (``encoder.invariant``) gives the same representation for all 8 turns and
    mirror images, so averaging over them would cost 8 passes for nothing.
    """
    return "none" if getattr(encoder, "invariant", False) else symmetry


def _embed(encoder, images, batch_size, device, progress, symmetry, channels_last) -> np.ndarray:
    n = len(images)
    cuda = device.type == "cuda"
    out_dim = _output_dim(encoder, images, device)
    out = np.empty((n, out_dim), dtype=np.float32)
    report, close = _progress_reporter(progress, n)
    symmetry = views_for(encoder, symmetry)

    def read(start: int) -> torch.Tensor:
        # np.array copies just this slice out of a memmap; pinned memory lets the copy
        # to the GPU overlap with compute.
        batch = torch.from_numpy(np.array(images[start : start + batch_size]))
        return batch.pin_memory() if cuda else batch

    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
    try:
        with ThreadPoolExecutor(max_workers=1) as reader:  # read batch i+1 while i runs
            pending = reader.submit(read, 0)
            for start in range(0, n, batch_size):
                batch = pending.result()
                if start + batch_size < n:
                    pending = reader.submit(read, start + batch_size)
                x = to_model_input(batch, device=device)
                z = torch.zeros((len(batch), out_dim), dtype=torch.float32, device=device)
                n_views = 0
                for view in symmetric_views(x, symmetry):
                    if channels_last:
                        view = view.contiguous(memory_format=torch.channels_last)
                    with autocast:
                        z_view = encoder(view).float()
                    z.add_(z_view)
                    n_views += 1
                z /= n_views
                out[start : start + len(batch)] = z.cpu().numpy()
                report(start + len(batch))
    finally:
        close()
    return out


def _use_channels_last(device: torch.device, encoder: nn.Module, was_training: bool) -> bool:
    """channels_last on CUDA, unless the encoder is being trained in the other format."""
    return device.type == "cuda" and (not was_training or _is_channels_last(encoder))


def _is_channels_last(module: nn.Module) -> bool:
    """Whether the module's convolution weights are stored channels_last (judged on the first
    with more than one input channel: with one, both layouts are the same)."""
    for parameter in module.parameters():
        if parameter.ndim == 4 and parameter.shape[1] > 1:
            return parameter.is_contiguous(memory_format=torch.channels_last)
    return False


def symmetric_views(x: torch.Tensor, symmetry: str = config.EMBED_SYMMETRY):
    """The views of a batch (N, 1, H, W) whose representations are averaged.

    "d4": the 8 symmetries of the square, exact on the pixel grid (rotations by k x 90
    degrees, each as it is and mirrored left-right); "none": the batch itself.
    """
    if symmetry == "none":
        yield x
        return
    for k in range(4):
        rotated = torch.rot90(x, k, dims=(2, 3))
        yield rotated
        yield torch.flip(rotated, dims=(3,))


def _output_dim(encoder: nn.Module, images: np.ndarray, device: torch.device) -> int:
    """The encoder's representation size (512 for ResNet-18), without assuming it."""
    dim = getattr(encoder, "output_dim", None)
    if dim is not None:
        return int(dim)
    from pretrain.models.resnet import ResNet18Encoder

    if isinstance(encoder, ResNet18Encoder):
        return encoder.representation_dim
    probe = to_model_input(np.zeros((1, *images.shape[1:]), np.uint8), device=device)
    return int(encoder(probe).shape[1])


def _progress_reporter(progress: Progress, total: int):
    """-> (report(done), close()) for None, True (tqdm) or a callback."""
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="img", desc="embedding", dynamic_ncols=True)
        state = {"done": 0}

        def report(done: int) -> None:
            bar.update(done - state["done"])
            state["done"] = done

        return report, bar.close
    if callable(progress):
        return (lambda done: progress(done, total)), (lambda: None)
    return (lambda done: None), (lambda: None)
