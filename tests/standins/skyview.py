"""A stand-in for NASA SkyView on 127.0.0.1, serving real FIRST cutouts from ../shared/data.

It answers the requests astroquery's ``SkyViewClass`` makes, at the same paths as
skyview.gsfc.nasa.gov, so that the production client runs unchanged with only its base
URL (``{url}`` = ``http://127.0.0.1:PORT/current/cgi/basicform.pl``) pointed here:

- ``GET /current/cgi/basicform.pl`` -> the query form (``<form action="runquery.pl">``
  with the survey lists, the VLA FIRST survey among the radio ones, and the defaults);
- ``GET /current/cgi/runquery.pl?Position=...&survey=...&pixels=...&size=...`` -> a
  result page with ``Download <a href=../../tempspace/fits/skvN_1.fits>FITS</a>``, or
  SkyView-style error page for a name it cannot resolve;
- ``GET /tempspace/fits/skvN_1.fits`` -> the cutout: an uncompressed FITS image in the
  primary HDU, big-endian float32, TAN projection centred on the requested position,
  written card by card the way SkyView writes it (TABs in COMMENT cards included).

Pixels are real: the nearest FIRST file in ``mirabest/`` (300 px), ``skyview_raw/``
(300 px, as SkyView served them) or ``frdeep2/FIRST/`` (150 px) within
``match_radius_arcsec`` of the position is resampled onto the requested grid with
SkyView's default nearest-neighbour sampler — at the file's own centre and pixel scale
that is the file's pixels exactly. The grid beyond a file's edge is zero (a 300 px request
on a 150 px FRDEEP file has a zero border). Positions away from every real file get an
all-zero image, as SkyView returns outside the FIRST footprint. Names resolve through
``frdeep2/catalogue.csv`` (e.g. "3C 192", "3C 236"); unknown names get an error page.

Fault modes for tests (attributes): ``mode`` = ``"slow"`` (every answer waits
``slow_s`` seconds), ``"html"`` (the FITS link answers with an HTML error page),
``"truncated"`` (the FITS file is cut short), ``"offset"`` (cutouts centred 1 arcmin
north of the request), ``"size"`` (the requested size is ignored: 300 px at 1.8"),
``"trickle"`` (every answer one byte per ``trickle_s`` seconds), ``"bomb"`` (HTML pages are
gzip expanding to ``bomb_bytes``), ``"huge"`` (the FITS link streams ``huge_bytes`` of
zeros, sent a megabyte at a time), ``"redirect"`` (every request is redirected to itself,
for ever), ``"reset"`` (every connection is closed without an answer); ``blank_value`` (0.0, or NaN) fills
the images outside the footprint; ``fail_next(n, status=500)`` makes the next
``n`` requests fail with that status. ``requests`` logs every request (kind, path);
``served_files`` lists the real file behind each cutout (None for a blank one).

Standalone, for the app's browser tests::

    python -m tests.standins.skyview --port 8765
    EXPLORER_SKYVIEW_URL=http://127.0.0.1:8765/current/cgi/basicform.pl streamlit run app.py
"""

from __future__ import annotations

import argparse
import csv
import functools
import gzip
import html
import io
import itertools
import re
import socket
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from pretrain import config

FIRST = "VLA FIRST (1.4 GHz)"
FORM_PATH = "/current/cgi/basicform.pl"
QUERY_PATH = "/current/cgi/runquery.pl"
FITS_PREFIX = "/tempspace/fits/"
DEFAULT_PIXELS = 300
DEFAULT_SCALE_ARCSEC = 1.8  # FIRST's native pixel, SkyView's default for the survey
KIND_PRIORITY = {"skyview_raw": 0, "mirabest": 1, "frdeep2": 2}  # ties: closest to SkyView's own


# --- the real files ---------------------------------------------------------------------
@dataclass(frozen=True)
class RealFile:
    path: Path
    kind: str  # skyview_raw, mirabest, frdeep2
    ra: float  # image centre, degrees (FK5 J2000, as in the header)
    dec: float
    pixels: int


