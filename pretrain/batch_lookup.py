"""A list of positions or names looked up at once: parse the list, fetch the cutouts with a few
workers, embed them in batches, place them on a space's map and find each one's neighbours.

The pieces, each usable alone (the app's Look-up page and ``python -m pretrain lookup --list``
share them):

- :func:`parse_list`: a CSV / TSV table (RA/Dec or name columns, found by their common
  names), a VOTable (columns found by UCD, else by name) or plain text, one position or
  name per line. A line that cannot be read becomes a row with its error, not a refusal of
  the list; a list over :data:`MAX_ROWS` rows or :data:`MAX_LIST_BYTES` is refused as a whole.
- :func:`fetch_rows`: every row's cutout through the project's cutout client and its cache
  (``pretrain.data.first_client``), :data:`WORKERS` at a time, one client per worker thread
  (a client's HTTP session is not thread-safe); each row ends with its model input or its
  error (malformed, outside the footprint, unknown name, service failure, time-out, blank),
  and the others go on. A rerun finds the cutouts fetched before in the cache.
- :func:`place_rows`: the model inputs embedded in batches with the space's encoder and
  placed on its saved map (``pretrain.space.place_image``).
- :class:`SpaceNeighbours` and :func:`add_neighbours`: each placed row's most similar
  sources (cosine similarity, sky duplicates dropped as in the app) and its own entry in the
  space when its position is there.
- :func:`results_frame`, :func:`results_csv`, :func:`results_votable`: the table a person
  reads and exports (one row per input row, its status or error, position, neighbours).
"""

from __future__ import annotations

import csv
import io
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.coordinates import SkyCoord

from pretrain import config
from pretrain.errors import (
    BlankImageError,
    CutoutServiceError,
    ExplorerError,
    NameResolveError,
    NoNetworkError,
    OutsideFootprintError,
    PositionError,
)

if TYPE_CHECKING:  # astroquery is slow to import: the client module is imported by whoever makes clients
    from pretrain.data.first_client import FirstCutoutClient

# --- settings (documented defaults) ------------------------------------------------------
MAX_ROWS = 1000  # a longer list is refused: split it (each row is a SkyView request and an embedding)
MAX_LINE_CHARS = 1000  # a longer line is that row's error (a position or a name is at most POSITION_MAX_CHARS)
MAX_LIST_BYTES = 5 * 1024**2  # a larger upload is refused before it is read (a VOTable of 1000 rows is ~0.3 MB)
WORKERS = 4  # cutouts fetched at once: quick for a list, polite to NASA SkyView
NEIGHBOURS_K = 5  # neighbours kept per row in the results table
EMBED_CHUNK = 64  # model inputs embedded and placed per call (progress reported per chunk)

# Column names (compared case-blind, without blanks, quotes and a trailing unit in brackets).
RA_COLUMNS = (
    "ra", "ra_deg", "radeg", "raj2000", "ra_j2000", "ra(j2000)", "_raj2000", "ra_icrs", "raicrs",
    "right_ascension", "rightascension", "alpha", "ra_d",
)  # fmt: skip
DEC_COLUMNS = (
    "dec", "de", "dec_deg", "decdeg", "dej2000", "decj2000", "dec_j2000", "dec(j2000)", "_dej2000",
    "de_icrs", "dec_icrs", "deicrs", "declination", "delta", "dec_d",
)  # fmt: skip
NAME_COLUMNS = (
    "name", "object", "object_name", "objname", "object_id", "source", "source_name", "source_id",
    "main_id", "target", "target_name", "identifier", "id",
)  # fmt: skip
POSITION_COLUMNS = ("position", "pos", "coordinates", "coords", "radec", "ra_dec")
_DELIMITERS = (",", "\t", ";", "|")

# Row statuses: "ok", or what went wrong (the table's ``status`` column).
OK = "ok"
MALFORMED = "malformed"
OUTSIDE = "outside footprint"
UNRESOLVED = "unknown name"
NO_ANSWER = "no answer"  # time-out, no network
SERVICE = "service failure"
BLANK = "blank image"
NOT_PLACED = "not placed"
UNEXPECTED = "unexpected error"


