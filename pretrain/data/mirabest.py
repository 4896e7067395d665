"""Find the MiraBest FITS files, the app's default data set, or download them once.

Where the files are looked for, in order:

1. the folder named by the environment variable ``EXPLORER_MIRABEST_DIR``;
2. ``SHARED_DATA_DIR/mirabest`` (``../shared/data/mirabest`` beside the checkout);
3. a complete download in the user's cache (``cache_dir()/mirabest-<short commit>``);
4. otherwise, if allowed, the ``FITS/`` folder of the public MiraBest repository
   (github.com/fmporter/MiraBest, Porter & Scaife 2023, CC BY 4.0) at a pinned commit is
   downloaded into that cache folder.

The download lists the folder through GitHub's git trees API (path, size and git blob
SHA-1 of every file), fetches each file from its raw URL and checks its size and SHA-1
before it takes its final name (``name.part`` -> ``name``). A re-run skips the files
already verified and resumes a partial ``.part`` with an HTTP Range request. A manifest,
written last, marks the folder as complete.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

import requests

from pretrain import config
from pretrain.clock import utc_timestamp
from pretrain.errors import DatasetNotFoundError, DownloadError
from pretrain.files import FITS_SUFFIXES, atomic_write_json, is_fits_name

ProgressCallback = Callable[[int, int], None]  # (files done, files in total)

_CHUNK_BYTES = 1 << 14  # small: bytes already received survive a dropped connection
_HINT = (
    f"set {config.MIRABEST_DIR_ENV} to a local folder of MiraBest FITS files, "
    "or run `python -m pretrain download-mirabest` where the network is available"
)


@dataclass(frozen=True)
class RemoteFile:
    """One file of the repository's FITS folder, as the git trees API lists it."""

    name: str
    size: int
    git_sha: str  # git blob SHA-1: sha1(b"blob <size>\\0" + content)


# --- Finding the files ------------------------------------------------------------------


def find_mirabest(
    download: bool = True,
    progress: ProgressCallback | None = None,
    *,
    base_url: str | None = None,
    api_url: str | None = None,
) -> Path:
    """Return a folder of MiraBest FITS files, downloading them into the cache if needed.

    ``progress(done, total)`` is called as files arrive (the app feeds ``st.progress``).
    Raises DatasetNotFoundError when nothing is found and ``download`` is False, and
    DownloadError when the download fails.
    """
    local = find_local_mirabest()
    if local is not None:
        return local[0]
    cache = mirabest_cache_dir()
    if not download:
        state = (
            "a partial download is there; run `python -m pretrain download-mirabest` to finish it"
            if cache.exists()
            else "no download there yet"
        )
        raise DatasetNotFoundError(
            f"MiraBest FITS files not found: {config.MIRABEST_DIR_ENV} is not set, "
            f"{config.SHARED_DATA_DIR / 'mirabest'} does not exist and the cache "
            f"{cache} is not complete ({state}). To fix it, {_HINT}."
        )
    return download_mirabest(cache, progress=progress, base_url=base_url, api_url=api_url)


def find_local_mirabest() -> tuple[Path, str] | None:
    """The folder of MiraBest files already on this machine and where it came from, or None.

    A folder named by ``EXPLORER_MIRABEST_DIR`` that holds no FITS files is an error
    (the user asked for it), not a reason to look elsewhere.
    """
    named = os.environ.get(config.MIRABEST_DIR_ENV)
    if named:
        folder = Path(named).expanduser()
        if not folder.is_dir():
            raise DatasetNotFoundError(
                f"{config.MIRABEST_DIR_ENV}={named} is not a folder. Point it at a folder "
                f"of MiraBest FITS files, or unset it to use the download."
            )
        if not _has_fits(folder):
            raise DatasetNotFoundError(
                f"{config.MIRABEST_DIR_ENV}={named} holds no FITS files "
                f"({', '.join(FITS_SUFFIXES)}). Point it at the MiraBest FITS folder."
            )
        return folder, f"the folder named by {config.MIRABEST_DIR_ENV}"
    shared = config.SHARED_DATA_DIR / "mirabest"
    if shared.is_dir() and _has_fits(shared):
        return shared, "the shared data folder"
    cache = mirabest_cache_dir()
    if is_complete(cache):
        return cache, "the download cache"
    return None


def mirabest_cache_dir(commit: str | None = None) -> Path:
    """The cache folder of a download of ``commit`` (default: the pinned commit)."""
    commit = commit or config.MIRABEST_COMMIT
    return config.cache_dir() / f"mirabest-{commit[:7]}"


