"""FIRST cutouts from NASA SkyView, by position or object name, cached on disk.

The protocol is astroquery's :class:`~astroquery.skyview.SkyViewClass`: fetch SkyView's
query form, submit it, find the ``FITS`` link in the result page, download the file.
:class:`FirstCutoutClient` adds what an interactive tool needs around it:

- one base URL (``config.SKYVIEW_URL``, env ``EXPLORER_SKYVIEW_URL``) — the only thing
  that differs between production and the tests' stand-in server on 127.0.0.1;
- a time-out per request and a total time budget per look-up, retries with exponential
  back-off for transient failures (no answer, refused connection, HTTP 5xx);
- an on-disk cache keyed by (survey, rounded position or name, pixels, pixel scale):
  a repeated request makes no network call; entries are written atomically, so an
  interrupted download never leaves a broken entry;
- validation of what came back (a readable FITS image, not an HTML page or a truncated
  file; the requested shape and pixel scale; centred on the requested position) and
  one clear :mod:`pretrain.errors` exception for each way it can fail.

Names are sent to SkyView as they are and resolved there (SIMBAD, then NED), as on
SkyView's own web form — astroquery would otherwise resolve them itself through CDS.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import socket
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import requests
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astroquery.skyview import SkyViewClass
from astroquery.skyview.core import parse_coordinates as skyview_position_string
from bs4 import BeautifulSoup

from pretrain import config
from pretrain.data.fits_io import Cutout, read_cutout
from pretrain.data.positions import format_position, parse_position
from pretrain.errors import (
    CutoutServiceError,
    ExplorerError,
    FitsReadError,
    NameResolveError,
    NoNetworkError,
    OutsideFootprintError,
    PositionError,
)

MAX_PIXELS = 5000  # SkyView's own limit is of this order; larger is surely a typo
RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}
# What SkyView's page says when its resolvers (SIMBAD, NED) do not know a name.
_UNRESOLVED = re.compile(
    r"resolv|unable to (find|parse|convert|interpret)|could not (find|parse|convert)|"
    r"not (be )?found|unknown (object|source|name)|no such object",
    re.I,
)
FOOTPRINT_HINT = (
    "FIRST covers about 10,000 square degrees of the northern sky (mostly the north Galactic "
    "cap at Dec > -10 deg, plus an equatorial strip in the south Galactic cap); check the "
    "coverage map at https://sundog.stsci.edu or choose a position inside it"
)


@dataclass(frozen=True)
class CutoutRequest:
    """One cutout: a position or a name, its size in pixels and its pixel scale."""

    position: SkyCoord | None
    name: str | None
    pixels: int
    pixel_scale_arcsec: float
    survey: str = config.FIRST_SURVEY

    def describe(self) -> str:
        return f"'{self.name}'" if self.name is not None else f"position {format_position(self.position)}"

    def cache_key(self) -> str:
        if self.name is not None:
            where = "name:" + " ".join(self.name.split()).casefold()
        else:
            d = config.CUTOUT_CACHE_POSITION_DECIMALS
            c = self.position.icrs
            where = f"pos:{c.ra.deg:.{d}f}{c.dec.deg:+.{d}f}"
        return f"{self.survey}|{where}|{self.pixels}|{self.pixel_scale_arcsec:.4f}"

    def cache_file_name(self) -> str:
        # Readable prefix (for people browsing the cache) + hash of the full key (uniqueness).
        digest = hashlib.sha1(self.cache_key().encode()).hexdigest()[:12]
        if self.name is not None:
            where = re.sub(r"[^A-Za-z0-9+.-]+", "_", self.name.strip())[:40]
        else:
            c = self.position.icrs
            where = f"{c.ra.deg:08.4f}{c.dec.deg:+08.4f}"
        return f"first_{where}_{self.pixels}px_{self.pixel_scale_arcsec:.2f}as_{digest}.fits"

    def query_position(self) -> str:
        """The text for SkyView's Position field (astroquery's format for coordinates)."""
        return self.name if self.name is not None else skyview_position_string(self.position)

    @property
    def size_deg(self) -> float:
        return self.pixels * self.pixel_scale_arcsec / 3600.0


class _Transient(Exception):
    """A failure worth another attempt; ``kind`` says which (timeout, connection, ...)."""

    def __init__(self, kind: str, detail: str, status: int | None = None):
        super().__init__(detail)
        self.kind, self.detail, self.status = kind, detail, status


class _SkyView(SkyViewClass):
    """astroquery's SkyView protocol with our base URL, time-outs and no astroquery cache."""

    def __init__(self, url: str, timeout_s: float):
        super().__init__()
        self.URL = url
        self.timeout_s = timeout_s
        self.deadline: float | None = None  # time.monotonic() at which the look-up gives up

    def time_left(self) -> float:
        left = self.timeout_s
        if self.deadline is not None:
            left = min(left, self.deadline - time.monotonic())
        if left <= 0:
            raise requests.Timeout("the look-up's time budget is spent")
        return left

    def _request(self, method, url, **kwargs):
        # Every request astroquery makes comes through here: give it the time-out (at most
        # what is left of the budget) and keep astroquery's own response cache out of it,
        # which would otherwise also keep SkyView's error pages (astroquery issue #1915).
        kwargs["cache"] = False
        kwargs["timeout"] = self.time_left()
        return super()._request(method, url, **kwargs)

    def image_urls(self, request: CutoutRequest) -> tuple[list[str], requests.Response]:
        """Submit the query form; the FITS links of the result page, and the page."""
        self._validate_surveys(request.survey)
        size = str(request.size_deg)
        query = {  # the fields astroquery's get_image_list fills in
            "Position": request.query_position(),
            "survey": request.survey,
            "coordinates": "J2000",
            "projection": "Tan",
            "pixels": str(request.pixels),
            "imscale": size,
            "size": size,
        }
        response = self._submit_form(query, cache=False)
        return self._parse_response(response), response

    def download(self, url: str, max_bytes: int) -> bytes:
        response = self._request("GET", url, stream=True)
        try:
            response.raise_for_status()
            chunks, total = [], 0
            for chunk in response.iter_content(chunk_size=1 << 16):
                total += len(chunk)
                if total > max_bytes:
                    raise CutoutServiceError(
                        f"The cutout service sent more than {max_bytes // 1024**2} MB for one "
                        f"cutout ({url}); that is not a FIRST cutout."
                    )
                self.time_left()  # a trickling answer must not outlast the budget
                chunks.append(chunk)
        finally:
            response.close()
        return b"".join(chunks)


