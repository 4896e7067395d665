"""Embedding a bundle as a Dask job: one task per chunk, a local cluster or an existing one.

The driver (the ``embed`` process) plans the chunks (``pretrain.engines.parts``), sends one
small task per chunk that is not done yet, writes each result as its part file the moment it
comes back and lists it in the job's manifest, then assembles the parts in bundle order. A
worker reads only its chunk's images from the bundle's memory-mapped ``images.npy`` and
embeds them with :func:`pretrain.embed.embed_images`, so neither side ever holds the whole
bundle, and the representations are those of the one-process embedding (the same function,
the same batches when the chunk size is a multiple of the batch size).

Without ``address`` a ``LocalCluster`` of ``workers`` processes is started (one task at a
time each, the machine's cores shared among them) and closed afterwards. With ``address``
(``tcp://host:8786``) the job runs on that cluster, whose workers must see the bundle and
the weights at the same paths as this machine (a shared file system); a worker that does
not, or that reads other weights, fails the job with a message saying so (with GPUs, start
one worker per GPU, each with its own ``CUDA_VISIBLE_DEVICES``, and pass --device cuda). A worker that
dies has its task rerun elsewhere by Dask; a killed driver leaves the parts done so far,
and the same command continues from them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pretrain import config
from pretrain.engines.parts import PARTS_DIR, PartsJob
from pretrain.errors import ExplorerError


@dataclass(frozen=True)
class ChunkTask:
    """What a worker needs to embed one chunk: paths, not arrays (it reads its own images)."""

    index: int
    start: int
    stop: int
    images_path: str
    weights_path: str
    weights_sha256: str
    device: str
    batch_size: int
    symmetry: str
    torch_threads: int | None  # None: the worker's own setting (an existing cluster)


_ENCODERS: dict[tuple[str, str, str], Any] = {}  # per worker process: loaded once, used by every task


def embed_chunk(task: ChunkTask) -> tuple[int, np.ndarray, dict]:
    """Runs on a worker: (chunk index, representations (rows, dim) float32, facts about the run)."""
    import torch

    from pretrain.embed import embed_images

    t0 = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    if task.torch_threads:
        torch.set_num_threads(task.torch_threads)
    encoder = _worker_encoder(task, worker)
    try:
        images = np.load(task.images_path, mmap_mode="r")
    except OSError as exc:
        raise ExplorerError(
            f"worker {worker} cannot read {task.images_path} ({exc}): the workers of a cluster must see the "
            "bundle at the same path as the machine running `embed` (a shared file system)."
        ) from exc
    if len(images) < task.stop:
        raise ExplorerError(f"worker {worker}: {task.images_path} holds {len(images)} images, not {task.stop}.")
    embeddings = embed_images(
        encoder,
        images[task.start : task.stop],  # a view of the memmap: only this chunk is read
        batch_size=task.batch_size,
        device=task.device,
        symmetry=task.symmetry,
    )
    return task.index, embeddings, {"worker": worker, "seconds": round(time.perf_counter() - t0, 3)}


def _worker_encoder(task: ChunkTask, worker: str):
    from pretrain.models.backbone import load_encoder
    from pretrain.provenance import weights_sha256

    key = (task.weights_path, task.weights_sha256, task.device)
    if key not in _ENCODERS:
        path = Path(task.weights_path)
        if not path.is_file() or weights_sha256(path) != task.weights_sha256:
            raise ExplorerError(
                f"worker {worker} does not find the weights the job was started with at {path} "
                f"(sha256 {task.weights_sha256[:12]}...): the workers must see the same files (a shared file system)."
            )
        _ENCODERS.clear()  # one job's encoder at a time
        _ENCODERS[key] = load_encoder(path, device=task.device)
    return _ENCODERS[key]


class DaskEmbedder:
    """``embed_images``' signature, run as a Dask job over a bundle's image file.

    Passed as ``embed=`` to :func:`pretrain.space.embed_bundle_to_space`; its parts live in
    ``parts_folder`` until :meth:`remove_parts` (after the space is written).
    """

    def __init__(
        self,
        images_path: str | Path,
        bundle_id: str,
        weights_path: str | Path,
        parts_folder: str | Path,
        workers: int = config.EMBED_WORKERS,
        address: str | None = None,
        chunk_images: int = config.EMBED_CHUNK_IMAGES,
    ):
        if workers < 1:
            raise ExplorerError("--workers must be at least 1.")
        if chunk_images < 1:
            raise ExplorerError("--chunk-size must be at least 1.")
        self.images_path, self.bundle_id = Path(images_path).resolve(), bundle_id
        self.weights_path, self.parts_folder = Path(weights_path).resolve(), Path(parts_folder)
        self.workers, self.address, self.chunk_images = workers, address, chunk_images
        self.computed: list[int] = []  # chunks this call embedded (the others were on disk already)
        self.reused: list[int] = []

    @property
    def name(self) -> str:
        return f"dask ({self.address})" if self.address else f"dask (local cluster, {self.workers} workers)"

    def __call__(self, encoder, images: np.ndarray, batch_size: int, device, progress=None, symmetry: str = "d4"):
        from pretrain.embed import _progress_reporter
        from pretrain.provenance import weights_sha256

        del encoder  # the workers load their own copy of the weights
        if len(images) == 0:
            raise ExplorerError("the bundle holds no images: nothing to embed.")
        device = str(device)
        sha = weights_sha256(self.weights_path)
        key = {
            "weights_sha256": sha,
            "bundle_id": self.bundle_id,
            "images": len(images),
            "image_shape": list(images.shape[1:]),
            "batch_size": batch_size,
            "symmetry": symmetry,
            "model_input_px": config.MODEL_INPUT_PX,
            "device": device.split(":")[0],  # bf16 on CUDA, fp32 on the CPU: different floats
        }
        job = PartsJob.open(self.parts_folder, key, self.chunk_images)
        pending = job.pending
        self.reused = sorted(job.done)
        n = len(images)
        if progress is True:
            from tqdm.auto import tqdm

            desc = f"embedding on {self.name}"
            bar = tqdm(total=n, initial=job.images_done, unit="img", desc=desc, dynamic_ncols=True)
            report, close = (lambda done: bar.update(done - bar.n)), bar.close
        else:
            report, close = _progress_reporter(progress, n)
        if self.reused:
            print(
                f"resuming: {len(self.reused)} of {len(job.chunks)} chunks ({job.images_done} images) already "
                f"embedded in {self.parts_folder}",
                file=sys.stderr,
            )
        report(job.images_done)
        try:
            if pending:
                tasks = [
                    ChunkTask(
                        c.index, c.start, c.stop, str(self.images_path), str(self.weights_path), sha, device,
                        batch_size, symmetry, None,
                    )
                    for c in pending
                ]  # fmt: skip
                chunks = {c.index: c for c in pending}
                with _client(self.address, self.workers) as (client, threads):
                    tasks = [t if threads is None else _with_threads(t, threads) for t in tasks]
                    for index, embeddings, info in _run(client, tasks):
                        job.write_part(chunks[index], embeddings, **info)
                        self.computed.append(index)
                        report(job.images_done)
        finally:
            close()
        return job.assemble()

    def remove_parts(self) -> None:
        PartsJob(self.parts_folder, {}, [], {}).remove()


def _with_threads(task: ChunkTask, threads: int) -> ChunkTask:
    return dataclasses.replace(task, torch_threads=threads)


def _run(client, tasks: list[ChunkTask]) -> Iterator[tuple[int, np.ndarray, dict]]:
    """Submit every task; yield results as they finish, releasing each on the cluster (a
    million images' representations are never held there at once)."""
    from distributed import as_completed

    futures = client.map(embed_chunk, tasks, pure=False)
    for future in as_completed(futures):
        result = future.result()  # a worker's error is raised here, with its message
        future.release()
        yield result


@contextmanager
def _client(address: str | None, workers: int) -> Iterator[tuple[Any, int | None]]:
    """A Dask client and the torch threads each task should use (None: leave the workers' own)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise ExplorerError(
            "--engine dask needs Dask's distributed scheduler: pip install 'dask[distributed]' "
            "(it is in this project's dependencies)."
        ) from exc
    timeout = config.EMBED_CLUSTER_TIMEOUT_S
    if address:
        try:
            client = Client(address, timeout=timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ExplorerError(
                f"no Dask scheduler answered at {address} within {timeout:g} s ({exc}); start one with "
                "`dask scheduler` (and `dask worker ADDRESS` on each machine), or leave out --address "
                "for a local cluster."
            ) from exc
        try:
            yield client, None
        finally:
            client.close()
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,  # one chunk at a time per worker; torch uses `threads` cores in it
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
        timeout=timeout,
    )
    client = Client(cluster, timeout=timeout)
    try:
        yield client, threads
    finally:
        client.close()
        cluster.close()


def parts_folder_of(space_out: str | Path) -> Path:
    """Where a space's distributed job keeps its parts until the space is written."""
    return Path(space_out) / PARTS_DIR
