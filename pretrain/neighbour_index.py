"""The neighbour index of a space: cosine top-k, exact for small spaces, approximate (FAISS) for big ones.

Every similarity search in the project goes through :class:`NeighbourIndex` (the app's
gallery, look-up placement, ``pretrain neighbours``, evaluation). Below
``INDEX_EXACT_MAX_VECTORS`` vectors a search is one matrix product over the L2-normalised
vectors (exact, no file); above it the space stores a FAISS inverted-file index
(``index.faiss``): the vectors are grouped into ``nlist`` k-means cells and a query scans
only the ``nprobe`` cells nearest to it. Spaces above ``INDEX_COMPRESS_ABOVE`` vectors keep
8-bit scalar-quantised codes (``IVF...,SQ8``: one byte a dimension instead of four) and
re-rank the ``INDEX_RERANK`` x k best codes exactly against the full vectors, which may be a
memory map (only the candidates' rows are read): the 10 M-source plan in BENCHMARKS.md.

Why FAISS IVF (measured in BENCHMARKS.md, ``bench_index`` and ``bench_index_libraries``):
recall and query times comparable with the HNSW graphs of FAISS, hnswlib and usearch on this
2-core machine, a build no slower than the fastest of them, memory-mapped loading
(``IO_FLAG_MMAP``: opening a million-vector index costs milliseconds and no RAM until cells
are read; hnswlib cannot), and the same library gives the compressed codes a 10 M-source
space needs.

The index is built once, when the space is written (``pretrain.space.save_space``), and
recorded in the manifest; a space written before the index existed still opens
(:func:`load_or_build`): exact search when small, else an index built in memory and saved
into the space when its folder can be written, with a message saying so.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pretrain.errors import ExplorerError
from pretrain.files import atomic_path, sha256_file
from pretrain.vectors import l2_normalise

log = logging.getLogger(__name__)

# --- settings (the one place; BENCHMARKS.md bench_index measures them) --------------------
INDEX_FILE = "index.faiss"
# Exact search up to this many vectors: a full scan costs ~208 ms at 1 M x 512 here
# (BENCHMARKS.md, bench_neighbours), so ~10 ms at 50,000 x 512, the latency aimed at; above
# it the approximate index answers.
INDEX_EXACT_MAX_VECTORS = 50_000
# k-means cells: 4 * sqrt(N) (FAISS's guideline is 4-16 sqrt(N)), so a cell holds ~sqrt(N)/4
# vectors; between these bounds.
INDEX_NLIST_PER_SQRT_N = 4.0
INDEX_NLIST_MIN, INDEX_NLIST_MAX = 64, 65_536
# Cells scanned per query: 96 of 4,000 at 1 M found 98.3 % of the exact top 12 of clustered
# vectors in 5.6 ms median (bench_index; 32 cells: 95.4 %, 3 ms); a query scans about
# nprobe * sqrt(N) / 4 vectors.
INDEX_NPROBE = 96
# k-means is trained on this many vectors per cell (FAISS warns below 39), at most this many in all.
INDEX_TRAIN_PER_CELL, INDEX_TRAIN_MAX = 40, 200_000
# Above this many vectors, compressed codes (8-bit scalar quantisation, 4x smaller) instead
# of full vectors in the index: the 10 M plan (bench_index measures it at 1 M).
INDEX_COMPRESS_ABOVE = 4_000_000
# Compressed codes only approximate the cosine: this many x k candidates are re-ranked exactly.
INDEX_RERANK = 10
INDEX_SEED = 0
EXACT_BLOCK = 1024  # queries per matrix product in a batch exact search (memory: block x N floats)
# FAISS threads for a search of fewer than SEARCH_BATCH queries: one query is well under a
# millisecond of work, and on a busy 2-core machine waking a second OpenMP thread costs more
# than it saves (measured: 0.1 ms with one thread, tens of ms with two under load).
INDEX_SEARCH_THREADS, SEARCH_BATCH = 1, 64

EXACT, IVF_FLAT, IVF_SQ8 = "exact", "faiss-ivf-flat", "faiss-ivf-sq8"


@dataclass(frozen=True)
class IndexSettings:
    """How a space's index is built and searched; the defaults are the settings above."""

    exact_max_vectors: int = INDEX_EXACT_MAX_VECTORS
    nlist: int | None = None  # None: INDEX_NLIST_PER_SQRT_N * sqrt(N), bounded
    nprobe: int = INDEX_NPROBE
    compress_above: int = INDEX_COMPRESS_ABOVE
    rerank: int = INDEX_RERANK
    seed: int = INDEX_SEED

    def kind_for(self, n: int) -> str:
        if n <= self.exact_max_vectors:
            return EXACT
        return IVF_SQ8 if n > self.compress_above else IVF_FLAT

    def nlist_for(self, n: int) -> int:
        if self.nlist is not None:
            return int(max(1, min(self.nlist, n)))
        cells = round(INDEX_NLIST_PER_SQRT_N * math.sqrt(n))
        return int(max(1, min(n, INDEX_NLIST_MAX, max(INDEX_NLIST_MIN, cells))))

    @staticmethod
    def from_manifest(entry: dict) -> IndexSettings:
        known = IndexSettings.__dataclass_fields__
        return IndexSettings(**{key: value for key, value in (entry.get("settings") or {}).items() if key in known})


