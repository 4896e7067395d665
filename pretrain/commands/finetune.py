"""Fine-tune the backbone (or train a linear probe) on a labelled task; write a run folder.

RUN/ gets config.json, status.json, progress.jsonl (one line per epoch, as it goes),
metrics.json (test error, out-of-distribution error, wall time, device),
predictions.parquet (per source) and the weights (encoder.safetensors, head.safetensors).
--depth 0 is the linear probe of `pretrain evaluate` (a cross-validated logistic regression)
on the app's d4 representation, read from a matching space (--space, else the cached
spaces) or embedded for the run: no epochs, and on the same split the same error as
evaluate; --depth D unfreezes the last D blocks with layer-wise lr decay 0.75; --scratch
trains the same network from random weights (the supervised baseline). Without --bundle
the task's default bundle is built from the shared data (once; it is cached). SIGTERM or
Ctrl-C cancel cleanly (status "cancelled").

tasks:
  mirabest-fr            FRI vs FRII, MiraBest Confident (test: the standard 104), Uncertain as OOD
  griese-bent            bent vs not bent, Griese et al. (2023)
  frdeep-first-to-nvss   FRI vs FRII trained on FRDEEP FIRST, tested on FIRST and (OOD) NVSS

examples:
  python -m pretrain finetune --out runs/ft1                      # last block + head, all labels
  python -m pretrain finetune --labels 145 --depth 0 --out runs/probe145
  python -m pretrain finetune --scratch --labels 72 --epochs 30 --out runs/scratch72
"""

from __future__ import annotations

from pretrain import config
from pretrain.errors import ExplorerError


def add_arguments(parser) -> None:
    from pretrain.tasks import TASKS

    parser.add_argument("--out", required=True, metavar="RUN", help="run folder to write")
    parser.add_argument(
        "--task",
        choices=list(TASKS),
        default=config.FINETUNE_TASK,
        help=f"labelled task (default {config.FINETUNE_TASK})",
    )
    parser.add_argument(
        "--weights", metavar="W", help="backbone weights (.safetensors; default: the shipped assets/ backbone)"
    )
    parser.add_argument(
        "--bundle",
        metavar="B",
        help="dataset bundle folder (default: the task's bundle, built from the shared data once)",
    )
    parser.add_argument(
        "--space",
        metavar="S",
        help="--depth 0: the space whose embeddings the probe reads (default: a cached space made with these "
        "weights from this bundle, else the bundle is embedded)",
    )
    parser.add_argument(
        "--labels",
        type=int,
        metavar="N",
        help="label budget: N stratified sources of the training split (default: all)",
    )
    parser.add_argument(
        "--depth",
        type=int,
        default=config.FINETUNE_DEPTH,
        metavar="D",
        help="0 = linear probe (evaluate's logistic regression on the d4 representation); "
        "D = the last D blocks unfrozen, "
        f"lr x {config.FINETUNE_LAYER_DECAY} per block down (default {config.FINETUNE_DEPTH})",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=config.FINETUNE_EPOCHS,
        help=f"training epochs (default {config.FINETUNE_EPOCHS}; the study used 300; a --depth 0 probe has none)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the label draw, the head and augmentations")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=config.FINETUNE_BATCH_SIZE,
        help=f"images per step (default {config.FINETUNE_BATCH_SIZE})",
    )
    parser.add_argument(
        "--lr",
        type=float,
        default=config.FINETUNE_BASE_LR,
        help=f"AdamW base lr, scaled by batch/256 (default {config.FINETUNE_BASE_LR:g})",
    )
    parser.add_argument(
        "--scratch",
        action="store_true",
        help="train the same network from random weights, every layer (supervised baseline)",
    )
    parser.add_argument("--device", default="auto", help="auto (cuda if there is a GPU), cpu, cuda, cuda:1 ...")
    parser.add_argument("--num-threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--overwrite", action="store_true", help="replace the results of a run already in --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")


def run(args) -> int:
    import torch

    from pretrain.finetune import FinetuneSettings, RunCancelled, run_finetune

    if args.num_threads is not None:
        if args.num_threads < 1:
            raise ExplorerError(f"--num-threads {args.num_threads}: need at least 1.")
        torch.set_num_threads(args.num_threads)
    settings = FinetuneSettings(
        task=args.task,
        labels=args.labels,
        depth=args.depth,
        epochs=args.epochs,
        seed=args.seed,
        batch_size=args.batch_size,
        scratch=args.scratch,
        device=args.device,
        base_lr=args.lr,
    )
    if args.space is not None and (args.depth != 0 or args.scratch):
        print("note: --space is only read by a --depth 0 linear probe; this run ignores it.")
    try:
        metrics = run_finetune(
            settings,
            args.out,
            weights=args.weights,
            bundle=args.bundle,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            space=args.space,
        )
    except RunCancelled:
        print(f"cancelled; partial progress in {args.out}.")
        return 143  # 128 + SIGTERM, as a shell reports a terminated program
    ood = (
        ""
        if metrics["ood_error"] is None
        else f", {metrics['ood_name']} (out of distribution) error {100 * metrics['ood_error']:.2f} %"
    )
    print(
        f"{metrics['task']} {metrics['mode']}: test error {100 * metrics['test_error']:.2f} % "
        f"({metrics['n_test']} sources){ood}; {metrics['n_train']} training labels, "
        f"{metrics['wall_time_s']:.0f} s on {metrics['device']}. Results in {args.out}"
    )
    return 0
