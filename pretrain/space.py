"""A "space": a data set's representations and map on disk, with their provenance.

A space is a folder::

    SPACE/
      embeddings.parquet   source_id, embedding (list<float32>, 512 values; raw, not normalised)
      map.parquet          source_id, umap_x, umap_y and every catalogue column
      projector.npz        the fitted PCA as arrays (MapProjector; new images are placed among
                           the space's own sources, so no UMAP model is stored)
      projector.json       its parameters (human-readable sidecar)
      index.faiss          the approximate neighbour index, for spaces above
                           ``neighbour_index.INDEX_EXACT_MAX_VECTORS`` sources (smaller ones
                           are searched exactly and store none); memory-mapped when opened
      manifest.json        provenance: weights sha256 + file name, bundle id, parameters,
                           creation time, package versions, counts, projector hash, the index
                           (kind, settings, hash); for a space made from given vectors
                           (``pretrain space --embeddings``) the file they came from and its hash
      bundle/              (only when built from FITS by `embed --fits`) the dataset bundle

Rows of both Parquet files are in the same order (the bundle's). The manifest is written
last and removed first when a space is rewritten, so a folder without one is incomplete.
A cached space is *stale* when the weights or the bundle it was made from changed
(:func:`is_stale`); the app re-embeds instead of silently showing an old map.

The app reads spaces only through this module.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pretrain import config
from pretrain.clock import utc_timestamp
from pretrain.errors import ExplorerError
from pretrain.files import atomic_path, atomic_write_json, make_dirs, sha256_file
from pretrain.mapping import MapProjector
from pretrain.neighbour_index import INDEX_FILE, IndexSettings, NeighbourIndex, build_index, load_or_build
from pretrain.provenance import default_backbone_path, package_versions, weights_sha256
from pretrain.vectors import l2_normalise

SPACE_FORMAT = "radio-latent-explorer/space"
# 2: the projector is arrays (projector.npz); version 1 kept a pickle (projector.joblib),
# which is never loaded: such a space is reported stale and re-embedded.
SPACE_FORMAT_VERSION = 2
EMBEDDINGS_FILE = "embeddings.parquet"
# The same vectors as a raw float32 array, memory-mapped when the space opens: reading a 1 M x 128
# Parquet list column takes ~6 s here, mapping this file no time (BENCHMARKS.md, bench_big_map).
# The Parquet file stays the interchange copy; spaces written before this file read that one.
EMBEDDINGS_ARRAY_FILE = "embeddings.npy"
MAP_FILE = "map.parquet"
PROJECTOR_FILE = "projector.npz"
LEGACY_PROJECTOR_FILE = "projector.joblib"
MANIFEST_FILE = "manifest.json"
MAP_COLUMNS = ("source_id", "umap_x", "umap_y")
# 1 - cosine below which a placed image counts as a source already in the space: above the
# float noise between how a space was embedded and how a look-up is (bf16 on a GPU vs fp32,
# batched vs one image), below how close two different sources come (BENCHMARKS.md).
SAME_SOURCE_COSINE_TOL = 5e-5

StageProgress = Callable[[int, int, str], None]  # (done, total, what is happening)


class SpaceError(ExplorerError):
    """A space folder is missing, incomplete or corrupt."""


@dataclass
class Space:
    """A loaded space. ``embeddings`` are raw; ``unit_embeddings`` are L2-normalised."""

    path: Path
    catalogue_map: pd.DataFrame  # source_id, umap_x, umap_y + catalogue columns
    embeddings: np.ndarray  # (N, 512) float32, same row order as catalogue_map
    manifest: dict
    _projector: MapProjector | None = field(default=None, repr=False)
    _unit: np.ndarray | None = field(default=None, repr=False)
    _index: NeighbourIndex | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.catalogue_map)

    @property
    def source_ids(self) -> np.ndarray:
        return self.catalogue_map["source_id"].to_numpy()

    @property
    def map_xy(self) -> np.ndarray:
        """Map coordinates (N, 2)."""
        return self.catalogue_map[["umap_x", "umap_y"]].to_numpy(dtype=np.float32)

    @property
    def unit_embeddings(self) -> np.ndarray:
        """L2-normalised embeddings (cached): cosine similarity is one matrix product."""
        if self._unit is None:
            self._unit = l2_normalise(self.embeddings)
        return self._unit

    @property
    def neighbour_index(self) -> NeighbourIndex:
        """The space's neighbour index (``pretrain.neighbour_index``), loaded memory-mapped on first use;
        a space written before the index existed gets one built (and saved into it when possible)."""
        if self._index is None:
            self._index = load_or_build(
                self.path, self.manifest.get("index"), self.unit_embeddings, save=lambda index: store_index(self, index)
            )
        return self._index

    @property
    def projector(self) -> MapProjector:
        """The fitted PCA -> UMAP, loaded on first use (it is the slow part to load)."""
        if self._projector is None:
            self._projector = _load_projector(self.path, self.manifest, (self.embeddings, self.map_xy))
            # new images are placed among the space's nearest sources: found by its index
            self._projector.reference_search_ = self.neighbour_index.search
        return self._projector

    @property
    def weights_sha256(self) -> str:
        return str(self.manifest["weights"].get("sha256") or "")

    @property
    def vectors_from_file(self) -> dict | None:
        """Where the vectors of a space made from given embeddings came from (file, sha256), else None."""
        return self.manifest.get("vectors_from")

    @property
    def symmetry(self) -> str:
        """How its images were embedded (``pretrain.embed``); spaces from before the
        symmetrised representation recorded nothing and used one forward pass."""
        return manifest_symmetry(self.manifest)

    @property
    def bundle_id(self) -> str | None:
        return self.manifest["bundle"].get("id")

    @property
    def bundle_path(self) -> Path | None:
        """The bundle the images came from (relative paths are inside the space folder)."""
        recorded = self.manifest["bundle"].get("path")
        if not recorded:
            return None
        path = Path(recorded)
        return path if path.is_absolute() else self.path / path


# --- writing ------------------------------------------------------------------------------


def save_space(
    out: str | Path,
    source_ids,
    embeddings: np.ndarray,
    map_xy: np.ndarray,
    catalogue: pd.DataFrame | None,
    projector: MapProjector,
    provenance: dict,
    index_settings: IndexSettings | None = None,
    progress: Callable[[str], None] | None = None,
) -> Space:
    """Write a space folder and return it loaded.

    ``provenance`` must hold ``weights`` ({sha256, file}) and ``bundle`` ({id, path?}); it
    may hold ``parameters`` and ``vectors_from`` (a file the vectors were read from). Counts,
    versions, the creation time and the neighbour index (built here, ``index_settings``)
    are added here; ``progress`` hears about the index build.
    """
    out = Path(out)
    check_space_out(out)
    make_dirs(out)  # shared inside a shared cache
    ids = pd.Series(np.asarray(source_ids)).astype(str)
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    map_xy = np.asarray(map_xy, dtype=np.float32)
    n = len(ids)
    if embeddings.ndim != 2 or len(embeddings) != n or map_xy.shape != (n, 2):
        raise SpaceError(f"inconsistent space: {n} source ids, embeddings {embeddings.shape}, map {map_xy.shape}.")
    if ids.duplicated().any():
        raise SpaceError(f"source ids must be unique; repeated: {list(ids[ids.duplicated()][:5])}.")
    for key in ("weights", "bundle"):
        if key not in provenance:
            raise ValueError(f"provenance needs {key!r}")

    (out / MANIFEST_FILE).unlink(missing_ok=True)  # from here on the folder is incomplete
    _write_parquet(_embeddings_table(ids, embeddings), out / EMBEDDINGS_FILE)
    with atomic_path(out / EMBEDDINGS_ARRAY_FILE) as tmp, open(tmp, "wb") as handle:
        np.save(handle, embeddings)
    catalogue_map = _catalogue_map(ids, map_xy, catalogue)
    _write_parquet(pa.Table.from_pandas(catalogue_map, preserve_index=False), out / MAP_FILE)
    projector.save(out / PROJECTOR_FILE, with_reference=False)  # the space's own files hold the points
    (out / LEGACY_PROJECTOR_FILE).unlink(missing_ok=True)
    (out / INDEX_FILE).unlink(missing_ok=True)
    index = build_index(embeddings, index_settings, progress)
    index_entry = index.save(out)

    manifest = {
        "format": SPACE_FORMAT,
        "format_version": SPACE_FORMAT_VERSION,
        "created": utc_timestamp(),
        "weights": dict(provenance["weights"]),
        "bundle": dict(provenance["bundle"]),
        "parameters": {**provenance.get("parameters", {}), "projector": projector.describe()},
        "counts": {"sources": n, "embedding_dim": int(embeddings.shape[1])},
        "files": {
            PROJECTOR_FILE: {"sha256": sha256_file(out / PROJECTOR_FILE)},
            EMBEDDINGS_ARRAY_FILE: {"bytes": (out / EMBEDDINGS_ARRAY_FILE).stat().st_size},
        },
        "index": index_entry,
        "versions": package_versions(),
    }
    if "vectors_from" in provenance:
        manifest["vectors_from"] = dict(provenance["vectors_from"])
    atomic_write_json(out / MANIFEST_FILE, manifest)
    space = Space(out, catalogue_map, embeddings, manifest, _projector=projector, _unit=index.unit_vectors)
    space._index = index
    projector.reference_search_ = index.search
    return space


def store_index(space: Space, index: NeighbourIndex) -> None:
    """Save an index built for an already written space into it and record it in its manifest (the
    manifest is rewritten atomically; a reader sees the old or the new one)."""
    entry = index.save(space.path)
    manifest = {**space.manifest, "index": entry}
    atomic_write_json(space.path / MANIFEST_FILE, manifest)
    space.manifest = manifest


SPACE_NAMES = frozenset(
    {
        EMBEDDINGS_FILE,
        EMBEDDINGS_ARRAY_FILE,
        MAP_FILE,
        PROJECTOR_FILE,
        "projector.json",
        LEGACY_PROJECTOR_FILE,
        MANIFEST_FILE,
        "bundle",
        INDEX_FILE,
    }
)


def check_space_out(out: Path) -> None:
    """Refuse to write a space over a folder this tool did not write: writing replaces files
    of these names, so ``out`` must be absent, empty, a space, or hold only a space's files."""
    if out.exists() and not out.is_dir():
        raise SpaceError(f"--out {out}: exists and is not a folder; choose another --out.")
    if not out.is_dir():
        return
    try:
        manifest = json.loads((out / MANIFEST_FILE).read_text())
        if isinstance(manifest, dict) and manifest.get("format") == SPACE_FORMAT:
            return
    except (OSError, ValueError):
        pass
    others = sorted(p.name for p in out.iterdir() if p.name not in SPACE_NAMES and not p.name.startswith("."))
    if others or (out / MANIFEST_FILE).exists():
        shown = ", ".join(others[:3]) or MANIFEST_FILE
        raise SpaceError(
            f"--out {out}: the folder is not a space this tool wrote (it holds {shown}); nothing was "
            "changed. Choose an empty or new --out folder."
        )


