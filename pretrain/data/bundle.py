"""Dataset bundles: many sources' preprocessed images with their catalogue, in one folder.

A bundle folder holds

- ``images.npy``: N x 150 x 150 ``uint8`` model images (:func:`preprocess_image`),
  written incrementally and loaded memory-mapped, so it never needs to fit in RAM;
- ``catalogue.parquet``: one row per image, same order: ``source_id`` (IAU-style name
  from the position, unique), ``ra``, ``dec`` (degrees, ICRS), ``angular_extent_arcsec``
  (catalogued where known, else estimated), ``angular_extent_estimated_arcsec`` (always
  the pixel estimate, measured on the full cutout before cropping), ``image_ra``,
  ``image_dec`` (the image centre: ``ra``/``dec`` are the catalogued position where the
  file name or catalogue gives one, which for a few MiraBest cutouts is off-centre),
  ``angular_extent_catalogued_arcsec``, ``label``, ``confident``, ``subtype``,
  ``redshift``, ``survey`` (the survey's name, e.g. ``FIRST``, ``VLASS``: its profile in
  ``pretrain/surveys.py`` set the beam and clipping), ``pixel_scale_arcsec`` (of the input),
  ``name``, ``file``, ``input``, ``epoch`` where file names give one (VLASS), the pixel
  measurements of FITS inputs (:data:`pretrain.data.measurements.COLUMNS`: fluxes in mJy,
  components, FR ratio, lobe flux ratio, bending angle, and a note on any that is NaN), and
  any other column of an input catalogue (a bundle built with ``measure=False`` lacks the
  measurements);
- ``manifest.json``: provenance (``bundle_id`` = hash of images + catalogue, inputs,
  preprocessing parameters, counts);
- ``report.csv``: one row for every input that is not in the catalogue as it came, with
  its ``status``: ``failed`` (with its reason: damaged, blank, a broken link, ...),
  ``duplicate`` (with the ``source_id`` it duplicates), ``skipped`` (a file in an input folder
  that is not read: a hidden file, a name without a FITS or PNG suffix, a folder that cannot
  be listed) and ``warning`` (kept, but something is off: a file name whose position
  disagrees with the image's WCS, which wins).

Inputs are pooled in the order given. The same source seen twice (positions closer than
``duplicate_radius_arcsec``) is kept once: the **first** input wins, so put the labelled,
most informative input first (e.g. MiraBest before Griese et al.).
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.coordinates import Angle, SkyCoord, search_around_sky

from pretrain import config
from pretrain.clock import utc_timestamp
from pretrain.data.extent import angular_extent_arcsec
from pretrain.data.fits_io import Cutout, read_cutout
from pretrain.data.measurements import cutout_measurements
from pretrain.data.names import NameInfo, parse_fits_name, parse_position_prefix, source_id, unique_source_ids
from pretrain.data.preprocess import preprocess_cutout, preprocess_processed_image
from pretrain.errors import BundleError, ExplorerError, NoNetworkError
from pretrain.files import FITS_SUFFIXES, make_dirs
from pretrain.surveys import DEFAULT_SURVEY, SURVEYS, Survey, infer_survey
from pretrain.surveys import survey as survey_profile

IMAGES_FILE = "images.npy"
CATALOGUE_FILE = "catalogue.parquet"
MANIFEST_FILE = "manifest.json"
REPORT_FILE = "report.csv"
# 2: the catalogue carries the pixel measurements (pretrain/data/measurements.py). An older
# bundle still loads; the app's default bundle is rebuilt when its version is older.
FORMAT_VERSION = 2

IMAGE_SUFFIXES = (".png",)
INPUT_KINDS = ("fits", "images", "catalogue")
REQUIRED_COLUMNS = (
    "source_id",
    "ra",
    "dec",
    "angular_extent_arcsec",
    "angular_extent_estimated_arcsec",
    "label",
    "confident",
    "survey",
    "file",
)
REPORT_COLUMNS = ("status", "file", "input", "reason", "duplicate_of", "separation_arcsec", "ra", "dec")

ProgressCallback = Callable[[int, int, str], None]


# --- The bundle on disk -----------------------------------------------------------------


@dataclass
class Bundle:
    """A loaded bundle: memory-mapped images, their catalogue and the manifest."""

    path: Path
    images: np.ndarray  # np.memmap, uint8, (N, 150, 150)
    catalogue: pd.DataFrame
    manifest: dict = field(default_factory=dict)

    @property
    def bundle_id(self) -> str:
        return str(self.manifest["bundle_id"])

    @property
    def measured(self) -> bool:
        """Has the catalogue the pixel measurements? (False: built with ``measure=False``.)"""
        return is_measured(self.manifest)

    def __len__(self) -> int:
        return len(self.catalogue)

    def report(self) -> pd.DataFrame:
        """Failures and dropped duplicates of the build (empty frame if there were none)."""
        path = self.path / REPORT_FILE
        if not path.is_file() or path.stat().st_size == 0:
            return pd.DataFrame(columns=list(REPORT_COLUMNS))
        return pd.read_csv(path, keep_default_na=False, na_values=[""])


def is_measured(manifest: dict) -> bool:
    """Does a bundle manifest say its catalogue has the pixel measurements? (Bundles from
    before ``measure=False`` existed always have them.)"""
    return bool(manifest.get("pixel_measurements", True))


def load_bundle(path: str | Path, verify: bool = False) -> Bundle:
    """Open a bundle folder; images are memory-mapped read-only.

    Raises :class:`BundleError` if a file is missing, unreadable or the parts disagree.
    ``verify=True`` also recomputes ``bundle_id`` from the content (reads every image).
    """
    path = Path(path)
    if not path.is_dir():
        raise BundleError(
            f"{path}: no such bundle folder. Build one with `python -m pretrain bundle ... --out {path}`."
        )
    missing = [name for name in (IMAGES_FILE, CATALOGUE_FILE, MANIFEST_FILE) if not (path / name).is_file()]
    if missing:
        raise BundleError(
            f"{path}: not a complete bundle (missing {', '.join(missing)}). "
            "It may be from an interrupted build: build it again."
        )
    try:
        manifest = json.loads((path / MANIFEST_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path / MANIFEST_FILE}: unreadable manifest ({exc}). Build the bundle again.") from exc
    try:
        images = np.load(path / IMAGES_FILE, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise BundleError(
            f"{path / IMAGES_FILE}: unreadable image array ({exc}). Build the bundle again: "
            f"`{rebuild_command(path, manifest)}`."
        ) from exc
    try:
        catalogue = pd.read_parquet(path / CATALOGUE_FILE)
    except Exception as exc:  # pyarrow raises several kinds for damaged files
        raise BundleError(
            f"{path / CATALOGUE_FILE}: unreadable catalogue ({exc}). Build the bundle again: "
            f"`{rebuild_command(path, manifest)}`."
        ) from exc

    size = config.IMAGE_SIZE_PX
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (size, size):
        raise BundleError(
            f"{path / IMAGES_FILE}: expected uint8 images of shape (N, {size}, {size}), "
            f"found {images.dtype} {images.shape}. Build the bundle again with this version."
        )
    absent = [c for c in REQUIRED_COLUMNS if c not in catalogue.columns]
    if absent:
        raise BundleError(f"{path / CATALOGUE_FILE}: missing column(s) {', '.join(absent)}. Build the bundle again.")
    if len(catalogue) != images.shape[0]:
        raise BundleError(
            f"{path}: the catalogue has {len(catalogue)} rows but images.npy holds {images.shape[0]} images; "
            "the bundle is inconsistent. Build it again."
        )
    if manifest.get("n_images") != len(catalogue) or "bundle_id" not in manifest:
        raise BundleError(
            f"{path / MANIFEST_FILE}: the manifest does not describe this bundle "
            f"(n_images {manifest.get('n_images')!r}, catalogue {len(catalogue)} rows). Build it again."
        )
    if catalogue["source_id"].duplicated().any():
        raise BundleError(f"{path / CATALOGUE_FILE}: source_id is not unique. Build the bundle again.")
    if verify:
        actual = _content_hash(images, catalogue)
        if actual != manifest["bundle_id"]:
            raise BundleError(
                f"{path}: content does not match the manifest (bundle_id {manifest['bundle_id']}, "
                f"content {actual}); a file was changed after the build. Build it again."
            )
    return Bundle(path=path, images=images, catalogue=catalogue, manifest=manifest)


def rebuild_command(path: str | Path, manifest: dict | None = None) -> str:
    """The command that builds the bundle at ``path`` again from the inputs its manifest records."""
    inputs = (manifest or {}).get("inputs") if isinstance(manifest, dict) else None
    flags = {"fits": "--fits", "images": "--images", "catalogue": "--catalogue"}
    args = [
        f"{flags[i['type']]} {i['path']}"
        for i in inputs or []
        if isinstance(i, dict) and i.get("type") in flags and isinstance(i.get("path"), str)
    ]
    return f"python -m pretrain bundle {' '.join(args) or '--fits DIR'} --out {path} --overwrite"


# --- Building ---------------------------------------------------------------------------


def build_bundle(
    fits_dirs: Iterable[str | Path] = (),
    image_dirs: Iterable[str | Path] = (),
    catalogues: Iterable[str | Path] = (),
    out: str | Path | None = None,
    *,
    inputs: Sequence[tuple[str, str | Path]] = (),
    duplicate_radius_arcsec: float = config.DUPLICATE_RADIUS_ARCSEC,
    progress: bool | ProgressCallback | None = True,
    workers: int = config.BUNDLE_WORKERS,
    skyview_url: str | None = None,
    cutout_client=None,
    overwrite: bool = False,
    survey: str | None = None,
    measure: bool = True,
) -> Bundle:
    """Build a bundle at ``out`` from FITS folders, processed-PNG folders and position catalogues.

    Inputs are taken in the order ``inputs`` (a sequence of ``(kind, path)`` with kind
    ``"fits"``, ``"images"`` or ``"catalogue"``, used by the command line to keep the order
    of its flags), then ``fits_dirs``, ``image_dirs``, ``catalogues``. Earlier inputs win
    duplicates. ``progress``: ``True`` for a tqdm bar, or ``callable(done, total, message)``.
    A file that cannot be used goes into ``report.csv`` with its reason and the build goes
    on; only a lost network connection (catalogue inputs) stops it, and cutouts fetched so
    far stay in the cutout cache, so running the same build again resumes.

    ``survey`` (a key of ``pretrain.surveys``, e.g. ``"vlass"``) says which survey every FITS
    file and catalogue cutout is from; ``None``: each FITS file's header (SURVEY, TELESCOP,
    FILNAM01), name or pixel scale says, else it is processed as FIRST's, and catalogue rows
    are FIRST cutouts. The survey's profile sets the beam of the extent estimate (a header's
    BMAJ/BMIN win) and the clipping threshold.

    Catalogue inputs fetch cutouts with ``cutout_client`` (a
    :class:`~pretrain.data.first_client.FirstCutoutClient`, whose survey they are; giving one
    runs the whole build in this process) or else a client for ``survey`` at ``skyview_url``
    (default ``EXPLORER_SKYVIEW_URL``, else ``config.SKYVIEW_URL``).

    ``measure=False`` leaves out the pixel measurements of FITS images (about half the work
    per file): their columns are absent, ``angular_extent_estimated_arcsec`` is NaN and the
    manifest says ``"pixel_measurements": false`` (:attr:`Bundle.measured`). The app's quick
    first start builds such a bundle and replaces it by a measured one in the background.
    """
    if out is None:
        raise BundleError("no output folder given (--out BUNDLE).")
    out = Path(out)
    specs = list(inputs) + [("fits", p) for p in fits_dirs] + [("images", p) for p in image_dirs]
    specs += [("catalogue", p) for p in catalogues]
    if not (np.isfinite(duplicate_radius_arcsec) and duplicate_radius_arcsec >= 0):
        raise BundleError(
            f"--duplicate-radius {duplicate_radius_arcsec}: must be a number of arcsec >= 0 "
            f"(0 keeps every source; the default is {config.DUPLICATE_RADIUS_ARCSEC:g})."
        )
    if not specs:
        raise BundleError("no inputs: give at least one --fits DIR, --images DIR or --catalogue FILE.")
    _check_out(out, overwrite, [Path(p) for _, p in specs])
    if survey is not None:
        survey = survey_profile(survey).key  # UnknownSurveyError lists the known ones
        if cutout_client is None and any(kind == "catalogue" for kind, _ in specs):
            _check_cutout_service(survey_profile(survey))

    tasks, failures, input_records = _collect_tasks(specs, skyview_url, survey)
    if not measure:
        tasks = [replace(task, measure=False) for task in tasks]
    if not tasks and not failures:
        raise BundleError("the inputs hold no files or catalogue rows to build from.")

    target = out.resolve()  # `--out .` has no name to put a partial folder beside
    try:
        make_dirs(target.parent)  # in a shared cache, shared too (another user may rebuild it)
        partial = target.parent / f".{target.name}.partial-{os.getpid()}"
        if partial.exists():
            shutil.rmtree(partial)
        make_dirs(partial, exist_ok=False)
    except OSError as exc:
        raise BundleError(
            f"--out {out}: cannot write there ({exc.strerror or exc}); choose a writable folder."
        ) from exc
    try:
        n_listed = len(tasks) + sum(1 for f in failures if f["status"] == "failed")  # before any task ran
        records, staging = _process_all(tasks, failures, partial, progress, workers, cutout_client)
        if not records:
            failed = [f for f in failures if f["status"] == "failed"]
            reasons = "; ".join(f"{Path(f['file']).name}: {f['reason']}" for f in failed[:5])
            raise BundleError(f"none of the {n_listed} inputs gave an image ({reasons}).")
        keep, duplicates = _find_duplicates(records, duplicate_radius_arcsec)
        catalogue = _catalogue_frame([records[i] for i in keep])
        kept_ids = dict(zip(keep, catalogue["source_id"]))
        for dup_index, kept_index, sep in duplicates:
            failures.append(
                _report_row(
                    "duplicate",
                    records[dup_index],
                    reason=f"within {duplicate_radius_arcsec:g} arcsec of a kept source",
                    duplicate_of=kept_ids[kept_index],
                    separation_arcsec=sep,
                )
            )
        bundle_id = _write_images(staging, [records[i]["_slot"] for i in keep], partial / IMAGES_FILE, catalogue)
        catalogue.to_parquet(partial / CATALOGUE_FILE, index=False)
        _write_report(partial / REPORT_FILE, failures)
        manifest = _manifest(bundle_id, catalogue, specs, input_records, failures, duplicate_radius_arcsec)
        manifest["surveys"] = _survey_record(catalogue, survey)
        manifest["pixel_measurements"] = measure
        (partial / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, default=str))
        _move_into_place(partial, target)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    return load_bundle(out)


def summary(bundle: Bundle) -> str:
    """A few lines for the terminal: where, how many, per label, failures and duplicates."""
    m = bundle.manifest
    lines = [f"bundle {bundle.bundle_id}: {len(bundle)} images -> {bundle.path}"]
    for record in m["inputs"]:
        lines.append(
            f"  --{record['type']} {record['path']}: {record['n_items']} in, {record['n_images']} kept, "
            f"{record['n_failed']} failed, {record['n_duplicates']} duplicates"
        )
    lines.append("  by label:")
    for label, count in m["counts_by_label"].items():
        confident = m.get("confident_by_label", {}).get(label)
        extra = f" (confident {confident})" if confident is not None else ""
        lines.append(f"    {label or '(no label)'}: {count}{extra}")
    extra = m.get("n_skipped", 0) + m.get("n_warnings", 0)
    lines.append(
        f"  failed: {m['n_failed']}, duplicates dropped: {m['n_duplicates']}, "
        f"skipped: {m.get('n_skipped', 0)}, warnings: {m.get('n_warnings', 0)}"
        + (f" (see {bundle.path / REPORT_FILE})" if m["n_failed"] or m["n_duplicates"] or extra else "")
    )
    return "\n".join(lines)


# --- Inputs -> tasks --------------------------------------------------------------------


@dataclass(frozen=True)
class _Task:
    kind: str  # "fits", "images", "catalogue"
    input: str  # "fits:<dir>" etc.
    file: str  # path as given (or "<catalogue>#row N")
    label: str = ""  # images: the sub-folder
    row: tuple = ()  # catalogue: ((column, value), ...)
    skyview_url: str | None = None
    survey: str | None = None  # key of pretrain.surveys; None: inferred (FITS), FIRST (catalogue)
    measure: bool = True  # the pixel measurements of a FITS image (build_bundle's ``measure``)


def _check_cutout_service(profile: Survey) -> None:
    if not profile.has_cutout_service:
        raise BundleError(
            f"--catalogue inputs need cutouts, and {profile.name} has no cutout service this tool can use "
            f"(SkyView does not serve it). Give folders of {profile.name} FITS cutouts with --fits instead."
        )


def _collect_tasks(specs, skyview_url, survey=None):
    tasks: list[_Task] = []
    failures: list[dict] = []
    input_records = []
    for kind, raw_path in specs:
        if kind not in INPUT_KINDS:
            raise BundleError(f"unknown input kind {kind!r}; use one of {', '.join(INPUT_KINDS)}.")
        path = Path(raw_path)
        name = f"{kind}:{raw_path}"
        before_tasks, before_failures = len(tasks), len(failures)
        if kind == "fits":
            files, passed = _find_files(path, FITS_SUFFIXES, "FITS files (*.fits, *.fits.fz, *.fits.gz, *.fit)")
            tasks += [_Task("fits", name, str(f), survey=survey) for f in files]
            failures += [_report_row(status, {"file": str(f), "input": name}, reason=r) for f, status, r in passed]
        elif kind == "images":
            files, passed = _find_files(path, IMAGE_SUFFIXES, "PNG images (*.png)")
            failures += [_report_row(status, {"file": str(f), "input": name}, reason=r) for f, status, r in passed]
            for f in files:
                relative = f.relative_to(path)
                label = relative.parts[0] if len(relative.parts) > 1 else ""
                tasks.append(_Task("images", name, str(f), label=label))
        else:
            rows, bad = read_position_catalogue(path)
            for number, row in rows:
                tasks.append(
                    _Task(
                        "catalogue",
                        name,
                        f"{raw_path}#row{number}",
                        row=tuple(row.items()),
                        skyview_url=skyview_url,
                        survey=survey,
                    )
                )
            failures += [
                dict(_report_row("failed", {"file": f"{raw_path}#row{n}", "input": name}, reason=r)) for n, r in bad
            ]
        listed = sum(1 for f in failures[before_failures:] if f["status"] == "failed")  # skipped: not inputs
        input_records.append({"type": kind, "path": str(raw_path), "n_items": len(tasks) - before_tasks + listed})
    return tasks, failures, input_records


def _find_files(folder: Path, suffixes: tuple[str, ...], what: str) -> tuple[list[Path], list[tuple[Path, str, str]]]:
    """The input files under ``folder`` (sorted), and ``(path, status, reason)`` for every
    other entry met: each goes into ``report.csv``, so nothing is left out without a word.
    A broken link or a FITS-named entry that is not a file ``failed``; a hidden entry, a name
    without one of ``suffixes``, a linked or unreadable folder is ``skipped``."""
    if not folder.is_dir():
        raise BundleError(f"{folder}: no such folder.")
    files: list[Path] = []
    passed: list[tuple[Path, str, str]] = []

    def unreadable(exc: OSError) -> None:
        passed.append((Path(exc.filename or folder), "skipped", f"the folder cannot be read ({exc.strerror})."))

    for root, dirs, names in os.walk(folder, onerror=unreadable):  # links to folders are not followed
        here = Path(root)
        for d in list(dirs):
            if d.startswith(".") or (here / d).is_symlink():
                dirs.remove(d)
                why = "a hidden folder" if d.startswith(".") else "a link to a folder (not followed)"
                passed.append((here / d, "skipped", f"{why}: give it as an input of its own to use it."))
        for n in names:
            path = here / n
            wanted = n.lower().endswith(suffixes)
            if n.startswith("."):
                passed.append((path, "skipped", "a hidden file (its name begins with '.'): not read."))
            elif not wanted:
                passed.append((path, "skipped", f"not one of the {what}: not read."))
            elif path.is_symlink() and not path.exists():
                target = os.readlink(path)
                passed.append((path, "failed", f"a broken link (it points to {target}, which does not exist)."))
            elif not path.is_file():
                passed.append((path, "failed", "not a regular file (a device, a pipe or a socket)."))
            else:
                files.append(path)
    if not files:
        found = "; ".join(f"{p.name}: {reason}" for p, _, reason in sorted(passed)[:3])
        found = f"; found {found}" if found else "."
        raise BundleError(f"{folder}: no {what} found (searched sub-folders too){found}")
    return sorted(files), sorted(passed)


# Accepted spellings of a catalogue's columns (lower case, letters and digits only).
_COLUMN_ALIASES = {
    "ra": ("ra", "radeg", "raj2000", "raj2000deg", "rightascension"),
    "dec": ("dec", "decdeg", "decj2000", "decj2000deg", "de", "dej2000", "declination"),
    "label": ("label", "frlabel", "class", "morphology"),
    "name": ("name", "objectid", "object", "sourcename", "rgzname"),
    "redshift": ("redshift", "z", "sourceredshift"),
    "confident": ("confident",),
    "las_arcsec": ("angularextentarcsec", "las", "lasarcsec", "size"),  # RGZ calls it "size"
}
_ROMAN_LABELS = {"I": "FRI", "II": "FRII"}


def read_position_catalogue(path: str | Path) -> tuple[list[tuple[int, dict]], list[tuple[int, str]]]:
    """Rows of a CSV/Parquet catalogue as ``(row number, dict)`` with standard keys, and bad rows.

    Standard keys: ``ra``, ``dec`` (degrees; sexagesimal strings are understood, RA in
    hours), and where present ``label`` (``I``/``II`` become ``FRI``/``FRII``), ``name``,
    ``redshift``, ``confident``, ``las_arcsec``; every other column is kept under its own
    name. Row numbers count from 1 (data rows, header excluded).
    """
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"{path}: no such catalogue file.")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            table = pd.read_parquet(path)
        else:
            table = pd.read_csv(path, skipinitialspace=True)
    except Exception as exc:
        kind = "Parquet" if path.suffix.lower() in (".parquet", ".pq") else "CSV"
        raise BundleError(f"{path}: cannot read the catalogue as {kind} ({exc}).") from exc
    normalised = {"".join(ch for ch in str(c).lower() if ch.isalnum()): c for c in table.columns}
    found = {}
    for key, aliases in _COLUMN_ALIASES.items():
        for alias in aliases:
            if alias in normalised:
                found[key] = normalised[alias]
                break
    if "ra" not in found or "dec" not in found:
        raise BundleError(
            f"{path}: needs RA and Dec columns (e.g. 'ra', 'dec' in degrees); found {list(table.columns)}."
        )
    ra, dec, bad_position = _parse_positions(table[found["ra"]], table[found["dec"]])
    standard = set(_STANDARD_COLUMNS)
    rows, bad = [], []
    extras = [c for c in table.columns if c not in found.values()]
    for i in range(len(table)):
        number = i + 1
        if bad_position[i]:
            bad.append(
                (
                    number,
                    f"cannot read the position (ra={table[found['ra']].iloc[i]!r}, "
                    f"dec={table[found['dec']].iloc[i]!r}): give degrees or sexagesimal 'HH MM SS', '+DD MM SS'.",
                )
            )
            continue
        row: dict = {"ra": float(ra[i]), "dec": float(dec[i])}
        for key in ("label", "name", "redshift", "confident", "las_arcsec"):
            if key in found:
                row[key] = _plain(table[found[key]].iloc[i])
        if "label" in row:
            text = "" if row["label"] is None else str(row["label"]).strip()
            row["label"] = _ROMAN_LABELS.get(text, text)
        for column in extras:
            key = str(column) if str(column) not in standard else f"catalogue_{column}"
            row[key] = _plain(table[column].iloc[i])
        rows.append((number, row))
    return rows, bad


def _parse_positions(ra_col: pd.Series, dec_col: pd.Series):
    n = len(ra_col)
    ra = pd.to_numeric(ra_col, errors="coerce").to_numpy(dtype=float, copy=True)
    dec = pd.to_numeric(dec_col, errors="coerce").to_numpy(dtype=float, copy=True)
    text = np.isnan(ra) | np.isnan(dec)
    if text.any():  # sexagesimal strings: RA in hours unless it says 'd'
        for i in np.flatnonzero(text):
            try:
                r, d = str(ra_col.iloc[i]).strip(), str(dec_col.iloc[i]).strip()
                ra_unit = u.deg if "d" in r.lower() or "°" in r else u.hourangle
                ra[i] = Angle(r, unit=ra_unit).deg
                dec[i] = Angle(d, unit=u.deg).deg
            except Exception:
                ra[i] = dec[i] = np.nan
    bad = ~(np.isfinite(ra) & np.isfinite(dec) & (ra >= 0) & (ra < 360) & (np.abs(dec) <= 90))
    assert len(bad) == n
    return ra, dec, bad


def _plain(value):
    """numpy scalars -> Python; missing -> None (Parquet-friendly)."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        value = value.item()
        if isinstance(value, float) and np.isnan(value):
            return None
    return value