def status_of(exc: BaseException) -> str:
    """The status word for the exception that ended a row (most specific class first)."""
    for kind, status in (
        (PositionError, MALFORMED),
        (OutsideFootprintError, OUTSIDE),
        (NameResolveError, UNRESOLVED),
        (NoNetworkError, NO_ANSWER),
        (CutoutServiceError, SERVICE),
        (BlankImageError, BLANK),
        (ExplorerError, SERVICE),
    ):
        if isinstance(exc, kind):
            return status
    return UNEXPECTED


# --- one row ---------------------------------------------------------------------------------
@dataclass
class ListRow:
    """One entry of a list and, once looked up, what became of it."""

    row: int  # 1-based, in list order
    line: int  # the line of the file it came from (a VOTable: its table row)
    text: str  # what the list said, as one line (what the results table shows as "input")
    position: SkyCoord | None = None  # parsed position (None for a name)
    name: str | None = None  # an object name to resolve (or a label beside a position)
    status: str = ""  # "" = not looked up yet; OK or an error status
    error: str = ""
    centre: SkyCoord | None = None  # the cutout's centre (a name's resolved position)
    cutout_path: str = ""  # the cutout's file in the cache
    from_cache: bool = False  # the cutout was in the cache already (no network request)
    model_image: np.ndarray | None = field(default=None, repr=False)  # uint8 150 x 150
    extent_arcsec: float = float("nan")
    embedding: np.ndarray | None = field(default=None, repr=False)  # (512,)
    map_xy: np.ndarray | None = None  # (2,)
    neighbour_rows: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    neighbour_scores: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.float32))
    twin: str = ""  # the space's source at this position, if any
    twin_sep_arcsec: float = float("nan")
    # Pixel measurements for neighbours by representation + measurements (fetch_rows(measure=True));
    # {} when not asked for or unmeasurable: the space's typical values stand in.
    measurements: dict = field(default_factory=dict, repr=False)

    @property
    def look_up_by_name(self) -> bool:
        return self.position is None and self.name is not None

    @property
    def ok(self) -> bool:
        return self.status == OK

    def fail(self, status: str, message: str) -> None:
        self.status, self.error = status, message
        self.model_image = self.embedding = self.map_xy = None


# --- parsing ---------------------------------------------------------------------------------
def _normalise_column(name: str) -> str:
    text = str(name).strip().strip("'\"").casefold()
    if text.endswith(("]", ")")) and ("[" in text or "(" in text) and "(j2000)" not in text:
        text = text[: max(text.rfind("["), text.rfind("("))]  # "ra [deg]" -> "ra"
    return "".join(text.split())


def _find_column(columns: Iterable[str], wanted: tuple[str, ...]) -> str | None:
    by_name = {_normalise_column(c): c for c in columns}
    for candidate in wanted:
        if candidate in by_name:
            return by_name[candidate]
    return None


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    for encoding in ("utf-8-sig", "latin-1"):  # latin-1 reads any bytes
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes every byte string")


def _is_votable(text: str, file_name: str) -> bool:
    head = text[:2000].lstrip().casefold()
    return file_name.casefold().endswith((".vot", ".votable", ".xml")) or (
        head.startswith("<?xml") or "<votable" in head
    )


def parse_list(data: bytes | str, file_name: str = "list", max_rows: int = MAX_ROWS) -> list[ListRow]:
    """The rows of a list: a table with RA/Dec or name columns (CSV, TSV, VOTable) or one entry per line.

    A row that cannot be read (too long, not a position, an empty cell) carries its error;
    an empty list, one over ``max_rows`` rows or one over :data:`MAX_LIST_BYTES` raises
    :class:`~pretrain.errors.ExplorerError` saying what to do.
    """
    size = len(data.encode() if isinstance(data, str) else data)
    if size > MAX_LIST_BYTES:
        raise ExplorerError(
            f"{file_name}: the list is {size / 1024**2:.1f} MB; at most {MAX_LIST_BYTES // 1024**2} MB is read "
            f"(about {max_rows} rows at most are looked up at once). Split it into smaller lists."
        )
    text = _decode(data)
    rows = _parse_votable(data, file_name) if _is_votable(text, file_name) else _parse_text(text)
    if not rows:
        raise ExplorerError(
            f"{file_name}: no positions or names found. Give one per line (e.g. '139.148 +4.681' or '3C 236'), "
            "or a CSV / VOTable with RA and Dec columns (degrees) or a name column."
        )
    if len(rows) > max_rows:
        raise ExplorerError(
            f"{file_name}: the list has {len(rows)} rows; at most {max_rows} are looked up at once. "
            "Split it into smaller lists."
        )
    return rows


