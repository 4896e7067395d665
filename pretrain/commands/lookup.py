"""Fetch a survey cutout (VLA FIRST by default) from NASA SkyView by position or object name.

Give --ra and --dec (degrees), --position (typed coordinates, decimal or sexagesimal)
or --name (resolved by SkyView through SIMBAD/NED). The cutout is validated, kept in the
user's cache (a repeated look-up makes no network call) and copied to --out if given.

  python -m pretrain lookup --ra 139.148 --dec 4.681 --out cutout.fits
  python -m pretrain lookup --name "3C 236" --pixels 150
  python -m pretrain lookup --position "09 16 35.5 +04 40 52"
  python -m pretrain lookup --survey nvss --ra 139.148 --dec 4.681

--survey takes a key of pretrain/surveys.py; a survey SkyView does not serve (VLASS, EMU)
and a position outside the survey's declination limits are refused at once. The service
URL comes from --base-url, else EXPLORER_SKYVIEW_URL, else SkyView's own.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from pretrain import config
from pretrain.data.first_client import cutout_client
from pretrain.data.positions import format_position, parse_position, sky_position
from pretrain.errors import ExplorerError, PositionError
from pretrain.surveys import DEFAULT_SURVEY, SURVEYS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ra", type=float, help="right ascension, degrees (J2000)")
    parser.add_argument("--dec", type=float, help="declination, degrees (J2000)")
    parser.add_argument("--position", help="coordinates as typed, e.g. '139.148 4.681' or '09 16 35.5 +04 40 52'")
    parser.add_argument("--name", help="object name, e.g. '3C 236'")
    parser.add_argument(
        "--survey",
        default=DEFAULT_SURVEY,
        metavar="KEY",
        help=f"survey to cut from: {', '.join(SURVEYS)} (default %(default)s; see pretrain/surveys.py)",
    )
    parser.add_argument(
        "--pixels",
        type=int,
        default=None,
        help=f"image side in pixels (default: 9 arcmin of the survey's pixels, FIRST {config.CUTOUT_PIXELS})",
    )
    parser.add_argument(
        "--pixel-scale",
        type=float,
        default=None,
        help=f"arcsec per pixel (default: the survey's, FIRST {config.FIRST_PIXEL_SCALE_ARCSEC})",
    )
    parser.add_argument("--out", type=Path, help="write the FITS cutout here (default: only the cache)")
    parser.add_argument("--base-url", help="SkyView query-form URL (default: EXPLORER_SKYVIEW_URL or SkyView)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=config.CUTOUT_TIMEOUT_S,
        help=f"seconds per request (default {config.CUTOUT_TIMEOUT_S:g})",
    )


def _target(args: argparse.Namespace):
    given = [args.ra is not None or args.dec is not None, args.position is not None, args.name is not None]
    if sum(given) != 1:
        raise PositionError("Give exactly one of: --ra and --dec, --position, or --name.")
    if given[0]:
        if args.ra is None or args.dec is None:
            raise PositionError("--ra and --dec go together: give both, in degrees.")
        return sky_position(args.ra, args.dec), None
    if given[1]:
        position = parse_position(args.position)
        if position is None:
            raise PositionError(f"'{args.position}' is not a sky position; for an object name use --name.")
        return position, None
    return None, args.name


def run(args: argparse.Namespace) -> int:
    position, name = _target(args)
    client = cutout_client(args.survey, base_url=args.base_url, timeout_s=args.timeout)  # refuses VLASS, EMU
    request = client.request(position, name=name, pixels=args.pixels, pixel_scale_arcsec=args.pixel_scale)
    client.check_footprint(request)  # outside the survey's declination limits: refused before any request
    print(f"Looking up {request.describe()} in {client.skyview_survey} at {client.host} ...", flush=True)
    cutout = client.fetch(position, name=name, pixels=args.pixels, pixel_scale_arcsec=args.pixel_scale)
    path = Path(cutout.source)
    print(f"  centre:      {format_position(cutout.centre)}")
    print(
        f"  shape:       {cutout.shape[1]} x {cutout.shape[0]} pixels at {cutout.pixel_scale_arcsec:.2f} arcsec/pixel"
    )
    if args.out is not None:
        try:
            _copy_atomically(path, args.out)
        except OSError as exc:
            raise ExplorerError(f"Cannot write the cutout to {args.out}: {exc.strerror or exc}.") from exc
        print(f"  saved to:    {args.out}")
    print(f"  cached at:   {path}")
    return 0


def _copy_atomically(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
