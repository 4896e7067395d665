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

A list (--list FILE, with --out DIR): a CSV / TSV with RA and Dec (degrees or sexagesimal)
or name columns, a VOTable, or one position or name per line (at most 1000 rows). Its
cutouts are fetched 4 at a time (--workers), embedded and placed on a space's map (--space,
default the app's MiraBest space) with each row's --k most similar sources. DIR gets
results.csv and results.vot (one row per list row: status or error, position, map
position, neighbours) and embeddings.npy (NaN rows where a row failed). A row that fails
(malformed, outside the footprint, unknown name, service failure, time-out) says why and
the rest go on; a rerun takes the cutouts fetched before from the cache and retries the
failed rows (and reuses the embeddings of the rows done, when DIR holds an earlier run on
the same space).

  python -m pretrain lookup --list sources.csv --out runs/sources
  python -m pretrain lookup --list sources.txt --space runs/space --k 8 --out runs/sources
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from pretrain import config
from pretrain.batch_lookup import MAX_LIST_BYTES, NEIGHBOURS_K, WORKERS
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
    parser.add_argument(
        "--out", type=Path, help="write the FITS cutout here (default: only the cache); with --list: the results folder"
    )
    batch = parser.add_argument_group("a list (--list)")
    batch.add_argument("--list", type=Path, metavar="FILE", help="CSV, VOTable or text file of positions / names")
    batch.add_argument(
        "--space", type=Path, help="the space to place them on (default: the app's MiraBest space in the cache)"
    )
    batch.add_argument("--weights", type=Path, help="the space's backbone (default: found by its recorded SHA-256)")
    batch.add_argument("--k", type=int, default=NEIGHBOURS_K, help="neighbours per row (default %(default)s)")
    batch.add_argument("--workers", type=int, default=WORKERS, help="cutouts fetched at once (default %(default)s)")
    batch.add_argument(
        "--sky-radius",
        type=float,
        default=config.APP_SKY_DUPLICATE_RADIUS_ARCSEC,
        help="drop a neighbour this close (arcsec) on the sky to the row or an earlier one (default %(default)g)",
    )
    batch.add_argument(
        "--retries",
        type=int,
        default=config.CUTOUT_RETRIES,
        help="further attempts per row after a service failure (default %(default)s)",
    )
    batch.add_argument("--device", default="auto", help="embedding device: auto, cpu, cuda (default %(default)s)")
    batch.add_argument("--copy-cutouts", action="store_true", help="also copy each cutout to DIR/cutouts/")
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
    if args.list is not None:
        return run_list(args)
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


# --- a list -------------------------------------------------------------------------------------
def run_list(args: argparse.Namespace) -> int:
    """Look up every row of ``--list``; write the results to ``--out``. 0 when a row was placed, else 1."""
    from tqdm import tqdm

    from pretrain import batch_lookup as batch
    from pretrain.devices import choose_device
    from pretrain.models.backbone import load_encoder
    from pretrain.space import load_space

    if any(v is not None for v in (args.ra, args.dec, args.position, args.name)):
        raise PositionError("--list looks up the positions in the file: leave out --ra, --dec, --position and --name.")
    if args.out is None:
        raise ExplorerError("--list needs --out DIR: the folder for results.csv and results.vot.")
    if args.out.exists() and not args.out.is_dir():
        raise ExplorerError(f"--out {args.out} is a file; with --list it is the folder for the results.")
    if args.k < 1 or args.workers < 1:
        raise ExplorerError("--k and --workers must be at least 1.")
    rows = batch.parse_list(_read_list(args.list), args.list.name)
    space_dir = args.space if args.space is not None else batch.default_space_path()
    if not (space_dir / "manifest.json").is_file():
        raise ExplorerError(
            f"No space at {space_dir}. Give --space (a folder made by `python -m pretrain embed`), "
            "or start the app once so that it prepares its MiraBest space."
        )
    space = load_space(space_dir)
    weights = batch.space_weights(space, args.weights)
    cutout_client(args.survey, base_url=args.base_url)  # refuses a survey SkyView does not serve, at once

    def client():
        return cutout_client(args.survey, base_url=args.base_url, timeout_s=args.timeout, retries=args.retries)

    print(f"Looking up {len(rows)} rows of {args.list} on {space_dir} ({len(space)} sources) ...", flush=True)
    with tqdm(total=len(rows), unit="row", desc="cutouts") as bar:

        def advance(done: int, total: int, row: batch.ListRow) -> None:
            bar.n = done
            bar.set_postfix_str(", ".join(f"{k} {v}" for k, v in batch.summary(rows).items() if k != "not looked up"))

        batch.fetch_rows(rows, client, workers=args.workers, progress=advance)
    ready = sum(r.ok for r in rows)
    resumed = batch.resume_from(args.out, rows, space)  # rows embedded by an earlier run in --out
    device = choose_device(args.device)
    encoder = load_encoder(weights, device=device)
    with tqdm(total=ready - resumed, unit="image", desc="embedding") as bar:

        def embedded(done: int, total: int) -> None:
            bar.update(done - bar.n)

        batch.place_rows(rows, space, encoder, device=str(device), progress=embedded)
    catalogue = space.catalogue_map
    batch.add_neighbours(rows, batch.SpaceNeighbours(space, args.sky_radius), args.k, catalogue)
    frame = batch.results_frame(rows, catalogue, args.k)
    infos = batch.provenance(space, args.k, args.sky_radius, str(args.list))
    written = batch.write_results(args.out, frame, infos, rows, space)
    if args.copy_cutouts:
        written.append(_copy_cutouts(rows, args.out / "cutouts"))
    cached = sum(r.from_cache for r in rows if r.ok)
    print("  " + ", ".join(f"{count} {status}" for status, count in batch.summary(rows).items()))
    print(f"  cutouts:     {cached} from the cache, {ready - cached} fetched")
    print(f"  embeddings:  {resumed} from the earlier run in {args.out}, {ready - resumed} computed")
    for row in rows:
        if not row.ok:
            print(f"  row {row.row} (line {row.line}) {row.text!r}: {row.status}: {row.error}")
    for path in written:
        print(f"  wrote:       {path}")
    return 0 if any(r.ok for r in rows) else 1


def _read_list(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_LIST_BYTES:
            raise ExplorerError(
                f"{path} is {size / 1024**2:.1f} MB; a list of at most {MAX_LIST_BYTES // 1024**2} MB is read. "
                "Split it into smaller lists."
            )
        return path.read_bytes()
    except OSError as exc:
        raise ExplorerError(f"Cannot read the list {path}: {exc.strerror or exc}.") from exc


def _copy_cutouts(rows, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for row in rows:
        if row.ok and row.cutout_path:
            _copy_atomically(Path(row.cutout_path), folder / f"row{row.row:04d}.fits")
    return folder