def _header_of(line: str) -> tuple[str | None, list[str]]:
    """The delimiter and column names if ``line`` is a table header naming a position or name column."""
    for delimiter in (*_DELIMITERS, None):
        cells = next(csv.reader([line], delimiter=delimiter)) if delimiter else line.split()
        if len(cells) < (1 if delimiter is None else 2) and delimiter is not None:
            continue
        ra, dec = _find_column(cells, RA_COLUMNS), _find_column(cells, DEC_COLUMNS)
        named = _find_column(cells, NAME_COLUMNS + POSITION_COLUMNS)
        if (ra and dec) or (named and (delimiter is not None or len(cells) == 1 or ra or dec)):
            return delimiter, cells
    return None, []


def _content_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of the lines that are not blank or comments (#, //, %)."""
    lines = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "//", "%")):
            lines.append((number, line.rstrip("\r\n")))
    return lines


def _parse_text(text: str) -> list[ListRow]:
    lines = _content_lines(text)
    if not lines:
        return []
    delimiter, header = _header_of(lines[0][1][:MAX_LINE_CHARS])
    if header:
        return _parse_table(lines[1:], delimiter, header)
    rows: list[ListRow] = []
    for number, line in lines:
        row = ListRow(row=len(rows) + 1, line=number, text=_shown(line))
        if len(line) > MAX_LINE_CHARS:
            row.fail(MALFORMED, _too_long(len(line)))
        else:
            _read_entry(row, line.strip())
        rows.append(row)
    return rows


