"""A stand-in for GitHub on 127.0.0.1: the git trees API and raw file URLs of one commit.

It serves a folder of real files (read where they lie, never copied) the way GitHub serves
the MiraBest repository, so that the production download code runs unchanged with only
its base URLs pointed here:

- ``{api_url}/git/trees/{commit}?recursive=1`` -> ``{"sha", "url", "tree": [...],
  "truncated": false}`` with a ``type: blob`` entry (path, mode, sha = git blob SHA-1,
  size, url) for every file under ``FITS/``, plus the entries a real repository also has
  (the ``FITS`` tree itself, a README) that a client must skip;
- ``{raw_url}/{commit}/FITS/{name}`` -> the file's bytes, with HTTP Range support.

Fault modes for tests: ``drop_first`` (names whose first request is cut off half-way),
``corrupt`` (names served with one byte flipped; the listing keeps the true checksum),
``range_support`` (False: Range headers are ignored, the whole file comes back with 200),
``trickle`` (names whose bytes come one every ``trickle_delay_s``: a server that never
stops but never finishes), ``listing_padding`` (bytes of whitespace added to the listing: a
huge answer).
Every request is logged in ``requests`` as a ``Request(kind, name, range, status)``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

OWNER_REPO = "fmporter/MiraBest"
FOLDER = "FITS"


@dataclass(frozen=True)
class Request:
    kind: str  # "api" or "raw"
    name: str  # file name for "raw", tree id for "api"
    range: str | None  # the Range header as sent
    status: int


def git_blob_sha1(data: bytes) -> str:
    # Computed here independently of the code under test.
    return hashlib.sha1(b"blob " + str(len(data)).encode() + b"\0" + data).hexdigest()


class GitHubStandin:
    """Context manager: ``with GitHubStandin(files, commit) as gh: gh.api_url, gh.raw_url``."""

    def __init__(self, files: list[Path], commit: str):
        self.files = {Path(f).name: Path(f) for f in files}
        self.commit = commit
        self.drop_first: set[str] = set()
        self.corrupt: set[str] = set()
        self.range_support = True
        self.trickle: set[str] = set()
        self.trickle_delay_s = 0.05
        self.listing_padding = 0
        self.requests: list[Request] = []
        self._served: set[str] = set()  # names requested at least once
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # --- life cycle ---
    def __enter__(self) -> GitHubStandin:
        handler = type("Handler", (_Handler,), {"standin": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def root(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        """Like ``https://api.github.com/repos/fmporter/MiraBest``."""
        return f"{self.root}/api/repos/{OWNER_REPO}"

    @property
    def raw_url(self) -> str:
        """Like ``https://raw.githubusercontent.com/fmporter/MiraBest``."""
        return f"{self.root}/raw/{OWNER_REPO}"

    # --- what was asked ---
    def raw_requests(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.kind == "raw"]

    def api_requests(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.kind == "api"]

    # --- answers ---
    def tree(self) -> dict:
        entries = [
            {
                "path": "README.md",
                "mode": "100644",
                "type": "blob",
                "size": 12,
                "sha": git_blob_sha1(b"# MiraBest\n\n"),
                "url": f"{self.api_url}/git/blobs/readme",
            },
            {
                "path": FOLDER,
                "mode": "040000",
                "type": "tree",
                "sha": hashlib.sha1(b"tree").hexdigest(),
                "url": f"{self.api_url}/git/trees/fits",
            },
        ]
        for name, path in sorted(self.files.items()):
            data = path.read_bytes()
            sha = git_blob_sha1(data)
            entries.append(
                {
                    "path": f"{FOLDER}/{name}",
                    "mode": "100644",
                    "type": "blob",
                    "sha": sha,
                    "size": len(data),
                    "url": f"{self.api_url}/git/blobs/{sha}",
                }
            )
        tree_sha = hashlib.sha1(f"tree of {self.commit}".encode()).hexdigest()  # not the commit's
        return {"sha": tree_sha, "url": f"{self.api_url}/git/trees/{tree_sha}", "tree": entries, "truncated": False}

    def _log(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _first_time(self, name: str) -> bool:
        with self._lock:
            first = name not in self._served
            self._served.add(name)
            return first


class _Handler(BaseHTTPRequestHandler):
    standin: GitHubStandin
    protocol_version = "HTTP/1.1"  # keep-alive, as GitHub

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        gh = self.standin
        path = unquote(urlsplit(self.path).path)
        api_prefix = f"/api/repos/{OWNER_REPO}/git/trees/"
        raw_prefix = f"/raw/{OWNER_REPO}/{gh.commit}/{FOLDER}/"
        if path.startswith(api_prefix):
            tree_id = path[len(api_prefix) :]
            if tree_id != gh.commit:
                body = {
                    "message": "Not Found",
                    "documentation_url": "https://docs.github.com/rest/git/trees#get-a-tree",
                }
                return self._send_json(404, body, "api", tree_id)
            if gh.listing_padding:  # valid JSON, followed by a lot of whitespace
                body = json.dumps(gh.tree()).encode() + b" " * gh.listing_padding
                return self._send(200, body, "application/json; charset=utf-8", "api", tree_id)
            return self._send_json(200, gh.tree(), "api", tree_id)
        if path.startswith(raw_prefix) and path[len(raw_prefix) :] in gh.files:
            return self._send_file(path[len(raw_prefix) :])
        self._send(404, b"404: Not Found", "text/plain; charset=utf-8", "raw", path)

    def _send_json(self, status: int, body: dict, kind: str, name: str) -> None:
        self._send(status, json.dumps(body).encode(), "application/json; charset=utf-8", kind, name)

    def _send(self, status: int, body: bytes, content_type: str, kind: str, name: str) -> None:
        self.standin._log(Request(kind, name, self.headers.get("Range"), status))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_file(self, name: str) -> None:
        gh = self.standin
        data = gh.files[name].read_bytes()
        if name in gh.corrupt:
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
        drop = gh._first_time(name) and name in gh.drop_first
        wanted = self.headers.get("Range")
        start = 0
        if wanted and gh.range_support:
            try:
                start = int(wanted.removeprefix("bytes=").split("-")[0])
            except ValueError:
                start = -1
            if not 0 <= start < len(data):
                self.standin._log(Request("raw", name, wanted, 416))
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        status = 206 if start else 200
        body = data[start:]
        gh._log(Request("raw", name, wanted, status))
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes" if gh.range_support else "none")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if name in gh.trickle:  # a byte at a time, for as long as the client listens
            try:
                for i in range(len(body)):
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
                    time.sleep(gh.trickle_delay_s)
            except OSError:  # the client gave up
                self.close_connection = True
            return
        if drop:  # promise the whole body, send half, hang up
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)