class FirstCutoutClient:
    """VLA FIRST cutouts from SkyView, validated and cached on disk.

    ``base_url`` is SkyView's query-form URL (default: env ``EXPLORER_SKYVIEW_URL``, else
    ``config.SKYVIEW_URL``); ``cache_dir`` defaults to ``config.cache_dir() / "cutouts"``;
    ``timeout_s`` applies to each request, ``total_timeout_s`` to a whole look-up with
    its retries; ``retries`` is the number of further attempts after the first, with
    waits ``backoff_s``, 2 ``backoff_s``, 4 ``backoff_s``, ...
    """

    def __init__(
        self,
        base_url: str | None = None,
        cache_dir: str | Path | None = None,
        timeout_s: float = config.CUTOUT_TIMEOUT_S,
        retries: int = config.CUTOUT_RETRIES,
        backoff_s: float = config.CUTOUT_BACKOFF_S,
        total_timeout_s: float = config.CUTOUT_TOTAL_TIMEOUT_S,
    ):
        # EXPLORER_SKYVIEW_URL is read now, not only at import, so a later setting counts.
        self.base_url = base_url or os.environ.get("EXPLORER_SKYVIEW_URL") or config.SKYVIEW_URL
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise CutoutServiceError(
                f"'{self.base_url}' is not a usable SkyView URL (expected http(s)://host/...); "
                "check EXPLORER_SKYVIEW_URL or --base-url."
            )
        self.host = parts.netloc
        self.cache_dir = Path(cache_dir) if cache_dir is not None else config.cache_dir() / "cutouts"
        self.timeout_s = float(timeout_s)
        self.retries = max(0, int(retries))
        self.backoff_s = max(0.0, float(backoff_s))
        self.total_timeout_s = float(total_timeout_s)
        self._skyview = _SkyView(self.base_url, self.timeout_s)
        self._lock = threading.Lock()  # one look-up at a time: a requests.Session is not thread-safe

    # --- public API ---------------------------------------------------------------------
    def fetch(
        self,
        position: SkyCoord | str | None = None,
        *,
        name: str | None = None,
        pixels: int = config.CUTOUT_PIXELS,
        pixel_scale_arcsec: float = config.FIRST_PIXEL_SCALE_ARCSEC,
    ) -> Cutout:
        """The validated cutout (``source`` is its file in the cache)."""
        return self._fetch(self.request(position, name=name, pixels=pixels, pixel_scale_arcsec=pixel_scale_arcsec))[1]

    def fetch_path(
        self,
        position: SkyCoord | str | None = None,
        *,
        name: str | None = None,
        pixels: int = config.CUTOUT_PIXELS,
        pixel_scale_arcsec: float = config.FIRST_PIXEL_SCALE_ARCSEC,
    ) -> Path:
        """The validated cutout's FITS file in the cache (SkyView's bytes, unchanged)."""
        return self._fetch(self.request(position, name=name, pixels=pixels, pixel_scale_arcsec=pixel_scale_arcsec))[0]

    def cache_path(self, request: CutoutRequest) -> Path:
        return self.cache_dir / request.cache_file_name()

    @staticmethod
    def request(
        position: SkyCoord | str | None = None,
        *,
        name: str | None = None,
        pixels: int = config.CUTOUT_PIXELS,
        pixel_scale_arcsec: float = config.FIRST_PIXEL_SCALE_ARCSEC,
    ) -> CutoutRequest:
        """Check the arguments of a look-up (exactly one of position and name)."""
        if isinstance(position, str):  # typed text: coordinates, else a name
            parsed = parse_position(position)
            if parsed is None and name is not None:
                raise PositionError(f"'{position}' is not a sky position, and a name was given too.")
            position, name = (parsed, name) if parsed is not None else (None, position)
        if (position is None) == (name is None or not str(name).strip()):
            raise PositionError("Give either a sky position or an object name to look up (exactly one).")
        if not (isinstance(pixels, (int, np.integer)) and 1 <= int(pixels) <= MAX_PIXELS):
            raise PositionError(f"pixels must be a whole number from 1 to {MAX_PIXELS}, not {pixels!r}.")
        if not (np.isfinite(pixel_scale_arcsec) and pixel_scale_arcsec > 0):
            raise PositionError(f"pixel scale must be a positive number of arcsec, not {pixel_scale_arcsec!r}.")
        if position is not None:
            position = position.icrs
        return CutoutRequest(
            position=position,
            name=None if name is None else " ".join(str(name).split()),
            pixels=int(pixels),
            pixel_scale_arcsec=float(pixel_scale_arcsec),
        )

    # --- the look-up --------------------------------------------------------------------
    def _fetch(self, request: CutoutRequest) -> tuple[Path, Cutout]:
        if request.position is not None and request.position.dec.deg < config.FIRST_DEC_MIN_DEG:
            where = request.describe()
            raise OutsideFootprintError(
                f"{where[0].upper()}{where[1:]} lies outside the FIRST survey footprint: FIRST observed "
                f"nothing south of Dec {config.FIRST_DEC_MIN_DEG:+.0f} deg. {FOOTPRINT_HINT}."
            )
        path = self.cache_path(request)
        if path.is_file():
            try:
                return path, self._validate(read_cutout(path), request)
            except ExplorerError:
                path.unlink(missing_ok=True)  # a damaged entry: fetch it again
        with self._lock:
            raw = self._download(request)
        cutout = self._validate_bytes(raw, request)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, raw)
        cutout.source = str(path)
        return path, cutout

    def _download(self, request: CutoutRequest) -> bytes:
        """SkyView's FITS bytes for a request, with retries and back-off within the budget."""
        start = time.monotonic()
        deadline = start + self.total_timeout_s
        self._skyview.deadline = deadline
        last: _Transient | None = None
        attempts = 0
        for attempt in range(self.retries + 1):  # bounded: 1 + retries attempts
            if attempt:
                wait = self.backoff_s * 2 ** (attempt - 1)
                if time.monotonic() + wait >= deadline:
                    break
                time.sleep(wait)
            attempts += 1
            try:
                return self._attempt(request)
            except _Transient as exc:
                last = exc
        raise self._give_up(request, last, attempts, time.monotonic() - start)

    def _attempt(self, request: CutoutRequest) -> bytes:
        with _translated_http_errors(self):
            urls, page = self._skyview.image_urls(request)
        if not urls:
            raise self._no_image(request, page)
        with _translated_http_errors(self):
            return self._skyview.download(urls[0], config.CUTOUT_MAX_BYTES)

    # --- judging what came back --------------------------------------------------------
    def _validate_bytes(self, raw: bytes, request: CutoutRequest) -> Cutout:
        try:
            cutout = read_cutout(raw, source=f"SkyView answer for {request.describe()}")
        except FitsReadError as exc:
            if _is_all_nan_image(raw):
                raise self._outside(request, None) from exc
            raise CutoutServiceError(
                f"The FIRST cutout service ({self.host}) did not send a valid FITS image for "
                f"{request.describe()}: {exc} Try again later; if this persists, the service "
                "is having problems (or upload a local FITS file instead)."
            ) from exc
        return self._validate(cutout, request)

    def _validate(self, cutout: Cutout, request: CutoutRequest) -> Cutout:
        finite = cutout.data[np.isfinite(cutout.data)]
        if finite.size == 0 or not np.any(finite != 0):
            raise self._outside(request, cutout.centre)
        expected = (request.pixels, request.pixels)
        if cutout.shape != expected:
            raise CutoutServiceError(
                f"SkyView sent a {cutout.shape[1]} x {cutout.shape[0]} image for "
                f"{request.describe()}, not the {expected[1]} x {expected[0]} requested."
            )
        if abs(cutout.pixel_scale_arcsec / request.pixel_scale_arcsec - 1) > 0.02:
            raise CutoutServiceError(
                f"SkyView sent an image with {cutout.pixel_scale_arcsec:.3f} arcsec pixels for "
                f"{request.describe()}, not the {request.pixel_scale_arcsec:.3f} arcsec requested."
            )
        if request.position is not None:
            offset = cutout.centre.separation(request.position).arcsec
            tolerance = max(config.CUTOUT_CENTRE_TOLERANCE_ARCSEC, 2 * request.pixel_scale_arcsec)
            if offset > tolerance:
                raise CutoutServiceError(
                    f"SkyView sent an image centred {offset:.1f} arcsec away from the requested "
                    f"{request.describe()} (at {format_position(cutout.centre)}); not using it."
                )
        return cutout

    # --- error messages -----------------------------------------------------------------
    def _outside(self, request: CutoutRequest, centre: SkyCoord | None) -> OutsideFootprintError:
        where = request.describe()
        if request.name is not None and centre is not None:
            where += f" (resolved to {format_position(centre)})"
        return OutsideFootprintError(
            f"{where[0].upper()}{where[1:]} lies outside the FIRST survey footprint: SkyView "
            f"returned a blank image there. {FOOTPRINT_HINT}."
        )

    def _no_image(self, request: CutoutRequest, page: requests.Response) -> CutoutServiceError:
        said = _page_message(page.content)
        if request.name is not None and _UNRESOLVED.search(said):
            return NameResolveError(
                f"SkyView could not resolve the name '{request.name}' to a sky position "
                f"(it said: \"{said}\"). Check the spelling (e.g. '3C 236', 'NGC 1265'), "
                "or give the position as RA and Dec."
            )
        return CutoutServiceError(
            f'SkyView returned no image for {request.describe()} (its page said: "{said}"). '
            "Try again later, or upload a local FITS file instead."
        )

    def _give_up(
        self, request: CutoutRequest, last: _Transient | None, attempts: int, elapsed: float
    ) -> CutoutServiceError:
        tried = f"{attempts} attempt{'s' if attempts != 1 else ''} in {elapsed:.1f} s"
        if last is None or last.kind == "timeout":
            return NoNetworkError(
                f"No answer from the FIRST cutout service ({self.host}) for {request.describe()} "
                f"within the time-out ({tried}). There is no network, or the service is down or "
                "very slow: try again later, or upload a local FITS file instead."
            )
        if last.kind in ("dns", "connection"):
            why = "its host name could not be resolved (DNS failure)" if last.kind == "dns" else "the connection failed"
            return NoNetworkError(
                f"Could not reach the FIRST cutout service ({self.host}): {why} ({tried}). "
                "There seems to be no network connection: check it and try again, or upload "
                "a local FITS file instead."
            )
        if last.kind == "http":
            return CutoutServiceError(
                f"The FIRST cutout service ({self.host}) answered {last.detail} for "
                f"{request.describe()} ({tried}). It may be down or overloaded: try again later, "
                "or upload a local FITS file instead."
            )
        return CutoutServiceError(  # "interrupted"
            f"The download from the FIRST cutout service ({self.host}) broke off for "
            f"{request.describe()} ({tried}: {last.detail}). Try again later."
        )


