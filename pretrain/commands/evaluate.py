"""Representation-quality figures of a space, from its files alone (no model, no images).

Reads ``SPACE/embeddings.parquet`` and ``SPACE/map.parquet`` and prints:

- the linear-probe and kNN test errors on MiraBest Confident FRI vs FRII, one stratified
  split (104 test sources) per seed, as mean +- standard error and per seed; needs the
  catalogue columns ``label`` and ``confident`` (a space of the MiraBest bundle has them);
- neighbour purity, what a click in the app shows: the same-label share among each FRI,
  FRII and hybrid source's 8 most similar sources, leave-one-out over every labelled
  source, and for the held-out queries alone (:mod:`pretrain.holdout`: the part of the sky
  that pretraining leaves out, so the honest figure for a backbone trained without it);
  and, when the catalogue has the pixel measurements, the same for the app's other choice of
  neighbours, the representation with the extent and FR ratio appended
  (:mod:`pretrain.measured_neighbours`);
- how strongly the map is ordered by angular extent: the Spearman correlation of each
  source's extent with the mean extent of its 15 nearest map neighbours (the catalogued
  ``angular_extent_arcsec``; ``--extent-column`` for another).

    python -m pretrain evaluate --space runs/space --seeds 10
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from pretrain import config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", type=Path, required=True, help="a space folder (python -m pretrain embed)")
    parser.add_argument("--seeds", type=int, default=5, help="stratified splits, seeds 0..N-1 (default %(default)s)")
    parser.add_argument(
        "--extent-column",
        default="angular_extent_arcsec",
        help="the catalogue column the map ordering is measured by (default %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")


def run(args: argparse.Namespace) -> int:
    from pretrain.errors import ExplorerError
    from pretrain.evaluate import KNN_K, PURITY_K, extent_ordering_spearman
    from pretrain.space import load_space

    if args.seeds < 2:
        raise ExplorerError("--seeds must be at least 2 (a standard error needs two).")
    space = load_space(args.space)
    catalogue = space.catalogue_map
    result = {
        "space": str(args.space),
        "sources": len(space),
        "symmetry": space.symmetry,
        "weights": space.manifest["weights"].get("file"),
        "weights_sha256": str(space.weights_sha256)[:12],
    }
    result.update(_probe(space.embeddings, catalogue, args.seeds))
    result["neighbour_purity"] = _purity(space, catalogue, space.neighbour_index)
    from pretrain.measured_neighbours import MeasuredRepresentation, has_measurements

    if has_measurements(catalogue):  # the app's "Similar by: representation + extent, FR ratio"
        measured = MeasuredRepresentation()
        vectors = measured.fit_transform(space.embeddings, catalogue)
        result["neighbour_purity_with_measurements"] = {
            "measurements": list(measured.columns),
            "weight": measured.weight,
            **_purity(space, catalogue, vectors),
        }
        probe = _probe(vectors, catalogue, args.seeds)
        for name in ("probe_error_percent", "knn_error_percent"):
            if name in probe:
                result["neighbour_purity_with_measurements"][name] = probe[name]
    result["extent_column"] = args.extent_column
    if args.extent_column in catalogue:
        extent = pd.to_numeric(catalogue[args.extent_column], errors="coerce").to_numpy(dtype=float)
        try:
            result["extent_ordering_spearman"] = round(extent_ordering_spearman(space.map_xy, extent), 3)
        except ExplorerError as exc:
            result["extent_ordering_spearman"] = f"not computed: {exc}"
    else:
        result["extent_ordering_spearman"] = f"not computed: the map has no column {args.extent_column!r}"

    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"space {result['space']}: {result['sources']} sources, weights {result['weights']} "
        f"({result['weights_sha256']}...), symmetry {result['symmetry']}"
    )
    if "probe_error_percent" in result:
        split = result["split"]
        print(
            f"MiraBest Confident FRI vs FRII, {split['seeds']} stratified splits "
            f"({split['train']} training, {split['test']} test sources):"
        )
        for name, label in (
            ("probe_error_percent", "linear-probe test error"),
            ("knn_error_percent", f"kNN (k={KNN_K}) test error"),
        ):
            figures = result[name]
            print(
                f"  {label}: {figures['mean']:.1f} +- {figures['standard_error']:.1f} %  "
                f"(per seed: {', '.join(f'{v:.1f}' for v in figures['per_seed'])})"
            )
    else:
        print(f"linear probe {result['probe']}")
    _print_purity(result["neighbour_purity"], PURITY_K)
    if "neighbour_purity_with_measurements" in result:
        with_measurements = result["neighbour_purity_with_measurements"]
        print(
            "with the pixel measurements appended ("
            + ", ".join(with_measurements["measurements"])
            + "; the app's 'Similar by' option):"
        )
        for name, label in (("probe_error_percent", "linear-probe"), ("knn_error_percent", f"kNN (k={KNN_K})")):
            if name in with_measurements:
                figures = with_measurements[name]
                print(f"  {label} test error: {figures['mean']:.1f} +- {figures['standard_error']:.1f} %")
        _print_purity(with_measurements, PURITY_K)
    ordering = result["extent_ordering_spearman"]
    if isinstance(ordering, float):
        print(
            f"map ordering by {result['extent_column']} (Spearman, {config.EXTENT_ORDERING_K} map "
            f"neighbours): {ordering:.3f}"
        )
    else:
        print(f"map ordering {ordering}")
    return 0


def _probe(features: np.ndarray, catalogue: pd.DataFrame, seeds: int) -> dict:
    """Linear-probe and kNN test errors (percent: mean, standard error, per seed) and the split."""
    from pretrain.errors import ExplorerError
    from pretrain.evaluate import probe_over_splits

    try:
        splits = probe_over_splits(features, catalogue, range(seeds))
    except ExplorerError as exc:
        return {"probe": f"not computed: {exc}"}
    result: dict = {}
    for name in ("probe_error", "knn_error"):
        percent = 100.0 * splits[name].to_numpy()
        result[name + "_percent"] = {
            "mean": round(float(percent.mean()), 2),
            "standard_error": round(float(percent.std(ddof=1) / np.sqrt(len(percent))), 2),
            "per_seed": [round(float(v), 1) for v in percent],
        }
    result["split"] = {"train": int(splits["n_train"].iloc[0]), "test": int(splits["n_test"].iloc[0]), "seeds": seeds}
    return result


def _purity(space, catalogue: pd.DataFrame, vectors) -> dict:
    """Neighbour purity of ``vectors`` (a neighbour index, or (N, D) features), leave-one-out
    over all sources and for the held-out queries."""
    from pretrain.errors import ExplorerError
    from pretrain.evaluate import neighbour_purity
    from pretrain.holdout import held_out_rows

    if "label" not in catalogue:
        return {"not computed": "the catalogue has no label column"}
    held_out = held_out_rows(catalogue)
    pretrained_on = space.manifest["weights"].get("held_out", "unknown")
    figures: dict = {"weights_pretrained_on_held_out": pretrained_on}
    for name, rows in (("all", None), ("held_out", None if held_out is None else np.flatnonzero(held_out))):
        if name == "held_out" and rows is None:
            figures[name] = "not computed: the catalogue has no ra/dec"
            continue
        try:
            table = neighbour_purity(vectors, catalogue["label"], query_rows=rows)
        except ExplorerError as exc:
            figures[name] = f"not computed: {exc}"
            continue
        figures[name] = {
            row.label: {
                "queries": int(row.queries),
                "purity": round(float(row.purity), 3),
                "chance": round(float(row.chance), 3),
                "none_found": int(row.none_found),
            }
            for row in table.itertuples()
        }
    return figures


def _print_purity(figures: dict, k: int) -> None:
    if "not computed" in figures:
        print(f"neighbour purity not computed: {figures['not computed']}")
        return
    print(f"neighbour purity (same label among the {k} most similar sources; chance in brackets):")
    for name, title in (("all", "every source, leave-one-out"), ("held_out", "held-out queries")):
        block = figures[name]
        if isinstance(block, str):
            print(f"  {title}: {block}")
            continue
        parts = [
            f"{label} {f['purity']:.2f} ({f['chance']:.2f}, {f['queries']} queries, {f['none_found']} with none)"
            for label, f in block.items()
        ]
        print(f"  {title}: " + "; ".join(parts))
    if figures["weights_pretrained_on_held_out"] != "excluded":
        print(
            "  (these weights were not recorded as pretrained without the held-out sky: "
            "the held-out figure may flatter them)"
        )
