"""Writing files whole or not at all, content hashes, which file names are FITS, and
folders shared by several users.

Torch-free and light to import: the app's start-up path and the training code share these.

Shared folders: a cache or runs folder that its group may write (``chmod g+ws``) is shared.
Files written into it are group-readable and -writable and folders made in it are shared the
same way (group-writable, set-group-id so the group is inherited), so a second user can read
the first one's cutouts and runs and add their own; anywhere else files get what the umask
allows. What another user wrote is only ever read as data (:func:`written_by_someone_else`
tells the code that must not act on it, e.g. send a signal).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
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
        set_file_mode(tmp)
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


# --- folders shared by several users ------------------------------------------------------


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask would race with other threads)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def is_shared_folder(folder: str | Path) -> bool:
    """Whether ``folder`` is shared with its group (group-writable)."""
    try:
        return bool(Path(folder).stat().st_mode & stat.S_IWGRP)
    except OSError:
        return False


def file_mode(folder: str | Path) -> int:
    """The permission bits of a new file in ``folder``: the umask's, plus group read and
    write where the folder is shared."""
    mode = 0o666 & ~_umask()
    return mode | 0o660 if is_shared_folder(folder) else mode


def set_file_mode(path: str | Path) -> None:
    """Give a file written by this process the mode of a new file in its folder (tempfile
    makes 0600 files; a shared cache needs them group-readable). Best effort."""
    path = Path(path)
    try:
        os.chmod(path, file_mode(path.parent))
    except OSError:
        pass


def make_dirs(path: str | Path, exist_ok: bool = True) -> Path:
    """``mkdir -p``; every folder made inside a shared folder is shared too (group-writable,
    set-group-id). ``exist_ok=False``: the last folder must be new (FileExistsError)."""
    path = Path(path)
    missing = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    if not missing and not exist_ok:
        raise FileExistsError(path)
    for folder in reversed(missing):
        try:
            folder.mkdir(exist_ok=folder != path or exist_ok)
        except FileExistsError:
            if folder == path and not exist_ok:
                raise
            continue
        if is_shared_folder(folder.parent):
            try:
                os.chmod(folder, (0o777 & ~_umask()) | 0o770 | stat.S_ISGID)
            except OSError:
                pass
    if not path.is_dir():
        raise NotADirectoryError(path)
    return path


def written_by_someone_else(path: str | Path) -> bool:
    """Whether a file is owned by another user than this process's (or is a link, which
    anyone may plant): its content may be used as data, never acted on."""
    try:
        info = os.lstat(path)
    except OSError:
        return True
    return stat.S_ISLNK(info.st_mode) or info.st_uid != os.geteuid()