def _embeddings_table(ids: pd.Series, embeddings: np.ndarray) -> pa.Table:
    n, dim = embeddings.shape
    offsets = pa.array(np.arange(0, n * dim + 1, dim, dtype=np.int32))
    values = pa.array(embeddings.reshape(-1), type=pa.float32())
    return pa.table(
        {
            "source_id": pa.array(ids.to_numpy(), type=pa.string()),
            "embedding": pa.ListArray.from_arrays(offsets, values),
        }
    )


def _catalogue_map(ids: pd.Series, map_xy: np.ndarray, catalogue: pd.DataFrame | None) -> pd.DataFrame:
    frame = pd.DataFrame({"source_id": ids.to_numpy(), "umap_x": map_xy[:, 0], "umap_y": map_xy[:, 1]})
    if catalogue is None:
        return frame
    catalogue = catalogue.reset_index(drop=True)
    if len(catalogue) != len(ids):
        raise SpaceError(f"the catalogue has {len(catalogue)} rows but there are {len(ids)} embeddings.")
    if "source_id" in catalogue and not (catalogue["source_id"].astype(str).to_numpy() == ids.to_numpy()).all():
        raise SpaceError("the catalogue's source_id column is not in the embeddings' order.")
    extra = catalogue.drop(columns=[c for c in MAP_COLUMNS if c in catalogue])
    return pd.concat([frame, extra], axis=1)


