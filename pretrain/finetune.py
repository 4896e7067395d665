"""Fine-tuning and linear probes of the backbone on a labelled task, written to a run folder.

The model is the encoder plus a head (non-affine batch norm, then one linear layer; the
batch norm standardises the representation, so one learning rate suits any backbone, as in
MAE's linear probe). ``depth`` says how much of the encoder learns:

- ``depth = 0``: linear probe: the one of ``pretrain evaluate``
  (:func:`pretrain.evaluate.fit_linear_probe`, a logistic regression on standardised
  features, its strength chosen by 5-fold cross-validation on the training labels) on the
  representation the app shows (the d4 mean, read from a matching space or embedded;
  :mod:`pretrain.probe_features`). No epochs: it is fitted to convergence, so the same
  labels on the same space give exactly the error ``evaluate`` reports for that split.
- ``depth = D > 0``: the last D of the encoder's blocks (``ResNet18Encoder.BLOCKS``:
  stem, layer1..layer4) learn with the head; AdamW, base lr 1e-3 x batch / 256, weight
  decay 0.005, cosine decay, and layer-wise lr decay: block i from the top gets
  lr x 0.75^i (the head is i = 0, layer4 is i = 1, ...).
- ``scratch``: the same network from random weights, everything trained at one lr (no
  layer decay: random layers have nothing to preserve) -- the supervised baseline.

Training images get the fine-tuning augmentations (rotation, centre crop 70, random
resized crop 90-100 %, flips), whole batches at once on the device; evaluation uses the
plain centre crop. The test accuracy after each epoch is logged for the curves only: the
reported figures are those of the last epoch (no model selection on the test set).

A run folder holds::

    config.json          what was asked and resolved (task, paths, hashes, settings)
    status.json          {"state": running|finished|failed|cancelled, "error", "pid", ...}
    progress.jsonl       one line per epoch (epoch, loss, train_acc, test_acc, ...), as it goes
    metrics.json         test error, out-of-distribution error, wall time, device, counts
    predictions.parquet  per source: source_id, label, prob_<positive>, predicted, correct, split
    encoder.safetensors  the (fine-tuned) encoder; loadable by models.backbone.load_encoder
                         (not written by a linear probe: its encoder is the backbone itself)
    head.safetensors     the classification head (a probe's: the scaler's mean and scale and
                         the logistic regression's coef and intercept, on the d4 representation)

SIGTERM (or Ctrl-C) cancels a run cleanly: the status becomes "cancelled".
"""

from __future__ import annotations

import math
import os
import platform
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from pretrain import config
from pretrain.clock import utc_timestamp
from pretrain.devices import choose_device, cpu_description
from pretrain.errors import ExplorerError
from pretrain.files import atomic_write_json
from pretrain.models.resnet import ResNet18Encoder
from pretrain.precision import autocast, resolve_precision
from pretrain.run_folder import (
    CONFIG_FILE,
    ENCODER_FILE,
    HEAD_FILE,
    METRICS_FILE,
    PREDICTIONS_FILE,
    PROGRESS_FILE,
    RunFolder,
    locked_run_folder,
)


class RunCancelled(BaseException):
    """Raised (from the SIGTERM handler) to stop a run; BaseException so no handler eats it."""


@dataclass
class FinetuneSettings:
    """Everything that defines a run (defaults in pretrain/config.py)."""

    task: str = config.FINETUNE_TASK
    labels: int | None = None  # label budget; None = the whole training split
    depth: int = config.FINETUNE_DEPTH
    epochs: int = config.FINETUNE_EPOCHS
    seed: int = 0
    batch_size: int = config.FINETUNE_BATCH_SIZE
    scratch: bool = False
    device: str = "auto"
    base_lr: float = config.FINETUNE_BASE_LR
    weight_decay: float = config.FINETUNE_WEIGHT_DECAY
    layer_decay: float = config.FINETUNE_LAYER_DECAY
    eval_every: int = 1  # test accuracy after every this many epochs (for the curves); 0 = only the last

    def __post_init__(self):
        n_blocks = len(ResNet18Encoder.BLOCKS)
        if self.scratch:
            self.depth = n_blocks  # the supervised baseline trains every layer
        if not 0 <= self.depth <= n_blocks:
            raise ExplorerError(f"--depth {self.depth}: choose 0 (linear probe) to {n_blocks} (every block).")
        if self.epochs < 1:
            raise ExplorerError(f"--epochs {self.epochs}: need at least 1.")
        if self.batch_size < 2:
            raise ExplorerError(f"--batch-size {self.batch_size}: need at least 2 (batch norm).")
        if self.labels is not None and self.labels < 2:
            raise ExplorerError(f"--labels {self.labels}: need at least 2 (one of each class).")

    @property
    def mode(self) -> str:
        return "scratch" if self.scratch else ("linear probe" if self.depth == 0 else "fine-tune")