# --- Processing one input ---------------------------------------------------------------


@dataclass
class _Outcome:
    record: dict | None
    image: np.ndarray | None
    error: str = ""
    fatal: bool = False  # no network: stop the build
    warning: str = ""  # kept, with a row in report.csv saying what is off


def _process(task: _Task, client=None) -> _Outcome:
    """Read, preprocess and measure one input. Never raises for a bad input."""
    try:
        if task.kind == "fits":
            return _from_cutout(task, read_cutout(task.file), parse_fits_name(task.file))
        if task.kind == "images":
            return _from_png(task)
        return _from_catalogue_row(task, client)
    except NoNetworkError as exc:
        return _Outcome(None, None, str(exc), fatal=True)
    except ExplorerError as exc:
        return _Outcome(None, None, str(exc))
    except Exception as exc:  # a damaged file must not stop a survey-scale build
        return _Outcome(None, None, f"unexpected error while processing: {type(exc).__name__}: {exc}")


def _from_cutout(
    task: _Task, cutout: Cutout, info: NameInfo, overrides: dict | None = None, profile: Survey | None = None
) -> _Outcome:
    profile, survey_name = (profile, profile.name) if profile is not None else _survey_for(task, cutout, info)
    image = preprocess_cutout(cutout, profile)
    record = _base_record(task)
    estimated = float("nan")
    if task.measure:
        # Extent, fluxes and shape from one source mask, with the beam of the header, else of the profile
        measured = cutout_measurements(cutout, profile)
        estimated = measured.angular_extent_arcsec
        record.update(measured.columns())
    centre = (float(cutout.centre.ra.deg), float(cutout.centre.dec.deg))
    # A catalogued position in the name (MiraBest) is the source's; a few MiraBest cutouts
    # are centred up to 90" away from it. Otherwise the image centre (from the WCS) is the position.
    agrees = _name_agrees(info, cutout)
    position = (info.ra, info.dec) if agrees else centre
    record.update(
        ra=position[0],
        dec=position[1],
        image_ra=centre[0],
        image_dec=centre[1],
        angular_extent_estimated_arcsec=estimated,
        angular_extent_catalogued_arcsec=info.las_arcsec,
        label=info.label,
        confident=info.confident,
        subtype=info.subtype,
        redshift=info.redshift,
        survey=survey_name,
        pixel_scale_arcsec=cutout.pixel_scale_arcsec,
        name=info.name,
    )
    if info.epoch:
        record["epoch"] = info.epoch
    record.update(overrides or {})
    warning = ""
    if info.position_is_catalogued and not agrees:
        warning = (
            f"the file name's position (RA {info.ra}, Dec {info.dec}) is not on the sky or lies more than "
            f"{config.NAME_WCS_TOLERANCE_ARCSEC:g} arcsec from the image's WCS centre (RA {centre[0]:.4f}, "
            f"Dec {centre[1]:.4f}); the WCS position is used. Check the file."
        )
    return _Outcome(record, image, warning=warning)