def is_complete(folder: Path, commit: str | None = None) -> bool:
    """True when ``folder`` holds a manifest of ``commit`` and every file it lists, at its size.

    Checking sizes (not checksums) keeps this fast: every file was verified when it arrived.
    """
    commit = commit or config.MIRABEST_COMMIT
    try:
        manifest = json.loads((folder / config.MIRABEST_MANIFEST).read_text())
        if manifest["commit"] != commit:
            return False
        return all((folder / f["name"]).stat().st_size == f["size"] for f in manifest["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _has_fits(folder: Path) -> bool:
    return any(is_fits_name(p.name) for p in folder.iterdir() if p.is_file())


# --- Downloading ------------------------------------------------------------------------


def download_mirabest(
    dest: Path | str | None = None,
    *,
    base_url: str | None = None,
    api_url: str | None = None,
    commit: str | None = None,
    expected_count: int | None = None,
    progress: ProgressCallback | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    backoff: float | None = None,
    workers: int | None = None,
) -> Path:
    """Download the pinned MiraBest FITS folder into ``dest`` (default: the cache); return it.

    Files already there and verified are kept; the rest are fetched, verified and renamed
    into place. A file that still fails after ``retries`` is named in the DownloadError
    raised at the end; every verified file stays, so the next call fetches only what is
    missing. Defaults come from ``pretrain.config``.
    """
    commit = commit or config.MIRABEST_COMMIT
    dest = Path(dest) if dest is not None else mirabest_cache_dir(commit)
    base_url = (base_url or config.MIRABEST_REPO_URL).rstrip("/")
    api_url = (api_url or config.MIRABEST_API_URL).rstrip("/")
    expected_count = config.MIRABEST_FILE_COUNT if expected_count is None else expected_count
    policy = _Policy(
        timeout=config.MIRABEST_TIMEOUT_S if timeout is None else timeout,
        retries=config.MIRABEST_RETRIES if retries is None else retries,
        backoff=config.MIRABEST_BACKOFF_S if backoff is None else backoff,
    )
    workers = workers or config.MIRABEST_WORKERS

    files = list_remote_files(api_url, commit, policy=policy)
    if len(files) != expected_count:
        warnings.warn(
            f"The MiraBest listing at commit {commit[:7]} has {len(files)} FITS files, "
            f"not the {expected_count} expected: the data set differs from the one this "
            f"project was built for.",
            stacklevel=2,
        )
    dest.mkdir(parents=True, exist_ok=True)

    todo = [f for f in files if not _verified_copy(dest / f.name, f)]
    done, total = len(files) - len(todo), len(files)
    if progress:
        progress(done, total)
    failures: dict[str, str] = {}
    # Threads, because each small file costs mostly round-trip latency.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(_fetch_file, f, dest, _raw_url(base_url, commit, f.name), policy): f for f in todo}
        try:
            for future in as_completed(futures):
                try:
                    future.result()
                except _FileFailed as exc:
                    failures[futures[future].name] = exc.reason
                done += 1
                if progress:
                    progress(done, total)
        except BaseException:  # Ctrl-C or a callback's error: stop queued files, keep the rest
            pool.shutdown(wait=True, cancel_futures=True)
            raise

    if failures:
        listed = "; ".join(f"{config.MIRABEST_FITS_FOLDER}/{name}: {why}" for name, why in sorted(failures.items()))
        raise DownloadError(
            f"{len(failures)} of {total} MiraBest files could not be downloaded and verified "
            f"after {policy.retries + 1} attempts each: {listed}. The {total - len(failures)} "
            f"verified files are kept in {dest}; run the same command again to fetch only "
            f"the missing ones, or {_HINT}."
        )
    _write_manifest(dest, files, commit, base_url)
    return dest


@dataclass(frozen=True)
class _Policy:
    timeout: float
    retries: int
    backoff: float

    def wait(self, attempt: int) -> None:
        """Sleep before ``attempt`` (0 = the first: no wait); exponential back-off."""
        if attempt:
            time.sleep(self.backoff * 2 ** (attempt - 1))


def list_remote_files(api_url: str, commit: str, *, policy: _Policy | None = None) -> list[RemoteFile]:
    """The FITS files of the repository's FITS folder at ``commit`` (git trees API), by name."""
    policy = policy or _Policy(config.MIRABEST_TIMEOUT_S, config.MIRABEST_RETRIES, config.MIRABEST_BACKOFF_S)
    url = f"{api_url}/git/trees/{commit}"
    reply = None
    last_error = ""
    for attempt in range(policy.retries + 1):
        policy.wait(attempt)
        try:
            reply = requests.get(
                url,
                params={"recursive": "1"},
                timeout=policy.timeout,
                headers={"Accept": "application/vnd.github+json"},
                stream=True,  # read below with a size cap and a deadline
            )
        except requests.RequestException as exc:
            last_error = f"no answer: {type(exc).__name__}; no network, or the server is down"
            continue
        if reply.status_code == 200:
            break
        if _rate_limited(reply):
            raise DownloadError(
                f"GitHub refused to list the MiraBest files: API rate limit reached (resets "
                f"at {_reset_time(reply)}). Try again later, or {_HINT}."
            )
        if reply.status_code in (404, 422):
            raise DownloadError(
                f"GitHub has no commit {commit} in the MiraBest repository ({url} answered "
                f"{reply.status_code}). Check MIRABEST_COMMIT in pretrain/config.py, or {_HINT}."
            )
        last_error = f"HTTP {reply.status_code}"
        if not _retryable(reply.status_code):
            break
        reply = None
    if reply is None or reply.status_code != 200:
        raise DownloadError(
            f"Could not list the MiraBest files at {url} ({last_error}) after "
            f"{attempt + 1} attempt(s). To fix it, {_HINT}."
        )
    try:
        tree = json.loads(_bounded_body(reply, url))
        entries = tree["tree"]
    except (ValueError, KeyError, TypeError):
        raise DownloadError(
            f"{url} did not answer with a git tree listing (not JSON of the expected shape). To fix it, {_HINT}."
        ) from None
    if tree.get("truncated"):
        raise DownloadError(
            f"GitHub truncated the listing of {url}; the files cannot all be "
            f"found this way. {_HINT[0].upper()}{_HINT[1:]}."
        )
    return _fits_entries(entries)


def _arriving(reply: requests.Response) -> Iterator[bytes]:
    """The body in pieces as they arrive: ``read1`` returns as soon as any bytes are there
    (``iter_content`` waits for a whole chunk), so a deadline is checked however slowly they come."""
    import urllib3

    while True:
        try:
            chunk = reply.raw.read1(_CHUNK_BYTES, decode_content=True)
        except urllib3.exceptions.HTTPError as exc:  # as iter_content would: a requests error
            raise requests.ConnectionError(f"the connection broke off ({type(exc).__name__})") from exc
        if not chunk:
            return
        yield chunk


def _bounded_body(reply: requests.Response, url: str) -> bytes:
    """The answer's body, refused past ``MIRABEST_LISTING_MAX_BYTES`` or ``MIRABEST_FILE_DEADLINE_S``."""
    limit, deadline = config.MIRABEST_LISTING_MAX_BYTES, time.monotonic() + config.MIRABEST_FILE_DEADLINE_S
    body = bytearray()
    try:
        for chunk in _arriving(reply):
            body += chunk
            if len(body) > limit:
                raise DownloadError(f"{url} sent more than {limit / 1024**2:.0f} MB for the file listing; {_HINT}.")
            if time.monotonic() > deadline:
                raise DownloadError(
                    f"{url} sent the file listing too slowly ({len(body)} bytes in "
                    f"{config.MIRABEST_FILE_DEADLINE_S:.0f} s); {_HINT}."
                )
    except requests.RequestException as exc:
        raise DownloadError(f"the listing from {url} broke off ({type(exc).__name__}); {_HINT}.") from exc
    finally:
        reply.close()
    return bytes(body)


def _fits_entries(entries: list[dict]) -> list[RemoteFile]:
    prefix = config.MIRABEST_FITS_FOLDER + "/"
    files = []
    for entry in entries:
        path = entry.get("path", "")
        name = path[len(prefix) :]
        # Only plain files directly in FITS/: a name with a slash could escape the folder.
        if (
            entry.get("type") == "blob"
            and path.startswith(prefix)
            and name
            and "/" not in name
            and "\\" not in name
            and not name.startswith(".")
            and is_fits_name(name)
        ):
            files.append(RemoteFile(name=name, size=int(entry["size"]), git_sha=entry["sha"]))
    return sorted(files, key=lambda f: f.name)


def git_blob_sha1(data: bytes) -> str:
    """The SHA-1 git gives a file's content (its blob id)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _verification_problem(path: Path, expected: RemoteFile) -> str | None:
    """Why ``path`` is not the expected file, or None when size and git SHA-1 match."""
    data = path.read_bytes()
    if len(data) != expected.size:
        return f"got {len(data)} bytes, expected {expected.size}"
    sha = git_blob_sha1(data)
    if sha != expected.git_sha:
        return f"git blob SHA-1 is {sha}, expected {expected.git_sha} (corrupted in transit)"
    return None


def _verified_copy(path: Path, expected: RemoteFile) -> bool:
    """True when a final file is already there and verifies; a bad one is removed."""
    if not path.is_file():
        return False
    if _verification_problem(path, expected) is None:
        return True
    path.unlink()
    return False


class _FileFailed(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


_local = threading.local()


def _session() -> requests.Session:
    """One session per worker thread (sessions are not thread-safe; they keep connections)."""
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session


def _raw_url(base_url: str, commit: str, name: str) -> str:
    return f"{base_url}/{commit}/{config.MIRABEST_FITS_FOLDER}/{quote(name, safe='+')}"


def _fetch_file(expected: RemoteFile, dest: Path, url: str, policy: _Policy) -> None:
    """Fetch one file into ``name.part``, verify it and rename it; raise _FileFailed."""
    part = dest / (expected.name + ".part")
    reason = ""
    for attempt in range(policy.retries + 1):
        policy.wait(attempt)
        try:
            _fetch_into_part(url, part, expected.size, policy.timeout)
        except _Fatal as exc:
            raise _FileFailed(str(exc)) from None
        except (requests.RequestException, _Retry) as exc:
            reason = str(exc) if isinstance(exc, _Retry) else f"{type(exc).__name__}: {exc}"
            continue  # keep the partial bytes: the next attempt resumes from them
        problem = _verification_problem(part, expected)
        if problem is None:
            os.replace(part, dest / expected.name)  # atomic: a final name is always whole
            return
        part.unlink()  # bad bytes somewhere: start this file again
        reason = problem
    raise _FileFailed(reason)


class _Retry(Exception):
    """A failure worth another attempt (server error, short or over-long answer)."""


class _Fatal(Exception):
    """A failure no retry will fix (e.g. 404)."""


def _fetch_into_part(url: str, part: Path, size: int, timeout: float) -> None:
    """Bring ``part`` to ``size`` bytes, resuming with a Range request where it can."""
    have = part.stat().st_size if part.exists() else 0
    if have >= size:
        if have == size:
            return  # complete already; the caller verifies it
        part.unlink()
        have = 0
    # identity: a Range must count bytes of the file itself, not of a gzip stream.
    headers = {"Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    with _session().get(url, headers=headers, stream=True, timeout=timeout) as reply:
        if reply.status_code == 206 and _range_start(reply) == have:
            mode = "ab"
        elif reply.status_code == 200:
            mode = "wb"  # no Range support (or a fresh start): the whole file again
        elif reply.status_code == 416:
            part.unlink(missing_ok=True)
            raise _Retry("the server refused to resume the partial file (HTTP 416)")
        elif _retryable(reply.status_code):
            raise _Retry(f"HTTP {reply.status_code} from {url}")
        else:
            raise _Fatal(f"HTTP {reply.status_code} from {url}")
        deadline = time.monotonic() + config.MIRABEST_FILE_DEADLINE_S
        with open(part, mode) as out:
            for chunk in _arriving(reply):
                out.write(chunk)
                if out.tell() > size:  # bounded: never store more than the file's size
                    raise _Retry(f"the server sent more than the listed {size} bytes")
                if time.monotonic() > deadline:  # what arrived is kept: the next attempt resumes
                    raise _Retry(
                        f"too slow: {out.tell()} of {size} bytes after {config.MIRABEST_FILE_DEADLINE_S:.0f} s"
                    )
    if part.stat().st_size < size:
        raise _Retry(f"the connection ended after {part.stat().st_size} of {size} bytes")


def _range_start(reply: requests.Response) -> int | None:
    """First byte of a 206 answer, from ``Content-Range: bytes START-END/TOTAL``."""
    value = reply.headers.get("Content-Range", "")
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _retryable(status: int) -> bool:
    return status in (408, 429) or status >= 500


def _rate_limited(reply: requests.Response) -> bool:
    return reply.status_code in (403, 429) and reply.headers.get("X-RateLimit-Remaining") == "0"


def _reset_time(reply: requests.Response) -> str:
    try:
        reset = int(reply.headers["X-RateLimit-Reset"])
    except (KeyError, ValueError):
        return "an unknown time"
    return dt.datetime.fromtimestamp(reset, dt.timezone.utc).strftime("%H:%M UTC")


def _write_manifest(dest: Path, files: list[RemoteFile], commit: str, base_url: str) -> None:
    """Record what was downloaded, from where; written last, atomically: marks completion."""
    manifest = {
        "dataset": "MiraBest (Porter & Scaife 2023), doi:10.5281/zenodo.4288837, CC BY 4.0",
        "repository": "https://github.com/fmporter/MiraBest",
        "commit": commit,
        "folder": config.MIRABEST_FITS_FOLDER,
        "source_url": base_url,
        "completed_utc": utc_timestamp(),
        "count": len(files),
        "files": [asdict(f) for f in files],
    }
    atomic_write_json(dest / config.MIRABEST_MANIFEST, manifest)