def _shown(text: str, limit: int = 120) -> str:
    one_line = " ".join(str(text).split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


def _too_long(length: int) -> str:
    return (
        f"the line is {length} characters long; at most {MAX_LINE_CHARS} are read. Give one position or name per line."
    )


def _read_entry(row: ListRow, text: str, name: str | None = None, may_be_name: bool = True) -> None:
    """A typed entry: coordinates if they parse as such, else (``may_be_name``) an object name."""
    from pretrain.data.positions import parse_position

    try:
        position = parse_position(text)
    except PositionError as exc:
        row.fail(MALFORMED, str(exc))
        return
    if position is not None:
        row.position, row.name = position, name
    elif _looks_numeric(text) or not may_be_name:
        row.fail(
            MALFORMED,
            f"'{_shown(text, 60)}' is not a sky position: give RA and Dec (degrees, e.g. 139.148 +4.681, "
            "or sexagesimal, e.g. 09 16 35.5 +04 40 52) or an object name.",
        )
    else:
        row.name = " ".join(text.split())


def _looks_numeric(text: str) -> bool:
    """Text of digits and signs only (e.g. '139.1', '12 34 56 7'): meant as coordinates, not a name."""
    stripped = text.replace(",", " ").replace(":", " ").split()
    return bool(stripped) and all(t.lstrip("+-").replace(".", "", 1).isdigit() for t in stripped)


def _parse_table(lines: list[tuple[int, str]], delimiter: str | None, header: list[str]) -> list[ListRow]:
    ra_col, dec_col = _find_column(header, RA_COLUMNS), _find_column(header, DEC_COLUMNS)
    name_col = _find_column(header, NAME_COLUMNS)
    pos_col = _find_column(header, POSITION_COLUMNS)
    index = {c: i for i, c in enumerate(header)}
    rows: list[ListRow] = []
    for number, line in lines:
        row = ListRow(row=len(rows) + 1, line=number, text=_shown(line))
        rows.append(row)
        if len(line) > MAX_LINE_CHARS:
            row.fail(MALFORMED, _too_long(len(line)))
            continue
        if len(header) == 1:  # one column: the whole line is its cell (a name may hold blanks)
            cells = [line.strip().strip('"')]
        else:
            cells = next(csv.reader([line], delimiter=delimiter)) if delimiter else line.split()
        values = {c: (cells[i].strip() if i < len(cells) else "") for c, i in index.items()}
        _read_cells(row, values.get(ra_col or ""), values.get(dec_col or ""), values.get(name_col or ""),
                    values.get(pos_col or ""))  # fmt: skip
    return rows


def _read_cells(row: ListRow, ra: str | None, dec: str | None, name: str | None, position: str | None) -> None:
    """A table row: RA and Dec if both are filled in, else a position column, else the name."""
    name = " ".join((name or "").split()) or None
    if ra or dec:
        if not (ra and dec):
            row.fail(MALFORMED, f"only {'RA' if ra else 'Dec'} is given; give both RA and Dec, or a name.")
            return
        _read_entry(row, f"{ra} {dec}", name=name, may_be_name=False)
        row.name = name
    elif position:
        _read_entry(row, position, name=name)
    elif name:
        if len(name) > config.POSITION_MAX_CHARS:
            row.fail(MALFORMED, f"the name is {len(name)} characters long; at most {config.POSITION_MAX_CHARS}.")
        else:
            row.name = name
    else:
        row.fail(MALFORMED, "this row has neither RA and Dec nor a name.")


def _parse_votable(data: bytes | str, file_name: str) -> list[ListRow]:
    from astropy.io.votable import parse

    raw = data.encode() if isinstance(data, str) else data
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = parse(io.BytesIO(raw)).get_first_table()
    except Exception as exc:  # astropy raises many kinds for a broken document
        raise ExplorerError(
            f"{file_name}: not a readable VOTable ({type(exc).__name__}: {_shown(str(exc), 200)})."
        ) from exc
    ucds = {f.name: (f.ucd or "").casefold() for f in table.fields}
    by_ucd = {
        what: next((n for n, ucd in ucds.items() if ucd.startswith(prefix) and "meta.main" in ucd), None)
        or next((n for n, ucd in ucds.items() if ucd.startswith(prefix)), None)
        for what, prefix in (("ra", "pos.eq.ra"), ("dec", "pos.eq.dec"), ("name", "meta.id"))
    }
    names = [f.name for f in table.fields]
    ra_col = by_ucd["ra"] or _find_column(names, RA_COLUMNS)
    dec_col = by_ucd["dec"] or _find_column(names, DEC_COLUMNS)
    name_col = _find_column(names, NAME_COLUMNS) or by_ucd["name"]
    if not ((ra_col and dec_col) or name_col):
        raise ExplorerError(
            f"{file_name}: the VOTable has no RA/Dec columns (UCD pos.eq.ra / pos.eq.dec, or named RA and Dec) "
            f"and no name column; its columns are {', '.join(names[:12])}."
        )
    rows = []
    array = table.array
    for i in range(len(array)):
        cells = {c: _cell_text(array[c][i]) for c in (ra_col, dec_col, name_col) if c}
        text = " · ".join(v for v in cells.values() if v) or "(empty row)"
        row = ListRow(row=i + 1, line=i + 1, text=_shown(text))
        _read_cells(row, cells.get(ra_col or ""), cells.get(dec_col or ""), cells.get(name_col or ""), None)
        rows.append(row)
    return rows


def _cell_text(value) -> str:
    if value is None or value is np.ma.masked:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, (float, np.floating)):
        return "" if not np.isfinite(value) else repr(float(value))
    return str(value).strip()


# --- fetching --------------------------------------------------------------------------------
Progress = Callable[[int, int, ListRow], None]  # (done, total, the row just finished)


def model_input(cutout, title: str, survey=None):
    """A cutout -> (its survey's profile, the model image (uint8 150 x 150), its angular extent in arcsec).

    The one preprocessing path of training and embedding; :class:`BlankImageError` when the
    image holds no island of emission (nothing a neighbour search could mean anything for).
    """
    from pretrain.data.extent import cutout_extent_arcsec
    from pretrain.data.preprocess import preprocess_cutout
    from pretrain.surveys import image_survey

    profile = image_survey(cutout.header, cutout.pixel_scale_arcsec, survey)
    image = preprocess_cutout(cutout, profile)  # BlankImageError if empty
    extent = cutout_extent_arcsec(cutout, profile)
    if not np.isfinite(extent):
        # Pixels above the 3-sigma clip exist in pure noise too; a source needs an island.
        raise BlankImageError(
            f"{title}: no significant emission in the image (no island of at least "
            f"{config.EXTENT_MIN_ISLAND_PX} pixels peaking above {config.EXTENT_ISLAND_PEAK_SIGMA:g} sigma "
            "of the noise): it looks blank. Check the position or the file."
        )
    return profile, image, float(extent)