def _write_parquet(table: pa.Table, path: Path) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


# --- reading ------------------------------------------------------------------------------


def load_space(path: str | Path) -> Space:
    """Read a space folder; SpaceError (an ExplorerError) says what is missing or wrong."""
    path = Path(path)
    hint = f"re-create it with `{rebuild_command(path)}`"
    if not path.is_dir():
        raise SpaceError(f"no space at {path}: the folder does not exist; {hint}.")
    manifest = read_manifest(path)
    for name in (EMBEDDINGS_FILE, MAP_FILE, PROJECTOR_FILE):
        if not (path / name).is_file():
            raise SpaceError(f"the space at {path} is incomplete: {name} is missing; {hint}.")
    mapped = _mapped_embeddings(path, manifest)
    if mapped is not None:
        damage = damaged_file(path)  # the Parquet footers: a damaged file is reported, not passed over
        if damage:
            raise SpaceError(f"the space at {path} is corrupt ({damage}); {hint}.")
        try:
            catalogue_map = pq.read_table(path / MAP_FILE).to_pandas()
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise SpaceError(f"the space at {path} is corrupt ({type(exc).__name__}: {exc}); {hint}.") from exc
        missing = [c for c in MAP_COLUMNS if c not in catalogue_map]
        if missing or len(catalogue_map) != len(mapped):
            raise SpaceError(
                f"the space at {path} is inconsistent: map.parquet does not match {EMBEDDINGS_ARRAY_FILE}; {hint}."
            )
        return Space(path, catalogue_map, mapped, manifest)
    try:
        emb_table = pq.read_table(path / EMBEDDINGS_FILE)
        catalogue_map = pq.read_table(path / MAP_FILE).to_pandas()
        ids = emb_table.column("source_id").to_numpy(zero_copy_only=False).astype(str)
        column = emb_table.column("embedding").combine_chunks()
        dim = int(manifest["counts"]["embedding_dim"])
        embeddings = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        embeddings = embeddings.reshape(len(ids), dim)
    except (OSError, KeyError, ValueError, pa.ArrowException) as exc:
        raise SpaceError(f"the space at {path} is corrupt ({type(exc).__name__}: {exc}); {hint}.") from exc
    n = int(manifest["counts"]["sources"])
    if len(ids) != n or len(catalogue_map) != n:
        raise SpaceError(
            f"the space at {path} is inconsistent: the manifest counts {n} sources, "
            f"embeddings.parquet has {len(ids)} and map.parquet {len(catalogue_map)}; {hint}."
        )
    missing = [c for c in MAP_COLUMNS if c not in catalogue_map]
    if missing or not (catalogue_map["source_id"].astype(str).to_numpy() == ids).all():
        raise SpaceError(
            f"the space at {path} is inconsistent: map.parquet "
            f"{'lacks ' + ', '.join(missing) if missing else 'is not in the order of embeddings.parquet'}; {hint}."
        )
    return Space(path, catalogue_map, embeddings, manifest)