def _raw_cards(path: Path, image_hdu: bool = True) -> list[bytes]:
    """The 80-byte card images of the header holding the image (raw: TABs and all)."""
    cards: list[bytes] = []
    with open(path, "rb") as f:
        for _ in range(2):  # primary header, then (tile-compressed files) the image extension
            cards = []
            while True:
                block = f.read(2880)
                if len(block) < 2880:
                    return cards
                chunk = [block[i : i + 80] for i in range(0, 2880, 80)]
                ends = [i for i, c in enumerate(chunk) if c[:8] == b"END     "]
                cards += chunk[: ends[0]] if ends else chunk
                if ends:
                    break
            values = _card_values(cards)
            if not image_hdu or int(values.get("NAXIS", 0)) >= 2 or "ZNAXIS1" in values:
                return cards
            # skip the primary HDU's data (none for a .fits.fz primary) and read the next header
    return cards


def _card_values(cards: list[bytes]) -> dict[str, str]:
    values = {}
    for card in cards:
        key = card[:8].decode("ascii", "replace").strip()
        if card[8:10] == b"= ":
            values[key] = card[10:].split(b"/")[0].decode("ascii", "replace").strip().strip("'").strip()
    return values


def _index_file(path: Path, kind: str) -> RealFile | None:
    values = _card_values(_raw_cards(path))
    try:
        n1 = int(values.get("ZNAXIS1", values.get("NAXIS1")))
        n2 = int(values.get("ZNAXIS2", values.get("NAXIS2")))
        crval1, crval2 = float(values["CRVAL1"]), float(values["CRVAL2"])
        crpix1, crpix2 = float(values["CRPIX1"]), float(values["CRPIX2"])
        cdelt1, cdelt2 = float(values["CDELT1"]), float(values["CDELT2"])
    except (KeyError, TypeError, ValueError):
        return None
    # Centre pixel's position; the files here have CRPIX at the centre, so this is CRVAL.
    dec = crval2 + ((n2 + 1) / 2 - crpix2) * cdelt2
    ra = crval1 + ((n1 + 1) / 2 - crpix1) * cdelt1 / max(np.cos(np.radians(dec)), 1e-6)
    return RealFile(path, kind, ra % 360.0, dec, min(n1, n2))


@functools.lru_cache(maxsize=4)
def real_files(data_dir: Path) -> tuple[list[RealFile], SkyCoord | None]:
    """Every FIRST cutout under ``data_dir`` with its centre (read from the header)."""
    globs = {
        "skyview_raw": "skyview_raw/*.fits",
        "mirabest": "mirabest/*.fits.fz",
        "frdeep2": "frdeep2/FIRST/*.fits.fz",
    }
    files = []
    for kind, pattern in globs.items():
        for path in sorted(data_dir.glob(pattern)):
            entry = _index_file(path, kind)
            if entry is not None:
                files.append(entry)
    if not files:
        return files, None
    coords = SkyCoord([f.ra for f in files] * u.deg, [f.dec for f in files] * u.deg, frame="icrs")
    return files, coords


@functools.lru_cache(maxsize=4)
def name_catalogue(data_dir: Path) -> dict[str, tuple[float, float]]:
    """Object names -> (ra, dec) degrees, from FRDEEP's catalogue (SkyView's resolver here)."""
    path = data_dir / "frdeep2" / "catalogue.csv"
    names = {}
    if path.is_file():
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                c = SkyCoord(row["RA(J2000)"], row["DEC(J2000)"], unit=(u.hourangle, u.deg))
                names[_name_key(row["Object_ID"])] = (c.ra.deg, c.dec.deg)
    return names


def _name_key(name: str) -> str:
    return "".join(name.split()).casefold()  # "3C 236" == "3c236", as SIMBAD sees it