def _name_agrees(info: NameInfo, cutout: Cutout) -> bool:
    """Whether a catalogued position in the name is usable: on the sky, and within
    ``config.NAME_WCS_TOLERANCE_ARCSEC`` of the image's WCS (else the WCS is trusted)."""
    if not info.position_is_catalogued or info.ra is None or info.dec is None:
        return False
    if not (np.isfinite(info.ra) and np.isfinite(info.dec) and 0 <= info.ra <= 360 and -90 <= info.dec <= 90):
        return False
    named = SkyCoord(info.ra * u.deg, info.dec * u.deg)
    return bool(named.separation(cutout.centre).arcsec <= config.NAME_WCS_TOLERANCE_ARCSEC)


def _from_png(task: _Task) -> _Outcome:
    from PIL import Image, UnidentifiedImageError  # pillow: only this input needs it

    position = parse_position_prefix(task.file)
    if position is None:
        return _Outcome(None, None, f"{Path(task.file).name}: the name does not begin with 'RA_DEC' in degrees.")
    try:
        with Image.open(task.file) as img:
            img.load()
            pixels = np.asarray(img if img.mode in ("L", "I", "I;16", "F") else img.convert("L"), dtype=np.float32)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return _Outcome(None, None, f"{Path(task.file).name}: not a readable image ({exc}).")
    if pixels.ndim != 2:
        return _Outcome(None, None, f"{Path(task.file).name}: expected a one-channel image, got shape {pixels.shape}.")
    scale = config.PROCESSED_IMAGE_PIXEL_SCALE_ARCSEC
    image = preprocess_processed_image(pixels, scale)
    record = _base_record(task)
    record.update(
        ra=position[0],
        dec=position[1],
        image_ra=position[0],
        image_dec=position[1],
        angular_extent_estimated_arcsec=angular_extent_arcsec(pixels, scale, already_clipped=True),
        label=task.label,
        survey="FIRST" if abs(scale - config.FIRST_PIXEL_SCALE_ARCSEC) < 1e-6 else "",
        pixel_scale_arcsec=scale,
        name=Path(task.file).stem,
    )
    return _Outcome(record, image)


