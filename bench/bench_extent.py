"""How well the pixel estimate of angular extent follows the catalogued LAS (MiraBest).

Usage: ``python bench/bench_extent.py [--bundle B | --fits DIR]``

Figures are given for all files and for the two halves of the sorted MiraBest file names:
the even-indexed half, on which the defaults in ``pretrain/config.py`` (EXTENT_*) were
chosen, and the odd-indexed half, held out.

With ``--bundle`` the figures are recomputed from the bundle's ``catalogue.parquet``
(catalogued ``angular_extent_arcsec`` against ``angular_extent_estimated_arcsec``), which is
how a reviewer checks them. With ``--fits`` (default: the MiraBest folder) every cutout is
read and measured twice side by side: by ``angular_extent_arcsec`` and by the obvious
alternative, the largest distance between any two pixels above 3 sigma in the island
nearest the centre and its touching neighbours (no beam correction, no faint-island filter).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.stats import spearmanr
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.report import machine_description, publish, today
from pretrain import config
from pretrain.data.extent import (
    EIGHT_CONNECTED,
    _largest_distance_px,
    angular_extent_arcsec,
)
from pretrain.data.fits_io import read_cutout
from pretrain.data.names import parse_mirabest_name
from pretrain.data.preprocess import estimate_noise


def naive_extent_arcsec(image: np.ndarray, pixel_scale_arcsec: float) -> float:
    """Largest distance across the 3-sigma island nearest the centre (the obvious method)."""
    image = np.nan_to_num(image)
    noise = estimate_noise(image)
    labels, n = ndimage.label(image - noise.background >= 3 * noise.sigma, structure=EIGHT_CONNECTED)
    if n == 0:
        return float("nan")
    points = np.argwhere(labels > 0)
    centre = (np.array(image.shape) - 1) / 2
    nearest = labels[tuple(points[np.argmin(((points - centre) ** 2).sum(1))])]
    return _largest_distance_px(np.argwhere(labels == nearest).astype(np.float32)) * pixel_scale_arcsec


def tuning_half(names) -> np.ndarray:
    """True for the even-indexed names in sorted order (the half the defaults were chosen on)."""
    order = np.argsort(np.asarray(names, dtype=str), kind="stable")
    tuning = np.zeros(len(order), dtype=bool)
    tuning[order[::2]] = True
    return tuning


def spearman_by_half(catalogued, estimated, tuning) -> dict[str, float]:
    catalogued, estimated = np.asarray(catalogued, dtype=float), np.asarray(estimated, dtype=float)
    return {
        part: float(spearmanr(catalogued[m], estimated[m], nan_policy="omit").statistic)
        for part, m in (("tuning", tuning), ("held_out", ~tuning), ("all", np.ones_like(tuning)))
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, help="recompute from a bundle's catalogue.parquet")
    parser.add_argument("--fits", type=Path, default=config.SHARED_DATA_DIR / "mirabest")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()

    if args.bundle:
        import pandas as pd

        cat = pd.read_parquet(args.bundle / "catalogue.parquet")
        file_names = cat["file"].map(lambda f: Path(str(f)).name)
        mirabest = file_names.map(lambda n: parse_mirabest_name(n) is not None)
        cat, file_names = cat[mirabest], file_names[mirabest]
        rho = spearman_by_half(
            cat["angular_extent_catalogued_arcsec"], cat["angular_extent_estimated_arcsec"], tuning_half(file_names)
        )
        print(
            f"{len(cat)} MiraBest sources ({int(cat['angular_extent_estimated_arcsec'].notna().sum())} with an "
            f"estimate): Spearman {rho['all']:.3f} (tuning half {rho['tuning']:.3f}, held-out half "
            f"{rho['held_out']:.3f})"
        )
        return

    files = sorted(args.fits.glob("*.fits*"))
    names: list[str] = []
    catalogued_list: list[float | None] = []
    ours_list: list[float] = []
    naive_list: list[float] = []
    seconds = {"ours": 0.0, "naive": 0.0}
    for path in tqdm(files, desc="measuring extents", unit="file"):
        name = parse_mirabest_name(path.name)
        if name is None:
            continue
        cutout = read_cutout(path)
        t0 = time.perf_counter()
        ours_list.append(angular_extent_arcsec(cutout.data, cutout.pixel_scale_arcsec))
        t1 = time.perf_counter()
        naive_list.append(naive_extent_arcsec(cutout.data, cutout.pixel_scale_arcsec))
        t2 = time.perf_counter()
        seconds["ours"] += t1 - t0
        seconds["naive"] += t2 - t1
        catalogued_list.append(name.las_arcsec)
        names.append(path.name)
    catalogued, ours, naive = (np.asarray(v, dtype=float) for v in (catalogued_list, ours_list, naive_list))
    tuning = tuning_half(names)
    rho_ours = spearman_by_half(catalogued, ours, tuning)
    rho_naive = spearman_by_half(catalogued, naive, tuning)
    n = len(catalogued)
    verdict = (
        "reaches it"
        if min(rho_ours.values()) >= 0.85
        else "falls short of it on every part"
        if max(rho_ours.values()) < 0.85
        else "reaches it only in part"
    )
    text = f"""## Angular extent from pixels against the catalogued LAS