def _mapped_embeddings(path: Path, manifest: dict) -> np.ndarray | None:
    """The embeddings memory-mapped from ``embeddings.npy`` when the manifest records it and the file
    is whole (the size written, the shape of the counts); else None (read the Parquet copy)."""
    recorded = manifest.get("files", {}).get(EMBEDDINGS_ARRAY_FILE)
    file = path / EMBEDDINGS_ARRAY_FILE
    if not recorded or not file.is_file() or file.stat().st_size != recorded.get("bytes"):
        return None
    try:
        array = np.load(file, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None
    counts = manifest["counts"]
    if array.dtype != np.float32 or array.shape != (int(counts["sources"]), int(counts["embedding_dim"])):
        return None
    return array


def rebuild_command(path: str | Path) -> str:
    """The command that re-creates the space at ``path`` from what its manifest records (its
    bundle and weights), for messages about a damaged space."""
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST_FILE).read_text())
        bundle = manifest["bundle"].get("path")
        weights = manifest["weights"].get("file")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        bundle = weights = None
    bundle_arg = str(Path(bundle) if Path(str(bundle)).is_absolute() else path / str(bundle)) if bundle else "BUNDLE"
    weights_arg = f" --weights {weights}" if weights else ""
    return f"python -m pretrain embed --bundle {bundle_arg}{weights_arg} --out {path} --force"