_CLIENTS: dict = {}


def _from_catalogue_row(task: _Task, client=None) -> _Outcome:
    row = dict(task.row)
    if client is None:  # one client per process (workers cannot share the caller's)
        key = (task.survey or DEFAULT_SURVEY, task.skyview_url)
        if key not in _CLIENTS:
            from pretrain.data.first_client import cutout_client  # network code only for this input

            _CLIENTS[key] = cutout_client(key[0], base_url=task.skyview_url)
        client = _CLIENTS[key]
    position = SkyCoord(row["ra"] * u.deg, row["dec"] * u.deg, frame="icrs")
    cutout = client.fetch(position)
    redshift = row.pop("redshift", None)
    las = row.pop("las_arcsec", None)
    confident = row.pop("confident", None)
    overrides = dict(row)  # the catalogue's position, label, name and extra columns win
    overrides.update(
        redshift=_float_or_none(redshift),
        angular_extent_catalogued_arcsec=_float_or_none(las),
        confident=None if confident is None else bool(confident),
    )
    overrides.setdefault("label", "")
    return _from_cutout(task, cutout, parse_fits_name(""), overrides, profile=client.survey)


def _float_or_none(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def _base_record(task: _Task) -> dict:
    return {
        "file": task.file,
        "input": task.input,
        "label": "",
        "confident": None,
        "subtype": "",
        "redshift": None,
        "angular_extent_catalogued_arcsec": None,
        "name": "",
    }


def survey_of(cutout: Cutout) -> str:
    """Survey name from the header (SURVEY, TELESCOP, ...) or the pixel scale (pretrain.surveys), else the header's."""
    profile = infer_survey(cutout.header, cutout.pixel_scale_arcsec)
    if profile is not None:
        return profile.name
    return str(cutout.header.get("SURVEY", "") or cutout.header.get("TELESCOP", "")).strip()


def _survey_for(task: _Task, cutout: Cutout, info: NameInfo) -> tuple[Survey, str]:
    """The profile an image is processed with, and the survey name its catalogue row records.

    ``--survey`` wins, then the file name (VLASS), then the header or pixel scale. An image
    of no known survey is processed as FIRST's (the model's survey; its header's beam still
    wins) and its row keeps what its header says.
    """
    key = task.survey or info.survey
    if key:
        profile = survey_profile(key)
        return profile, profile.name
    inferred = infer_survey(cutout.header, cutout.pixel_scale_arcsec)
    if inferred is not None:
        return inferred, inferred.name
    return survey_profile(DEFAULT_SURVEY), survey_of(cutout)


def _survey_record(catalogue: pd.DataFrame, option: str | None) -> dict:
    """The manifest's word on surveys: what --survey said, and the profiles of the surveys in the bundle."""
    names = set(catalogue["survey"])
    return {
        "option": option,  # None: inferred per file
        "profiles": {
            p.key: {
                "name": p.name,
                "pixel_scale_arcsec": p.pixel_scale_arcsec,
                "beam_fwhm_arcsec": p.beam_fwhm_arcsec,
                "clip_sigma": p.clip_sigma,
            }
            for p in SURVEYS.values()
            if p.name in names
        },
    }


# --- Running all tasks ------------------------------------------------------------------


def _process_all(tasks, failures, folder: Path, progress, workers, client=None):
    """Process every task in order; images go to a staging memmap, records to a list."""
    size = config.IMAGE_SIZE_PX
    staging = np.lib.format.open_memmap(
        folder / "staging.npy", mode="w+", dtype=np.uint8, shape=(max(len(tasks), 1), size, size)
    )
    records: list[dict] = []
    report = _progress_reporter(progress, len(tasks))
    use_pool = workers > 1 and len(tasks) >= config.BUNDLE_POOL_MIN_FILES and client is None
    # spawn, not fork: the caller may be a threaded program (Streamlit) or hold torch state.
    executor = (
        cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
        if use_pool
        else None
    )
    try:
        outcomes = (
            executor.map(_process, tasks, chunksize=8) if executor else (_process(task, client) for task in tasks)
        )
        for done, (task, outcome) in enumerate(zip(tasks, outcomes), start=1):
            if outcome.fatal:
                raise NoNetworkError(
                    f"{outcome.error} The build stopped at {task.file}; cutouts fetched so far are cached, "
                    "so running the same command again resumes where it stopped."
                )
            if outcome.record is None:
                failures.append(_report_row("failed", {"file": task.file, "input": task.input}, reason=outcome.error))
            else:
                outcome.record["_slot"] = len(records)
                staging[len(records)] = outcome.image
                records.append(outcome.record)
                if outcome.warning:
                    failures.append(_report_row("warning", outcome.record, reason=outcome.warning))
            report(done, f"{len(records)} built, {sum(1 for f in failures if f['status'] == 'failed')} failed")
    finally:
        if executor:
            executor.shutdown(wait=True, cancel_futures=True)
        report(None, "")
    staging.flush()
    return records, staging


def _progress_reporter(progress, total):
    """A function ``(done, message)``; ``done=None`` closes it."""
    if callable(progress):

        def report(done, message):
            if done is not None:
                progress(done, total, message)

        return report
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="file", desc="bundle", dynamic_ncols=True)

        def report(done, message):
            if done is None:
                bar.close()
                return
            bar.update(done - bar.n)
            bar.set_postfix_str(message, refresh=False)

        return report
    return lambda done, message: None


