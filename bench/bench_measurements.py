"""The pixel measurements (``pretrain/data/measurements.py``) checked against independent ones.

On a MiraBest bundle built by ``python -m pretrain bundle`` (its catalogue holds the
measurements; its ``file`` column names each FITS cutout):

1. **FR ratio against the MiraBest FRI / FRII labels**: ROC AUC, the accuracy of the classic
   0.5 threshold and of a threshold chosen on the even-indexed sources and applied to the
   odd-indexed ones, medians per class; all sources and the Confident ones.
2. **Bending angle and lobe flux ratio against the MiraBest subtypes** (standard,
   wide-angle tail, head-tail, double-double): medians per subtype.
3. **Integrated flux against independent aperture photometry on the same pixels**
   (photutils): a circular aperture at the image centre (the host) of radius half the
   *catalogued* angular size plus two beams (so nothing of the source mask enters), less the
   sigma-clipped median of an annulus around it, over the same beam area. No file in
   ``../shared/data`` carries catalogue fluxes (MiraBest names, FRDEEP's catalogue and the
   RGZ map give none), so there is no catalogue comparison.
4. **Cost**: the measurements (one source mask for the extent and every figure) against the
   extent alone, side by side on the same cutouts.
5. **Neighbours (#12)**: FR purity among the 8 nearest neighbours (leave-one-out and held-out
   queries, ``pretrain.holdout``) and the probe / kNN errors of the shipped backbone's app
   representation alone and with standardised measurements appended at a weight w, in
   the table format of ``bench_neighbour_study`` (its ``readouts`` and ``measure``).

The figures go into BENCHMARKS.md between ``<!-- bench_measurements:start -->`` and
``<!-- bench_measurements:end -->``.

    python -m pretrain bundle --fits ../shared/data/mirabest --out runs/mirabest_bundle
    python bench/bench_measurements.py --bundle runs/mirabest_bundle [--seeds 5] [--timing-sample 100]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import machine_description, publish, today
from pretrain.data.extent import cutout_extent_arcsec
from pretrain.data.fits_io import read_cutout
from pretrain.data.measurements import COLUMNS, beam_area_px, cutout_measurements, flux_beam_arcsec
from pretrain.surveys import image_survey

APERTURE_BEAMS = 2.0  # aperture radius: half the catalogued size plus this many beams
ANNULUS_PX = (3.0, 20.0)  # the background annulus: from the aperture's edge + 3 px to + 20 px
MEASUREMENT_WEIGHTS = (1.0, 3.0)


def aperture_flux_mjy(cutout, las_arcsec: float) -> float:
    """Independent integrated flux: photutils circular-aperture photometry at the image centre."""
    from astropy.stats import SigmaClip
    from photutils.aperture import ApertureStats, CircularAnnulus, CircularAperture, aperture_photometry

    image = np.nan_to_num(np.asarray(cutout.data, dtype=np.float64))
    scale = cutout.pixel_scale_arcsec
    profile = image_survey(cutout.header, scale)
    beam = flux_beam_arcsec(cutout.header, profile, float(cutout.centre.dec.deg))
    radius = (0.5 * las_arcsec + APERTURE_BEAMS * beam[0]) / scale
    centre = ((image.shape[1] - 1) / 2.0, (image.shape[0] - 1) / 2.0)  # photutils: (x, y)
    aperture = CircularAperture(centre, radius)
    annulus = CircularAnnulus(centre, radius + ANNULUS_PX[0], radius + ANNULUS_PX[1])
    background = float(ApertureStats(image, annulus, sigma_clip=SigmaClip(sigma=3.0)).median)
    total = float(aperture_photometry(image, aperture)["aperture_sum"][0]) - background * aperture.area
    return total / beam_area_px(beam, scale) * 1000.0


def fr_figures(table: pd.DataFrame) -> list[str]:
    from sklearn.metrics import roc_auc_score

    lines = [
        "| sources | FRI / FRII | FR ratio defined | ROC AUC | accuracy at 0.5 | threshold (even half) | "
        "accuracy, odd half | median FRI | median FRII |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, rows in (("all", table), ("Confident", table[table["confident"].fillna(False).astype(bool)])):
        rows = rows[rows["label"].isin(["FRI", "FRII"])]
        defined = rows[rows["fr_ratio"].notna()]
        is_frii = (defined["label"] == "FRII").to_numpy()
        ratio = defined["fr_ratio"].to_numpy(float)
        order = np.arange(len(defined))
        even, odd = order % 2 == 0, order % 2 == 1
        candidates = np.unique(ratio[even])
        accuracy = [np.mean((ratio[even] > t) == is_frii[even]) for t in candidates]
        best = float(candidates[int(np.argmax(accuracy))])
        medians = defined.groupby("label")["fr_ratio"].median()
        lines.append(
            f"| {name} | {int((rows['label'] == 'FRI').sum())} / {int((rows['label'] == 'FRII').sum())} | "
            f"{len(defined) / max(len(rows), 1):.1%} | {roc_auc_score(is_frii, ratio):.3f} | "
            f"{np.mean((ratio > 0.5) == is_frii):.1%} | {best:.2f} | {np.mean((ratio[odd] > best) == is_frii[odd]):.1%} | "
            f"{medians.get('FRI', np.nan):.2f} | {medians.get('FRII', np.nan):.2f} |"
        )
    return lines


def subtype_figures(table: pd.DataFrame) -> list[str]:
    lines = [
        "| subtype | sources | median bending angle (°) | median lobe flux ratio | median components |",
        "|---|---|---|---|---|",
    ]
    for subtype, rows in table.groupby("subtype"):
        if not subtype:
            continue
        lines.append(
            f"| {subtype} | {len(rows)} | {rows['bending_angle_deg'].median():.0f} | "
            f"{rows['lobe_flux_ratio'].median():.2f} | {rows['n_components'].median():.0f} |"
        )
    return lines


def flux_figures(ours: np.ndarray, aperture: np.ndarray) -> list[str]:
    from scipy.stats import spearmanr

    ok = np.isfinite(ours) & np.isfinite(aperture) & (aperture > 0)
    ratio = ours[ok] / aperture[ok]
    return [
        "| sources | median ours / aperture | 16-84 % range | within 10 % | within 20 % | Spearman rank |",
        "|---|---|---|---|---|---|",
        f"| {int(ok.sum())} | {np.median(ratio):.3f} | {np.percentile(ratio, 16):.2f}-{np.percentile(ratio, 84):.2f} | "
        f"{np.mean(np.abs(ratio - 1) < 0.1):.1%} | {np.mean(np.abs(ratio - 1) < 0.2):.1%} | "
        f"{spearmanr(ours[ok], aperture[ok]).statistic:.3f} |",
    ]


def neighbour_rows(catalogue: pd.DataFrame, images: np.ndarray, weights_path: Path | None, seeds) -> list[dict]:
    import torch

    from bench.bench_neighbour_study import measure, readouts, with_measurements
    from pretrain.holdout import is_held_out
    from pretrain.measured_neighbours import standardised_measurements
    from pretrain.models.backbone import load_encoder
    from pretrain.provenance import default_backbone_path

    torch.set_num_threads(max(1, torch.get_num_threads()))
    held_out = is_held_out(catalogue["ra"], catalogue["dec"])
    encoder = load_encoder(weights_path or default_backbone_path())
    app = readouts(encoder, images, "d4")["avg"]
    extent = ("angular_extent_estimated_arcsec",)
    four = ("integrated_flux_mjy", "angular_extent_estimated_arcsec", "fr_ratio", "n_components")
    six = four + ("lobe_flux_ratio", "bending_angle_deg")
    rows = [measure("layer-4 average, d4 (the app)", app, catalogue, held_out, seeds)]
    for names, label in ((extent, "log extent"), (("fr_ratio",), "FR ratio"), (extent + ("fr_ratio",), "log extent, FR ratio"),
                         (four, "log flux, log extent, FR ratio, components"), (six, "all six")):  # fmt: skip
        for weight in MEASUREMENT_WEIGHTS:
            features = with_measurements(app, catalogue, names, weight)
            rows.append(measure(f"app + {label} (w={weight:g})", features, catalogue, held_out, seeds))
    rows.append(
        measure("the six measurements alone", standardised_measurements(catalogue, six), catalogue, held_out, seeds)
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, required=True, help="a MiraBest bundle built with the measurements")
    parser.add_argument("--weights", type=Path, help="backbone for the neighbour rows (default: the shipped one)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--timing-sample", type=int, default=100, help="cutouts timed for the cost row")
    parser.add_argument("--no-neighbours", action="store_true", help="skip the (torch) neighbour rows")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()

    from tqdm import tqdm

    from pretrain.data.bundle import load_bundle

    bundle = load_bundle(args.bundle)
    catalogue = bundle.catalogue.reset_index(drop=True)
    missing = [c for c in COLUMNS if c not in catalogue.columns]
    if missing:
        raise SystemExit(
            f"{args.bundle}: no measurement columns ({', '.join(missing)}); build it again with this code."
        )
    table = catalogue.copy()

    aperture = np.full(len(table), np.nan)
    for i, row in enumerate(tqdm(table.itertuples(), total=len(table), desc="aperture photometry")):
        las = row.angular_extent_catalogued_arcsec
        if Path(row.file).is_file() and np.isfinite(las):
            aperture[i] = aperture_flux_mjy(read_cutout(row.file), float(las))

    sample = table.iloc[:: max(1, len(table) // max(args.timing_sample, 1))].head(args.timing_sample)
    cutouts = [read_cutout(f) for f in sample["file"]]
    start = time.perf_counter()
    again = [cutout_measurements(c) for c in cutouts]
    measure_s = (time.perf_counter() - start) / len(cutouts)
    start = time.perf_counter()
    extents = [cutout_extent_arcsec(c) for c in cutouts]
    extent_s = (time.perf_counter() - start) / len(cutouts)
    same_extent = np.allclose([m.angular_extent_arcsec for m in again], extents, equal_nan=True)
    same_flux = np.allclose([m.integrated_flux_mjy for m in again], sample["integrated_flux_mjy"], equal_nan=True)

    notes = table["measurements_note"].fillna("").astype(str)
    lines = [
        "## Pixel measurements against independent ones (`bench/bench_measurements.py`)",
        "",
        f"Machine: {machine_description()}. Date: {today()}. Bundle: {len(table)} MiraBest sources "
        f"(`{args.bundle.name}`); every figure from `pretrain/data/measurements.py` as the bundle stores it.",
        "",
        "**FR ratio against the MiraBest labels** (separation of the brightest points on the two sides of the "
        "core over the source's size; Fanaroff & Riley 1974 put the FRI/FRII boundary at 0.5):",
        "",
        *fr_figures(table),
        "",
        "**Bending angle, lobe flux ratio and components by MiraBest subtype** (180° = straight):",
        "",
        *subtype_figures(table),
        "",
        "**Integrated flux against photutils aperture photometry on the same pixels** (circular aperture at the "
        f"host of radius half the catalogued size + {APERTURE_BEAMS:g} beams, annulus background; no file in "
        "`../shared/data` has catalogue fluxes to compare with):",
        "",
        *flux_figures(table["integrated_flux_mjy"].to_numpy(float), aperture),
        "",
        f"Undefined: {int((notes != '').sum())} of {len(table)} sources have a NaN figure "
        f"({', '.join(f'{n}: {k}' for k, n in notes[notes != ''].value_counts().items())}).",
        "",
        f"Cost per cutout ({len(cutouts)} cutouts, 300 x 300 px), side by side: measurements (extent and all six figures "
        f"from one source mask) {1000 * measure_s:.0f} ms, the extent alone {1000 * extent_s:.0f} ms "
        f"(x{measure_s / extent_s:.2f}); the measurements' extent equals the extent function's: {same_extent}; "
        f"re-measured fluxes equal the bundle's: {same_flux}.",
    ]
    if not args.no_neighbours:
        from pretrain.evaluate import PURITY_K

        rows = neighbour_rows(catalogue, np.asarray(bundle.images), args.weights, range(args.seeds))
        lines += [
            "",
            f"**Neighbours with the measurements appended (#12)**: the shipped backbone's app representation "
            f"(`{(args.weights or Path('assets/byol_resnet18_first.safetensors')).name}`), standardised, with "
            "standardised measurements (fluxes, extent and lobe ratio logged; NaN: the median) appended at "
            "w x sqrt(d)/10 of one column each, as `bench_neighbour_study` appends the extent. Purity: same label "
            f"among the {PURITY_K} most cosine-similar sources, LOO and held-out queries; probe / kNN: MiraBest "
            f"Confident test error, {args.seeds} splits.",
            "",
            "| representation | dim | FR purity LOO | FRI LOO | FRII LOO | hybrid LOO | FR purity held-out | "
            "hybrid held-out | probe error % | kNN error % |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in pd.DataFrame(rows).itertuples():
            lines.append(
                f"| {r.representation} | {r.dim} | {r.loo_fr:.3f} | {r.loo_FRI:.3f} | {r.loo_FRII:.3f} | "
                f"{r.loo_hybrid:.3f} | {r.held_fr:.3f} | {r.held_hybrid:.3f} | {r.probe:.1f} ± {r.probe_se:.1f} | "
                f"{r.knn:.1f} |"
            )
    text = "\n".join(lines)
    publish("bench_measurements", text, write=not args.no_write)


if __name__ == "__main__":
    main()
