"""Writing files whole or not at all, content hashes, and which file names are FITS.

Torch-free and light to import: the app's start-up path and the training code share these.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

# Every spelling of a FITS file the project reads (fits_io reads them all; astropy
# decompresses .gz, and .fz files are tile-compressed HDUs).
FITS_SUFFIXES = (".fits", ".fits.fz", ".fits.gz", ".fit", ".fit.fz", ".fts")

_CHUNK_BYTES = 1 << 20


def is_fits_name(name: str) -> bool:
    """Whether a file name has one of the FITS suffixes (any case)."""
    return name.lower().endswith(FITS_SUFFIXES)


# --- atomic writes ------------------------------------------------------------------------


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` when the block
    ends without an error, removed when it raises.

    A reader (the app polling a run, a second process) sees the old file or the new one,
    never half of one. The temporary name is hidden and unique per writer, so two
    processes writing the same file do not share it.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_json(path: str | Path, data: Any, indent: int = 2) -> Path:
    """``data`` as indented JSON (numpy scalars and paths allowed), with a final newline."""
    return atomic_write_text(path, to_json(data, indent=indent) + "\n")


def to_json(data: Any, indent: int | None = None) -> str:
    """JSON text of ``data``; numpy scalars and arrays become numbers and lists, anything
    else JSON does not know (paths, ...) its ``str``."""
    return json.dumps(data, indent=indent, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


# --- hashes -------------------------------------------------------------------------------


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's content, read in chunks (a weights file need not fit twice)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()
