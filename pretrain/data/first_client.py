"""Survey cutouts (VLA FIRST by default) from NASA SkyView, by position or object name, cached on disk.

Make a client with :func:`cutout_client` (``survey``: a key of ``pretrain.surveys``; a
survey that SkyView does not serve is refused there, at once). The protocol is
astroquery's :class:`~astroquery.skyview.SkyViewClass`: fetch SkyView's query form,
submit it, find the ``FITS`` link in the result page, download the file.
:class:`FirstCutoutClient` adds what an interactive tool needs around it:

- one base URL (``config.SKYVIEW_URL``, env ``EXPLORER_SKYVIEW_URL``) — the only thing
  that differs between production and the tests' stand-in server on 127.0.0.1;
- the survey's profile (``pretrain/surveys.py``): its SkyView name, its pixel, and its
  declination limits (a position outside them is refused without a network call);
- a time-out per request and a total time budget per look-up, retries with exponential
  back-off for transient failures (no answer, refused connection, HTTP 5xx);
- an on-disk cache keyed by (service URL, survey, rounded position or name, pixels, pixel
  scale): a repeated request makes no network call; entries are written atomically, so an
  interrupted download never leaves a broken entry. An entry is used only when it is a
  plain file written by this user, or by a member of the group of a shared cache folder
  (``chmod g+ws``, see :mod:`pretrain.files`); a link, a folder or another user's file
  planted in a private cache is ignored and the cutout fetched again. A damaged entry is
  fetched again; one that cannot be replaced leaves the look-up working, uncached;
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
import stat
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
from pretrain.files import is_shared_folder, make_dirs, set_file_mode
from pretrain.surveys import DEFAULT_SURVEY, Survey
from pretrain.surveys import survey as survey_profile

MAX_PIXELS = 5000  # SkyView's own limit is of this order; larger is surely a typo
RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}
# What SkyView's page says when its resolvers (SIMBAD, NED) do not know a name.
_UNRESOLVED = re.compile(
    r"resolv|unable to (find|parse|convert|interpret)|could not (find|parse|convert)|"
    r"not (be )?found|unknown (object|source|name)|no such object",
    re.I,
)
FOOTPRINT_HINT = survey_profile("first").footprint  # each survey's is in its profile
_FIRST_SKYVIEW_NAME: str = survey_profile("first").skyview_survey or ""


@dataclass(frozen=True)
class CutoutRequest:
    """One cutout: a position or a name, its size in pixels and its pixel scale."""

    position: SkyCoord | None
    name: str | None
    pixels: int
    pixel_scale_arcsec: float
    survey: str = _FIRST_SKYVIEW_NAME  # the survey's name at SkyView
    survey_key: str = DEFAULT_SURVEY  # its key in pretrain.surveys (the cache file's prefix)
    service: str = ""  # the service's URL: a stand-in's answers are never another service's cache entries

    def describe(self) -> str:
        return f"'{self.name}'" if self.name is not None else f"position {format_position(self.position)}"

    def _position(self) -> SkyCoord:
        if self.position is None:
            raise PositionError("this request is for a name, not a position.")
        return self.position.icrs

    def cache_key(self) -> str:
        if self.name is not None:
            where = "name:" + " ".join(self.name.split()).casefold()
        else:
            d = config.CUTOUT_CACHE_POSITION_DECIMALS
            c = self._position()
            where = f"pos:{c.ra.deg:.{d}f}{c.dec.deg:+.{d}f}"
        key = f"{self.survey}|{where}|{self.pixels}|{self.pixel_scale_arcsec:.4f}"
        return f"{self.service}|{key}" if self.service else key

    def cache_file_name(self) -> str:
        # Readable prefix (for people browsing the cache) + hash of the full key (uniqueness).
        digest = hashlib.sha1(self.cache_key().encode()).hexdigest()[:12]
        if self.name is not None:
            where = re.sub(r"[^A-Za-z0-9+.-]+", "_", self.name.strip())[:40]
        else:
            c = self._position()
            where = f"{c.ra.deg:08.4f}{c.dec.deg:+08.4f}"
        return f"{self.survey_key}_{where}_{self.pixels}px_{self.pixel_scale_arcsec:.2f}as_{digest}.fits"

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

    def __init__(self, url: str, timeout_s: float, survey_name: str = "FIRST"):
        super().__init__()
        self.URL = url
        self.timeout_s = timeout_s
        self.survey_name = survey_name
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
        if kwargs.get("stream") or kwargs.get("save"):
            return super()._request(method, url, **kwargs)
        # pages too: streamed, so that a trickle or a gzip bomb is stopped while it arrives
        response = super()._request(method, url, **{**kwargs, "stream": True})
        try:
            response._content = self.read_capped(response, config.SKYVIEW_PAGE_MAX_BYTES, url, "page")
        finally:
            response.close()
        return response

    def read_capped(self, response: requests.Response, max_bytes: int, url: str, what: str) -> bytes:
        """The body, refused once it passes ``max_bytes`` (decoded) or the look-up's deadline.

        ``read1`` returns as soon as any bytes arrive, so the deadline is checked however
        slowly they come (the socket time-out restarts with every byte); small reads bound
        what one compressed chunk can expand to."""
        chunks, total = [], 0
        while True:
            chunk = response.raw.read1(1 << 14, decode_content=True)
            if not chunk:
                break
            total += len(chunk)
            if total > max_bytes:
                raise CutoutServiceError(
                    f"The cutout service sent more than {max_bytes // 1024**2} MB for one {what} "
                    f"({url}); that is not a {self.survey_name} {what}. Try again later or check the service URL."
                )
            self.time_left()  # raises requests.Timeout once the budget is spent
            chunks.append(chunk)
        return b"".join(chunks)

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
            return self.read_capped(response, max_bytes, url, "cutout")
        finally:
            response.close()


class FirstCutoutClient:
    """A survey's cutouts (VLA FIRST by default) from SkyView, validated and cached on disk.

    Make one with :func:`cutout_client`. ``survey`` is a key (or profile) of
    ``pretrain.surveys``; one that SkyView does not serve raises :class:`CutoutServiceError`.
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
        survey: str | Survey = DEFAULT_SURVEY,
    ):
        self.survey = survey_profile(survey)
        if self.survey.skyview_survey is None:
            raise CutoutServiceError(
                f"{self.survey.name} has no cutout service this tool can use: NASA SkyView does not serve "
                f"{self.survey.title}. Use FITS cutouts of it from its own archive instead (e.g. "
                f"`python -m pretrain bundle --fits DIR --survey {self.survey.key}`, or upload a file)."
            )
        self.skyview_survey: str = self.survey.skyview_survey
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
        self._skyview = _SkyView(self.base_url, self.timeout_s, self.survey.name)
        self._lock = threading.Lock()  # one look-up at a time: a requests.Session is not thread-safe

    # --- public API ---------------------------------------------------------------------
    @property
    def default_pixels(self) -> int:
        """A cutout's side by default: 9 arcmin of the survey's pixels (FIRST: 300, as the MiraBest files)."""
        return max(1, round(config.CUTOUT_FIELD_ARCSEC / self.survey.pixel_scale_arcsec))

    def fetch(
        self,
        position: SkyCoord | str | None = None,
        *,
        name: str | None = None,
        pixels: int | None = None,
        pixel_scale_arcsec: float | None = None,
    ) -> Cutout:
        """The validated cutout (``source`` is its file in the cache).

        ``pixels`` and ``pixel_scale_arcsec`` default to :attr:`default_pixels` and the survey's pixel.
        """
        return self._fetch(self.request(position, name=name, pixels=pixels, pixel_scale_arcsec=pixel_scale_arcsec))[1]

    def fetch_path(
        self,
        position: SkyCoord | str | None = None,
        *,
        name: str | None = None,
        pixels: int | None = None,
        pixel_scale_arcsec: float | None = None,
    ) -> Path:
        """The validated cutout's FITS file in the cache (SkyView's bytes, unchanged)."""
        request = self.request(position, name=name, pixels=pixels, pixel_scale_arcsec=pixel_scale_arcsec)
        path = self._fetch(request)[0]
        if path is None:
            raise CutoutServiceError(
                f"The cutout for {request.describe()} was fetched but cannot be written to the cache "
                f"({self.cache_path(request)}): remove what is in its place, or set EXPLORER_CACHE to a "
                "folder you can write."
            )
        return path

    def cache_path(self, request: CutoutRequest) -> Path:
        return self.cache_dir / request.cache_file_name()

    def request(
        self,
        position: SkyCoord | str | None = None,
        *,
        name: str | None = None,
        pixels: int | None = None,
        pixel_scale_arcsec: float | None = None,
    ) -> CutoutRequest:
        """Check the arguments of a look-up (exactly one of position and name) for this client's survey."""
        pixels = self.default_pixels if pixels is None else pixels
        pixel_scale_arcsec = self.survey.pixel_scale_arcsec if pixel_scale_arcsec is None else pixel_scale_arcsec
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
            survey=self.skyview_survey,
            survey_key=self.survey.key,
            service=self.base_url,
        )

    def check_footprint(self, request: CutoutRequest) -> None:
        """Refuse, without a network call, a position outside the survey's declination limits."""
        survey = self.survey
        if request.position is not None and not survey.covers_dec(request.position.dec.deg):
            where = request.describe()
            south = request.position.dec.deg < survey.dec_min_deg
            limit = survey.dec_min_deg if south else survey.dec_max_deg
            raise OutsideFootprintError(
                f"{where[0].upper()}{where[1:]} lies outside the {survey.name} survey footprint: {survey.name} "
                f"observed nothing {'south' if south else 'north'} of Dec {limit:+.0f} deg. {survey.footprint}."
            )

    # --- the look-up --------------------------------------------------------------------
    def cached(self, request: CutoutRequest) -> Cutout | None:
        """The cache's entry for a request, when there is a usable one (no network call)."""
        path = self.cache_path(request)
        if not _trusted_entry(path):
            return None
        try:
            return self._validate(read_cutout(path), request)
        except ExplorerError:
            return None  # damaged: fetched again, and replaced

    def _fetch(self, request: CutoutRequest) -> tuple[Path | None, Cutout]:
        self.check_footprint(request)
        path = self.cache_path(request)
        cutout = self.cached(request)
        if cutout is not None:
            return path, cutout
        with self._lock:
            raw = self._download(request)
        cutout = self._validate_bytes(raw, request)
        try:
            make_dirs(self.cache_dir)
            _write_atomically(path, raw)
        except OSError as exc:  # a folder in its place, a cache another user owns, a full disk
            warnings.warn(f"the cutout was not cached: cannot write {path} ({exc.strerror or exc})", stacklevel=2)
            return None, cutout
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
                f"The {self.survey.name} cutout service ({self.host}) did not send a valid FITS image for "
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
            f"{where[0].upper()}{where[1:]} lies outside the {self.survey.name} survey footprint: SkyView "
            f"returned a blank image there. {self.survey.footprint}."
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
                f"No answer from the {self.survey.name} cutout service ({self.host}) for {request.describe()} "
                f"within the time-out ({tried}). There is no network, or the service is down or "
                "very slow: try again later, or upload a local FITS file instead."
            )
        if last.kind in ("dns", "connection"):
            why = "its host name could not be resolved (DNS failure)" if last.kind == "dns" else "the connection failed"
            return NoNetworkError(
                f"Could not reach the {self.survey.name} cutout service ({self.host}): {why} ({tried}). "
                "There seems to be no network connection: check it and try again, or upload "
                "a local FITS file instead."
            )
        if last.kind == "http":
            return CutoutServiceError(
                f"The {self.survey.name} cutout service ({self.host}) answered {last.detail} for "
                f"{request.describe()} ({tried}). It may be down or overloaded: try again later, "
                "or upload a local FITS file instead."
            )
        return CutoutServiceError(  # "interrupted"
            f"The download from the {self.survey.name} cutout service ({self.host}) broke off for "
            f"{request.describe()} ({tried}: {last.detail}). Try again later."
        )


