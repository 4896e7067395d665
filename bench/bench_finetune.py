"""Fine-tuning against training from scratch, by label budget (MiraBest FRI vs FRII).

For each label budget (default 72, 145 and all) and each seed, two runs of
:func:`pretrain.finetune.run_finetune` on the same stratified label draw and the same
standard test split (104 MiraBest Confident sources):

- **pretrained + fine-tuned**: the backbone, every block unfrozen (``--depth 5``) with
  layer-wise lr decay 0.75, AdamW, cosine decay (the study's recipe);
- **from scratch**: the same network from random weights, every layer at one lr;

plus a linear probe (``--depth 0``: evaluate's logistic regression on the d4
representation) with all labels, and the wall time of one *small run* -- last block +
head, all labels, the command line's default epochs -- timed from the shell
(``python -m pretrain finetune``, process start included).

``--probe-agreement`` (own section): the sidebar's linear probe against ``pretrain
evaluate`` on the same representation and split -- the depth-0 run reading the space's
embeddings, the same run embedding the bundle itself, and evaluate's probe on the space
(seed 0 = the fine-tuning task's fixed split), side by side in one process.

Epochs: the study trained 300; here every run gets ``--epochs`` epochs but at least
``--min-steps`` optimiser steps (small label budgets have few steps per epoch), so a
full sweep fits in a few CPU hours. Every run is a normal run folder under ``--out``; a run
whose ``metrics.json`` exists is not run again (the sweep resumes after an interruption),
and the table is recomputed from the ``metrics.json`` files. The figures go into
BENCHMARKS.md between ``<!-- bench_finetune:start -->`` and ``<!-- bench_finetune:end -->``.

    python bench/bench_finetune.py --plan                  # what would run, and the step count
    python bench/bench_finetune.py                         # shipped backbone, 3 seeds, CPU
    python bench/bench_finetune.py --weights W --seeds 10 --device cuda
    python bench/bench_finetune.py --report-only           # table from the run folders so far
    python bench/bench_finetune.py --probe-agreement       # depth 0 vs evaluate (own section)
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import machine_description, publish, today
from pretrain import config

NAME = "bench_finetune"
FULL_DEPTH = 5  # every block of the ResNet-18 encoder


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="backbone (.safetensors; default: the shipped assets/ backbone)")
    parser.add_argument("--bundle", help="MiraBest bundle (default: the task's, built from the shared data once)")
    parser.add_argument("--out", default=None, help="run folders (default: <cache>/bench_finetune)")
    parser.add_argument("--labels", nargs="+", default=["72", "145", "all"], help="label budgets ('all' = every one)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per budget (default 3; 10 on a GPU)")
    parser.add_argument("--epochs", type=int, default=30, help="epochs per sweep run (default 30; study: 300)")
    parser.add_argument("--min-steps", type=int, default=150, help="at least this many optimiser steps per run")
    parser.add_argument("--probe-epochs", type=int, default=30, help="0: no linear-probe rows (a probe has no epochs)")
    parser.add_argument(
        "--probe-agreement",
        action="store_true",
        help="only compare the depth-0 run with evaluate's probe (own section)",
    )
    parser.add_argument(
        "--small-epochs",
        type=int,
        default=config.FINETUNE_EPOCHS,
        help=f"epochs of the timed small run (default: the CLI default, {config.FINETUNE_EPOCHS})",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--num-threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--keep-weights", action="store_true", help="keep each sweep run's encoder (44 MB each)")
    parser.add_argument("--plan", action="store_true", help="list the runs and their steps, run nothing")
    parser.add_argument(
        "--small-only",
        action="store_true",
        help="only time the small run and the same budget from scratch (own section)",
    )
    parser.add_argument("--report-only", action="store_true", help="only rebuild the table from finished runs")
    parser.add_argument("--no-write", action="store_true", help="print the section, leave BENCHMARKS.md alone")
    return parser.parse_args(argv)


def plan(args, n_available: int) -> list[dict]:
    """Every run of the sweep: name, settings, expected optimiser steps."""
    from pretrain.finetune import _batch_count

    runs = []
    for budget in args.labels:
        n = None if budget == "all" else int(budget)
        n_train = n_available if n is None else min(n, n_available)
        per_epoch = _batch_count(n_train, config.FINETUNE_BATCH_SIZE)
        epochs = max(args.epochs, math.ceil(args.min_steps / per_epoch))
        for seed in range(args.seeds):
            for kind, scratch in (("finetuned", False), ("scratch", True)):
                runs.append(
                    {
                        "name": f"{kind}-{budget}-seed{seed}",
                        "kind": kind,
                        "budget": budget,
                        "labels": n,
                        "seed": seed,
                        "depth": FULL_DEPTH,
                        "scratch": scratch,
                        "epochs": epochs,
                        "steps": epochs * per_epoch,
                    }
                )
    if args.probe_epochs:
        for seed in range(args.seeds):
            runs.append(
                {
                    "name": f"probe-all-seed{seed}",
                    "kind": "probe",
                    "budget": "all",
                    "labels": None,
                    "seed": seed,
                    "depth": 0,
                    "scratch": False,
                    "epochs": 0,  # evaluate's logistic regression, fitted to convergence
                    "steps": 0,
                }
            )
    return runs


def run_sweep(args, runs, out: Path, weights, bundle) -> None:
    from pretrain.finetune import FinetuneSettings, run_finetune
    from pretrain.provenance import weights_sha256
    from pretrain.run_folder import METRICS_FILE

    current = weights_sha256(weights)

    def done(r) -> bool:
        # A finished run counts only if it used this backbone: a resumed sweep never mixes two.
        path = out / r["name"] / METRICS_FILE
        if not path.is_file():
            return False
        metrics = json.loads(path.read_text())
        if r["kind"] == "probe" and "probe" not in metrics:
            return False  # a probe from before depth 0 became evaluate's logistic regression
        return r["scratch"] or metrics.get("weights_sha256") == current

    todo = [r for r in runs if not done(r)]
    print(
        f"{len(runs) - len(todo)} of {len(runs)} runs already done; {len(todo)} to go "
        f"({sum(r['steps'] for r in todo)} optimiser steps).",
        flush=True,
    )
    started = time.monotonic()
    done_steps = 0
    total_steps = sum(r["steps"] for r in todo)
    for i, r in enumerate(todo, 1):
        settings = FinetuneSettings(
            task="mirabest-fr",
            labels=r["labels"],
            depth=r["depth"],
            epochs=r["epochs"],
            seed=r["seed"],
            scratch=r["scratch"],
            device=args.device,
            eval_every=0,
        )
        metrics = run_finetune(
            settings,
            out / r["name"],
            weights=None if r["scratch"] else weights,
            bundle=bundle,
            overwrite=True,
            progress=False,
        )
        if not args.keep_weights:
            (out / r["name"] / "encoder.safetensors").unlink(missing_ok=True)
        done_steps += r["steps"]
        elapsed = time.monotonic() - started
        eta = elapsed / done_steps * (total_steps - done_steps) if done_steps else 0.0
        print(
            f"[{i}/{len(todo)}] {r['name']}: test error {metrics['test_error_percent']:.2f} %, "
            f"{metrics['wall_time_s']:.0f} s; about {eta / 60:.0f} min left",
            flush=True,
        )


def small_run(args, out: Path, weights, bundle, scratch: bool = False) -> dict:
    """The timed small run, from the shell: last block + head, all labels (``scratch``: the
    same network from random weights, every layer trained, as the supervised baseline)."""
    folder = out / ("small-run-scratch" if scratch else "small-run")
    command = [
        sys.executable,
        "-m",
        "pretrain",
        "finetune",
        "--out",
        str(folder),
        "--overwrite",
        "--depth",
        "1",
        "--epochs",
        str(args.small_epochs),
        "--device",
        args.device,
        "--no-progress",
    ]
    if scratch:
        command += ["--scratch"]
    elif weights:
        command += ["--weights", str(weights)]
    if bundle:
        command += ["--bundle", str(bundle)]
    if args.num_threads:
        command += ["--num-threads", str(args.num_threads)]
    print("small run:", " ".join(command), flush=True)
    started = time.monotonic()
    subprocess.run(command, check=True, cwd=config.REPO_ROOT)
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["process_wall_time_s"] = time.monotonic() - started
    (folder / "bench_timing.json").write_text(
        json.dumps({"process_wall_time_s": metrics["process_wall_time_s"], "command": command}, indent=2)
    )
    return metrics


def _mean_se(values: list[float]) -> str:
    if not values:
        return "–"
    percent = np.asarray(values, float) * 100
    se = percent.std(ddof=1) / np.sqrt(len(percent)) if len(percent) > 1 else float("nan")
    return f"{percent.mean():.2f} ± {se:.2f} % (n={len(percent)})"


def report(args, runs, out: Path, small: dict | None) -> str:
    from pretrain.run_folder import METRICS_FILE

    found = {}
    for r in runs:
        path = out / r["name"] / METRICS_FILE
        if path.is_file():
            found[r["name"]] = json.loads(path.read_text())
    if not found:
        return "No finished runs yet."
    any_metrics = next(iter(found.values()))
    backbone = next((m["weights_sha256"] for m in found.values() if m.get("weights_sha256")), None) or "?"
    n_available = any_metrics["n_train_available"]

    def cell(kind, budget, key):
        return _mean_se(
            [found[r["name"]][key] for r in runs if r["kind"] == kind and r["budget"] == budget and r["name"] in found]
        )

    def n_labels(budget):
        return f"{n_available} (all)" if budget == "all" else budget

    lines = [
        "## Fine-tuning vs training from scratch (MiraBest Confident FRI/FRII)",
        "",
        f"`bench/bench_finetune.py` ({today()}), {machine_description()}, device {any_metrics['device']} "
        f"({any_metrics.get('precision', 'fp32')}). "
        f"Backbone sha256 `{backbone[:16]}…` "
        f"(for the pretrained rows), bundle `{any_metrics['bundle_id']}`; test set: the standard "
        f"{any_metrics['n_test']} Confident sources (`mirabest_confident_split`, seed {config.FINETUNE_SPLIT_SEED}), "
        f"out of distribution: {any_metrics['n_ood']} Uncertain sources. Mean ± standard error over seeds "
        "(label draw, head initialisation, augmentations).",
        "",
        "Test error:",
        "",
        "| labels | from scratch | pretrained + fine-tuned (all blocks, lr decay 0.75) |",
        "|---|---|---|",
    ]
    for budget in args.labels:
        lines.append(
            f"| {n_labels(budget)} | {cell('scratch', budget, 'test_error')} | "
            f"{cell('finetuned', budget, 'test_error')} |"
        )
    if args.probe_epochs:
        lines.append(
            f"| {n_labels('all')}, linear probe (evaluate's logistic regression, d4) | | "
            f"{cell('probe', 'all', 'test_error')} |"
        )
    lines += [
        "",
        "Out-of-distribution error (MiraBest Uncertain FRI/FRII):",
        "",
        "| labels | from scratch | pretrained + fine-tuned |",
        "|---|---|---|",
    ]
    for budget in args.labels:
        lines.append(
            f"| {n_labels(budget)} | {cell('scratch', budget, 'ood_error')} | "
            f"{cell('finetuned', budget, 'ood_error')} |"
        )
    epochs = sorted(
        {(r["budget"], r["epochs"], r["steps"]) for r in runs if r["kind"] != "probe"},
        key=lambda e: args.labels.index(e[0]),
    )
    lines += [
        "",
        "Epochs (optimiser steps) per budget: "
        + ", ".join(f"{b}: {e} ({s})" for b, e, s in epochs)
        + ("; probe: a logistic regression fitted to convergence (no epochs)" if args.probe_epochs else "")
        + f". Batch {config.FINETUNE_BATCH_SIZE}, AdamW base lr {config.FINETUNE_BASE_LR:g} x batch/256, "
        f"weight decay {config.FINETUNE_WEIGHT_DECAY}, cosine decay; the study trained 300 epochs, so these "
        "figures are for a CPU-sized budget. Reported: the last epoch (no selection on the test set).",
    ]
    sweep_time = sum(m["wall_time_s"] for m in found.values())
    lines += [f"Sweep: {len(found)} runs, {sweep_time / 60:.0f} min of run wall time in all."]
    if small:
        lines += [
            "",
            f"**Small run** (last block + head, all {small['n_train']} labels, {small['epochs']} epochs, "
            f"`python -m pretrain finetune --out RUN`): **{small['process_wall_time_s']:.0f} s** from the shell "
            f"({small['train_time_s']:.0f} s training, {small['wall_time_s']:.0f} s inside the run), "
            f"test error {small['test_error_percent']:.2f} %, OOD error {small['ood_error_percent']:.2f} %, "
            f"on {small['device_name']} ({small['torch_threads']} torch threads).",
        ]
    lines += [
        "",
        f"Recompute: every figure comes from `RUN/metrics.json` under `{out}`; "
        "`python bench/bench_finetune.py --report-only` rebuilds this section from them.",
    ]
    return "\n".join(lines)


def probe_agreement(args, out: Path, weights: Path, bundle: Path) -> str:
    """The depth-0 run against evaluate's probe on the same space and split, side by side."""
    import os

    import pandas as pd

    from pretrain.data.bundle import load_bundle
    from pretrain.evaluate import probe_over_splits
    from pretrain.finetune import FinetuneSettings, run_finetune
    from pretrain.space import embed_bundle_to_space, is_stale, load_space

    space_dir = out / "probe-agreement-space"
    data_bundle = load_bundle(bundle)
    if is_stale(space_dir, weights, data_bundle.bundle_id):
        print(f"embedding the bundle into {space_dir} (d4) ...", flush=True)
        embed_bundle_to_space(data_bundle, weights, out=space_dir, device=args.device, progress=True)
    space = load_space(space_dir)

    started = time.monotonic()
    evaluate = probe_over_splits(space.embeddings, space.catalogue_map, [config.FINETUNE_SPLIT_SEED])
    evaluate_s = time.monotonic() - started
    evaluate_error = float(evaluate["probe_error"].iloc[0])

    settings = FinetuneSettings(task="mirabest-fr", depth=0, seed=0, device=args.device)
    read = run_finetune(
        settings, out / "probe-from-space", weights, bundle, overwrite=True, progress=False, space=space_dir
    )
    # The same run embedding the bundle itself: a cache without spaces, so none is found.
    saved = os.environ.get("EXPLORER_CACHE")
    os.environ["EXPLORER_CACHE"] = str(out / "probe-empty-cache")
    try:
        computed = run_finetune(settings, out / "probe-embedded", weights, bundle, overwrite=True, progress=False)
    finally:
        if saved is None:
            os.environ.pop("EXPLORER_CACHE", None)
        else:
            os.environ["EXPLORER_CACHE"] = saved
    assert read["probe"]["origin"] == "space" and computed["probe"]["origin"] == "computed"
    p_read = pd.read_parquet(out / "probe-from-space" / "predictions.parquet")["prob_FRII"].to_numpy(float)
    p_computed = pd.read_parquet(out / "probe-embedded" / "predictions.parquet")["prob_FRII"].to_numpy(float)
    n_test = read["n_test"]

    def row(name, error, seconds, note):
        difference = round(100 * (error - evaluate_error), 2) + 0.0  # + 0.0: no "-0.00"
        return f"| {name} | {100 * error:.2f} % | {difference:+.2f} | {seconds:.0f} s | {note} |"

    return "\n".join(
        [
            "## The sidebar's linear probe against `pretrain evaluate` (one representation, one probe)",
            "",
            f"`bench/bench_finetune.py --probe-agreement` ({today()}), {machine_description()}, load average "
            f"{os.getloadavg()[0]:.0f} at the end (a shared machine: wall times are long), device "
            f"{read['device']}. Shipped backbone sha256 `{str(read['weights_sha256'])[:16]}…`, MiraBest bundle "
            f"`{data_bundle.bundle_id}` ({len(space)} sources), d4 representation; the fine-tuning task's fixed split "
            f"(`mirabest_confident_split`, seed {config.FINETUNE_SPLIT_SEED}): {read['n_train']} training labels, "
            f"{n_test} test sources. All three fit `pretrain.evaluate.fit_linear_probe` (standardised logistic "
            "regression, C by 5-fold cross-validation on the training labels).",
            "",
            "| path | test error | vs evaluate (pp) | wall time | representation |",
            "|---|---|---|---|---|",
            row("`pretrain evaluate` probe (seed 0)", evaluate_error, evaluate_s, "the space's embeddings"),
            row(
                "`finetune --depth 0` (the sidebar's probe)",
                read["test_error"],
                read["wall_time_s"],
                f"read from the space (C = {read['probe']['C']:g})",
            ),
            row(
                "`finetune --depth 0`, no space to read",
                computed["test_error"],
                computed["wall_time_s"],
                f"embedded for the run (C = {computed['probe']['C']:g})",
            ),
            "",
            f"Agreement: the run that reads the space gives evaluate's figure exactly "
            f"({abs(read['test_error'] - evaluate_error) * n_test:.0f} of {n_test} test sources differ; the tests' "
            f"tolerance: 0); embedding afresh, {abs(computed['test_error'] - evaluate_error) * n_test:.0f} differ "
            f"(tolerance: 1 source = {100 / n_test:.2f} pp), largest difference in P(FRII) over all "
            f"{len(p_read)} sources {np.max(np.abs(p_read - p_computed)):.1e}. Ratio of wall times (embedding "
            f"afresh / reading the space): {computed['wall_time_s'] / read['wall_time_s']:.1f}. Before this change "
            "the depth-0 run trained a batch-norm + linear head for 30 SGD epochs on one-pass features of "
            "augmented images: 15.06 ± 1.40 % (n=3, the sweep table above as measured then) against "
            "evaluate's 9.7 ± 1.1 % over 10 splits.",
        ]
    )


