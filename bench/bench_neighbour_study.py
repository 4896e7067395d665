"""Neighbour quality of candidate representations: what a click in the app shows.

For each candidate representation of the MiraBest bundle, side by side in one run:

- neighbour purity (``pretrain.evaluate.neighbour_purity``): the same-label share among
  the 8 most cosine-similar sources of each FRI, FRII and hybrid query, leave-one-out over
  every source, and for the held-out queries alone (``pretrain.holdout``);
- the linear-probe and kNN (k = 20) errors on MiraBest Confident FRI vs FRII, one
  stratified split per seed (``probe_over_splits``), as in ``bench_representation``.

Candidates: a backbone (``--weights``, repeatable; default: the shipped one) read out as the
app does (layer-4 global average, d4 mean over the 8 turns and mirror images) and in other
ways that need no training: one pass, layer-4 generalised-mean (p = 3) pooling, layer-3
and layer-4 averages concatenated, and the backbone's representation with the pixels'
estimated angular extent appended as one standardised column of weight w (physical
measurement + representation), and, where the bundle has them, the pixel measurements
(``pretrain/data/measurements.py``: log flux, log extent, FR ratio, components) appended
the same way. Baselines: a random ResNet-18 (torch seed 0; for a D4 candidate also its own
network untrained) and PCA of the raw pixels, both d4.

The figures go into BENCHMARKS.md between ``<!-- bench_neighbour_study:start -->`` and
``<!-- bench_neighbour_study:end -->``.

    python -m pretrain bundle --fits ../shared/data/mirabest --out runs/mirabest_bundle
    python bench/bench_neighbour_study.py --bundle runs/mirabest_bundle [--weights W ...] [--seeds 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import machine_description, publish, today
from pretrain.data.bundle import load_bundle
from pretrain.embed import symmetric_views, views_for
from pretrain.evaluate import PURITY_K, neighbour_purity, probe_over_splits
from pretrain.holdout import is_held_out
from pretrain.measured_neighbours import MeasuredRepresentation
from pretrain.models.backbone import load_encoder, to_model_input, weights_metadata
from pretrain.models.resnet import ResNet18Encoder, parse_architecture, resnet18_encoder
from pretrain.provenance import default_backbone_path

EXTENT_WEIGHTS = (1.0, 3.0)
MEASURED = (  # pixel measurements appended in the hybrid rows, when the bundle has them
    "integrated_flux_mjy",
    "angular_extent_estimated_arcsec",
    "fr_ratio",
    "n_components",
)


@torch.no_grad()
def readouts(encoder: ResNet18Encoder, images: np.ndarray, symmetry: str, batch: int = 128) -> dict[str, np.ndarray]:
    """Layer-4 average (the app's), layer-4 GeM (p=3) and layer-3+4 averages, per image."""
    encoder.eval()
    symmetry = views_for(encoder, symmetry)
    out: dict[str, list[np.ndarray]] = {"avg": [], "gem": [], "l34": []}
    for start in range(0, len(images), batch):
        x = to_model_input(np.asarray(images[start : start + batch]))
        sums: dict[str, torch.Tensor] = {}
        views = 0
        for view in symmetric_views(x, symmetry):
            f3 = encoder.layer3(encoder.layer2(encoder.layer1(encoder.stem(view))))
            f4 = encoder.layer4(f3)
            avg4 = encoder.pool_map(f4)  # the pixels' mean (and the 8 planes' for a d4 network)
            gem4 = encoder.pool_map(f4.clamp(min=1e-6).pow(3)).pow(1 / 3)
            l34 = torch.cat([F.normalize(encoder.pool_map(f3), dim=1), F.normalize(avg4, dim=1)], dim=1)
            for name, value in (("avg", avg4), ("gem", gem4), ("l34", l34)):
                sums[name] = sums[name] + value if name in sums else value
            views += 1
        for name in out:
            out[name].append((sums[name] / views).numpy())
    return {name: np.concatenate(parts).astype(np.float32) for name, parts in out.items()}


def pixel_features(images: np.ndarray) -> np.ndarray:
    x = to_model_input(np.asarray(images))
    return np.mean([v.flatten(1).numpy() for v in symmetric_views(x, "d4")], axis=0)


def with_measurements(features: np.ndarray, table: pd.DataFrame, names: tuple[str, ...], weight: float) -> np.ndarray:
    """Standardised features with the standardised measurements ``names`` appended, each at
    ``weight`` x sqrt(d)/10 of one feature's scale (``pretrain.measured_neighbours``, as the app's
    "representation + measurements" neighbours; standardised per column, the representation's
    cosine weighs each of its d columns alike: ``weight`` sqrt(d) would make one measurement
    count as much as all of them)."""
    return MeasuredRepresentation(names, weight).fit_transform(features, table)


def measure(
    name: str, features: np.ndarray, catalogue: pd.DataFrame, held_out: np.ndarray, seeds, pca: int | None = None
) -> dict:
    start = time.perf_counter()
    row: dict = {"representation": name, "dim": features.shape[1]}
    for scope, rows in (("loo", None), ("held", np.flatnonzero(held_out))):
        table = neighbour_purity(features, catalogue["label"], query_rows=rows).set_index("label")
        for label in ("FRI", "FRII", "hybrid"):
            row[f"{scope}_{label}"] = table.loc[label, "purity"] if label in table.index else np.nan
        fr = table.loc[["FRI", "FRII"]]
        row[f"{scope}_fr"] = float(np.average(fr["purity"], weights=fr["queries"]))
    splits = probe_over_splits(features, catalogue, seeds, pca_components=pca)
    row["probe"] = 100 * splits["probe_error"].mean()
    row["probe_se"] = 100 * splits["probe_error"].std(ddof=1) / np.sqrt(len(splits))
    row["knn"] = 100 * splits["knn_error"].mean()
    row["seconds"] = time.perf_counter() - start
    print(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items() if isinstance(v, float)), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--weights", type=Path, action="append", help="backbone(s) (default: the shipped one)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    parser.add_argument(
        "--section",
        default="bench_neighbour_study",
        help="the BENCHMARKS.md section to write (another name adds a table beside the first study's)",
    )
    parser.add_argument("--title", default="", help="words after the section's heading (what the candidates test)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    bundle = load_bundle(args.bundle)
    catalogue = bundle.catalogue.reset_index(drop=True)
    images = np.asarray(bundle.images)
    held_out = is_held_out(catalogue["ra"], catalogue["dec"])
    seeds = range(args.seeds)
    rows, notes = [], []
    d4_architectures: set[str] = set()
    for weights in args.weights or [default_backbone_path()]:
        meta = weights_metadata(weights)
        notes.append(
            f"| `{weights.parent.name}/{weights.name}` | {meta.get('architecture', '?')} | "
            f"{meta.get('epochs_completed', '?')} | {meta.get('images', '?')} | "
            f"{float(meta.get('wall_time_s', 'nan')) / 60:.0f} min | {meta.get('device', '?')} | "
            f"{meta.get('held_out', 'included (before the hold-out)')} |"
        )
        encoder = load_encoder(weights)
        if encoder.invariant:
            d4_architectures.add(encoder.architecture)
        d4 = readouts(encoder, images, "d4")
        one = readouts(encoder, images, "none")
        tag = weights.parent.name if weights.name == "backbone.safetensors" else weights.stem
        rows.append(measure(f"{tag}: layer-4 average, d4 (the app)", d4["avg"], catalogue, held_out, seeds))
        rows.append(measure(f"{tag}: layer-4 average, one pass", one["avg"], catalogue, held_out, seeds))
        rows.append(measure(f"{tag}: layer-4 GeM p=3, d4", d4["gem"], catalogue, held_out, seeds))
        rows.append(measure(f"{tag}: layer-3 + layer-4 averages, d4", d4["l34"], catalogue, held_out, seeds))
        for w in EXTENT_WEIGHTS:
            features = with_measurements(d4["avg"], catalogue, ("angular_extent_estimated_arcsec",), w)
            rows.append(measure(f"{tag}: d4 + log extent (w={w:g})", features, catalogue, held_out, seeds))
        if all(c in catalogue.columns for c in MEASURED):  # bundles built with pretrain/data/measurements.py
            for w in EXTENT_WEIGHTS:
                features = with_measurements(d4["avg"], catalogue, MEASURED, w)
                name = f"{tag}: d4 + log flux, log extent, FR ratio, components (w={w:g})"
                rows.append(measure(name, features, catalogue, held_out, seeds))
    torch.manual_seed(0)
    rows.append(measure("random ResNet-18, d4", readouts(resnet18_encoder(), images, "d4")["avg"], catalogue,
                        held_out, seeds))  # fmt: skip
    for architecture in sorted(d4_architectures):  # a D4 candidate's own baseline: its network, untrained
        stem, width, symmetry = parse_architecture(architecture)
        torch.manual_seed(0)
        untrained = resnet18_encoder(stem=stem, width=width, symmetry=symmetry)
        rows.append(measure(f"random {architecture}", readouts(untrained, images, "d4")["avg"], catalogue,
                            held_out, seeds))  # fmt: skip
    pixels = pixel_features(images)  # purity on the pixels themselves; the probe on their PCA (200)
    rows.append(measure("raw pixels, d4 (probe: PCA 200)", pixels, catalogue, held_out, seeds, pca=200))
    table = pd.DataFrame(rows)
    labels = catalogue["label"].astype(str)
    counts = {lab: int((labels == lab).sum()) for lab in ("FRI", "FRII", "hybrid")}
    held = {lab: int(((labels == lab) & held_out).sum()) for lab in counts}
    chance = {lab: (counts[lab] - 1) / (int(labels.isin(list(counts)).sum()) - 1) for lab in counts}
    lines = [
        "## Neighbour quality of candidate representations (`bench/bench_neighbour_study.py`)"
        + (f": {args.title}" if args.title else ""),
        "",
        f"Machine: {machine_description()}. Date: {today()}. Bundle: {len(catalogue)} MiraBest sources "
        f"(FRI {counts['FRI']}, FRII {counts['FRII']}, hybrid {counts['hybrid']}); held-out sky "
        f"(`pretrain/holdout.py`): FRI {held['FRI']}, FRII {held['FRII']}, hybrid {held['hybrid']} queries.",
        "",
        f"Purity: same label among the {PURITY_K} most cosine-similar sources (the whole bundle searched, the "
        f"query excluded); chance FRI {chance['FRI']:.3f}, FRII {chance['FRII']:.3f}, hybrid "
        f"{chance['hybrid']:.3f}. LOO: every source as a query; held-out: the held-out queries. FR: FRI and "
        f"FRII queries together. Probe / kNN: MiraBest Confident test error, {args.seeds} splits.",
        "",
        "| backbone | architecture | epochs | images | wall time | device | held-out sky |",
        "|---|---|---|---|---|---|---|",
        *notes,
        "",
        "| representation | dim | FR purity LOO | FRI LOO | FRII LOO | hybrid LOO | FR purity held-out | hybrid held-out "
        "| probe error % | kNN error % |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        lines.append(
            f"| {r.representation} | {r.dim} | {r.loo_fr:.3f} | {r.loo_FRI:.3f} | {r.loo_FRII:.3f} | "
            f"{r.loo_hybrid:.3f} | {r.held_fr:.3f} | {r.held_hybrid:.3f} | {r.probe:.1f} ± {r.probe_se:.1f} | "
            f"{r.knn:.1f} |"
        )
    lines += [
        "",
        "The extent rows append the pixels' estimated angular extent (`angular_extent_estimated_arcsec`, "
        "log, standardised) to the standardised representation, weighted w x sqrt(d)/10 of one column "
        "(d: the representation's size); "
        "both weights tried are shown. The measurement rows (bundles with `pretrain/data/measurements.py`'s "
        "columns) append log flux, log extent, FR ratio and components the same way, each at that weight; "
        "`bench/bench_measurements.py` tries more combinations.",
    ]
    text = "\n".join(lines)
    publish(args.section, text, write=not args.no_write)


if __name__ == "__main__":
    main()