def damaged_file(path: str | Path) -> str:
    """'' when the space's Parquet files open and hold the manifest's row count, else what is
    wrong with which file (their footers only are read: cheap enough for every start)."""
    path = Path(path)
    try:
        n = int(json.loads((path / MANIFEST_FILE).read_text())["counts"]["sources"])
    except (OSError, ValueError, KeyError, TypeError):
        return f"{MANIFEST_FILE} is unreadable"
    for name in (EMBEDDINGS_FILE, MAP_FILE):
        try:
            rows = pq.ParquetFile(path / name).metadata.num_rows
        except (OSError, ValueError, pa.ArrowException) as exc:
            return f"{name} is damaged ({type(exc).__name__})"
        if rows != n:
            return f"{name} holds {rows} rows, the manifest {n}"
    return ""


def read_manifest(path: str | Path) -> dict:
    path = Path(path)
    file = path / MANIFEST_FILE
    if not file.is_file():
        raise SpaceError(
            f"the space at {path} is incomplete (no {MANIFEST_FILE}: it was never "
            "finished, or it is not a space); re-create it with `python -m pretrain embed`."
        )
    try:
        manifest = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise SpaceError(f"{file} is not readable JSON ({exc}); re-create the space.") from exc
    if manifest.get("format") != SPACE_FORMAT:
        raise SpaceError(f"{file} does not describe a space (format {manifest.get('format')!r}).")
    if manifest.get("format_version") != SPACE_FORMAT_VERSION:
        if (path / LEGACY_PROJECTOR_FILE).exists():
            raise SpaceError(
                f"the space at {path} was written by an older version (its map projector is a pickle, "
                f"{LEGACY_PROJECTOR_FILE}, which is never loaded: it could run code); re-create it with "
                "`python -m pretrain embed`."
            )
        raise SpaceError(
            f"the space at {path} has format version {manifest.get('format_version')}; "
            f"this program reads version {SPACE_FORMAT_VERSION}. Re-create it."
        )
    for key in ("weights", "bundle", "counts", "files"):
        if key not in manifest:
            raise SpaceError(f"{file} lacks {key!r}; re-create the space.")
    return manifest


def _load_projector(path: Path, manifest: dict, reference: tuple[np.ndarray, np.ndarray]) -> MapProjector:
    file = path / PROJECTOR_FILE
    expected = manifest["files"].get(PROJECTOR_FILE, {}).get("sha256")
    # arrays only (nothing in them runs); the hash catches a changed or truncated file
    if not file.is_file() or sha256_file(file) != expected:
        raise SpaceError(
            f"{file} is missing or does not match the space's manifest (changed or "
            "truncated); re-create the space with `python -m pretrain embed`."
        )
    return MapProjector.load(file, reference=reference)


# --- staleness ----------------------------------------------------------------------------


def manifest_symmetry(manifest: dict) -> str:
    """The embedding symmetry a space's manifest records ("none" when it records none)."""
    return str((manifest.get("parameters") or {}).get("symmetry", "none"))


def manifest_mismatch(manifest: dict, bundle_id: str | None, symmetry: str) -> str:
    """'' when a manifest was made from ``bundle_id`` (None: not checked) with ``symmetry``,
    else why not."""
    if bundle_id is not None and manifest["bundle"].get("id") != bundle_id:
        return f"made from bundle {manifest['bundle'].get('id')}, not {bundle_id}"
    recorded = manifest_symmetry(manifest)
    if recorded != symmetry:
        return f"embedded with symmetry {recorded!r}, not {symmetry!r}"
    return ""