class _translated_http_errors:
    """Turn requests' and astroquery's exceptions into _Transient or CutoutServiceError."""

    def __init__(self, client: FirstCutoutClient):
        self.client = client

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or isinstance(exc, (ExplorerError, _Transient)):
            return False
        if isinstance(exc, requests.HTTPError) and exc.response is not None:
            status = exc.response.status_code
            detail = f"HTTP {status} {exc.response.reason or ''}".strip()
            if status in RETRY_STATUSES or (status == 404 and "tempspace" in exc.response.url):
                # SkyView's temporary files sometimes 404 briefly (astroquery #1915).
                raise _Transient("http", detail, status) from exc
            raise CutoutServiceError(
                f"The FIRST cutout service answered {detail} for {exc.response.url}. "
                "Check the service URL (EXPLORER_SKYVIEW_URL or --base-url) and try again later."
            ) from exc
        if isinstance(exc, requests.Timeout):  # before ConnectionError: ConnectTimeout is both
            raise _Transient("timeout", str(exc)) from exc
        if isinstance(exc, requests.ConnectionError):
            raise _Transient("dns" if _is_dns_failure(exc) else "connection", str(exc)) from exc
        if isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
            raise _Transient("interrupted", str(exc)) from exc
        if isinstance(exc, requests.RequestException):
            raise CutoutServiceError(
                f"Cannot request a cutout from {self.client.base_url}: {exc}. "
                "Check the service URL (EXPLORER_SKYVIEW_URL or --base-url)."
            ) from exc
        if isinstance(exc, (ValueError, AttributeError, TypeError, KeyError, IndexError)):
            # astroquery parsing a page that is not SkyView's form, or FIRST not on offer.
            raise CutoutServiceError(
                f"The service at {self.client.base_url} did not answer like SkyView "
                f"({type(exc).__name__}: {exc}). Check the service URL (EXPLORER_SKYVIEW_URL "
                "or --base-url) and try again later."
            ) from exc
        return False