# --- Duplicates, catalogue, files -------------------------------------------------------


def _find_duplicates(records: list[dict], radius_arcsec: float):
    """Indices kept (in order) and ``(dropped, kept it duplicates, separation")`` triples.

    Walks the records in input order: a record within the radius of an already-kept one
    is dropped in favour of the nearest such; so the first input wins.
    """
    n = len(records)
    if n < 2 or radius_arcsec <= 0:
        return list(range(n)), []
    coords = SkyCoord([r["ra"] for r in records] * u.deg, [r["dec"] for r in records] * u.deg, frame="icrs")
    first, second, separation, _ = search_around_sky(coords, coords, radius_arcsec * u.arcsec)
    earlier: dict[int, list[tuple[int, float]]] = {}
    for i, j, sep in zip(first, second, separation.arcsec):
        if i < j:
            earlier.setdefault(int(j), []).append((int(i), float(sep)))
    kept = np.ones(n, dtype=bool)
    duplicates = []
    for j in range(n):
        candidates = [(sep, i) for i, sep in earlier.get(j, ()) if kept[i]]
        if candidates:
            sep, i = min(candidates)
            kept[j] = False
            duplicates.append((j, i, sep))
    return [int(i) for i in np.flatnonzero(kept)], duplicates


_STANDARD_COLUMNS = (
    "source_id",
    "ra",
    "dec",
    "image_ra",
    "image_dec",
    "angular_extent_arcsec",
    "angular_extent_estimated_arcsec",
    "angular_extent_catalogued_arcsec",
    "label",
    "confident",
    "subtype",
    "redshift",
    "survey",
    "pixel_scale_arcsec",
    "name",
    "file",
    "input",
)