def cutout_client(
    survey: str | Survey | None = DEFAULT_SURVEY, base_url: str | None = None, **settings
) -> FirstCutoutClient:
    """The one way to make a cutout client: ``survey``'s cutouts (a key of ``pretrain.surveys``).

    ``base_url``: SkyView's query-form URL; default ``EXPLORER_SKYVIEW_URL`` (read now, not at
    import), else ``config.SKYVIEW_URL``. ``settings``: :class:`FirstCutoutClient`'s
    ``cache_dir``, ``timeout_s``, ``retries``, ``backoff_s``, ``total_timeout_s``. A survey that
    SkyView does not serve raises :class:`~pretrain.errors.CutoutServiceError` here, at once.
    """
    return FirstCutoutClient(
        base_url=base_url or os.environ.get("EXPLORER_SKYVIEW_URL") or None,
        survey=survey_profile(survey),
        **settings,
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
                f"The {self.client.survey.name} cutout service answered {detail} for {exc.response.url}. "
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
            # astroquery parsing a page that is not SkyView's form, or the survey not on offer.
            raise CutoutServiceError(
                f"The service at {self.client.base_url} did not answer like SkyView "
                f"({type(exc).__name__}: {exc}). Check the service URL (EXPLORER_SKYVIEW_URL "
                "or --base-url) and try again later."
            ) from exc
        return False


def _is_dns_failure(exc: BaseException) -> bool:
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, socket.gaierror) or "NameResolutionError" in repr(current):
            return True
        for arg in getattr(current, "args", ()):
            if isinstance(arg, BaseException) and _is_dns_failure(arg):
                return True
        current = current.__cause__ or current.__context__ or getattr(current, "reason", None)
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


def _trusted_entry(path: Path) -> bool:
    """Whether a cache entry may be read: a plain file (not a link, not a folder) written by
    this user, or by a member of the group of a shared cache folder."""
    try:
        info = os.lstat(path)
        folder = os.stat(path.parent)
    except OSError:
        return False
    if not stat.S_ISREG(info.st_mode):
        return False
    if info.st_uid == os.geteuid():
        return True
    return is_shared_folder(path.parent) and info.st_gid == folder.st_gid


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, then rename: readers never see half a file.
    The file gets the folder's mode (group-readable in a shared cache; mkstemp makes 0600)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".fits")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        set_file_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