# --- The model ------------------------------------------------------------------------


class Classifier(nn.Module):
    """Encoder + head; the first ``len(BLOCKS) - depth`` blocks are frozen (eval mode, no grad)."""

    def __init__(self, encoder: ResNet18Encoder, n_classes: int = 2, depth: int = len(ResNet18Encoder.BLOCKS)):
        super().__init__()
        self.encoder = encoder
        self.n_classes = n_classes
        linear = nn.Linear(encoder.representation_dim, n_classes)
        nn.init.zeros_(linear.weight)  # start from "no opinion"; the probe converges sooner
        nn.init.zeros_(linear.bias)
        self.head = nn.Sequential(nn.BatchNorm1d(encoder.representation_dim, affine=False), linear)
        self.set_depth(depth)

    @property
    def blocks(self) -> list[nn.Module]:
        return [getattr(self.encoder, name) for name in self.encoder.BLOCKS]

    def set_depth(self, depth: int) -> None:
        self.depth = depth
        self.n_frozen = len(self.encoder.BLOCKS) - depth
        for i, block in enumerate(self.blocks):
            for p in block.parameters():
                p.requires_grad_(i >= self.n_frozen)
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        for block in self.blocks[: self.n_frozen]:
            block.eval()  # frozen batch-norm statistics: the frozen part is exactly the pretrained one
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        # The encoder's forward, block by block (BLOCKS are in forward order), so the frozen
        # part runs without autograd: the probe and a one-block fine-tune cost little more
        # than inference.
        blocks = self.blocks
        with torch.no_grad():
            for block in blocks[: self.n_frozen]:
                x = block(x)
        for block in blocks[self.n_frozen :]:
            x = block(x)
        return self.encoder.pool_map(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def parameter_groups(model: Classifier, base_lr: float, weight_decay: float, layer_decay: float) -> list[dict]:
    """Optimiser groups: the head at ``base_lr``, block i from the top at base_lr x decay^i.

    Each group carries a ``name`` (``head`` or the block's name). Weight decay applies to
    weights (ndim > 1), not to biases and batch-norm parameters.
    """
    named = [("head", model.head)]
    trainable = list(model.encoder.BLOCKS[model.n_frozen :])
    named += [(name, getattr(model.encoder, name)) for name in reversed(trainable)]
    groups = []
    for i, (name, module) in enumerate(named):
        lr = base_lr * layer_decay**i
        params = [p for p in module.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim > 1]
        no_decay = [p for p in params if p.ndim <= 1]
        if decay:
            groups.append({"name": name, "params": decay, "lr": lr, "weight_decay": weight_decay})
        if no_decay:
            groups.append({"name": name, "params": no_decay, "lr": lr, "weight_decay": 0.0})
    return groups


def make_optimizer(model: Classifier, settings: FinetuneSettings, total_steps: int):
    """The optimiser and its per-step cosine schedule (decay to 0 over ``total_steps``)."""
    # (A run at depth 0 fits the evaluate probe instead, see _run_probe; a Classifier at depth 0
    # trained here learns its head alone.)
    lr = settings.base_lr * settings.batch_size / 256
    decay = 1.0 if settings.scratch else settings.layer_decay
    optimizer = torch.optim.AdamW(parameter_groups(model, lr, settings.weight_decay, decay), lr=lr)
    total = max(1, total_steps)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    )
    return optimizer, schedule


# --- Data -----------------------------------------------------------------------------


@torch.no_grad()
def predict_proba(
    model: Classifier,
    images: np.ndarray,
    rows: np.ndarray,
    device: torch.device,
    batch_size: int = config.FINETUNE_EVAL_BATCH_SIZE,
    check: Callable[[], None] | None = None,
) -> np.ndarray:
    """Class probabilities (len(rows), n_classes) of bundle rows; plain centre crop, no augmentation."""
    from pretrain.models.backbone import to_model_input

    model.eval()
    out = []
    for start in range(0, len(rows), batch_size):
        batch = np.asarray(images[np.asarray(rows[start : start + batch_size])])
        x = to_model_input(batch, device=device)
        with _autocast(device):
            logits = model(x)
        out.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        if check:
            check()
    return np.concatenate(out) if out else np.zeros((0, model.n_classes), np.float32)