def _catalogue_frame(records: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records([{k: v for k, v in r.items() if k != "_slot"} for r in records])
    frame["source_id"] = unique_source_ids([source_id(ra, dec) for ra, dec in zip(frame["ra"], frame["dec"])])
    for column in (
        "angular_extent_estimated_arcsec",
        "angular_extent_catalogued_arcsec",
        "redshift",
        "pixel_scale_arcsec",
        "ra",
        "dec",
        "image_ra",
        "image_dec",
    ):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    frame["angular_extent_arcsec"] = frame["angular_extent_catalogued_arcsec"].fillna(
        frame["angular_extent_estimated_arcsec"]
    )
    frame["confident"] = pd.array(
        [
            None if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else bool(v)
            for v in frame["confident"]
        ],
        dtype="boolean",
    )
    for column in ("label", "subtype", "survey", "name", "file", "input"):
        frame[column] = frame[column].fillna("").astype(str)
    extras = [c for c in frame.columns if c not in _STANDARD_COLUMNS]
    for column in extras:  # mixed Python objects would not survive Parquet
        if frame[column].dtype == object:
            values = frame[column].dropna()
            if len(values) and not all(isinstance(v, str) for v in values):
                frame[column] = frame[column].map(lambda v: None if v is None else str(v))
    return frame[list(_STANDARD_COLUMNS) + extras].reset_index(drop=True)


def _write_images(staging: np.ndarray, slots: list[int], path: Path, catalogue: pd.DataFrame) -> str:
    """Copy the kept images into ``images.npy`` in chunks; return the bundle id (content hash)."""
    size = config.IMAGE_SIZE_PX
    images = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(len(slots), size, size))
    chunk = 1024
    for start in range(0, len(slots), chunk):
        images[start : start + chunk] = staging[slots[start : start + chunk]]
    images.flush()
    bundle_id = _content_hash(images, catalogue)
    del images
    (path.parent / "staging.npy").unlink(missing_ok=True)
    return bundle_id