def fetch_rows(
    rows: list[ListRow],
    client_factory: Callable[[], FirstCutoutClient],
    workers: int = WORKERS,
    progress: Progress | None = None,
    measure: bool = False,
) -> list[ListRow]:
    """Fetch and prepare every row not looked up yet, ``workers`` at a time; each ends OK or with its error.

    ``measure``: also measure each row's pixels (``ListRow.measurements``) from the cutout in
    hand, for neighbours by representation + measurements.

    ``client_factory()`` makes a cutout client (``pretrain.data.first_client.cutout_client``);
    each worker thread makes its own. ``progress(done, total, row)`` is called in the calling
    thread as each row finishes (rows that failed to parse count as done at once).
    """
    local = threading.local()

    def client():
        if getattr(local, "client", None) is None:
            local.client = client_factory()
        return local.client

    pending = [r for r in rows if not r.status]
    done, total = 0, len(rows)
    for row in rows:
        if row.status:  # refused while parsing: done already
            done += 1
            if progress is not None:
                progress(done, total, row)
    with ThreadPoolExecutor(max_workers=max(1, int(workers)), thread_name_prefix="lookup") as pool:
        futures = [pool.submit(_fetch_one, row, client, measure) for row in pending]
        for future in as_completed(futures):
            done += 1
            row = future.result()  # _fetch_one catches everything: a row never raises
            if progress is not None:
                progress(done, total, row)
    return rows


def _fetch_one(row: ListRow, client: Callable[[], FirstCutoutClient], measure: bool = False) -> ListRow:
    try:
        c = client()
        name = row.name if row.look_up_by_name else None
        row.from_cache = c.cache_path(c.request(row.position, name=name)).is_file()
        cutout = c.fetch(row.position, name=name)  # its ``source``: the file in the cache
        row.cutout_path, row.centre = cutout.source, cutout.centre.icrs
        profile, row.model_image, row.extent_arcsec = model_input(cutout, row.text)
        if measure:
            from pretrain.measured_neighbours import measured_or_typical

            row.measurements = measured_or_typical(cutout, profile)
        row.status, row.error = OK, ""
    except Exception as exc:  # every failure is this row's, and the list goes on
        message = str(exc) if isinstance(exc, ExplorerError) else f"{type(exc).__name__}: {exc}"
        row.fail(status_of(exc), message)
    return row


# --- embedding and placing -----------------------------------------------------------------
def place_rows(
    rows: list[ListRow],
    space,
    encoder,
    device: str = "cpu",
    chunk: int = EMBED_CHUNK,
    progress: Callable[[int, int], None] | None = None,
    lock=None,
) -> list[ListRow]:
    """Embed the OK rows' model inputs with ``encoder`` (the space's) and place them on ``space``'s map.

    Rows that have an embedding already (taken from an earlier run) are left as they are.

    ``space``: a ``pretrain.space.Space``; ``lock``: held around each call (the app's
    projector lock). A failure of a chunk marks its rows NOT_PLACED with the reason.
    """
    from pretrain.space import place_image

    ready = [r for r in rows if r.ok and r.model_image is not None and r.embedding is None]
    for start in range(0, len(ready), max(1, chunk)):
        part = ready[start : start + chunk]
        stack = np.stack([np.asarray(r.model_image) for r in part])
        try:
            if lock is not None:
                with lock:
                    embeddings, xy = place_image(space, encoder, stack, device=device)
            else:
                embeddings, xy = place_image(space, encoder, stack, device=device)
        except ExplorerError as exc:
            for row in part:
                row.fail(NOT_PLACED, f"not placed on the map: {exc}")
            continue
        for row, embedding, position in zip(part, embeddings, xy, strict=True):
            row.embedding = np.asarray(embedding, dtype=np.float32)
            row.map_xy = np.asarray(position, dtype=np.float64)
        if progress is not None:
            progress(min(start + chunk, len(ready)), len(ready))
    return rows


# --- neighbours ---------------------------------------------------------------------------------
def _separation_arcsec(ra, dec, ra0: float, dec0: float) -> np.ndarray:
    from astropy.coordinates import angular_separation

    rad = np.radians
    return np.degrees(angular_separation(rad(ra), rad(dec), rad(ra0), rad(dec0))) * 3600.0