def _autocast(device: torch.device):
    # bf16 where the hardware has it natively (GPU, recent CPUs): no loss scaling needed.
    return autocast(device, resolve_precision(config.TRAIN_PRECISION, device))


def _channels_last(device: torch.device) -> bool:
    return resolve_precision(config.TRAIN_PRECISION, device) == "bf16"


def train_classifier(
    model: Classifier,
    images: np.ndarray,
    y: np.ndarray,
    train_rows: np.ndarray,
    test_rows: np.ndarray,
    settings: FinetuneSettings,
    device: torch.device,
    on_epoch: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Train ``model`` on ``train_rows``; after each epoch report loss and accuracies.

    Returns the per-epoch records (also passed to ``on_epoch`` as they happen).
    """
    from pretrain.augment import finetuning_augment

    generator = torch.Generator(device=device).manual_seed(settings.seed)
    order_rng = np.random.default_rng(settings.seed)
    # The labelled images are few (<= thousands): hold them on the device as uint8.
    x_train = torch.from_numpy(np.ascontiguousarray(images[np.sort(train_rows)])).to(device)
    y_train = torch.from_numpy(y[np.sort(train_rows)].astype(np.int64)).to(device)
    n = len(train_rows)
    batches_per_epoch = _batch_count(n, settings.batch_size)
    optimizer, schedule = make_optimizer(model, settings, batches_per_epoch * settings.epochs)
    loss_fn = nn.CrossEntropyLoss()
    channels_last = _channels_last(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    history = []
    start_time = time.monotonic()
    for epoch in range(1, settings.epochs + 1):
        model.train()
        total_loss, correct = 0.0, 0
        for idx in _batches(order_rng.permutation(n), settings.batch_size):
            idx_t = torch.from_numpy(idx).to(device)
            x = finetuning_augment(x_train[idx_t], generator=generator)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            target = y_train[idx_t]
            with _autocast(device):
                logits = model(x)
            loss = loss_fn(logits.float(), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == target).sum())
        test_acc = None
        if len(test_rows) and (epoch == settings.epochs or (settings.eval_every and epoch % settings.eval_every == 0)):
            probs = predict_proba(model, images, test_rows, device)
            test_acc = float(np.mean(probs.argmax(1) == y[test_rows]))
        record = {
            "epoch": epoch,
            "epochs": settings.epochs,
            "loss": total_loss / n,
            "train_acc": correct / n,
            "test_acc": test_acc,
            "test_error": None if test_acc is None else 1.0 - test_acc,
            "lr": optimizer.param_groups[0]["lr"],
            "elapsed_s": round(time.monotonic() - start_time, 3),
        }
        history.append(record)
        if on_epoch:
            on_epoch(record)
    return history


def _batch_count(n: int, batch_size: int) -> int:
    return len(list(_batches(np.arange(n), batch_size)))


def _batches(order: np.ndarray, batch_size: int):
    """Mini-batches of indices; a last batch of one is merged into the one before (batch norm
    cannot train on a single image)."""
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if len(chunks) > 1 and len(chunks[-1]) < 2:
        chunks[-2] = np.concatenate([chunks[-2], chunks.pop()])
    return chunks


# --- The run folder ---------------------------------------------------------------------


def _prepare_out(out: Path, overwrite: bool) -> None:
    """Refuse to overwrite another run's results (explorer.jobs pre-creates an empty run)."""
    if out.exists() and not out.is_dir():
        raise ExplorerError(f"--out {out}: exists and is not a folder; choose another --out.")
    done = [name for name in (PROGRESS_FILE, METRICS_FILE, PREDICTIONS_FILE) if (out / name).exists()]
    if done and not overwrite:
        raise ExplorerError(
            f"--out {out}: holds another run ({', '.join(done)}); choose another --out or pass --overwrite."
        )
    out.mkdir(parents=True, exist_ok=True)
    for name in (PROGRESS_FILE, METRICS_FILE, PREDICTIONS_FILE, ENCODER_FILE, HEAD_FILE):
        (out / name).unlink(missing_ok=True)


def _install_cancel_handler():
    def handler(signum, frame):
        raise RunCancelled(f"signal {signum}")

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. called from a test thread): no handler
        return None


