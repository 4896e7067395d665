"""Pretrain the ResNet-18 backbone with BYOL on one or more dataset bundles.

Writes RUN/config.json, RUN/metrics.jsonl (one line per epoch), RUN/checkpoint.pt (every
epoch and on Ctrl-C) and RUN/backbone.safetensors (the encoder, with provenance).
Continue an interrupted run with --resume --out RUN (parameters come from RUN/config.json;
--epochs may be raised to train longer). Defaults follow the reference study
(pretrain/config.py), except the batch size: 1024 on a GPU, 128 on a CPU.

Several processes (DDP; one per GPU, or gloo on the CPU), the global batch split among them:
  torchrun --nproc_per_node N -m pretrain train --bundle B --out RUN ...
trains as one process with the same --batch-size would (pretrain/distributed.py); only rank 0
writes RUN, and --resume works under torchrun as without it.

example:
  python -m pretrain train --bundle runs/mirabest_bundle --out runs/byol --epochs 2 --batch-size 64
  torchrun --nproc_per_node 2 -m pretrain train --bundle runs/mirabest_bundle --out runs/ddp --device cpu
"""

from __future__ import annotations

import signal
from pathlib import Path

from pretrain import config
from pretrain.devices import DEVICE_CHOICES
from pretrain.errors import ExplorerError


def add_arguments(parser) -> None:
    parser.add_argument(
        "--bundle",
        action="append",
        metavar="B",
        help="dataset bundle folder (from `python -m pretrain bundle`); repeat to pool bundles",
    )
    parser.add_argument("--out", required=True, metavar="RUN", help="run folder to write (or to resume)")
    parser.add_argument("--epochs", type=int, help=f"training epochs (default {config.PRETRAIN_EPOCHS})")
    parser.add_argument(
        "--batch-size",
        type=int,
        help=f"images per step (default {config.PRETRAIN_BATCH_SIZE} on a GPU, "
        f"{config.PRETRAIN_BATCH_SIZE_CPU} on a CPU)",
    )
    parser.add_argument(
        "--lr", type=float, help=f"base learning rate, scaled by batch/256 (default {config.PRETRAIN_BASE_LR})"
    )
    parser.add_argument(
        "--warmup-epochs",
        type=float,
        help=f"linear warm-up epochs before the cosine decay (default {config.PRETRAIN_WARMUP_EPOCHS}, "
        f"at most {config.PRETRAIN_WARMUP_MAX_FRACTION:.0%}% of the run)",  # "%%": argparse %-formats help texts
    )
    parser.add_argument(
        "--min-extent",
        type=float,
        metavar="ARCSEC",
        help="drop sources whose angular extent is below this "
        f"(default {config.PRETRAIN_MIN_EXTENT_ARCSEC:g} arcsec, as the reference study)",
    )
    parser.add_argument("--seed", type=int, help=f"random seed (default {config.PRETRAIN_SEED})")
    parser.add_argument(
        "--monitor-every",
        type=int,
        metavar="EPOCHS",
        help="kNN FRI/FRII monitor every this many epochs, when the bundles have labels "
        f"(default {config.MONITOR_EVERY_EPOCHS})",
    )
    parser.add_argument(
        "--device",
        choices=DEVICE_CHOICES,
        default="auto",
        help="auto = cuda when a GPU is visible, else cpu (default auto)",
    )
    parser.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp32"),
        help="auto = bf16 autocast + channels_last on CUDA and on CPUs with native bf16, "
        f"else fp32 (default {config.TRAIN_PRECISION})",
    )
    parser.add_argument(
        "--stem",
        choices=config.ENCODER_STEMS,
        help=f"the encoder's stem: imagenet (7x7 stride 2) or reference (3x3 stride 1, the study's) "
        f"(default {config.PRETRAIN_STEM})",
    )
    parser.add_argument(
        "--width", type=int, help=f"channels after the stem, x8 = representation (default {config.PRETRAIN_WIDTH})"
    )
    parser.add_argument(
        "--symmetry",
        choices=config.ENCODER_SYMMETRIES,
        help="none: a plain ResNet-18; d4: the same layers as group convolutions over the 4 turns and mirror "
        "images, so the representation is the same for all 8 (width = channels per plane; "
        f"default {config.PRETRAIN_SYMMETRY})",
    )
    parser.add_argument(
        "--include-held-out",
        dest="exclude_held_out",
        action="store_const",
        const=False,
        help="also train on the held-out sky (pretrain/holdout.py); its neighbour figures are then not honest",
    )
    parser.add_argument("--num-threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")


_OVERRIDES = {
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "base_lr",
    "warmup_epochs": "warmup_epochs",
    "min_extent": "min_extent_arcsec",
    "seed": "seed",
    "monitor_every": "monitor_every_epochs",
    "precision": "precision",
    "stem": "stem",
    "width": "width",
    "symmetry": "symmetry",
    "exclude_held_out": "exclude_held_out",
}


def _interrupt_on_sigterm():
    """``kill PID`` saves a checkpoint as Ctrl-C does (the run stays resumable); returns
    the previous handler."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def run(args) -> int:
    from pretrain.distributed import launched_processes
    from pretrain.train import TrainConfig, read_run_config, train

    out = Path(args.out)
    if args.resume:
        cfg = read_run_config(out)
        changed = [
            flag
            for flag, name in _OVERRIDES.items()
            if getattr(args, flag) is not None and flag not in ("epochs", "precision")
        ]
        if changed or args.bundle:
            raise ExplorerError(
                f"--resume keeps the run's parameters; drop {', '.join(changed or ['--bundle'])} "
                "(only --epochs, --precision, --device and --num-threads may change)."
            )
        if args.epochs is not None:
            cfg.epochs = args.epochs
        if args.precision is not None:
            cfg.precision = args.precision
    else:
        if not args.bundle:
            raise ExplorerError("give at least one --bundle (make one with `python -m pretrain bundle`).")
        for bundle in args.bundle:
            if not Path(bundle).is_dir():
                raise ExplorerError(f"bundle {bundle} not found. Build it with `python -m pretrain bundle`.")
        cfg = TrainConfig(bundles=[str(Path(b).resolve()) for b in args.bundle])
        for flag, name in _OVERRIDES.items():
            if getattr(args, flag) is not None:
                setattr(cfg, name, getattr(args, flag))
    cfg.device = args.device
    cfg.num_threads = args.num_threads
    cfg.validate()  # --lr -1, --width 0, --min-extent nan, ...: refused with the flag's name
    previous = _interrupt_on_sigterm()
    try:
        summary = train(cfg, out, resume=args.resume, progress=not args.no_progress)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not launched_processes().is_main:  # under torchrun, rank 0 reports for all
        return 0
    print(
        f"trained {summary['epochs_completed']} epochs in {summary['wall_time_s'] / 60:.1f} min on "
        f"{summary['device']}; final loss {summary['final_loss']:.4f}. Backbone: {out / 'backbone.safetensors'}"
    )
    return 0