@functools.lru_cache(maxsize=32)
def _image(path: Path) -> tuple[np.ndarray, WCS, list[bytes]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(path, memmap=False) as hdul:
            hdu = next(h for h in hdul if h.is_image and h.data is not None and h.data.ndim >= 2)
            data = np.squeeze(np.asarray(hdu.data, dtype=np.float32))
            wcs = WCS(hdu.header).celestial
    keep = (b"COMMENT ", b"HISTORY ", b"SURVEY  ", b"TELESCOP", b"BUNIT   ")
    cards = [c for c in _raw_cards(path) if c[:8] in keep]
    return data, wcs, cards


# --- making a cutout the way SkyView does ---------------------------------------------
def _card(key: str, value, comment: str = "") -> bytes:
    if isinstance(value, bool):
        text = f"{'T' if value else 'F':>20}"
    elif isinstance(value, str):
        text = f"'{value:<8}'".ljust(20)
    else:
        text = f"{value!r:>20}" if isinstance(value, float) else f"{value:>20}"
    card = f"{key:<8}= {text}" + (f" / {comment}" if comment else "")
    return card[:80].ljust(80).encode("ascii")


def render_fits(
    ra: float, dec: float, pixels: int, scale_arcsec: float, source: Path | None, blank_value: float = 0.0
) -> bytes:
    """A SkyView-style FITS file: ``pixels`` square, TAN, centred on (ra, dec).

    Without a ``source`` file the image is ``blank_value`` everywhere (outside the footprint).
    """
    centre = (pixels + 1) / 2.0
    out_wcs = WCS(naxis=2)
    out_wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    out_wcs.wcs.crval = [ra, dec]
    out_wcs.wcs.crpix = [centre, centre]
    out_wcs.wcs.cdelt = [-scale_arcsec / 3600.0, scale_arcsec / 3600.0]
    out_wcs.wcs.radesys = "FK5"
    out_wcs.wcs.equinox = 2000.0
    image = np.full((pixels, pixels), 0.0 if source is not None else blank_value, dtype=np.float32)
    extra: list[bytes] = [_card("SURVEY", "FIRST"), _card("TELESCOP", "VLA"), _card("BUNIT", "JY/BEAM")]
    if source is not None:
        data, in_wcs, extra = _image(source)
        # Nearest-neighbour resampling (SkyView's default sampler) through both WCSs.
        y, x = np.mgrid[0:pixels, 0:pixels]
        world_ra, world_dec = out_wcs.wcs_pix2world(x.ravel(), y.ravel(), 0)
        px, py = in_wcs.wcs_world2pix(world_ra, world_dec, 0)
        ix, iy = np.floor(px + 0.5).astype(int), np.floor(py + 0.5).astype(int)
        inside = (ix >= 0) & (ix < data.shape[1]) & (iy >= 0) & (iy < data.shape[0])
        flat = image.ravel()
        flat[inside] = data[iy[inside], ix[inside]]
        image = flat.reshape(pixels, pixels)
    cards = [
        _card("SIMPLE", True, "Written by SkyView (stand-in for tests)"),
        _card("BITPIX", -32, "4 byte floating point"),
        _card("NAXIS", 2, "Two dimensional image"),
        _card("NAXIS1", pixels, "Width of image"),
        _card("NAXIS2", pixels, "Height of image"),
        _card("CRVAL1", float(ra), "Reference longitude"),
        _card("CRVAL2", float(dec), "Reference latitude"),
        _card("RADESYS", "FK5", "Coordinate system"),
        _card("EQUINOX", 2000.0, "Epoch of the equinox"),
        _card("CTYPE1", "RA---TAN", "Coordinates -- projection"),
        _card("CTYPE2", "DEC--TAN", "Coordinates -- projection"),
        _card("CRPIX1", centre, "X reference pixel"),
        _card("CRPIX2", centre, "Y reference pixel"),
        _card("CDELT1", -scale_arcsec / 3600.0, "X scale"),
        _card("CDELT2", scale_arcsec / 3600.0, "Y scale"),
        *extra,
        b"END".ljust(80),
    ]
    header = b"".join(cards)
    header += b" " * (-len(header) % 2880)
    body = image.astype(">f4").tobytes()
    body += b"\0" * (-len(body) % 2880)
    return header + body


# --- pages ------------------------------------------------------------------------------
SURVEYS = {  # a few of SkyView's lists; only FIRST has data here
    "Optical:DSS": ["DSS", "DSS1 Blue", "DSS1 Red", "DSS2 Red", "DSS2 Blue", "DSS2 IR"],
    "Radio": ["GB6 (4850MHz)", FIRST, "NVSS", "Stripe82VLA", "1420MHz (Bonn)", "SUMSS 843 MHz", "WENSS", "VLSSr"],
}


def form_page() -> bytes:
    selects = "\n".join(
        f"<td><select class='selectbox' multiple size=7 NAME='survey' id='{sid}'>"
        + "".join(f"<option>{html.escape(s)}</option>" for s in names)
        + "</select></td>"
        for sid, names in SURVEYS.items()
    )
    return f"""<html><head><title>SkyView Query Form</title></head><body>
<span id='headbig'><i>SkyView</i> Query Form </span> (no JavaScript)
<form name="query" action="runquery.pl" method="GET" target="skyview_out">
<INPUT TYPE="submit" Value="Submit"> <INPUT TYPE="reset" Value="Reset">
<label for="object">Coordinates or Source</label>: <INPUT name="Position" size=30 id="object">
<table><tr>{selects}</tr></table>
<select name='coordinates' id='csys'><option value='_skip_'>Special coordinates<option selected>J2000</option><option>B1950</option><option>Galactic</option><option>ICRS</option></select>
<select name='projection' id='proj'><option selected value='Tan'>Gnomonic (Tan)</option><option value='Car'>Rectangular (Car)</option><option value='Sin'>Orthographic (Sin)</option></select>
<input type='text' class='formtext' name='pixels' Value='{DEFAULT_PIXELS}' SIZE=11 id='size_pix'>
<input type='text' class='formtext' name='size' SIZE=10 id='size_deg'>
<input type=checkbox name='float' id='float' checked>
<select name='scaling' id='bscale'><OPTION selected> Log <OPTION>Sqrt <OPTION>Linear <OPTION>HistEq</select>
<select name='resolver' id='resolver'><OPTION> NED only <OPTION> SIMBAD only <OPTION selected> SIMBAD-NED </select>
<select name='Sampler' id='sampler'><OPTION value='_skip_' selected>Default (usually NN)<OPTION value='LI'>Bi-linear (LI)</select>
<select name='Deedger' id='edge'><OPTION value='_skip_' selected> Survey default <OPTION value='null'>No </select>
</form></body></html>""".encode()


def result_page(file_id: str, survey: str) -> bytes:
    fits_url = f"../../tempspace/fits/{file_id}.fits"
    return f"""<html><head><title>SkyView images</title></head><body>
<span id='headbig'><i>SkyView</i> Images</span>
<h3>{html.escape(survey)}</h3>
<img src="../../tempspace/fits/{file_id}.jpg" alt="quick look">
<span>Download <a href={fits_url}>FITS</a> or <a href=../../tempspace/fits/{file_id}.jpg>quick look jpeg </a> image.</span>
</body></html>""".encode()


def error_page(message: str) -> bytes:
    return f"""<html><head><title>SkyView Query Results</title></head><body>
<span id='headbig'><i>SkyView</i> Images</span>
<h2>Error processing request</h2>
<p>{html.escape(message)}</p>
</body></html>""".encode()


HTML_FAULT_PAGE = b"""<!DOCTYPE html><html><head><title>503 Service Unavailable</title></head>
<body><h1>Service Unavailable</h1><p>The server is temporarily unable to service your
request due to maintenance downtime or capacity problems. Please try again later.</p></body></html>"""


# --- the server -------------------------------------------------------------------------
class SkyViewStandIn:
    """``with SkyViewStandIn() as sv: FirstCutoutClient(base_url=sv.url)...``"""

    def __init__(self, data_dir: Path | str | None = None, port: int = 0, match_radius_arcsec: float = 5.0):
        self.data_dir = Path(data_dir) if data_dir is not None else config.SHARED_DATA_DIR
        self.port = port
        self.match_radius_arcsec = match_radius_arcsec
        self.mode: str | None = None  # None, "slow", "html", "truncated", "offset", "size", "trickle", "bomb",
        # "huge", "redirect", "reset"
        self.slow_s = 5.0
        self.trickle_s = 1.0  # "trickle": every answer arrives one byte per this many seconds
        self.bomb_bytes = 256 * 1024**2  # "bomb": pages are gzip that expands to this many bytes
        self.huge_bytes = 1024**3  # "huge": the FITS answer is this long (zeros, streamed)
        self.blank_value = 0.0  # outside the footprint; SkyView gives zeros (NaN for some surveys)
        self.requests: list[tuple[str, str]] = []  # (kind, path): kind = form, query, fits, other
        self.served_files: list[Path | None] = []
        self._fail_next: list[int] = []  # statuses for the next requests
        self._files: OrderedDict[str, bytes] = OrderedDict()  # tempspace
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    # --- life cycle ---
    def start(self) -> SkyViewStandIn:
        real_files(self.data_dir)  # index once, before the first request
        name_catalogue(self.data_dir)
        handler = type("Handler", (_Handler,), {"standin": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()  # wakes handlers sleeping in "slow" mode
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> SkyViewStandIn:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def root(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        """The query-form URL: what ``EXPLORER_SKYVIEW_URL`` / ``base_url`` takes."""
        return self.root + FORM_PATH

    # --- test controls ---
    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def fail_next(self, n: int, status: int = 500) -> None:
        with self._lock:
            self._fail_next = [status] * n

    def reset(self) -> None:
        with self._lock:
            self.mode = None
            self.blank_value = 0.0
            self._fail_next = []
            self.requests.clear()
            self.served_files.clear()

    # --- what the handler calls ---
    def _log(self, kind: str, path: str) -> int | None:
        with self._lock:
            self.requests.append((kind, path))
            return self._fail_next.pop(0) if self._fail_next else None

    def _sleep_if_slow(self) -> None:
        if self.mode == "slow":
            self._stop.wait(self.slow_s)

    def query(self, params: dict[str, list[str]]) -> bytes:
        position = (params.get("Position") or [""])[0].strip()
        surveys = params.get("survey") or []
        if FIRST not in surveys:
            return error_page(f"This stand-in serves only the survey '{FIRST}', not {surveys}.")
        try:
            pixels = int(float((params.get("pixels") or [str(DEFAULT_PIXELS)])[0].split(",")[0]))
            size = (params.get("size") or [""])[0].split(",")[0]
            scale = float(size) * 3600.0 / pixels if size else DEFAULT_SCALE_ARCSEC
            if not (1 <= pixels <= 5000 and scale > 0):
                raise ValueError
        except ValueError:
            return error_page(f"Invalid image size: pixels={params.get('pixels')}, size={params.get('size')}.")
        where = self._resolve(position)
        if where is None:
            return error_page(
                f"Unable to resolve object name '{position}' with resolver SIMBAD-NED: "
                "the object was not found in SIMBAD or NED."
            )
        ra, dec = where
        source = self._nearest(ra, dec)
        if self.mode == "offset":  # a broken service: the image is not where it was asked for
            dec += 1.0 / 60.0
        if self.mode == "size":  # a broken service: the requested size is ignored
            pixels, scale = DEFAULT_PIXELS, DEFAULT_SCALE_ARCSEC
        data = render_fits(ra, dec, pixels, scale, source, self.blank_value)
        with self._lock:
            file_id = f"skv{next(self._ids)}_1"
            self._files[file_id] = data
            self.served_files.append(source)
            while len(self._files) > 256:
                self._files.popitem(last=False)
        return result_page(file_id, FIRST)

    def fits_file(self, file_id: str) -> bytes | None:
        with self._lock:
            return self._files.get(file_id)

    def _resolve(self, text: str) -> tuple[float, float] | None:
        """Coordinates first (decimal degrees or sexagesimal hours), then a name."""
        if not text:
            return None
        numbers = re.split(r"[,\s]+", text.strip())
        try:
            if len(numbers) == 2:
                return float(numbers[0]) % 360.0, float(numbers[1])
            c = SkyCoord(text.replace(",", " "), unit=(u.hourangle, u.deg))
            return c.ra.deg, c.dec.deg
        except ValueError:
            pass
        return name_catalogue(self.data_dir).get(_name_key(text))

    def _nearest(self, ra: float, dec: float) -> Path | None:
        files, coords = real_files(self.data_dir)
        if coords is None:
            return None
        seps = coords.separation(SkyCoord(ra * u.deg, dec * u.deg)).arcsec
        near = np.flatnonzero(seps <= self.match_radius_arcsec)
        if near.size == 0:
            return None
        best = min(near, key=lambda i: (round(seps[i] * 2) / 2, KIND_PRIORITY[files[i].kind]))
        return files[best].path


class _Handler(BaseHTTPRequestHandler):
    standin: SkyViewStandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        kind = {FORM_PATH: "form", QUERY_PATH: "query"}.get(parts.path)
        if kind is None:
            kind = "fits" if parts.path.startswith(FITS_PREFIX) else "other"
        status = self.standin._log(kind, self.path)
        self.standin._sleep_if_slow()
        if self.standin.mode == "reset":  # the connection dropped without a word
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return None
        if self.standin.mode == "redirect":  # a loop: every answer sends the client back here
            self.send_response(302)
            self.send_header("Location", self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if status is not None:
            return self._send(status, error_page(f"Internal server error ({status})."), "text/html")
        if kind == "form":
            return self._send(200, form_page(), "text/html")
        if kind == "query":
            return self._send(200, self.standin.query(parse_qs(parts.query)), "text/html")
        if kind == "fits":
            name = parts.path[len(FITS_PREFIX) :]
            data = self.standin.fits_file(name[:-5]) if name.endswith(".fits") else None
            if data is None:
                return self._send(404, error_page(f"{parts.path} not found (expired?)."), "text/html")
            if self.standin.mode == "html":
                return self._send(200, HTML_FAULT_PAGE, "text/html")
            if self.standin.mode == "truncated":
                data = data[: len(data) // 3]  # a broken file, sent as if complete
            if self.standin.mode == "huge":
                return self._send_zeros(self.standin.huge_bytes)
            return self._send(200, data, "application/fits")
        return self._send(404, error_page(f"{parts.path} not found."), "text/html")

    def _send_zeros(self, size: int) -> None:
        """``size`` bytes of zeros as a FITS answer, a megabyte at a time (never held whole)."""
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/fits")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            block = bytes(1 << 20)
            for _ in range(size >> 20):
                if self.standin._stop.is_set():
                    return
                self.wfile.write(block)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up
            pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        mode = self.standin.mode
        gzipped = mode == "bomb" and content_type == "text/html"
        if gzipped:
            body = _gzip_bomb(self.standin.bomb_bytes)
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if gzipped:
                self.send_header("Content-Encoding", "gzip")
            self.end_headers()
            if mode == "trickle":  # a service answering one byte at a time
                for i in range(len(body)):
                    if self.standin._stop.wait(self.standin.trickle_s):
                        return
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
            else:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (time-out tests)
            pass


@functools.lru_cache(maxsize=2)
def _gzip_bomb(size: int) -> bytes:
    """A small gzip body that expands to ``size`` bytes of zeros."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as f:
        block = bytes(1 << 20)
        for _ in range(size >> 20):
            f.write(block)
    return out.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--data", type=Path, default=None, help="shared data folder (default: config)")
    args = parser.parse_args(argv)
    standin = SkyViewStandIn(args.data, port=args.port)
    try:
        standin.start()
    except OSError as exc:
        raise SystemExit(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror} (try another --port)") from None
    try:
        files, _ = real_files(standin.data_dir)
        print(f"SkyView stand-in serving {len(files)} real FIRST files from {standin.data_dir}")
        print(f"EXPLORER_SKYVIEW_URL={standin.url}", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()


if __name__ == "__main__":
    main()