def small_report(pretrained: dict, scratch: dict) -> str:
    """The small run against the same budget from scratch, side by side in one process."""

    def row(name, m):
        return (
            f"| {name} | {m['process_wall_time_s']:.0f} s | {m['train_time_s']:.0f} s | "
            f"{m['test_error_percent']:.2f} % | {m['ood_error_percent']:.2f} % |"
        )

    return "\n".join(
        [
            "## Small fine-tuning run on this machine vs the same budget from scratch",
            "",
            f"`bench/bench_finetune.py --small-only` ({today()}), {machine_description()}, device "
            f"{pretrained['device']} ({pretrained.get('precision', 'fp32')}), {pretrained['torch_threads']} torch "
            f"threads. MiraBest Confident FRI/FRII, all {pretrained['n_train']} training labels, "
            f"{pretrained['epochs']} epochs each, one after the other from the shell "
            "(`python -m pretrain finetune`); test: the standard 104 sources, OOD: the Uncertain ones. One seed "
            "(timing, not a sweep; the sweep is the section above).",
            "",
            "| run | wall time (shell) | training time | test error | OOD error |",
            "|---|---|---|---|---|",
            row("pretrained backbone, last block + head", pretrained),
            row("from scratch, every layer", scratch),
            "",
            f"Ratio of wall times (scratch / pretrained small run): "
            f"{scratch['process_wall_time_s'] / pretrained['process_wall_time_s']:.2f}.",
        ]
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    from pretrain.data.bundle import load_bundle
    from pretrain.provenance import default_backbone_path
    from pretrain.tasks import default_bundle, get_task

    out = Path(args.out) if args.out else config.cache_dir() / "bench_finetune"
    out.mkdir(parents=True, exist_ok=True)
    weights = Path(args.weights) if args.weights else default_backbone_path()
    if not weights.is_file() and not args.report_only:
        print(f"error: no backbone at {weights}; pass --weights W.", file=sys.stderr)
        return 2
    task = get_task("mirabest-fr")
    bundle = Path(args.bundle) if args.bundle else default_bundle(task)
    n_available = len(task.data(load_bundle(bundle).catalogue).train)
    runs = plan(args, n_available)
    if args.plan:
        for r in runs:
            print(
                f"{r['name']:28s} labels {r['labels'] or 'all':>4}  depth {r['depth']}  epochs {r['epochs']:4d}  "
                f"steps {r['steps']}"
            )
        print(
            f"{len(runs)} runs, {sum(r['steps'] for r in runs)} optimiser steps, plus the small run "
            f"({args.small_epochs} epochs, last block + head)."
        )
        return 0
    if args.probe_agreement:
        section = probe_agreement(args, out, weights, bundle)
        publish(NAME + "_probe", section, write=not args.no_write)
        return 0
    if args.small_only:
        section = small_report(small_run(args, out, weights, bundle), small_run(args, out, weights, bundle, True))
        publish(NAME + "_small", section, write=not args.no_write)
        return 0
    small = None
    small_metrics = out / "small-run" / "metrics.json"
    if not args.report_only:
        small = small_run(args, out, weights, bundle)
        run_sweep(args, runs, out, weights, bundle)
    elif small_metrics.is_file():
        small = json.loads(small_metrics.read_text())
        timing = out / "small-run" / "bench_timing.json"
        small["process_wall_time_s"] = (
            json.loads(timing.read_text())["process_wall_time_s"] if timing.is_file() else small["wall_time_s"]
        )
    section = report(args, runs, out, small)
    publish(NAME, section, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