def is_stale(
    space_path: str | Path,
    weights_path: str | Path | None = None,
    bundle_id: str | None = None,
    symmetry: str = config.EMBED_SYMMETRY,
) -> bool | str:
    """False when the space is complete and was made from these weights and this bundle,
    with this embedding ``symmetry``.

    Otherwise a short reason (a non-empty string, so it is truthy). ``weights_path`` None
    means the default backbone; ``bundle_id`` None skips the bundle check. Torch-free: the
    app's start-up check uses it too.
    """
    space_path = Path(space_path)
    try:
        manifest = read_manifest(space_path)
    except SpaceError as exc:
        return str(exc)
    for name in (EMBEDDINGS_FILE, MAP_FILE, PROJECTOR_FILE):
        if not (space_path / name).is_file():
            return f"{name} is missing"
    damage = damaged_file(space_path)  # a damaged space is stale: the app rebuilds it
    if damage:
        return damage
    weights_path = Path(weights_path) if weights_path is not None else default_backbone_path()
    if not weights_path.is_file():
        return f"the weights file {weights_path} does not exist"
    if weights_sha256(weights_path) != manifest["weights"].get("sha256"):
        return (
            f"made with other weights ({manifest['weights'].get('file')}, sha256 "
            f"{str(manifest['weights'].get('sha256'))[:12]}...), not {weights_path.name}"
        )
    return manifest_mismatch(manifest, bundle_id, symmetry) or False


# --- making a space -------------------------------------------------------------------------


def embed_bundle_to_space(
    bundle,
    weights_path: str | Path | None = None,
    out: str | Path | None = None,
    device: str = "auto",
    progress: bool | StageProgress | None = None,
    batch_size: int = config.EMBED_BATCH_SIZE,
    seed: int = config.MAP_SEED,
    projector: MapProjector | None = None,
    symmetry: str = config.EMBED_SYMMETRY,
    embed: Callable[..., np.ndarray] | None = None,
) -> Space:
    """Embed every image of a bundle, fit the map and write the space to ``out``.

    ``bundle``: a Bundle (pretrain.data.bundle) or a path to one. ``weights_path`` None =
    the shipped backbone. ``progress``: True for tqdm, or ``progress(done, total, stage)``
    (embedding reports per batch; the map fit, which cannot report, is announced with
    ``done == total``). ``seed`` is UMAP's random_state. ``symmetry``: see
    ``pretrain.embed.embed_images``; recorded, and used again for images placed later.
    ``embed``: what embeds the images, with ``embed_images``' signature (default: it, in this
    process; ``pretrain.engines`` has a distributed one); its ``name`` is recorded as the engine.
    """
    from pretrain.devices import choose_device
    from pretrain.embed import Progress, embed_images
    from pretrain.models.backbone import load_encoder, weights_metadata

    if out is None:
        raise ValueError("out: the space folder to write")
    if isinstance(bundle, (str, Path)):
        from pretrain.data.bundle import load_bundle

        bundle = load_bundle(bundle)
    weights_path = Path(weights_path) if weights_path is not None else default_backbone_path()
    device_used = choose_device(device)
    encoder = load_encoder(weights_path, device=device_used)
    images, catalogue = bundle.images, bundle.catalogue
    if len(images) != len(catalogue):
        raise ExplorerError(f"the bundle is inconsistent: {len(images)} images, {len(catalogue)} catalogue rows.")

    embed_progress: Progress
    stage: Callable[[str], None]
    if progress is True:
        embed_progress, stage = True, (lambda message: print(message, file=sys.stderr, flush=True))
    elif callable(progress):
        report = progress
        embed_progress = lambda done, total: report(done, total, "embedding images")  # noqa: E731
        stage = lambda message: report(len(images), len(images), message)  # noqa: E731
    else:
        embed_progress, stage = None, (lambda message: None)

    embed = embed or embed_images
    embeddings = embed(
        encoder, images, batch_size=batch_size, device=device_used, progress=embed_progress, symmetry=symmetry
    )
    projector = projector or MapProjector(random_state=seed)
    stage(f"fitting the map (PCA -> UMAP) on {len(embeddings)} sources")
    map_xy = projector.fit_transform(embeddings)
    stage("writing the space")

    bundle_path = getattr(bundle, "path", None)
    out = Path(out)
    if bundle_path is not None:
        bundle_path = Path(bundle_path).resolve()
        try:  # a bundle inside the space (embed --fits) is recorded relative to it
            bundle_path = bundle_path.relative_to(out.resolve())
        except ValueError:
            pass
    provenance = {
        "weights": {
            "sha256": weights_sha256(weights_path),
            "file": weights_path.name,
            # whether its pretraining saw the held-out sky (pretrain/holdout.py): evaluate says so
            "held_out": weights_metadata(weights_path).get("held_out", "unknown"),
        },
        "bundle": {
            "id": getattr(bundle, "bundle_id", None),
            "path": str(bundle_path) if bundle_path is not None else None,
        },
        "parameters": {
            "batch_size": batch_size,
            "device": str(device_used),
            "seed": seed,
            "model_input_px": config.MODEL_INPUT_PX,
            "symmetry": symmetry,
            "engine": getattr(embed, "name", "local"),
        },
    }
    return save_space(out, catalogue["source_id"], embeddings, map_xy, catalogue, projector, provenance)