class SpaceNeighbours:
    """A space's ``k`` most similar sources to a new representation, sky duplicates dropped.

    The app's rule (``explorer.space_registry``): cosine similarity in the full space, and a
    result closer than ``sky_radius_arcsec`` on the sky to the query or to an earlier kept
    result is dropped (a catalogue's twins would otherwise fill the list).
    """

    def __init__(self, space, sky_radius_arcsec: float = config.APP_SKY_DUPLICATE_RADIUS_ARCSEC):
        catalogue = space.catalogue_map
        self.index = space.neighbour_index  # exact or approximate (pretrain.neighbour_index), as in the app
        self.ra = catalogue["ra"].to_numpy(np.float64) if "ra" in catalogue else np.full(len(catalogue), np.nan)
        self.dec = catalogue["dec"].to_numpy(np.float64) if "dec" in catalogue else np.full(len(catalogue), np.nan)
        self.sky_radius_arcsec = float(sky_radius_arcsec)

    def __call__(self, vector: np.ndarray, k: int, query_radec: tuple[float, float] | None):
        n = len(self.index)
        wanted = min(n, k + 16)
        while True:  # more candidates until k survive the sky filter (at most log4(n) rounds)
            order, scores = self.index.query(vector, wanted)  # best first, ties by row
            rows, kept_scores = self._sky_filtered(order, scores, k, query_radec)
            if len(rows) == k or wanted >= n:
                return np.asarray(rows, dtype=np.int64), np.asarray(kept_scores, dtype=np.float32)
            wanted = min(n, wanted * 4)

    def _sky_filtered(self, order, scores, k: int, query_radec) -> tuple[list[int], list[float]]:
        kept_ra = [query_radec[0]] if query_radec is not None else []
        kept_dec = [query_radec[1]] if query_radec is not None else []
        rows, kept_scores = [], []
        for i, score in zip(order, scores):
            ra, dec = self.ra[i], self.dec[i]
            if self.sky_radius_arcsec > 0 and np.isfinite(ra) and np.isfinite(dec):
                if kept_ra and np.min(_separation_arcsec(np.array(kept_ra), np.array(kept_dec), ra, dec)) < (
                    self.sky_radius_arcsec
                ):
                    continue
                kept_ra.append(ra)
                kept_dec.append(dec)
            rows.append(int(i))
            kept_scores.append(float(score))
            if len(rows) == k:
                break
        return rows, kept_scores


NeighbourFinder = Callable[[np.ndarray, int, "tuple[float, float] | None"], "tuple[np.ndarray, np.ndarray]"]


def add_neighbours(
    rows: list[ListRow],
    neighbours: NeighbourFinder,
    k: int,
    catalogue: pd.DataFrame,
    match_arcsec: float = config.APP_CATALOGUE_MATCH_ARCSEC,
) -> list[ListRow]:
    """Each placed row's ``k`` neighbours (``neighbours(vector, k, (ra, dec))``) and its twin in ``catalogue``."""
    ra = catalogue["ra"].to_numpy(np.float64) if "ra" in catalogue else None
    dec = catalogue["dec"].to_numpy(np.float64) if "dec" in catalogue else None
    ids = catalogue["source_id"].astype(str).to_numpy()
    for row in rows:
        if row.embedding is None or row.centre is None:
            continue
        where = (float(row.centre.ra.deg), float(row.centre.dec.deg))
        found, scores = neighbours(row.embedding, k, where)
        row.neighbour_rows = np.asarray(found, dtype=np.int64)
        row.neighbour_scores = np.asarray(scores, dtype=np.float32)
        if ra is not None and dec is not None and len(ra):
            sep = _separation_arcsec(ra, dec, *where)
            nearest = int(np.nanargmin(sep))
            if sep[nearest] <= match_arcsec:
                row.twin, row.twin_sep_arcsec = ids[nearest], float(sep[nearest])
    return rows