`bench/bench_extent.py` on {n} MiraBest FIRST cutouts ({args.fits.name}/), {today()}, {machine_description()}.
Spearman rank correlation with the catalogued LAS on all files and on the two halves of the
sorted file names: the defaults (`pretrain/config.py`, EXTENT_*) were chosen on the
even-indexed half ({int(tuning.sum())} files); the odd-indexed half ({int((~tuning).sum())} files) is held out.

| method | Spearman, all | tuning half | held-out half | median estimate / catalogued | ms per image |
|---|---|---|---|---|---|
| `angular_extent_arcsec`: islands near the centre, faint emission found at {config.EXTENT_SMOOTHED_RESOLUTION_ARCSEC:g}" resolution, opposite lobes paired, beam-broadening correction | **{rho_ours["all"]:.3f}** | {rho_ours["tuning"]:.3f} | **{rho_ours["held_out"]:.3f}** | {np.nanmedian(ours / catalogued):.2f} | {1e3 * seconds["ours"] / n:.1f} |
| obvious alternative: 3-sigma island nearest the centre, largest distance | {rho_naive["all"]:.3f} | {rho_naive["tuning"]:.3f} | {rho_naive["held_out"]:.3f} | {np.nanmedian(naive / catalogued):.2f} | {1e3 * seconds["naive"] / n:.1f} |

The method (module docstring of `pretrain/data/extent.py`): islands above 3 sigma at full
resolution or in the S/N map smoothed to {config.EXTENT_SMOOTHED_RESOLUTION_ARCSEC:g}" (faint diffuse lobes and plumes become
significant, small gaps are bridged); every island reaching within {config.EXTENT_SEED_RADIUS_ARCSEC:g}" of the centre, and
islands within {config.EXTENT_LINK_ARCSEC:g}" of those, belong to the source unless fainter than {100 * config.EXTENT_RELATIVE_PEAK:g} % of its brightest
island; an island up to {config.EXTENT_MAX_ARM_ARCSEC:g}" out joins when another lies on the opposite side of the host
(directions within {config.EXTENT_PAIR_TOLERANCE_DEG:g} degrees of opposite, arm lengths within a factor {config.EXTENT_PAIR_ARM_RATIO:g}), as the two
lobes of a double do; the LAS is the largest distance across the source's pixels less the
beam broadening of the 3-sigma contour. The previous estimate (islands within 60" and gaps
up to 30", no smoothing, no lobe pairs) scored 0.720 on all files.

The issue's aim was 0.85; the estimate {verdict}. Most of the
remaining rank error comes from large sources (catalogued LAS above ~100") of which FIRST
shows only the core or the inner jets even after smoothing - the catalogued size comes
from faint diffuse emission these cutouts do not show - and from compact sources with an
unrelated neighbour within {config.EXTENT_SEED_RADIUS_ARCSEC:g}", which nothing in the pixels tells apart from a lobe
whose counterpart went undetected. Sensitivity on the tuning half (one default changed
at a time, measured when the defaults were chosen): seed radius 35" -0.02 or 60" -0.01,
arm limit 180" -0.02, link gap 30" -0.03, faint-island floor 0.1 -0.01; smoothed
resolution 14-20", pair tolerance 20-40 degrees and arm ratio 2-4 change it by less than
0.01. Recompute from a bundle with
`python bench/bench_extent.py --bundle B` (the bundle's `angular_extent_estimated_arcsec`
is computed by the same function on the same full cutout, so the figures agree).
"""
    publish("bench_extent", text, write=not args.no_write)


if __name__ == "__main__":
    main()