def run_finetune(
    settings: FinetuneSettings,
    out: str | Path,
    weights: str | Path | None = None,
    bundle: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    space: str | Path | None = None,
) -> dict:
    """Run one fine-tuning / linear-probe job and write its run folder; return the metrics.

    ``weights`` None = the shipped backbone (ignored with ``settings.scratch``); ``bundle``
    None = the task's default bundle (built from the shared data the first time); ``space``
    (linear probe only): the space whose embeddings the probe reads (None: a matching one in
    the cache, else the bundle is embedded; :mod:`pretrain.probe_features`).
    The status file says how it ended: finished, failed (with the error) or cancelled.
    A second run into the same ``out`` while this one goes on is refused (the folder's lock).
    """
    with locked_run_folder(out):
        return _locked_finetune(settings, Path(out), weights, bundle, overwrite, progress, space)


def _locked_finetune(settings, out: Path, weights, bundle, overwrite: bool, progress: bool, space=None) -> dict:
    _prepare_out(out, overwrite)
    run = RunFolder(out)
    started = time.monotonic()
    epochs = 1 if settings.mode == "linear probe" else settings.epochs  # a probe is one fit, no epochs
    run.set_status(
        "running", stage="starting", error=None, epoch=0, epochs=epochs, mode=settings.mode, started=utc_timestamp()
    )
    previous_handler = _install_cancel_handler()
    try:
        metrics = _run(settings, out, run, weights, bundle, started, progress, space)
    except (RunCancelled, KeyboardInterrupt):
        run.set_status("cancelled", stage="cancelled", error=None, ended=utc_timestamp())
        raise RunCancelled("cancelled") from None
    except ExplorerError as exc:
        run.set_status("failed", error=str(exc), ended=utc_timestamp())
        raise
    except BaseException as exc:
        run.set_status(
            "failed",
            error=f"{type(exc).__name__}: {exc}",
            ended=utc_timestamp(),
            traceback=traceback.format_exc(limit=8),
        )
        raise
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
    run.set_status(
        "finished",
        stage="finished",
        ended=utc_timestamp(),
        test_error=metrics["test_error"],
        ood_error=metrics["ood_error"],
    )
    return metrics


def _run(settings, out, run, weights, bundle, started, progress, space=None) -> dict:
    from safetensors.torch import save_file

    from pretrain.data.bundle import load_bundle
    from pretrain.models.backbone import load_encoder, save_encoder
    from pretrain.models.resnet import resnet18_encoder
    from pretrain.provenance import default_backbone_path, weights_sha256
    from pretrain.tasks import default_bundle, get_task, label_budget

    task = get_task(settings.task)
    device = choose_device(settings.device)
    torch.manual_seed(settings.seed)

    run.set_status(stage="loading data")
    if bundle is not None:
        bundle_path = Path(bundle)
    else:  # the first run of a task builds its bundle: say how far it got (the app shows the stage)

        def building(done, total, message):
            if done == total or done % 25 == 0:
                run.set_status(stage=f"building the dataset bundle: {done} / {total} files")

        bundle_path = default_bundle(task, progress=True if progress else building)
    data_bundle = load_bundle(bundle_path)
    data = task.data(data_bundle.catalogue)
    train_rows = label_budget(data, settings.labels, settings.seed)

    if settings.scratch:
        encoder, weights_path, weights_hash = resnet18_encoder(), None, None
    else:
        weights_path = Path(weights) if weights is not None else default_backbone_path()
        encoder = load_encoder(weights_path)
        weights_hash = weights_sha256(weights_path)
    probe = settings.depth == 0 and not settings.scratch
    model = None if probe else Classifier(encoder, n_classes=2, depth=settings.depth).to(device)

    run_config = {
        "settings": asdict(settings),
        "mode": settings.mode,
        "task": task.name,
        "classes": list(task.classes),
        "positive_class": task.positive,
        "ood_name": task.ood_name,
        "weights": str(weights_path) if weights_path else None,
        "weights_sha256": weights_hash,
        "bundle": str(bundle_path.resolve()),
        "bundle_id": data_bundle.bundle_id,
        "split_seed": config.FINETUNE_SPLIT_SEED,
        "n_train": len(train_rows),
        "n_train_available": len(data.train),
        "n_test": len(data.test),
        "n_ood": len(data.ood),
        "trainable_blocks": [] if model is None else list(model.encoder.BLOCKS[model.n_frozen :]),
        "command": " ".join(sys.argv),
        "created": utc_timestamp(),
        "device": str(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "host_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if model is None:
        run_config["probe"] = {"kind": "logistic regression (pretrain.evaluate.fit_linear_probe)"}
        return _run_probe(settings, out, run, task, data, train_rows, data_bundle, run_config, started, device, space)
    atomic_write_json(out / CONFIG_FILE, run_config)
    run.set_status(stage="training", task=task.name, mode=settings.mode, n_train=len(train_rows))

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=settings.epochs, unit="epoch", desc=f"{task.name} {settings.mode}", dynamic_ncols=True)

    def on_epoch(record):
        run.append_progress(record)
        run.set_status(epoch=record["epoch"])
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.3f}", test_acc=f"{record['test_acc'] or float('nan'):.3f}")

    train_started = time.monotonic()
    try:
        history = train_classifier(
            model, data_bundle.images, data.y, train_rows, data.test, settings, device, on_epoch=on_epoch
        )
    finally:
        if bar is not None:
            bar.close()
    train_time = time.monotonic() - train_started

    run.set_status(stage="predicting")
    all_rows = np.arange(len(data_bundle.catalogue))
    probs = predict_proba(model, data_bundle.images, all_rows, device)
    predictions = _predictions_frame(data_bundle.catalogue, data, train_rows, probs, task)
    predictions.to_parquet(out / PREDICTIONS_FILE, index=False)

    model = model.to(memory_format=torch.contiguous_format).cpu()  # type: ignore[call-overload]
    meta = {
        "task": task.name,
        "mode": settings.mode,
        "depth": str(settings.depth),
        "bundle_id": data_bundle.bundle_id,
        "backbone_sha256": weights_hash or "random init",
    }
    save_encoder(model.encoder, out / ENCODER_FILE, metadata=meta)
    head_state = {k: v.detach().contiguous() for k, v in model.head.state_dict().items()}
    save_file(head_state, str(out / HEAD_FILE), metadata={**meta, "classes": ",".join(task.classes)})

    metrics = _metrics(predictions, task, settings, run_config, history, train_time, time.monotonic() - started, device)
    atomic_write_json(out / METRICS_FILE, metrics)
    return metrics