def _content_hash(images: np.ndarray, catalogue: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    digest.update(repr(images.shape).encode())
    for start in range(0, images.shape[0], 1024):
        digest.update(np.ascontiguousarray(images[start : start + 1024]).tobytes())
    digest.update(catalogue.to_csv(index=False).encode())
    return digest.hexdigest()[:16]


def _report_row(
    status: str, record: dict, reason: str = "", duplicate_of: str = "", separation_arcsec: float | None = None
) -> dict:
    return {
        "status": status,
        "file": record.get("file", ""),
        "input": record.get("input", ""),
        "reason": reason,
        "duplicate_of": duplicate_of,
        "separation_arcsec": separation_arcsec,
        "ra": record.get("ra"),
        "dec": record.get("dec"),
    }


def _write_report(path: Path, rows: list[dict]) -> None:
    pd.DataFrame(rows, columns=list(REPORT_COLUMNS)).to_csv(path, index=False)


def _manifest(bundle_id, catalogue, specs, input_records, report_rows, radius) -> dict:
    for record in input_records:
        key = f"{record['type']}:{record['path']}"
        record["n_images"] = int((catalogue["input"] == key).sum())
        record["n_failed"] = sum(1 for r in report_rows if r["input"] == key and r["status"] == "failed")
        record["n_duplicates"] = sum(1 for r in report_rows if r["input"] == key and r["status"] == "duplicate")
    labels = catalogue["label"].value_counts().sort_index()
    confident = catalogue[catalogue["confident"].fillna(False).astype(bool)]["label"].value_counts()
    return {
        "format_version": FORMAT_VERSION,
        "bundle_id": bundle_id,
        "created": utc_timestamp(),
        "tool": "python -m pretrain bundle",
        "tool_version": _tool_version(),
        "n_images": len(catalogue),
        "n_failed": sum(1 for r in report_rows if r["status"] == "failed"),
        "n_duplicates": sum(1 for r in report_rows if r["status"] == "duplicate"),
        "n_skipped": sum(1 for r in report_rows if r["status"] == "skipped"),
        "n_warnings": sum(1 for r in report_rows if r["status"] == "warning"),
        "duplicate_radius_arcsec": float(radius),
        "counts_by_label": {str(k): int(v) for k, v in labels.items()},
        "confident_by_label": {
            str(k): int(confident.get(k, 0))
            for k in labels.index
            if catalogue.loc[catalogue["label"] == k, "confident"].notna().any()
        },
        "counts_by_survey": {str(k): int(v) for k, v in catalogue["survey"].value_counts().sort_index().items()},
        "inputs": input_records,
        "preprocessing": {
            "function": "pretrain.data.preprocess.preprocess_image",
            "image_size_px": config.IMAGE_SIZE_PX,
            "pixel_scale_arcsec": config.MODEL_PIXEL_SCALE_ARCSEC,
            "field_arcsec": config.IMAGE_FIELD_ARCSEC,
            "clip_sigma": config.CLIP_SIGMA,
            "processed_image_pixel_scale_arcsec": config.PROCESSED_IMAGE_PIXEL_SCALE_ARCSEC,
        },
        "extent": {
            "function": "pretrain.data.extent.angular_extent_arcsec",
            "detection_sigma": config.EXTENT_DETECTION_SIGMA,
            "island_peak_sigma": config.EXTENT_ISLAND_PEAK_SIGMA,
            "min_island_px": config.EXTENT_MIN_ISLAND_PX,
            "smoothed_resolution_arcsec": config.EXTENT_SMOOTHED_RESOLUTION_ARCSEC,
            "seed_radius_arcsec": config.EXTENT_SEED_RADIUS_ARCSEC,
            "link_arcsec": config.EXTENT_LINK_ARCSEC,
            "relative_peak": config.EXTENT_RELATIVE_PEAK,
            "pair_tolerance_deg": config.EXTENT_PAIR_TOLERANCE_DEG,
            "pair_arm_ratio": config.EXTENT_PAIR_ARM_RATIO,
            "max_arm_arcsec": config.EXTENT_MAX_ARM_ARCSEC,
        },
    }


def _tool_version() -> str:
    try:
        from importlib.metadata import version

        return version("radio-latent-explorer")
    except Exception:
        head = config.REPO_ROOT / ".git" / "HEAD"
        try:  # the commit of a source checkout, without running git
            ref = head.read_text().strip()
            if ref.startswith("ref: "):
                ref = (config.REPO_ROOT / ".git" / ref[5:]).read_text().strip()
            return f"git {ref[:12]}"
        except OSError:
            return "unknown"


def _check_out(out: Path, overwrite: bool, inputs: Sequence[Path] = ()) -> None:
    """Refuse an ``--out`` whose replacement would delete anything the project did not write:
    it must be absent, empty, or (with ``overwrite``) a bundle, and hold none of the inputs."""
    if out.exists() and not out.is_dir():
        raise BundleError(f"{out}: exists and is not a folder; choose another --out.")
    target = out.resolve()
    if target == Path.cwd().resolve() or target in Path.cwd().resolve().parents:
        # the build replaces --out by renaming: the current folder would be swapped under the shell
        raise BundleError(f"--out {out} is the current folder or holds it; give a new folder, e.g. --out bundle.")
    for source in inputs:
        resolved = source.resolve()
        if resolved == target or target in resolved.parents:
            raise BundleError(
                f"--out {out} is, or holds, the input {source}; replacing it would delete the input. "
                "Choose an --out folder outside the inputs."
            )
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        raise BundleError(f"{out}: the folder exists and is not empty; choose another --out or pass --overwrite.")
    if not is_bundle_folder(out):
        raise BundleError(
            f"{out}: --overwrite replaces only a bundle this tool wrote (with its {MANIFEST_FILE}), and this "
            "folder is not one; nothing was deleted. Choose an empty or new --out folder."
        )


def is_bundle_folder(path: Path) -> bool:
    """Whether ``path`` is a bundle written by this tool (its manifest names a bundle id)."""
    try:
        manifest = json.loads((path / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and isinstance(manifest.get("bundle_id"), str)


def _move_into_place(partial: Path, out: Path) -> None:
    """Replace ``out`` only once the new bundle is complete (an interrupted build leaves none)."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
    partial.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
