"""Build a dataset bundle (images.npy + catalogue.parquet + manifest) from FITS, PNGs or a catalogue.

Inputs are pooled in the order given on the command line; each flag may repeat. The same
source seen twice (positions closer than --duplicate-radius) is kept once, from the FIRST
input that has it: put the labelled, most informative input first.

  --fits DIR         FITS cutouts (*.fits, *.fits.fz, *.fit; sub-folders too). MiraBest and
                     FRDEEP file names give labels; other files take their position from the WCS.
  --images DIR       processed 8-bit PNGs named RA_DEC_... (degrees) in one sub-folder per label.
  --catalogue FILE   CSV or Parquet with ra, dec (degrees or sexagesimal) and optional label,
                     name, redshift, ... columns: FIRST cutouts are fetched from SkyView.
  --survey KEY       the survey of every --fits file and --catalogue cutout (a key of
                     pretrain/surveys.py: first, nvss, vlass, emu). Default: each file's header
                     (SURVEY, TELESCOP, FILNAM01), name or pixel scale says, else FIRST. The
                     survey sets the beam of the extent estimate (a header's BMAJ/BMIN win) and
                     is recorded per source in the catalogue's survey column.

Files that cannot be used are listed with their reason in BUNDLE/report.csv, together with
every duplicate dropped. Example:

  python -m pretrain bundle --fits ../shared/data/mirabest \\
      --images ../shared/data/griese2023/images --out bundles/pooled
  python -m pretrain bundle --fits ../shared/data/vlass --survey vlass --out bundles/vlass
"""

from __future__ import annotations

import argparse

from pretrain import config
from pretrain.surveys import SURVEYS


class _AppendInput(argparse.Action):
    """Collect (kind, path) in command-line order across --fits / --images / --catalogue."""

    def __call__(self, parser, namespace, values, option_string=None):
        inputs = list(getattr(namespace, "inputs", None) or [])
        inputs.append((self.const, values))
        namespace.inputs = inputs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(inputs=[])
    parser.add_argument(
        "--fits",
        action=_AppendInput,
        const="fits",
        metavar="DIR",
        dest="fits_input",
        help="folder of FITS cutouts (repeatable)",
    )
    parser.add_argument(
        "--images",
        action=_AppendInput,
        const="images",
        metavar="DIR",
        dest="images_input",
        help="folder of processed PNGs, one sub-folder per label (repeatable)",
    )
    parser.add_argument(
        "--catalogue",
        action=_AppendInput,
        const="catalogue",
        metavar="FILE",
        dest="catalogue_input",
        help="CSV/Parquet of positions; cutouts from SkyView, FIRST unless --survey (repeatable)",
    )
    parser.add_argument(
        "--survey",
        default=None,
        metavar="KEY",
        help=f"survey of the inputs: {', '.join(SURVEYS)} (default: from each FITS header, else FIRST)",
    )
    parser.add_argument("--out", required=True, metavar="BUNDLE", help="bundle folder to write")
    parser.add_argument(
        "--duplicate-radius",
        type=float,
        default=config.DUPLICATE_RADIUS_ARCSEC,
        metavar="ARCSEC",
        help="positions closer than this are the same source (default %(default)s; 0 keeps all)",
    )
    parser.add_argument(
        "--skyview-url",
        default=None,
        metavar="URL",
        help=f"SkyView endpoint for --catalogue (default {config.SKYVIEW_URL})",
    )
    parser.add_argument(
        "--workers", type=int, default=config.BUNDLE_WORKERS, help="processes reading files (default %(default)s)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bundle at --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from pretrain.data.bundle import build_bundle, summary
    from pretrain.errors import BundleError

    if not args.inputs:
        raise BundleError("no inputs: give at least one --fits DIR, --images DIR or --catalogue FILE.")
    bundle = build_bundle(
        inputs=args.inputs,
        out=args.out,
        duplicate_radius_arcsec=args.duplicate_radius,
        progress=not args.quiet,
        workers=args.workers,
        skyview_url=args.skyview_url,
        overwrite=args.overwrite,
        survey=args.survey,
    )
    print(summary(bundle))
    return 0