def _run_probe(settings, out, run, task, data, train_rows, data_bundle, run_config, started, device, space) -> dict:
    """Depth 0: the evaluate probe on the app's representation of every bundle row."""
    from safetensors.numpy import save_file

    from pretrain.evaluate import fit_linear_probe
    from pretrain.probe_features import probe_features

    atomic_write_json(out / CONFIG_FILE, run_config)
    run.set_status(stage="reading the representation", task=task.name, mode=settings.mode, n_train=len(train_rows))
    run.set_status(epochs=1)  # one fit, no epochs: the live progress bar counts it as one step

    def say(message: str) -> None:
        run.set_status(stage=message)

    weights_path = Path(run_config["weights"])
    found = probe_features(data_bundle, weights_path, run_config["weights_sha256"], device, space=space, report=say)
    run_config["probe"].update(features=found.describe(), origin=found.origin, space=found.space)
    run_config["probe"]["symmetry"] = found.symmetry
    atomic_write_json(out / CONFIG_FILE, run_config)

    say("fitting the probe (logistic regression, cross-validated strength)")
    train_started = time.monotonic()
    y = data.y.astype(np.int64)
    probe = fit_linear_probe(found.features[train_rows], y[train_rows], seed=settings.seed)
    train_time = time.monotonic() - train_started
    probs = probe.predict_proba(found.features).astype(np.float64)  # columns: classes 0, 1

    def accuracy(rows) -> float:
        return float(np.mean(probs[rows].argmax(1) == y[rows]))

    train_probs = np.clip(probs[train_rows, y[train_rows]], 1e-12, 1.0)
    test_acc = accuracy(data.test)
    record = {
        "epoch": 1,
        "epochs": 1,
        "loss": float(-np.mean(np.log(train_probs))),  # the fitted model's log loss on its training labels
        "train_acc": accuracy(train_rows),
        "test_acc": test_acc,
        "test_error": 1.0 - test_acc,
        "elapsed_s": round(train_time, 3),
    }
    run.append_progress(record)
    run.set_status(epoch=1)

    run.set_status(stage="predicting")
    predictions = _predictions_frame(data_bundle.catalogue, data, train_rows, probs.astype(np.float32), task)
    predictions.to_parquet(out / PREDICTIONS_FILE, index=False)
    scaler, logistic = probe.model.named_steps["standardscaler"], probe.model.named_steps["logisticregression"]
    head = {
        "scaler.mean": scaler.mean_.astype(np.float32),
        "scaler.scale": scaler.scale_.astype(np.float32),
        "coef": logistic.coef_.astype(np.float32),
        "intercept": logistic.intercept_.astype(np.float32),
    }
    meta = {
        "task": task.name,
        "mode": settings.mode,
        "depth": "0",
        "bundle_id": data_bundle.bundle_id,
        "backbone_sha256": run_config["weights_sha256"],
        "classes": ",".join(task.classes),
        "features": found.describe(),
        "C": repr(probe.C),
    }
    save_file(head, str(out / HEAD_FILE), metadata=meta)

    wall_time = time.monotonic() - started
    metrics = _metrics(predictions, task, settings, run_config, [record], train_time, wall_time, device)
    metrics["epochs"] = None  # a logistic regression fitted to convergence has none
    metrics["probe"] = {
        "C": probe.C,
        "folds": probe.folds,
        "cv_accuracy": [{"C": c, "accuracy": a} for c, a in sorted(probe.cv_accuracy.items())],
        "features": found.describe(),
        "origin": found.origin,
        "space": found.space,
        "symmetry": found.symmetry,
    }
    atomic_write_json(out / METRICS_FILE, metrics)
    return metrics


