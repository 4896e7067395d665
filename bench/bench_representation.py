"""Representation quality: MiraBest Confident FRI vs FRII linear probe, and map ordering by extent.

Linear probe (``pretrain.evaluate.linear_probe_error``: features standardised, logistic
regression, C chosen by 5-fold cross-validation on the training set only) on the MiraBest
Confident FRI/FRII task, one stratified split per seed (``mirabest_confident_split``:
104 test sources, the rest for training), for

(a) the given backbone (``--weights``; default: the shipped one),
(b) a randomly initialised ResNet-18 (one initialisation, torch seed 0),
(c) PCA on raw pixels: the central 70 x 70 pixels / 255, PCA to 200 components fitted on
    each split's training images only, then the same probe.

each as the app embeds it (symmetry "d4": the mean over the image's 8 turns by 90 degrees
and mirror images; for raw pixels the mean of the 8 turned crops) and with one forward
pass per image. Reported as mean +- standard error over the seeds, with a kNN (k = 20,
cosine) error beside it. Map ordering: ``extent_ordering_spearman`` (Spearman correlation of each
source's angular extent with the mean extent of its 15 nearest neighbours on the map) for
the backbone's map of the bundle, a random ResNet-18's map of the same bundle, and the
published RGZ DR1 map (../shared/data/rgz_dr1_published_map.parquet) for reference.

The figures go into BENCHMARKS.md between ``<!-- bench_representation:start -->`` and
``<!-- bench_representation:end -->``.

    python -m pretrain bundle --fits ../shared/data/mirabest --out runs/mirabest_bundle
    python bench/bench_representation.py --bundle runs/mirabest_bundle [--weights W] [--seeds 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import publish, today
from pretrain import config
from pretrain.data.bundle import load_bundle
from pretrain.devices import cpu_model
from pretrain.embed import embed_images
from pretrain.evaluate import (
    KNN_K,
    extent_ordering_spearman,
    fr_task,
    mirabest_confident_split,
    probe_over_splits,
)
from pretrain.mapping import MapProjector
from pretrain.models.backbone import load_encoder, weights_metadata
from pretrain.models.resnet import resnet18_encoder
from pretrain.provenance import default_backbone_path, weights_sha256
from pretrain.space import embed_bundle_to_space, is_stale, load_space

NAME = "bench_representation"
PIXEL_PCA_COMPONENTS = 200


def raw_pixels(images: np.ndarray) -> np.ndarray:
    """The central 70 x 70 pixels in 0..1, flattened: what the model sees, without a model."""
    side = images.shape[-1]
    lo = (side - config.MODEL_INPUT_PX) // 2
    crop = np.asarray(images[:, lo : lo + config.MODEL_INPUT_PX, lo : lo + config.MODEL_INPUT_PX])
    return crop.reshape(len(crop), -1).astype(np.float32) / 255.0


def raw_pixels_d4(images: np.ndarray) -> np.ndarray:
    """The raw pixels averaged over the 8 symmetries of the square: the pixel baseline given
    the same orientation averaging as the symmetrised representation."""
    side = images.shape[-1]
    lo = (side - config.MODEL_INPUT_PX) // 2
    crop = np.asarray(images[:, lo : lo + config.MODEL_INPUT_PX, lo : lo + config.MODEL_INPUT_PX], np.float32)
    total = np.zeros_like(crop)
    for k in range(4):
        turned = np.rot90(crop, k, axes=(1, 2))
        total += turned + turned[:, :, ::-1]
    return (total / 8.0).reshape(len(crop), -1) / 255.0


def mean_se(values) -> str:
    v = 100.0 * np.asarray(values)
    se = v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
    return f"{v.mean():.1f} +- {se:.1f} %"


def backbone_space(args, bundle, work: Path):
    """The backbone's space of the bundle: ``--space`` if given and current, else made now."""
    if args.space and not is_stale(args.space, args.weights, bundle.bundle_id):
        return load_space(args.space), f"the existing space {args.space}"
    space = embed_bundle_to_space(bundle, args.weights, out=work / "backbone_space", device="cpu", progress=None)
    return space, f"embedded and mapped in this run (seed {config.MAP_SEED})"