# --- the results table ------------------------------------------------------------------------
def results_frame(rows: list[ListRow], catalogue: pd.DataFrame | None = None, k: int = NEIGHBOURS_K) -> pd.DataFrame:
    """One row per list row: input, status and error, position, extent, map position, neighbours.

    Neighbour columns ``nn1_source_id``, ``nn1_cosine``, ... ``nnK_*`` (``k`` of them) name
    ``catalogue``'s sources; missing values are empty text or NaN.
    """
    ids = catalogue["source_id"].astype(str).to_numpy() if catalogue is not None else None
    records = []
    for row in rows:
        where = row.centre if row.centre is not None else row.position
        record: dict[str, object] = {
            "row": row.row,
            "line": row.line,
            "input": row.text,
            "name": row.name or "",
            "status": row.status or "not looked up",
            "error": row.error,
            "ra": float(where.ra.deg) if where is not None else np.nan,
            "dec": float(where.dec.deg) if where is not None else np.nan,
            "angular_extent_arcsec": row.extent_arcsec if row.ok else np.nan,
            "map_x": float(row.map_xy[0]) if row.map_xy is not None else np.nan,
            "map_y": float(row.map_xy[1]) if row.map_xy is not None else np.nan,
            "in_space_as": row.twin,
            "in_space_sep_arcsec": row.twin_sep_arcsec,
            "cutout_file": row.cutout_path,
            "from_cache": bool(row.from_cache),
        }
        for i in range(k):
            has = ids is not None and i < len(row.neighbour_rows)
            record[f"nn{i + 1}_source_id"] = ids[row.neighbour_rows[i]] if has and ids is not None else ""
            record[f"nn{i + 1}_cosine"] = float(row.neighbour_scores[i]) if has else np.nan
        records.append(record)
    return pd.DataFrame.from_records(records)


def summary(rows: list[ListRow]) -> dict[str, int]:
    """How many rows ended with each status (OK first)."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status or "not looked up"] = counts.get(row.status or "not looked up", 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (kv[0] != OK, -kv[1], kv[0])))


def results_csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


_VOTABLE_META: dict[str, tuple[str, str | None]] = {  # column -> (UCD, unit)
    "row": ("meta.number", None),
    "line": ("meta.number", None),
    "input": ("meta.note", None),
    "name": ("meta.id", None),
    "status": ("meta.code.status", None),
    "error": ("meta.note", None),
    "ra": ("pos.eq.ra;meta.main", "deg"),
    "dec": ("pos.eq.dec;meta.main", "deg"),
    "angular_extent_arcsec": ("phys.angSize;src", "arcsec"),
    "map_x": ("pos.cartesian.x", None),
    "map_y": ("pos.cartesian.y", None),
    "in_space_as": ("meta.id.cross", None),
    "in_space_sep_arcsec": ("pos.angDistance", "arcsec"),
    "cutout_file": ("meta.ref.url", None),
    "from_cache": ("meta.code", None),
}


def results_votable(frame: pd.DataFrame, infos: Mapping[str, object] | None = None) -> bytes:
    """The results table as a VOTable (TOPCAT, Aladin): positions with their UCDs, provenance as INFO."""
    from pretrain.votable import votable_bytes

    columns = dict(_VOTABLE_META)
    for column in frame.columns:  # the neighbour columns, nn1_source_id ... nnK_cosine
        if column.endswith("_source_id"):
            columns[column] = ("meta.id", None)
        elif column.endswith("_cosine"):
            columns[column] = ("stat.correlation", None)
    return votable_bytes(
        frame,
        "batch_lookup",
        "A list of positions or names looked up in FIRST and placed on a space's map.",
        infos=infos,
        columns=columns,
    )


def provenance(space, k: int, sky_radius_arcsec: float, source: str) -> dict[str, str]:
    """INFO elements for an export: the list, the space, its backbone, the neighbour settings."""
    manifest = getattr(space, "manifest", {}) or {}
    return {
        "list": source,
        "space": str(getattr(space, "path", "")),
        "backbone_sha256": str(getattr(space, "weights_sha256", "")),
        "backbone_file": str(manifest.get("weights", {}).get("file", "")),
        "neighbours_k": str(k),
        "sky_duplicate_radius_arcsec": f"{sky_radius_arcsec:g}",
        "similarity": "cosine similarity of the 512-d representations",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


RUN_FILE = "lookup.json"  # what the embeddings in a results folder were made with (resuming checks it)


def run_key(space) -> dict[str, str]:
    """What a row's embedding and map position depend on besides its cutout: the space and its backbone."""
    return {
        "space": str(Path(space.path).resolve()),
        "backbone_sha256": str(space.weights_sha256),
        "symmetry": str(space.symmetry),
        "space_created": str(space.manifest.get("created", "")),
    }