Progress = Callable[[str], None]


def _faiss():
    try:
        import faiss
    except ImportError as exc:  # faiss-cpu is a dependency; a broken install says so
        raise ExplorerError(
            "the approximate neighbour index needs FAISS: `pip install faiss-cpu` (it is in pyproject.toml)."
        ) from exc
    return faiss


# --- exact top-k ------------------------------------------------------------------------------


def top_k_indices(scores: np.ndarray, k: int, exclude: np.ndarray | list[int] | None = None) -> np.ndarray:
    """Indices of the ``k`` largest ``scores``, best first (ties broken by index).

    ``exclude`` lists indices that must not be returned (e.g. the query itself).
    """
    scores = np.asarray(scores)
    if exclude is not None and len(exclude):
        scores = scores.copy()
        scores[np.asarray(exclude, dtype=np.int64)] = -np.inf
        available = scores.size - len(np.unique(exclude))
    else:
        available = scores.size
    k = int(max(0, min(k, available)))
    if k == 0:
        return np.empty(0, dtype=np.int64)
    if k < scores.size:
        candidates = np.argpartition(-scores, k - 1)[:k]
    else:
        candidates = np.arange(scores.size)
    # Stable sort of the candidates by descending score, then ascending index.
    order = np.lexsort((candidates, -scores[candidates]))
    return candidates[order].astype(np.int64)