def place_image(space: Space, encoder, image_uint8: np.ndarray, device: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Embed a preprocessed uint8 image (150 x 150) and place it on the space's map.

    Returns (embedding (512,) float32 raw, map position (2,)); for a stack of images
    (N, 150, 150), arrays (N, 512) and (N, 2). The encoder must be the one the space was
    made with (compare ``weights_sha256`` with ``space.weights_sha256``); the image is
    embedded with the space's own symmetry setting.

    An image whose representation equals one already in the space (cosine similarity
    above ``1 - SAME_SOURCE_COSINE_TOL``: the same source looked up again, or, in a d4
    space, turned by a multiple of 90 degrees or mirrored) gets that source's own map
    position; UMAP's ``transform`` only approximates the positions of the points it was
    fitted on. Everything else is placed by ``transform``.
    """
    from pretrain.embed import embed_images

    image = np.asarray(image_uint8)
    single = image.ndim == 2
    embedding = embed_images(encoder, image[None] if single else image, device=device, symmetry=space.symmetry)
    xy = space.projector.transform(embedding)
    best, similarity = space.neighbour_index.search(embedding, 1)
    same = (best[:, 0] >= 0) & (similarity[:, 0] > 1.0 - SAME_SOURCE_COSINE_TOL)
    xy[same] = space.map_xy[best[same, 0]]
    return (embedding[0], xy[0]) if single else (embedding, xy)


# --- summary ------------------------------------------------------------------------------


def describe(space: Space) -> dict[str, Any]:
    """A short summary for logs and the CLI."""
    m = space.manifest
    return {
        "path": str(space.path),
        "sources": len(space),
        "weights": m["weights"].get("file"),
        "weights_sha256": m["weights"].get("sha256", "")[:12],
        "bundle_id": m["bundle"].get("id"),
        "created": m.get("created"),
    }


# --- a space from given embeddings -----------------------------------------------------------


def space_from_embeddings(
    embeddings_file: str | Path,
    out: str | Path,
    column: str | None = None,
    seed: int = config.MAP_SEED,
    projector: MapProjector | None = None,
    index_settings: IndexSettings | None = None,
    progress: Callable[[str], None] | None = None,
) -> Space:
    """A space from vectors made elsewhere (``pretrain.given_embeddings`` reads and checks the file):
    the map fitted by ``pretrain.mapping``, the neighbour index built, the file and its SHA-256 recorded
    as where the vectors came from (there are no weights and no bundle)."""
    from pretrain.given_embeddings import read_given_embeddings

    say = progress or (lambda message: None)
    out = Path(out)
    check_space_out(out)
    embeddings_file = Path(embeddings_file)
    say(f"reading {embeddings_file}")
    given = read_given_embeddings(embeddings_file, column)
    n, dim = given.vectors.shape
    say(f"{n:,} sources with {dim}-d embeddings ({given.column}); fitting the map (PCA -> UMAP)")
    projector = projector or MapProjector(random_state=seed)
    map_xy = projector.fit_transform(given.vectors)
    say("hashing the embeddings file (provenance)")
    provenance = {
        "weights": {"sha256": None, "file": None, "held_out": "unknown"},
        "bundle": {"id": None, "path": None},
        "parameters": {"seed": seed, "embedding_column": given.column},
        "vectors_from": {
            "file": str(embeddings_file.resolve()),
            "sha256": sha256_file(embeddings_file),
            "column": given.column,
            "rows": n,
            "dim": dim,
        },
    }
    say("writing the space and building its neighbour index")
    return save_space(
        out,
        given.catalogue["source_id"],
        given.vectors,
        map_xy,
        given.catalogue,
        projector,
        provenance,
        index_settings=index_settings,
        progress=say,
    )
