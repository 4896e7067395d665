"""BYOL pretraining of the ResNet-18 backbone on one or more dataset bundles.

The images stay uint8 (in memory, or on the GPU when they fit); each batch goes to the
device as uint8 and is augmented there (``pretrain.augment``). SGD with momentum, lr
scaled by batch / 256, linear warm-up then cosine decay; the EMA coefficient tau rises
from 0.996 to 1 on a cosine. bf16 autocast and channels_last on CUDA and on CPUs with native bf16
(``--precision``), else fp32.

A run folder holds:

- ``config.json``: every parameter, the data (bundle ids, image counts), device, versions;
  rewritten at the end with the wall time and the final loss;
- ``checkpoint.pt``: model, optimiser, RNG states and position (``torch.load(...,
  weights_only=True)``), written atomically after every epoch and on Ctrl-C;
- ``backbone.safetensors``: the online encoder with provenance metadata (after every epoch);
- ``metrics.jsonl``: one JSON line per epoch (loss, lr, tau, images/s, and the kNN
  FRI/FRII monitor accuracy when computed).

``--resume`` continues from the checkpoint: same epoch and batch, optimiser, EMA target,
schedules and random streams (bit for bit on the same CPU; on a GPU up to cuDNN's
nondeterminism; a run moved between the CPU and a GPU keeps everything but the augmentation
random stream, which starts afresh). Ctrl-C and SIGTERM stop a run between two steps, never
inside one (a step interrupted half way would leave its batch-norm statistics updated in the
checkpoint, and the resumed run would differ); a second Ctrl-C stops at once, keeping the
last checkpoint. A damaged checkpoint, ``config.json`` or ``metrics.jsonl`` line is reported
(or, for a half-written metrics line, dropped), never a traceback. A process training into
a run folder holds its lock (``pretrain.run_folder.locked_run_folder``): a second one is refused.

Under ``torchrun --nproc_per_node N`` the run is one DDP job over N processes (one per GPU,
or gloo on the CPU) that trains as one process with the same global batch would:
``pretrain.distributed`` says how; only rank 0 holds the lock and writes the run folder, the
processes agree at every step boundary whether to stop, and a checkpoint written with any
number of processes resumes with any other.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pretrain import config
from pretrain.augment import pretraining_augmentation
from pretrain.clock import utc_timestamp
from pretrain.devices import choose_device
from pretrain.distributed import Processes, batch_norm_across_processes, process_group
from pretrain.errors import ExplorerError
from pretrain.files import atomic_path, atomic_write_json, atomic_write_text
from pretrain.holdout import held_out_rows
from pretrain.models.backbone import save_encoder
from pretrain.models.byol import BYOL, cosine_tau
from pretrain.models.resnet import resnet18_encoder
from pretrain.precision import autocast, resolve_precision

CHECKPOINT_FILE = "checkpoint.pt"
BACKBONE_FILE = "backbone.safetensors"
METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.json"
MONITOR_LABELS = ("FRI", "FRII")


@dataclass
class TrainConfig:
    """Every parameter of a run (saved as RUN/config.json)."""

    bundles: list[str]
    epochs: int = config.PRETRAIN_EPOCHS
    batch_size: int | None = None  # None: PRETRAIN_BATCH_SIZE on a GPU, PRETRAIN_BATCH_SIZE_CPU on a CPU
    base_lr: float = config.PRETRAIN_BASE_LR
    momentum: float = config.PRETRAIN_MOMENTUM
    weight_decay: float = config.PRETRAIN_WEIGHT_DECAY
    warmup_epochs: float = config.PRETRAIN_WARMUP_EPOCHS
    tau_base: float = config.BYOL_TAU_BASE
    min_extent_arcsec: float = config.PRETRAIN_MIN_EXTENT_ARCSEC
    seed: int = config.PRETRAIN_SEED
    device: str = "auto"
    num_threads: int | None = None
    monitor_every_epochs: int = config.MONITOR_EVERY_EPOCHS
    precision: str = config.TRAIN_PRECISION  # auto | bf16 | fp32 (pretrain/precision.py)
    stem: str = config.PRETRAIN_STEM  # pretrain/models/resnet.py STEMS
    width: int = config.PRETRAIN_WIDTH
    symmetry: str = config.PRETRAIN_SYMMETRY  # "d4": group convolutions (pretrain/models/d4.py)
    exclude_held_out: bool = config.PRETRAIN_EXCLUDE_HELD_OUT  # pretrain/holdout.py

    def resolve_batch_size(self, device: torch.device) -> int:
        """Fix the device's default batch size into the config (so a resume keeps it); return it."""
        if self.batch_size is None:
            self.batch_size = config.PRETRAIN_BATCH_SIZE if device.type == "cuda" else config.PRETRAIN_BATCH_SIZE_CPU
        return self.batch_size

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """A run's parameters as config.json records them; ExplorerError names what is damaged."""
        if not isinstance(values, dict):
            raise ExplorerError(f"the run's parameters are {type(values).__name__}, not an object.")
        names = {f.name for f in dataclasses.fields(cls)}
        values = {"exclude_held_out": False, **values}  # runs from before the hold-out used every source
        if "bundles" not in values:
            raise ExplorerError("the run's parameters name no bundles.")
        cfg = cls(**{k: v for k, v in values.items() if k in names})
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Every parameter of the right kind and in range (ExplorerError naming the flag)."""

        def number(name, flag, low, low_ok=True, whole=False, optional=False):
            value = getattr(self, name)
            if value is None and optional:
                return
            kind_ok = isinstance(value, int) if whole else isinstance(value, (int, float))
            if isinstance(value, bool) or not kind_ok or not math.isfinite(value):
                raise ExplorerError(f"{flag} must be a {'whole ' if whole else ''}number, not {value!r}.")
            if value < low or (value == low and not low_ok):
                raise ExplorerError(f"{flag} must be {'at least' if low_ok else 'more than'} {low:g}, not {value!r}.")

        if not (isinstance(self.bundles, list) and self.bundles and all(isinstance(b, str) for b in self.bundles)):
            raise ExplorerError(f"--bundle: the run's bundles must be a list of folders, not {self.bundles!r}.")
        number("epochs", "--epochs", 1, whole=True)
        number("batch_size", "--batch-size", 1, whole=True, optional=True)
        number("base_lr", "--lr", 0, low_ok=False)
        number("momentum", "momentum", 0)
        number("weight_decay", "weight decay", 0)
        number("warmup_epochs", "--warmup-epochs", 0)
        number("tau_base", "tau", 0)
        number("min_extent_arcsec", "--min-extent", 0)
        number("seed", "--seed", 0, whole=True)
        number("monitor_every_epochs", "--monitor-every", 1, whole=True)
        number("width", "--width", 1, whole=True)
        number("num_threads", "--num-threads", 1, whole=True, optional=True)
        if self.momentum >= 1 or self.tau_base > 1:
            raise ExplorerError(f"momentum {self.momentum} and tau {self.tau_base} must be below 1.")
        if self.stem not in config.ENCODER_STEMS:
            raise ExplorerError(f"--stem must be one of {', '.join(config.ENCODER_STEMS)}, not {self.stem!r}.")
        if self.symmetry not in config.ENCODER_SYMMETRIES:
            choices = ", ".join(config.ENCODER_SYMMETRIES)
            raise ExplorerError(f"--symmetry must be one of {choices}, not {self.symmetry!r}.")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ExplorerError(f"--precision must be auto, bf16 or fp32, not {self.precision!r}.")
        if not isinstance(self.exclude_held_out, bool):
            raise ExplorerError(f"exclude_held_out must be true or false, not {self.exclude_held_out!r}.")


@dataclass
class TrainingData:
    """uint8 images (N, 150, 150) selected for pretraining, and the labelled monitor set."""

    images: np.ndarray
    bundle_ids: list[str]
    counts: dict = field(default_factory=dict)  # per bundle: total, kept, dropped by extent
    monitor_images: np.ndarray | None = None  # FRI / FRII confident sources (uint8)
    monitor_labels: np.ndarray | None = None  # 0 = FRI, 1 = FRII


def select_by_extent(catalogue, min_extent_arcsec: float) -> np.ndarray:
    """Boolean mask of sources kept for pretraining: extent >= min_extent_arcsec.

    Sources without an extent estimate (NaN) are kept: nothing says they are small.
    """
    extent = catalogue["angular_extent_arcsec"].to_numpy(dtype=float)
    return ~(extent < min_extent_arcsec)


def confident_fr_mask(catalogue) -> np.ndarray:
    """FRI or FRII sources labelled confidently (the monitor's classes)."""
    if "label" not in catalogue.columns:
        return np.zeros(len(catalogue), dtype=bool)
    is_fr = catalogue["label"].astype(str).isin(MONITOR_LABELS).to_numpy()
    if "confident" in catalogue.columns:
        confident = catalogue["confident"].fillna(False).astype(bool).to_numpy()
    else:
        confident = np.ones(len(catalogue), dtype=bool)
    return is_fr & confident


def load_training_data(
    bundle_paths: Sequence[str | Path], min_extent_arcsec: float, exclude_held_out: bool = False
) -> TrainingData:
    """Read the bundles, keep sources above the extent cut (and outside the held-out sky when
    ``exclude_held_out``), gather the monitor set (held-out sources included: it only measures)."""
    from pretrain.data.bundle import load_bundle

    images, ids, counts, mon_images, mon_labels = [], [], {}, [], []
    for path in bundle_paths:
        bundle = load_bundle(path)
        large = select_by_extent(bundle.catalogue, min_extent_arcsec)
        held_out = held_out_rows(bundle.catalogue) if exclude_held_out else None
        if held_out is None:  # not asked, or no positions: nothing is held out
            held_out = np.zeros(len(large), dtype=bool)
        keep = large & ~held_out
        images.append(np.asarray(bundle.images[np.flatnonzero(keep)]))
        ids.append(bundle.bundle_id)
        counts[bundle.bundle_id] = {
            "path": str(path),
            "total": len(keep),
            "kept": int(keep.sum()),
            "dropped_below_min_extent": int((~large).sum()),
            "dropped_held_out": int((large & held_out).sum()),
        }
        fr = confident_fr_mask(bundle.catalogue)
        if fr.any():
            mon_images.append(np.asarray(bundle.images[np.flatnonzero(fr)]))
            mon_labels.append((bundle.catalogue["label"].astype(str).to_numpy()[fr] == "FRII").astype(np.int64))
    data = TrainingData(images=np.concatenate(images), bundle_ids=ids, counts=counts)
    if mon_images:
        data.monitor_images, data.monitor_labels = np.concatenate(mon_images), np.concatenate(mon_labels)
    if len(data.images) == 0:
        raise ExplorerError(
            f"no source left for pretraining: every source is below --min-extent "
            f"{min_extent_arcsec} arcsec. Lower --min-extent."
        )
    return data


def learning_rate(step: int, total_steps: int, warmup_steps: int, peak_lr: float) -> float:
    """Linear warm-up to ``peak_lr`` over ``warmup_steps``, then cosine decay to 0."""
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    return peak_lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


class KnnMonitor:
    """kNN accuracy (FRI vs FRII, confident sources) of the online encoder's representation,
    on a fixed stratified hold-out. Cheap enough to run every few epochs. The representation
    is the one ``embed`` writes (``config.EMBED_SYMMETRY``), so the monitor tracks what the
    map and the similarity search will get."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, seed: int, device: torch.device):
        from sklearn.model_selection import train_test_split

        if len(images) > config.MONITOR_MAX_SOURCES:
            images, _, labels, _ = train_test_split(
                images, labels, train_size=config.MONITOR_MAX_SOURCES, stratify=labels, random_state=seed
            )
        self.train_idx, self.test_idx = train_test_split(
            np.arange(len(labels)), test_size=config.MONITOR_TEST_FRACTION, stratify=labels, random_state=seed
        )
        self.images, self.labels, self.device = images, labels, device

    @staticmethod
    def available(labels: np.ndarray | None) -> bool:
        """Both classes present with enough sources for a split and k neighbours."""
        if labels is None or len(labels) < 4 * config.MONITOR_K:
            return False
        return bool(np.bincount(labels, minlength=2).min() >= 5)

    def __call__(self, encoder: torch.nn.Module, linear_probe: bool = False) -> dict[str, float]:
        """``{"knn_accuracy_fr": ...}``, plus ``"linear_probe_error_fr"`` when asked (slower)."""
        from pretrain.embed import embed_images
        from pretrain.evaluate import knn_accuracy, linear_probe_error, neighbour_purity

        was_training = encoder.training
        try:
            emb = embed_images(encoder, self.images, device=self.device)
        finally:
            encoder.train(was_training)
        train = (emb[self.train_idx], self.labels[self.train_idx])
        test = (emb[self.test_idx], self.labels[self.test_idx])
        k = min(config.MONITOR_K, len(self.train_idx))
        result = {"knn_accuracy_fr": float(knn_accuracy(*train, *test, k=k))}
        # What a click shows: the same label among each source's nearest (all monitor sources).
        purity = neighbour_purity(emb, np.where(self.labels == 1, "FRII", "FRI"), classes=MONITOR_LABELS)
        result["neighbour_purity_fr"] = float(np.average(purity["purity"], weights=purity["queries"]))
        if linear_probe:
            result["linear_probe_error_fr"] = float(linear_probe_error(*train, *test))
        return result


class Trainer:
    """One BYOL run in a run folder. ``fit()`` trains (or resumes) to ``cfg.epochs``."""

    def __init__(
        self,
        cfg: TrainConfig,
        run_dir: str | Path,
        data: TrainingData | None = None,
        progress: bool = True,
        processes: Processes | None = None,
        device: torch.device | None = None,
    ):
        """``processes`` / ``device``: this process's place in a DDP job and its device
        (:func:`pretrain.distributed.process_group`); one process on ``cfg.device`` without."""
        self.processes = processes or Processes()
        self.main = self.processes.is_main  # the one process that writes and prints
        self.cfg, self.run_dir, self.progress = cfg, Path(run_dir), progress and self.main
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if cfg.num_threads:
            torch.set_num_threads(int(cfg.num_threads))
        self.device = device if device is not None else choose_device(cfg.device)
        if data is None:
            data = load_training_data(cfg.bundles, cfg.min_extent_arcsec, cfg.exclude_held_out)
        self.data = data
        n = len(self.data.images)
        self.batch_size = min(cfg.resolve_batch_size(self.device), n)  # a tiny set still gets one step per epoch
        world = self.processes.world_size
        if self.batch_size % world:  # the global batch is split evenly: each process gets batch / N
            raise ExplorerError(
                f"a batch of {self.batch_size} images cannot be shared evenly by {world} processes: "
                f"choose a --batch-size that is a multiple of {world}."
            )
        self.steps_per_epoch = n // self.batch_size
        self.total_steps = self.steps_per_epoch * cfg.epochs
        # A short run (a few epochs to try things) would otherwise end before its warm-up does.
        self.warmup_steps = round(
            min(cfg.warmup_epochs * self.steps_per_epoch, config.PRETRAIN_WARMUP_MAX_FRACTION * self.total_steps)
        )
        self.peak_lr = cfg.base_lr * self.batch_size / 256

        torch.manual_seed(cfg.seed)  # the same seed in every process: the same initial weights
        self.model = BYOL(resnet18_encoder(stem=cfg.stem, width=cfg.width, symmetry=cfg.symmetry)).to(self.device)
        if self.processes.distributed:  # statistics of the global batch, as in one process
            self.model = batch_norm_across_processes(self.model, self.device)  # type: ignore[assignment]
        self.cuda = self.device.type == "cuda"
        self.precision = resolve_precision(cfg.precision, self.device)
        self.channels_last = self.precision == "bf16"
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        # What a step calls: DDP averages the gradients over the processes. Batch norm keeps
        # its buffers equal everywhere itself (global statistics), so they are not broadcast.
        self.step_model: torch.nn.Module = self.model
        if self.processes.distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.step_model = DistributedDataParallel(
                self.model, device_ids=[self.device] if self.cuda else None, broadcast_buffers=False
            )
        if self.cuda:
            torch.backends.cudnn.benchmark = True
        self.optimizer = torch.optim.SGD(
            self.model.online_parameters(), lr=self.peak_lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
        self.augment = pretraining_augmentation()
        self.aug_generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        # Images on the GPU when they fit (no host copies per step), else in host memory (not
        # pinned: each batch is gathered into a new tensor, so pinning the whole set would only
        # cost a second copy of it).
        images = torch.from_numpy(np.ascontiguousarray(self.data.images))
        if self.cuda and images.numel() <= config.PRETRAIN_GPU_RESIDENT_MAX_BYTES:
            images = images.to(self.device)
        self.images = images
        self.monitor: KnnMonitor | None = None
        monitor_images, monitor_labels = self.data.monitor_images, self.data.monitor_labels
        available = monitor_labels is not None and KnnMonitor.available(monitor_labels)
        if self.main and monitor_images is not None and monitor_labels is not None and available:
            self.monitor = KnnMonitor(monitor_images, monitor_labels, cfg.seed, self.device)

        self.epoch, self.batch_in_epoch, self.global_step = 0, 0, 0
        self.elapsed_s = 0.0  # training wall time over all sessions of this run
        self.epoch_loss_sum, self.epoch_images, self.epoch_train_s = 0.0, 0, 0.0
        self.stop_requested = False  # Ctrl-C / SIGTERM: stop at the next step boundary
        self.stop_at_once = False  # a second one: stop now, keep the last checkpoint

    # --- persistence ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "aug_generator": self.aug_generator.get_state(),
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "global_step": self.global_step,
            "elapsed_s": self.elapsed_s,
            "epoch_loss_sum": self.epoch_loss_sum,
            "epoch_images": self.epoch_images,
            "epoch_train_s": self.epoch_train_s,
            "config": self.cfg.to_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        rng_state = state["aug_generator"].cpu()  # Generator.set_state takes a CPU byte tensor
        if rng_state.numel() == self.aug_generator.get_state().numel():
            self.aug_generator.set_state(rng_state)
        else:  # the run moved between the CPU and a GPU: their generators' states differ in kind
            print(
                "resuming on another kind of device: the augmentation random stream starts afresh "
                "(everything else continues from the checkpoint)",
                file=sys.stderr,
            )
            self.aug_generator.manual_seed(self.cfg.seed + int(state["global_step"]))
        for name in (
            "epoch",
            "batch_in_epoch",
            "global_step",
            "elapsed_s",
            "epoch_loss_sum",
            "epoch_images",
            "epoch_train_s",
        ):
            setattr(self, name, state[name])

    def save_checkpoint(self) -> Path:
        path = self.run_dir / CHECKPOINT_FILE
        if not self.main:  # rank 0 writes; every process holds the same state
            return path
        with atomic_path(path) as tmp:  # a job killed mid-write never leaves half a checkpoint
            torch.save(self.state_dict(), tmp)
        return path

    def save_backbone(self) -> Path:
        if not self.main:
            return self.run_dir / BACKBONE_FILE
        meta = {
            "method": "BYOL",
            "bundle_ids": ",".join(self.data.bundle_ids),
            "epochs": str(self.cfg.epochs),
            "epochs_completed": str(self.epoch),
            "images": str(len(self.data.images)),
            "batch_size": str(self.batch_size),
            "processes": str(self.processes.world_size),
            "min_extent_arcsec": str(self.cfg.min_extent_arcsec),
            "device": self._device_name(),
            "wall_time_s": f"{self.elapsed_s:.0f}",
            "seed": str(self.cfg.seed),
            # "excluded": the held-out sky (pretrain/holdout.py) was never seen; its neighbour
            # figures are honest. "included": it was trained on.
            "held_out": "excluded" if self.cfg.exclude_held_out else "included",
            "torch": torch.__version__,
            "saved_utc": utc_timestamp(),
        }
        return save_encoder(self.model.encoder, self.run_dir / BACKBONE_FILE, metadata=meta)

    def resume(self) -> None:
        path = self.run_dir / CHECKPOINT_FILE
        if not path.is_file():
            raise ExplorerError(f"--resume: no checkpoint at {path}. Start a new run without --resume.")
        # On the CPU first: the model and optimiser copy their tensors to the device as they
        # load, and the generator state must stay a CPU tensor.
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            self.load_state_dict(state)
        except Exception as exc:  # truncated, garbage, or another model's: torch raises many kinds
            raise ExplorerError(
                f"--resume: the checkpoint {path} is damaged or is not this run's ({type(exc).__name__}: "
                f"{str(exc)[:200]}). It cannot be continued exactly: start a new run with another --out "
                f"(the last epoch's encoder is in {self.run_dir / BACKBONE_FILE})."
            ) from exc
        # Forget metrics of epochs the checkpoint does not hold (a job killed in between), and
        # a line a kill left half-written.
        metrics = self.run_dir / METRICS_FILE
        if metrics.exists():
            kept = [line for line in metrics.read_text(errors="replace").splitlines() if _epoch_of(line) is not None]
            kept = [line for line in kept if (_epoch_of(line) or 0) <= self.epoch]
            atomic_write_text(metrics, "".join(line + "\n" for line in kept))

    def _device_name(self) -> str:
        if self.cuda:
            return f"cuda ({torch.cuda.get_device_name(self.device)})"
        return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"

    def write_config(self, result: dict | None = None) -> None:
        if not self.main:
            return
        info = {
            "parameters": self.cfg.to_dict(),
            "resolved": {
                "batch_size": self.batch_size,
                "batch_per_process": self.batch_size // self.processes.world_size,
                "peak_lr": self.peak_lr,
                "steps_per_epoch": self.steps_per_epoch,
                "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps,
                "images": len(self.data.images),
                "monitor_sources": 0 if self.monitor is None else len(self.monitor.labels),
                "monitor_symmetry": config.EMBED_SYMMETRY,
                "augmentation": dataclasses.asdict(self.augment.settings),
            },
            "data": {"bundle_ids": self.data.bundle_ids, "bundles": self.data.counts},
            "device": self._device_name(),
            "processes": {"world_size": self.processes.world_size, "backend": self.processes.backend},
            "precision": "bf16 autocast" if self.precision == "bf16" else "fp32",
            "torch": torch.__version__,
            "python": sys.version.split()[0],
            "written_utc": utc_timestamp(),
            "command": " ".join(sys.argv),
            "threads": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
        }
        if result:
            info["result"] = result
        atomic_write_json(self.run_dir / CONFIG_FILE, info)

    def _log_metrics(self, record: dict) -> None:
        if not self.main:
            return
        with open(self.run_dir / METRICS_FILE, "a") as f:
            f.write(json.dumps(record) + "\n")

    # --- training ---------------------------------------------------------------------------
    def _permutation(self, epoch: int) -> torch.Tensor:
        # One fixed order per (seed, epoch): a resumed epoch sees the same batches.
        gen = torch.Generator().manual_seed(self.cfg.seed * 100_003 + epoch)
        return torch.randperm(len(self.images), generator=gen)

    def train_step(self, batch_uint8: torch.Tensor) -> float:
        lr = learning_rate(self.global_step, self.total_steps, self.warmup_steps, self.peak_lr)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batch = batch_uint8.to(self.device, non_blocking=True)
        # The global batch's views, drawn alike in every process; each keeps its share.
        view_1 = self.processes.share(self.augment(batch, self.aug_generator))
        view_2 = self.processes.share(self.augment(batch, self.aug_generator))
        if self.channels_last:
            view_1 = view_1.contiguous(memory_format=torch.channels_last)
            view_2 = view_2.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.precision):
            loss = self.step_model(view_1, view_2)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.global_step += 1
        self.model.update_target(cosine_tau(self.global_step, self.total_steps, self.cfg.tau_base))
        return self.processes.mean(float(loss.detach()))  # the global batch's loss

    def _catch_stop_signals(self) -> dict:
        """Ctrl-C and SIGTERM ask for a stop at the next step boundary (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum, frame):
            if self.stop_requested:  # asked twice: stop now, without a checkpoint of half a step
                self.stop_at_once = True
                raise KeyboardInterrupt
            self.stop_requested = True

        return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    def fit(self) -> dict:
        """Train from the current position to ``cfg.epochs``; returns the final summary."""
        self.model.train()
        self.write_config()
        previous_handlers = self._catch_stop_signals()
        bar = tqdm(
            total=self.total_steps,
            initial=self.global_step,
            unit="step",
            dynamic_ncols=True,
            disable=not self.progress,
            desc="BYOL",
            mininterval=1.0 if sys.stderr.isatty() else 30.0,
        )  # a log file gets few lines
        try:
            while self.epoch < self.cfg.epochs:
                order = self._permutation(self.epoch)
                while self.batch_in_epoch < self.steps_per_epoch:
                    if self.processes.any(self.stop_requested):  # every process stops at the same step
                        raise KeyboardInterrupt
                    start = self.batch_in_epoch * self.batch_size
                    idx = order[start : start + self.batch_size]
                    t0 = time.perf_counter()
                    loss = self.train_step(self.images[idx.to(self.images.device)])
                    if not math.isfinite(loss):
                        raise ExplorerError(
                            f"the loss became {loss} at step {self.global_step}; lower --lr and start again."
                        )
                    took = time.perf_counter() - t0
                    self.batch_in_epoch += 1
                    self.epoch_loss_sum += loss * len(idx)
                    self.epoch_images += len(idx)
                    self.epoch_train_s += took
                    self.elapsed_s += took
                    bar.update(1)
                    bar.set_postfix(
                        epoch=self.epoch + 1,
                        loss=f"{loss:.3f}",
                        img_s=f"{self.epoch_images / max(self.epoch_train_s, 1e-9):.1f}",
                    )
                self._end_epoch()
        except KeyboardInterrupt:
            bar.close()
            if self.stop_at_once:
                if self.main:
                    print(f"\nstopped at once: the last checkpoint in {self.run_dir} stays as it was.", file=sys.stderr)
                raise
            self.save_checkpoint()  # rank 0 writes it
            if not self.main:
                raise
            print(
                f"\ninterrupted: checkpoint saved at epoch {self.epoch + 1}, batch {self.batch_in_epoch}. "
                f"Continue with --resume --out {self.run_dir}",
                file=sys.stderr,
            )
            raise
        finally:
            for sig, previous in previous_handlers.items():
                signal.signal(sig, previous)
        bar.close()
        self.processes.barrier()  # rank 0's last metrics line is written
        summary = self._summary()
        self.write_config(result=summary)
        self.save_backbone()
        return summary

    def _end_epoch(self) -> None:
        t0 = time.perf_counter()
        step = self.global_step
        record: dict[str, float | str] = {
            "epoch": self.epoch + 1,
            "loss": self.epoch_loss_sum / max(self.epoch_images, 1),
            "lr": learning_rate(step - 1, self.total_steps, self.warmup_steps, self.peak_lr),
            "tau": cosine_tau(step, self.total_steps, self.cfg.tau_base),
            "images_per_s": self.epoch_images / max(self.epoch_train_s, 1e-9),
            "step": step,
        }
        last = self.epoch + 1 == self.cfg.epochs
        if self.monitor is not None and ((self.epoch + 1) % self.cfg.monitor_every_epochs == 0 or last):
            try:
                record.update(self.monitor(self.model.encoder, linear_probe=last))
            except ImportError as exc:  # the evaluation modules are optional for training
                print(f"monitor skipped: {exc}", file=sys.stderr)
                self.monitor = None
        self.elapsed_s += time.perf_counter() - t0
        record["elapsed_s"] = self.elapsed_s
        record["time_utc"] = utc_timestamp()
        self._log_metrics(record)
        if self.progress:
            tqdm.write(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
        self.epoch += 1
        self.batch_in_epoch = 0
        self.epoch_loss_sum, self.epoch_images, self.epoch_train_s = 0.0, 0, 0.0
        self.save_checkpoint()
        self.save_backbone()
        self.processes.barrier()  # the others wait for rank 0's monitor and files

    def _summary(self) -> dict:
        lines = (self.run_dir / METRICS_FILE).read_text().splitlines()
        last = json.loads(lines[-1]) if lines else {}
        return {
            "epochs_completed": self.epoch,
            "steps": self.global_step,
            "wall_time_s": self.elapsed_s,
            "final_loss": last.get("loss"),
            "finished_utc": utc_timestamp(),
            "device": self._device_name(),
        }


def _epoch_of(line: str) -> int | None:
    """The epoch of a metrics.jsonl line; None for a damaged or half-written one."""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return None
    epoch = record.get("epoch") if isinstance(record, dict) else None
    return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None


def read_run_config(run_dir: str | Path) -> TrainConfig:
    """The parameters of the run in ``run_dir`` (its config.json), for --resume; ExplorerError
    saying what is wrong when the file is missing or damaged."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ExplorerError(f"--resume: {path} not found; is {run_dir} a training run folder?")
    try:
        info = json.loads(path.read_text(errors="replace"))
        parameters = info["parameters"]
        return TrainConfig.from_dict(parameters)
    except (ValueError, RecursionError, TypeError, KeyError, ExplorerError) as exc:
        why = str(exc) if isinstance(exc, ExplorerError) else f"{type(exc).__name__}: {str(exc)[:120]}"
        raise ExplorerError(
            f"--resume: {path} is damaged ({why}); the run's parameters are unknown, so it cannot be continued. "
            "Start a new run with another --out."
        ) from exc


def train(cfg: TrainConfig, run_dir: str | Path, resume: bool = False, progress: bool = True) -> dict:
    """Train (or continue) a BYOL run in ``run_dir``; returns the summary written to config.json.

    Started by torchrun with several processes, each calls this and they train as one DDP job.
    """
    from contextlib import nullcontext

    from pretrain.run_folder import locked_run_folder

    run_dir = Path(run_dir)
    cfg.validate()
    with process_group(cfg.device) as (processes, device):
        # a second process training into the same folder is refused; under torchrun rank 0 holds the lock
        lock = locked_run_folder(run_dir) if processes.is_main else nullcontext(run_dir)
        with lock:
            if not resume and (run_dir / CHECKPOINT_FILE).exists():
                raise ExplorerError(
                    f"{run_dir} already holds a run. Continue it with --resume, or choose another --out."
                )
            trainer = Trainer(cfg, run_dir, progress=progress, processes=processes, device=device)
            if resume:
                trainer.resume()
            return trainer.fit()