def _predictions_frame(catalogue: pd.DataFrame, data, train_rows: np.ndarray, probs: np.ndarray, task) -> pd.DataFrame:
    split = np.where(data.y >= 0, "unused", "unlabelled").astype(object)
    split[data.train] = "unused"  # in the training split, outside the label budget
    split[train_rows] = "train"
    split[data.test] = "test"
    split[data.ood] = "ood"
    has_label = data.y >= 0
    predicted = probs.argmax(1)
    frame = pd.DataFrame(
        {
            "source_id": catalogue["source_id"].astype(str).to_numpy(),
            "label": np.where(has_label, np.asarray(task.classes, dtype=object)[np.clip(data.y, 0, 1)], None),
            f"prob_{task.positive}": probs[:, 1].astype(np.float32),
            "predicted": np.asarray(task.classes, dtype=object)[predicted],
            "correct": pd.array(np.where(has_label, predicted == data.y, None), dtype="boolean"),
            "split": split,
        }
    )
    frame.loc[~has_label, "correct"] = pd.NA
    return frame


def _error(predictions: pd.DataFrame, split: str) -> float | None:
    rows = predictions[predictions["split"] == split]
    return None if rows.empty else float(1.0 - rows["correct"].astype(bool).mean())


def _balanced_error(predictions: pd.DataFrame, split: str) -> float | None:
    rows = predictions[predictions["split"] == split]
    if rows.empty:
        return None
    per_class = rows.groupby("label")["correct"].apply(lambda c: 1.0 - c.astype(bool).mean())
    return float(per_class.mean())


def _metrics(predictions, task, settings, run_config, history, train_time, wall_time, device) -> dict:
    test_error, ood_error = _error(predictions, "test"), _error(predictions, "ood")
    last = history[-1]
    return {
        "task": task.name,
        "mode": settings.mode,
        "positive_class": task.positive,
        "test_error": test_error,
        "test_error_percent": None if test_error is None else 100 * test_error,
        "test_balanced_error": _balanced_error(predictions, "test"),
        "ood_error": ood_error,
        "ood_error_percent": None if ood_error is None else 100 * ood_error,
        "ood_name": task.ood_name,
        "n_train": run_config["n_train"],
        "n_train_available": run_config["n_train_available"],
        "n_test": run_config["n_test"],
        "n_ood": run_config["n_ood"],
        "labels": settings.labels,
        "depth": settings.depth,
        "scratch": settings.scratch,
        "epochs": settings.epochs,
        "seed": settings.seed,
        "batch_size": settings.batch_size,
        "final_loss": last["loss"],
        "final_train_acc": last["train_acc"],
        "wall_time_s": wall_time,
        "train_time_s": train_time,
        "device": str(device),
        "device_name": _device_name(device),
        "torch_threads": torch.get_num_threads(),
        "precision": resolve_precision(config.TRAIN_PRECISION, device),
        "weights_sha256": run_config["weights_sha256"],
        "bundle_id": run_config["bundle_id"],
        "finished": utc_timestamp(),
    }


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_description()