def run(args) -> str:
    t0 = time.perf_counter()
    bundle = load_bundle(args.bundle)
    catalogue = bundle.catalogue
    _, fr_labels = fr_task(catalogue)
    seeds = list(range(args.seeds))

    with tempfile.TemporaryDirectory() as tmp:
        space, space_note = backbone_space(args, bundle, Path(tmp))
        if list(space.source_ids) != list(catalogue["source_id"]):
            raise SystemExit("the space's sources are not the bundle's; pass the matching --space/--bundle")
        backbone_features = space.embeddings
        print(f"backbone embedded ({time.perf_counter() - t0:.0f} s)", flush=True)

        # Each representation as the app embeds (symmetry d4, the default) and with one
        # forward pass per image ("none"), so the gain of the averaging shows on its own.
        torch.manual_seed(0)
        random_encoder = resnet18_encoder()
        features = {
            ("backbone", "d4"): backbone_features,
            ("backbone", "none"): embed_images(
                load_encoder(args.weights), bundle.images, device="cpu", symmetry="none"
            ),
            ("random", "d4"): embed_images(random_encoder, bundle.images, device="cpu", symmetry="d4"),
            ("random", "none"): embed_images(random_encoder, bundle.images, device="cpu", symmetry="none"),
            ("pixels", "d4"): raw_pixels_d4(bundle.images),
            ("pixels", "none"): raw_pixels(bundle.images),
        }
        print(f"features ready ({time.perf_counter() - t0:.0f} s)", flush=True)
        results = {}
        for key, x in features.items():
            per_split = probe_over_splits(
                x, catalogue, seeds, pca_components=PIXEL_PCA_COMPONENTS if key[0] == "pixels" else None
            )
            results[key] = list(zip(per_split["probe_error"], per_split["knn_error"]))
            print(
                f"{'/'.join(key)}: {100 * per_split['probe_error'].mean():.1f} % ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )

        extent = catalogue["angular_extent_arcsec"].to_numpy(dtype=float)
        rho = {"backbone d4": extent_ordering_spearman(space.map_xy, extent)}
        for key in (("backbone", "none"), ("random", "d4"), ("random", "none")):
            xy = MapProjector().fit_transform(features[key])
            rho[" ".join(key)] = extent_ordering_spearman(xy, extent)
    published = pd.read_parquet(args.rgz_map, columns=["umap_x", "umap_y", "size"])
    rho_rgz = extent_ordering_spearman(published[["umap_x", "umap_y"]].to_numpy(), published["size"].to_numpy())
    elapsed = time.perf_counter() - t0

    weights = Path(args.weights)
    meta = weights_metadata(weights)
    meta_note = ", ".join(
        f"{k}={v}"
        for k, v in meta.items()
        if k in ("epochs", "images", "data", "device", "architecture", "wall_time_s")
    )
    n_train, n_test = (len(part) for part in mirabest_confident_split(catalogue, seeds[0]))
    n_fri, n_frii = int(np.sum(fr_labels == 0)), int(np.sum(fr_labels == 1))
    lines = [
        "## Representation quality: MiraBest Confident FRI vs FRII, and map ordering by extent",
        "",
        f"Measured {today()} by `bench/bench_representation.py` "
        f"in {elapsed / 60:.1f} min (torch {torch.__version__}, Python {platform.python_version()}); machine: "
        f"{cpu_model()}, {os.cpu_count()} cores visible, torch threads {torch.get_num_threads()}.",
        "",
        f"- Backbone: `{weights.name}` (sha256 {weights_sha256(weights)[:12]}...{'; ' + meta_note if meta_note else ''}); "
        f"its space: {space_note}.",
    ]
    if weights.resolve() != default_backbone_path().resolve():
        lines.append("- **Not the shipped default backbone**: these figures are for the weights named above.")
    lines += [
        f"- Data: bundle {bundle.bundle_id} ({len(catalogue)} sources). Task: MiraBest Confident FRI "
        f"({n_fri}) vs FRII ({n_frii}); per seed a stratified split "
        f"(`pretrain.evaluate.mirabest_confident_split`): {n_test} test, {n_train} training sources. "
        f"Seeds {seeds[0]}..{seeds[-1]} ({len(seeds)} splits).",
        "- Probe: standardised features, logistic regression, C from "
        f"{{1e-4 ... 1e2}} by stratified 5-fold CV on the training set. kNN: k = {KNN_K}, cosine.",
        "- Random ResNet-18: one initialisation (torch seed 0), the same for every split. Raw-pixel PCA: central 70 x 70 px / 255, "
        f"PCA to {PIXEL_PCA_COMPONENTS} components fitted on each split's training images.",
        "- Symmetry: *d4* = the representation the app and `embed` use (`config.EMBED_SYMMETRY`): the mean of "
        "the encoder's outputs over the image turned by 0, 90, 180 and 270 degrees, each also mirrored "
        "(for raw pixels: the mean of the 8 turned and mirrored crops); *one pass* = the image as it is.",
        "",
        "| representation | linear-probe test error (mean +- s.e.) | per seed (%) | kNN test error |",
        "|---|---|---|---|",
    ]
    labels = {
        "backbone": f"backbone `{weights.name}`",
        "random": "random ResNet-18",
        "pixels": f"PCA-{PIXEL_PCA_COMPONENTS} of raw pixels",
    }
    for (name, symmetry), outcome in results.items():
        probe_errors = [p for p, _ in outcome]
        knn_errors = [k for _, k in outcome]
        per_seed = ", ".join(f"{100 * e:.1f}" for e in probe_errors)
        label = f"{labels[name]}, {'d4' if symmetry == 'd4' else 'one pass'}"
        if (name, symmetry) == ("backbone", "d4"):
            label, error = f"**{label}** (the default)", f"**{mean_se(probe_errors)}**"
        else:
            error = mean_se(probe_errors)
        lines.append(f"| {label} | {error} | {per_seed} | {mean_se(knn_errors)} |")
    lines += [
        "",
        "Reference (science.md): the study's BYOL ResNet-18 linear probe reached 8.2 +- 0.6 % with "
        "~100 times more pretraining images.",
        "",
        "Map ordering by angular extent (`pretrain.evaluate.extent_ordering_spearman`: Spearman "
        "correlation of each source's extent with the mean extent of its 15 nearest map neighbours; "
        "MiraBest extents are the catalogued LAS):",
        "",
        "| map | sources | Spearman rho |",
        "|---|---|---|",
        f"| backbone map of MiraBest (PCA -> UMAP, this package; d4, the default) | {int(np.isfinite(extent).sum())} | {rho['backbone d4']:.3f} |",
        f"| backbone map of MiraBest, one pass | {int(np.isfinite(extent).sum())} | {rho['backbone none']:.3f} |",
        f"| random ResNet-18 map of MiraBest (d4) | {int(np.isfinite(extent).sum())} | {rho['random d4']:.3f} |",
        f"| random ResNet-18 map of MiraBest, one pass | {int(np.isfinite(extent).sum())} | {rho['random none']:.3f} |",
        f'| published RGZ DR1 map (Slijepcevic et al. 2024; extent > 25") | {len(published)} | {rho_rgz:.3f} |',
        "",
        f"Read the map rows together: the d4 averaging alone takes a random network's map from "
        f"{rho['random none']:.3f} to {rho['random d4']:.3f}, and the backbone's from {rho['backbone none']:.3f} to "
        f"{rho['backbone d4']:.3f}; what training adds to the ordering is the backbone's margin over the "
        f"random network with the same averaging ({rho['backbone d4'] - rho['random d4']:+.3f}).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--weights", type=Path, default=default_backbone_path(), help="backbone .safetensors (default: the shipped one)"
    )
    parser.add_argument("--bundle", type=Path, required=True, help="a MiraBest bundle (python -m pretrain bundle)")
    parser.add_argument("--space", type=Path, help="reuse this space of the bundle if it is current")
    parser.add_argument("--seeds", type=int, default=5, help="stratified splits (default 5)")
    parser.add_argument("--rgz-map", type=Path, default=config.SHARED_DATA_DIR / "rgz_dr1_published_map.parquet")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--no-write", action="store_true", help="print the section, leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    if not args.weights.is_file():
        raise SystemExit(f"weights not found: {args.weights} (pass --weights)")
    if args.seeds < 2:
        raise SystemExit("--seeds must be at least 2 (a standard error needs two)")
    torch.set_num_threads(args.threads)
    text = run(args)
    publish(NAME, text, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