def resume_from(out: Path, rows: list[ListRow], space) -> int:
    """Take the embeddings and map positions of an earlier run in ``out`` for rows with the same cutout.

    An earlier run counts only when it was made on the same space with the same backbone
    (``lookup.json``); a row is matched by its cutout file in the cache. Returns how many rows
    were taken (they need no embedding again).
    """
    import json

    try:
        if json.loads((out / RUN_FILE).read_text()) != run_key(space):
            return 0
        earlier = pd.read_csv(out / "results.csv", keep_default_na=False, na_values=[""])
        embeddings = np.load(out / "embeddings.npy")
    except (OSError, ValueError, KeyError):
        return 0
    if len(earlier) != len(embeddings) or "cutout_file" not in earlier:
        return 0
    known: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for i, record in enumerate(earlier.itertuples(index=False)):
        xy = np.array([getattr(record, "map_x", np.nan), getattr(record, "map_y", np.nan)], dtype=np.float64)
        done = embeddings.shape[1] > 0 and np.isfinite(embeddings[i]).all() and np.isfinite(xy).all()
        if done and isinstance(record.cutout_file, str) and record.cutout_file:
            known[record.cutout_file] = (embeddings[i], xy)
    taken = 0
    for row in rows:
        if row.ok and row.embedding is None and row.cutout_path in known:
            row.embedding, row.map_xy = (np.array(a) for a in known[row.cutout_path])
            taken += 1
    return taken


def write_results(
    out: Path, frame: pd.DataFrame, infos: Mapping[str, object], rows: list[ListRow], space=None
) -> list[Path]:
    """``results.csv``, ``results.vot``, ``embeddings.npy`` (one row per list row; NaN where not placed)
    and, given the ``space``, ``lookup.json`` (what a rerun needs to reuse the embeddings)."""
    from pretrain.files import atomic_write_bytes, atomic_write_json

    out.mkdir(parents=True, exist_ok=True)
    dim = next((r.embedding.size for r in rows if r.embedding is not None), 0)
    embeddings = np.full((len(rows), dim), np.nan, dtype=np.float32)
    for i, row in enumerate(rows):
        if row.embedding is not None:
            embeddings[i] = row.embedding
    buffer = io.BytesIO()
    np.save(buffer, embeddings)
    written = []
    for name, data in (
        ("results.csv", results_csv(frame)),
        ("results.vot", results_votable(frame, infos)),
        ("embeddings.npy", buffer.getvalue()),
    ):
        atomic_write_bytes(out / name, data)
        written.append(out / name)
    if space is not None:
        written.append(atomic_write_json(out / RUN_FILE, run_key(space)))
    return written


def position_of(ra: float, dec: float) -> SkyCoord:
    return SkyCoord(ra * u.deg, dec * u.deg, frame="icrs")


# --- the space and its encoder (the command line) -------------------------------------------
DEFAULT_SPACE_NAME = "mirabest"  # explorer.default_space prepares the app's space under this name


def default_space_path() -> Path:
    """The app's default MiraBest space in the user cache (``explorer.default_space.space_path()``)."""
    return config.cache_dir() / "spaces" / DEFAULT_SPACE_NAME


def space_weights(space, given: Path | None = None) -> Path:
    """The backbone a space was embedded with: ``given`` if its SHA-256 is the space's, else found.

    Looked for: ``EXPLORER_WEIGHTS``, the shipped backbone, and the recorded file name in
    ``assets/``, the space's folder and the folder above it.
    """
    import os

    from pretrain.provenance import default_backbone_path, weights_sha256

    wanted = str(space.weights_sha256)
    name = str(space.manifest.get("weights", {}).get("file", "") or "")
    if given is not None:
        if not given.is_file():
            raise ExplorerError(f"--weights {given} does not exist.")
        if weights_sha256(given) != wanted:
            raise ExplorerError(
                f"--weights {given} is not the backbone {space.path} was embedded with (sha256 {wanted[:12]}...)."
            )
        return given
    override = os.environ.get("EXPLORER_WEIGHTS", "").strip()
    candidates = [Path(override).expanduser()] if override else []
    candidates.append(default_backbone_path())
    if name:
        candidates += [config.ASSETS_DIR / name, Path(space.path) / name, Path(space.path).parent / name]
    for path in candidates:
        if path.is_file() and weights_sha256(path) == wanted:
            return path
    raise ExplorerError(
        f"The backbone {space.path} was embedded with ({name or 'unknown file'}, sha256 {wanted[:12]}...) "
        "was not found. Pass it with --weights, or set EXPLORER_WEIGHTS."
    )
