"""How well the pixel estimate of angular extent follows the catalogued LAS (MiraBest).

Usage: ``python bench/bench_extent.py [--bundle B | --fits DIR]``

With ``--bundle`` the figure is recomputed from the bundle's ``catalogue.parquet``
(catalogued ``angular_extent_arcsec`` against ``angular_extent_estimated_arcsec``), which is
how a reviewer checks it. With ``--fits`` (default: the MiraBest folder) every cutout is
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
from bench.report import machine_description, today, write_section  # noqa: E402
from pretrain import config  # noqa: E402
from pretrain.data.extent import EIGHT_CONNECTED, _largest_distance_px  # noqa: E402
from pretrain.data.fits_io import read_cutout  # noqa: E402
from pretrain.data.names import parse_mirabest_name  # noqa: E402
from pretrain.data.preprocess import estimate_noise  # noqa: E402
from pretrain.data.extent import angular_extent_arcsec  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, help="recompute from a bundle's catalogue.parquet")
    parser.add_argument("--fits", type=Path, default=config.SHARED_DATA_DIR / "mirabest")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()

    if args.bundle:
        import pandas as pd
        cat = pd.read_parquet(args.bundle / "catalogue.parquet")
        has_both = cat["angular_extent_estimated_arcsec"].notna() & (cat["angular_extent_arcsec"] != cat["angular_extent_estimated_arcsec"])
        rho = spearmanr(cat.loc[has_both, "angular_extent_arcsec"], cat.loc[has_both, "angular_extent_estimated_arcsec"]).statistic
        print(f"{has_both.sum()} sources with a catalogued LAS: Spearman {rho:.3f}")
        return

    files = sorted(args.fits.glob("*.fits*"))
    catalogued, ours, naive = [], [], []
    seconds = {"ours": 0.0, "naive": 0.0}
    for path in tqdm(files, desc="measuring extents", unit="file"):
        name = parse_mirabest_name(path.name)
        if name is None:
            continue
        cutout = read_cutout(path)
        t0 = time.perf_counter()
        ours.append(angular_extent_arcsec(cutout.data, cutout.pixel_scale_arcsec))
        t1 = time.perf_counter()
        naive.append(naive_extent_arcsec(cutout.data, cutout.pixel_scale_arcsec))
        t2 = time.perf_counter()
        seconds["ours"] += t1 - t0
        seconds["naive"] += t2 - t1
        catalogued.append(name.las_arcsec)
    catalogued, ours, naive = map(np.asarray, (catalogued, ours, naive))
    rho_ours = spearmanr(catalogued, ours, nan_policy="omit").statistic
    rho_naive = spearmanr(catalogued, naive, nan_policy="omit").statistic
    n = len(catalogued)
    ratio = np.nanmedian(ours / catalogued)
    text = f"""## Angular extent from pixels against the catalogued LAS

`bench/bench_extent.py` on {n} MiraBest FIRST cutouts ({args.fits.name}/), {today()}, {machine_description()}.

| method | Spearman rank correlation with catalogued LAS | median estimate / catalogued | ms per image |
|---|---|---|---|
| `angular_extent_arcsec` (seed islands within 60", faint-island filter, beam-broadening correction) | **{rho_ours:.3f}** | {ratio:.2f} | {1e3 * seconds['ours'] / n:.1f} |
| obvious alternative: 3-sigma island nearest the centre, largest distance | {rho_naive:.3f} | {np.nanmedian(naive / catalogued):.2f} | {1e3 * seconds['naive'] / n:.1f} |

Ratio of rank correlations (ours / alternative): {rho_ours / rho_naive:.2f}. The issue's aim was 0.85;
the estimate falls short of it. The largest misses are giant sources (catalogued LAS
above ~150") whose extent comes from faint diffuse emission that FIRST's 5" beam barely
detects; the catalogued sizes of compact sources are deconvolved component sizes, which a
3-sigma contour cannot reproduce exactly. Recompute from a bundle with
`python bench/bench_extent.py --bundle B`.
"""
    print(text)
    if not args.no_write:
        write_section("bench_extent", text)


if __name__ == "__main__":
    main()
