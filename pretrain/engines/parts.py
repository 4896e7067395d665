"""A resumable embedding job on disk: the bundle cut into chunks, one part file per chunk.

The folder (``SPACE/.embed-parts/`` while a distributed ``embed`` runs)::

    job.json          what the parts belong to (weights hash, bundle id, image count, chunk
                      size, batch size, symmetry) and the chunks done so far (rows, SHA-256)
    part-000000.npy   float32 (rows, dim): the representations of images start..stop
    part-000001.npy   ...

Every part is written whole or not at all (``pretrain.files.atomic_path``), so a part file
under its final name is complete even when the job was killed before ``job.json`` listed it:
reopening the job adopts it. A part listed in ``job.json`` whose content no longer matches
its hash is embedded again. A folder left by another job (other weights, bundle or
parameters) is emptied, never mixed in. Torch-free: the driver of a distributed job only
plans, records and assembles; the embedding itself runs in the workers.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pretrain.files import atomic_path, atomic_write_json, sha256_file

PARTS_DIR = ".embed-parts"  # hidden: a space folder may hold it (pretrain.space.check_space_out)
JOB_FILE = "job.json"
JOB_FORMAT = "radio-latent-explorer/embed-parts"


@dataclass(frozen=True)
class Chunk:
    """Images ``start:stop`` of the bundle, embedded by one task into one part file."""

    index: int
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start

    @property
    def file_name(self) -> str:
        return f"part-{self.index:06d}.npy"


def plan_chunks(n_images: int, chunk_images: int) -> list[Chunk]:
    """Consecutive chunks of ``chunk_images`` (the last one shorter) covering every image."""
    if chunk_images < 1:
        raise ValueError("chunk_images must be at least 1")
    return [
        Chunk(i, start, min(start + chunk_images, n_images)) for i, start in enumerate(range(0, n_images, chunk_images))
    ]


class PartsJob:
    """The chunks of one embedding job and which of them are done (see the module docstring)."""

    def __init__(self, folder: Path, key: dict, chunks: list[Chunk], done: dict[int, dict]):
        self.folder, self.key, self.chunks, self.done = folder, key, chunks, done

    @classmethod
    def open(cls, folder: str | Path, key: dict, chunk_images: int) -> PartsJob:
        """Open (or start) the job in ``folder`` for ``key`` (must hold ``images``, the count).

        Parts of the same job are kept; a folder of another job is emptied first.
        """
        folder = Path(folder)
        key = {**key, "chunk_images": int(chunk_images)}
        chunks = plan_chunks(int(key["images"]), chunk_images)
        recorded = _read_job(folder / JOB_FILE)
        if recorded is not None and recorded.get("key") != _jsonable(key):
            print(f"{folder}: parts of another job (weights, bundle, parameters) removed", file=sys.stderr)
            shutil.rmtree(folder)
            recorded = None
        if recorded is None and folder.is_dir():
            shutil.rmtree(folder)  # no readable job.json: nothing in it can be trusted
        folder.mkdir(parents=True, exist_ok=True)
        for stray in folder.glob(".part-*.tmp"):  # half-written by a killed job: never a part
            stray.unlink(missing_ok=True)
        job = cls(folder, key, chunks, {})
        listed = {int(k): v for k, v in (recorded or {}).get("done", {}).items()}
        for chunk in chunks:
            path = folder / chunk.file_name
            if not path.is_file():
                continue
            record = listed.get(chunk.index)
            if record is not None and record.get("rows") == chunk.rows and record.get("sha256") == sha256_file(path):
                job.done[chunk.index] = record
            elif record is None and _is_part(path, chunk.rows):  # written, killed before job.json said so
                job.done[chunk.index] = {"rows": chunk.rows, "sha256": sha256_file(path), "adopted": True}
            else:  # listed but changed or truncated since: embed it again
                path.unlink()
        job._write()
        return job

    @property
    def pending(self) -> list[Chunk]:
        return [c for c in self.chunks if c.index not in self.done]

    @property
    def images_done(self) -> int:
        return sum(c.rows for c in self.chunks if c.index in self.done)

    def part_path(self, chunk: Chunk) -> Path:
        return self.folder / chunk.file_name

    def write_part(self, chunk: Chunk, embeddings: np.ndarray, **info) -> None:
        """Store one chunk's representations (atomically) and list it as done."""
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or len(embeddings) != chunk.rows:
            raise ValueError(f"chunk {chunk.index}: expected {chunk.rows} rows, got shape {embeddings.shape}")
        path = self.part_path(chunk)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:  # np.save(name) would append ".npy"
            np.save(f, embeddings)
        self.done[chunk.index] = {"rows": chunk.rows, "sha256": sha256_file(path), **info}
        self._write()

    def assemble(self) -> np.ndarray:
        """Every chunk's representations, in bundle order: (images, dim) float32."""
        if self.pending:
            raise RuntimeError(f"{len(self.pending)} chunks are not embedded yet")
        parts = [np.load(self.part_path(c), mmap_mode="r") for c in self.chunks]
        dim = parts[0].shape[1] if parts else 0
        out = np.empty((int(self.key["images"]), dim), dtype=np.float32)
        for chunk, part in zip(self.chunks, parts):
            out[chunk.start : chunk.stop] = part
        return out

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def _write(self) -> None:
        atomic_write_json(
            self.folder / JOB_FILE,
            {
                "format": JOB_FORMAT,
                "key": self.key,
                "chunks": len(self.chunks),
                "done": {str(k): v for k, v in sorted(self.done.items())},
            },
        )


def _read_job(path: Path) -> dict | None:
    try:
        job = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return job if isinstance(job, dict) and job.get("format") == JOB_FORMAT else None


def _is_part(path: Path, rows: int) -> bool:
    """A complete part of ``rows`` finite float32 rows (the header and the size agree)."""
    try:
        part = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return False
    return part.dtype == np.float32 and part.ndim == 2 and len(part) == rows and bool(np.isfinite(part).all())


def _jsonable(value: dict) -> dict:
    return json.loads(json.dumps(value))