def _is_dns_failure(exc: BaseException) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, socket.gaierror) or "NameResolutionError" in repr(exc):
            return True
        for arg in getattr(exc, "args", ()):
            if isinstance(arg, BaseException) and _is_dns_failure(arg):
                return True
        exc = exc.__cause__ or exc.__context__ or getattr(exc, "reason", None)
    return False


def _page_message(content: bytes, limit: int = 300) -> str:
    """The visible text of an HTML page, squeezed to one line (for error messages)."""
    try:
        soup = BeautifulSoup(content, "html.parser")
        for tag in soup(["script", "style", "head"]):
            tag.decompose()
        text = " ".join(soup.get_text(" ").split())
    except Exception:  # not HTML at all
        text = " ".join(content[:limit].decode("latin-1").split())
    match = re.search(rf"(error|unable|could not|cannot|not found).{{0,{limit}}}", text, re.I)
    text = match.group(0) if match else text
    return text[:limit] + ("..." if len(text) > limit else "") if text else "(an empty page)"


def _is_all_nan_image(raw: bytes) -> bool:
    """A well-formed FITS image with no finite pixel (a blank SkyView answer)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(io.BytesIO(raw), memmap=False) as hdul:
                for hdu in hdul:
                    if hdu.is_image and hdu.data is not None and hdu.data.ndim >= 2:
                        return not np.isfinite(hdu.data).any()
    except Exception:
        return False
    return False


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, then rename: readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".fits")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