def exact_search(unit_vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine top-k of unit ``queries`` (M, D) among ``unit_vectors`` (N, D): (rows, sims), (M, k)."""
    n = len(unit_vectors)
    k = int(min(k, n))
    rows = np.empty((len(queries), k), dtype=np.int64)
    sims = np.empty((len(queries), k), dtype=np.float32)
    for start in range(0, len(queries), EXACT_BLOCK):
        block = queries[start : start + EXACT_BLOCK] @ unit_vectors.T  # (b, N)
        for i, scores in enumerate(block):
            best = top_k_indices(scores, k)
            rows[start + i], sims[start + i] = best, scores[best]
    return rows, sims


# --- the index --------------------------------------------------------------------------------


class NeighbourIndex:
    """Cosine top-k over a space's vectors: ``search(queries, k)`` (batch) and ``query(vector, k, exclude)``.

    ``unit_vectors`` (N, D), L2-normalised, are what exact search scans and what compressed
    codes are re-ranked against (an array or a memory map); ``faiss_index`` is None for an
    exact index.
    """

    def __init__(self, unit_vectors: np.ndarray, settings: IndexSettings | None = None, faiss_index=None):
        self.unit_vectors = unit_vectors
        self.settings = settings or IndexSettings()
        self.faiss_index = faiss_index
        self.note = ""  # what the app shows about how this index came to be (old spaces)
        if faiss_index is not None:
            faiss_index.nprobe = int(min(self.settings.nprobe, faiss_index.nlist))

    @property
    def kind(self) -> str:
        if self.faiss_index is None:
            return EXACT
        return IVF_FLAT if "Flat" in type(self.faiss_index).__name__ else IVF_SQ8

    @property
    def exact(self) -> bool:
        return self.faiss_index is None

    def __len__(self) -> int:
        return len(self.unit_vectors)

    @property
    def dim(self) -> int:
        return int(self.unit_vectors.shape[1])

    def describe(self) -> str:
        if self.exact:
            return f"exact cosine search over {len(self):,} vectors"
        return (
            f"approximate ({self.kind}: {self.faiss_index.nlist:,} cells, {self.faiss_index.nprobe} scanned "
            f"per query) over {len(self):,} vectors"
        )

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most cosine-similar stored vectors of each query (M, D): (rows, sims), each (M, k), best
        first. Queries are normalised here. An approximate index pads with row -1 (similarity -inf) where
        the scanned cells held fewer than ``k`` vectors."""
        queries = l2_normalise(np.atleast_2d(np.asarray(queries, dtype=np.float32)))
        if queries.shape[1] != self.dim:
            raise ExplorerError(f"a query has {queries.shape[1]} dimensions; this space's vectors have {self.dim}.")
        k = int(min(k, len(self)))
        if k <= 0:
            return np.empty((len(queries), 0), np.int64), np.empty((len(queries), 0), np.float32)
        if self.exact:
            return exact_search(self.unit_vectors, queries, k)
        faiss = _faiss()
        faiss.omp_set_num_threads(INDEX_SEARCH_THREADS if len(queries) < SEARCH_BATCH else faiss.omp_get_max_threads())
        if self.kind == IVF_SQ8:
            return self._search_reranked(queries, k)
        sims, rows = self.faiss_index.search(np.ascontiguousarray(queries), k)
        sims[rows < 0] = -np.inf
        return rows.astype(np.int64), sims

    def _search_reranked(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Compressed codes find ``rerank * k`` candidates; their full vectors decide the order."""
        wanted = int(min(len(self), k * self.settings.rerank))
        _, candidates = self.faiss_index.search(np.ascontiguousarray(queries), wanted)
        rows = np.full((len(queries), k), -1, dtype=np.int64)
        sims = np.full((len(queries), k), -np.inf, dtype=np.float32)
        for i, found in enumerate(candidates):
            found = np.sort(found[found >= 0])  # sorted rows: a memory map reads them in order
            exact = np.asarray(self.unit_vectors[found]) @ queries[i]
            best = top_k_indices(exact, k)
            rows[i, : len(best)], sims[i, : len(best)] = found[best], exact[best]
        return rows, sims

    def query(self, vector: np.ndarray, k: int, exclude=None) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, similarities)`` of the ``k`` stored vectors most similar to one ``vector``, best first,
        none of ``exclude``. Where an approximate search finds fewer than ``k`` (tiny cells, or a request
        for most of the space) the answer comes from an exact scan, so it is always complete."""
        exclude = np.unique(np.asarray([] if exclude is None else exclude, dtype=np.int64))
        available = len(self) - len(exclude)
        k = int(max(0, min(k, available)))
        if k == 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        if not self.exact and k + len(exclude) <= len(self) // 2:
            rows, sims = self.search(vector, k + len(exclude))
            keep = (rows[0] >= 0) & ~np.isin(rows[0], exclude)
            if keep.sum() >= k:
                return rows[0][keep][:k], sims[0][keep][:k]
        scores = self.similarities(vector)
        best = top_k_indices(scores, k, exclude)
        return best, scores[best]

    def query_row(self, row: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Neighbours of stored vector ``row`` (itself excluded)."""
        return self.query(np.asarray(self.unit_vectors[row]), k, exclude=[row])

    def neighbours_of_rows(self, rows, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest other stored vectors of each stored vector ``rows`` (M,): (rows, sims), (M, k),
        best first, each query itself left out (so a duplicate vector still counts as a neighbour)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        k = int(min(k, len(self) - 1))
        found, sims = self.search(np.asarray(self.unit_vectors[rows]), k + 1)
        others = found != rows[:, None]
        # keep the first k that are not the query (when the query is not among them, its last one goes)
        keep = others & (np.cumsum(others, axis=1) <= k)
        return found[keep].reshape(len(rows), k), sims[keep].reshape(len(rows), k)

    def similarities(self, vector: np.ndarray, rows=None) -> np.ndarray:
        """Cosine similarity of ``vector`` to the stored vectors ``rows`` (default: every one: a full pass,
        for colouring a map by similarity, not for finding neighbours)."""
        query = l2_normalise(np.asarray(vector, dtype=np.float32).reshape(1, -1))[0]
        stored = self.unit_vectors if rows is None else np.asarray(self.unit_vectors[np.asarray(rows)])
        return np.asarray(stored @ query, dtype=np.float32)

    # --- files ------------------------------------------------------------------------------

    def save(self, folder: str | Path) -> dict:
        """Write the index into ``folder`` (nothing for an exact one); the manifest entry that describes it."""
        entry: dict = {"kind": self.kind, "settings": asdict(self.settings), "vectors": len(self), "dim": self.dim}
        if self.exact:
            return entry
        path = Path(folder) / INDEX_FILE
        with atomic_path(path) as tmp:
            _faiss().write_index(self.faiss_index, str(tmp))
        entry |= {"file": INDEX_FILE, "nlist": int(self.faiss_index.nlist), "sha256": sha256_file(path)}
        entry["bytes"] = path.stat().st_size
        return entry


def build_index(
    vectors: np.ndarray, settings: IndexSettings | None = None, progress: Progress | None = None
) -> NeighbourIndex:
    """The index for ``vectors`` (N, D; normalised here): exact up to ``settings.exact_max_vectors``,
    else a FAISS IVF index trained on a random sample and filled with every vector."""
    settings = settings or IndexSettings()
    unit = np.ascontiguousarray(l2_normalise(vectors))
    n, dim = unit.shape
    kind = settings.kind_for(n)
    if kind == EXACT:
        return NeighbourIndex(unit, settings)
    faiss = _faiss()
    nlist = settings.nlist_for(n)
    factory = f"IVF{nlist},Flat" if kind == IVF_FLAT else f"IVF{nlist},SQ8"
    index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(settings.seed)
    train_n = int(min(n, INDEX_TRAIN_MAX, nlist * INDEX_TRAIN_PER_CELL))
    sample = unit[np.sort(rng.choice(n, size=train_n, replace=False))]
    report = progress or (lambda message: None)
    started = time.perf_counter()
    report(f"training the neighbour index ({factory}) on {train_n:,} of {n:,} vectors")
    faiss.omp_set_num_threads(os.cpu_count() or 1)  # building is one big job: every core
    index.train(sample)
    report(f"adding {n:,} vectors to the neighbour index")
    for start in range(0, n, 200_000):  # in pieces: FAISS copies what it is given
        index.add(unit[start : start + 200_000])
    report(f"neighbour index built in {time.perf_counter() - started:.0f} s")
    return NeighbourIndex(unit, settings, index)


def load_index(folder: str | Path, entry: dict, unit_vectors: np.ndarray, mmap: bool = True) -> NeighbourIndex:
    """The index a manifest ``entry`` describes, over the space's ``unit_vectors``; the FAISS file is
    memory-mapped (``mmap``). ExplorerError when the file is missing or does not fit the vectors."""
    settings = IndexSettings.from_manifest(entry)
    if entry.get("kind", EXACT) == EXACT:
        return NeighbourIndex(unit_vectors, settings)
    path = Path(folder) / entry.get("file", INDEX_FILE)
    faiss = _faiss()
    if not path.is_file():
        raise ExplorerError(f"{path} is missing.")
    # A memory-mapped file cut short kills the process (SIGBUS) when FAISS reads past its end, so a
    # file that is not the size the space wrote is refused before it is mapped.
    size, written = path.stat().st_size, entry.get("bytes")
    if written is not None and size != written:
        raise ExplorerError(f"{path} cannot be read (it holds {size:,} bytes; the space wrote {written:,}).")
    try:
        index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP if mmap and written is not None else 0)
    except RuntimeError as exc:  # FAISS reports a truncated or foreign file this way
        raise ExplorerError(f"{path} cannot be read ({str(exc).splitlines()[0]}).") from exc
    if index.ntotal != len(unit_vectors) or index.d != unit_vectors.shape[1]:
        raise ExplorerError(
            f"{path} holds {index.ntotal:,} vectors of {index.d} dimensions; the space has "
            f"{len(unit_vectors):,} of {unit_vectors.shape[1]}."
        )
    return NeighbourIndex(unit_vectors, settings, index)


def load_or_build(
    folder: str | Path,
    entry: dict | None,
    unit_vectors: np.ndarray,
    save: Callable[[NeighbourIndex], None] | None = None,
    settings: IndexSettings | None = None,
) -> NeighbourIndex:
    """The space's stored index; for a space without a usable one (written before the index existed, or
    its file damaged), exact search when it is small, else an index built now and handed to ``save``
    (which stores it in the space when it can). ``index.note`` says what happened."""
    reason = "it has no neighbour index (written by an older version)"
    if entry is not None:
        try:
            return load_index(folder, entry, unit_vectors)
        except ExplorerError as exc:
            reason = f"its neighbour index is unusable: {exc}"
    settings = settings or IndexSettings()
    if settings.kind_for(len(unit_vectors)) == EXACT:
        return NeighbourIndex(unit_vectors, settings)  # what such a space always used: nothing to say
    log.warning("the space at %s: %s; building one (%s vectors).", folder, reason, f"{len(unit_vectors):,}")
    index = build_index(unit_vectors, settings, progress=lambda message: log.info(message))
    index.note = f"This space {reason}; one was built when it was opened"
    if save is not None:
        try:
            save(index)
            index.note += " and saved into the space."
        except (OSError, ExplorerError) as exc:
            index.note += f" but could not be saved ({exc}); it is rebuilt each time the space is opened."
    else:
        index.note += "."
    return index
