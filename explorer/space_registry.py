"""Which spaces the app can show, and one interface over both kinds.

- **Embedding spaces** (made by ``python -m pretrain embed`` or by the app for MiraBest):
  a catalogue with map coordinates, 512-d representations and the images of their bundle.
  Neighbours are found by cosine similarity in the full representation space.
  Neighbours come from the space's neighbour index (``pretrain.neighbour_index``: exact
  for small spaces, FAISS above its size threshold). A space made from given vectors
  (``pretrain space --embeddings``) has no bundle: its images are read from the FITS files
  its catalogue names (column ``cutout_file``) or, without one, fetched from FIRST.
- **Catalogue-only spaces** (the published RGZ DR1 map): positions, sizes and someone
  else's map coordinates, no representations and no images. Neighbours are the nearest
  points *on the map* (2-D), and images come from FIRST through the cutout client.

:func:`discover_spaces` lists what is available: the default MiraBest space (even before
it is prepared), every space folder under ``cache_dir()/spaces`` and under the folders in
``EXPLORER_SPACES`` (``os.pathsep``-separated; each a space or a folder of spaces), and the
published RGZ DR1 map when its Parquet file is there (``EXPLORER_RGZ_MAP`` or the shared
data folder).
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from explorer.similarity import CosineIndex, MapIndex
from explorer.sky import sky_duplicate_mask
from pretrain import config
from pretrain.errors import ExplorerError
from pretrain.given_embeddings import CUTOUT_FILE_COLUMN  # a catalogue column naming each source's FITS cutout
from pretrain.pair_similarity import PairSimilarity

RGZ_MAP_FILE = "rgz_dr1_published_map.parquet"
DEFAULT_KEY = "default:mirabest"
RGZ_KEY = "catalogue:rgz-dr1"
WARM_UP_DELAY_S = 8.0  # the projector warm-up waits this long after a space is opened


@dataclass(frozen=True)
class SpaceEntry:
    """One choice in the space selector."""

    key: str  # stable identifier (widget state, caches)
    title: str  # what people read
    kind: str  # "default" (MiraBest, prepared on demand), "embedding" or "catalogue"
    path: Path | None


def rgz_map_path() -> Path:
    override = os.environ.get("EXPLORER_RGZ_MAP", "").strip()
    return Path(override).expanduser() if override else config.SHARED_DATA_DIR / RGZ_MAP_FILE


def _space_folders(root: Path) -> list[Path]:
    """``root`` itself if it is a space, else its sub-folders that are spaces (sorted)."""
    from pretrain.space import MANIFEST_FILE

    if not root.is_dir():
        return []
    if (root / MANIFEST_FILE).is_file() and (root / "map.parquet").is_file():
        return [root]
    # dot-folders are hidden: the default space's refinement is written into one
    return sorted(
        p
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST_FILE).is_file() and (p / "map.parquet").is_file()
    )


def _title(folder: Path) -> str:
    """A space's name in the selector: its folder and, from its manifest, how many sources."""
    import json

    try:
        count = json.loads((folder / "manifest.json").read_text())["counts"]["sources"]
        return f"{folder.name} ({int(count):,} sources)"
    except (OSError, ValueError, KeyError, TypeError):
        return folder.name


def discover_spaces() -> list[SpaceEntry]:
    """Every space the app can open; the default MiraBest space first."""
    from explorer import default_space

    default_path = default_space.space_path()
    entries = [SpaceEntry(DEFAULT_KEY, "MiraBest (default)", "default", default_path)]
    roots = [config.cache_dir() / "spaces"]
    roots += [Path(p).expanduser() for p in os.environ.get("EXPLORER_SPACES", "").split(os.pathsep) if p.strip()]
    seen = {default_path.resolve()}
    for root in roots:
        for folder in _space_folders(root):
            if folder.resolve() in seen:
                continue
            seen.add(folder.resolve())
            entries.append(SpaceEntry(f"space:{folder.resolve()}", _title(folder), "embedding", folder))
    rgz = rgz_map_path()
    if rgz.is_file():
        entries.append(SpaceEntry(RGZ_KEY, "RGZ DR1 published map (catalogue only)", "catalogue", rgz))
    return entries


# --- the spaces ---------------------------------------------------------------------------


@dataclass
class Neighbours:
    """A ranked neighbour list and what the duplicate filter dropped."""

    rows: np.ndarray  # catalogue rows, best first
    scores: np.ndarray  # cosine similarity (embedding spaces) or map distance (catalogue spaces)
    score_name: str
    dropped: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))  # sky duplicates


class ExplorerSpace:
    """What the pages need from a space, whichever kind it is."""

    key: str
    title: str
    catalogue: pd.DataFrame  # row order = map order; source_id, umap_x, umap_y, ra, dec, ...
    has_embeddings: bool = False
    has_images: bool = False  # images without a network request (a bundle)
    index: CosineIndex | MapIndex
    _outlier_scores: np.ndarray | None = None  # explorer.neighbourhood.space_outlier_scores, once computed

    @property
    def score_name(self) -> str:
        return self.index.metric_name

    def __len__(self) -> int:
        return len(self.catalogue)

    def row_of(self, source_id: str) -> int:
        """Catalogue row of a source id (KeyError if unknown)."""
        return int(self._row_by_id[source_id])

    @functools.cached_property
    def _row_by_id(self) -> pd.Series:
        return pd.Series(np.arange(len(self.catalogue)), index=self.catalogue["source_id"].astype(str))

    def image(self, row: int) -> np.ndarray | None:
        """The model image (uint8, 150 x 150) of a source, if available without the network."""
        return None

    def similarity_percentile(self, scores) -> np.ndarray | None:
        """Each cosine's percentile among all pairs of this space; None without embeddings."""
        return None

    def neighbours_of_row(self, row: int, k: int, sky_radius_arcsec: float = 0.0) -> Neighbours:
        """The ``k`` nearest sources to catalogue row ``row`` (itself excluded)."""
        query = self._query_of_row(row)
        ra, dec = self.catalogue["ra"].iloc[row], self.catalogue["dec"].iloc[row]
        return self._search(query, k, sky_radius_arcsec, (ra, dec), exclude=[row])

    def _query_of_row(self, row: int):
        raise NotImplementedError

    def _search(self, query, k: int, sky_radius_arcsec: float, query_radec, exclude=()) -> Neighbours:
        """Top-k, dropping sky duplicates; asks for more candidates until k survive (bounded)."""
        n = len(self.index)
        ra = self.catalogue["ra"].to_numpy(np.float64)
        dec = self.catalogue["dec"].to_numpy(np.float64)
        wanted = min(k + 16, n)
        while True:
            rows, scores = self.index.query(query, wanted, exclude=list(exclude))
            keep = sky_duplicate_mask(ra[rows], dec[rows], sky_radius_arcsec, query_radec)
            if keep.sum() >= k or wanted >= n:
                break
            wanted = min(n, wanted * 4)  # at most log4(n) rounds
        kept = np.flatnonzero(keep)[:k]
        last = kept[-1] if kept.size else -1
        dropped = rows[: last + 1][~keep[: last + 1]]
        return Neighbours(rows[kept], scores[kept], self.score_name, dropped)


class EmbeddingSpace(ExplorerSpace):
    """A space with representations (``pretrain.space.Space``) and its bundle's images."""

    has_embeddings = True
    index: CosineIndex

    def __init__(self, space, key: str, title: str):
        self.space = space
        self.key, self.title = key, title
        self.catalogue = space.catalogue_map.reset_index(drop=True)
        self.index = CosineIndex(neighbour_index=space.neighbour_index)
        self.index_note = space.neighbour_index.note  # set when an old space's index was built on opening
        self.images, self.images_problem = _bundle_images(space)
        self.has_images = self.images is not None or CUTOUT_FILE_COLUMN in self.catalogue
        self.projector_lock = threading.Lock()
        self._measured_lock = threading.Lock()  # not the projector's: a warm-up holds that for seconds

    @property
    def embedding_dim(self) -> int:
        """The representations' dimension (512 for this project's backbone; any for given vectors)."""
        return int(self.space.embeddings.shape[1])

    def warm_up(self) -> None:
        """Load the map projector and run it once.

        UMAP's first ``transform`` in a process compiles numba code (slow); doing it in
        the background while people look at the map makes the first look-up quick.
        """
        time.sleep(WARM_UP_DELAY_S)  # let the first page finish drawing: this takes a core for a while
        with self.projector_lock:
            self.space.projector.transform(self.space.embeddings[:1])

    def _query_of_row(self, row: int) -> np.ndarray:
        return self.index.unit_vectors_[row]

    @functools.cached_property
    def _pair_similarity(self) -> PairSimilarity:
        return PairSimilarity().fit(self.index.unit_vectors_)

    def similarity_percentile(self, scores) -> np.ndarray | None:
        return self._pair_similarity.percentile(scores)

    def image(self, row: int) -> np.ndarray | None:
        if self.images is None:
            return self._cutout_file_image(row) if CUTOUT_FILE_COLUMN in self.catalogue else None
        return np.asarray(self.images[row])  # one 22 kB read from the memory map

    def _cutout_file_image(self, row: int) -> np.ndarray | None:
        """The model image of the FITS file the catalogue names for ``row`` (None: no file, or unreadable)."""
        name = self.catalogue[CUTOUT_FILE_COLUMN].iloc[row]
        if not isinstance(name, str) or not name or not Path(name).is_file():
            return None
        return _cached_file_image(name)

    def neighbours_of_vector(
        self,
        vector: np.ndarray,
        k: int,
        sky_radius_arcsec: float = 0.0,
        query_radec: tuple[float, float] | None = None,
        measurements: Mapping[str, float] | None = None,
    ) -> Neighbours:
        """Neighbours of a new representation (a looked-up image). ``measurements``: its pixel
        measurements, used by a view with neighbours by representation + measurements."""
        return self._search(self.query_vector(vector, measurements), k, sky_radius_arcsec, query_radec)

    def query_vector(self, vector: np.ndarray, measurements: Mapping[str, float] | None = None) -> np.ndarray:
        """What this space's index searches with for a new image's representation (here: itself)."""
        return np.asarray(vector, dtype=np.float32)

    # what the neighbours' cosine is taken between; a measured view appends the measurements
    uses_measurements = False

    @property
    def similarity_description(self) -> str:
        return f"cosine similarity of the {self.embedding_dim}-d representations"

    @functools.cached_property
    def _measured_view(self) -> MeasuredEmbeddingSpace | None:
        from pretrain.measured_neighbours import has_measurements

        return MeasuredEmbeddingSpace(self) if has_measurements(self.catalogue) else None

    def measured_view(self) -> MeasuredEmbeddingSpace | None:
        """This space with neighbours by representation + pixel measurements (built on first
        use, then kept); None when its catalogue has no measurements."""
        with self._measured_lock:  # two sessions asking at once build it once
            return self._measured_view

    @property
    def weights_sha256(self) -> str:
        return self.space.weights_sha256

    @property
    def vectors_from_file(self) -> dict | None:
        return self.space.vectors_from_file

    @property
    def weights_file(self) -> str:
        return self.space.manifest["weights"].get("file", "")


class MeasuredEmbeddingSpace(EmbeddingSpace):
    """An embedding space whose neighbours are by representation + pixel measurements.

    The vectors are :class:`pretrain.measured_neighbours.MeasuredRepresentation`'s, fitted
    on the space's own sources; everything else (catalogue, images, map, projector, key) is
    the base space's, so the map, tags and selections stay as they are.
    """

    uses_measurements = True

    def __init__(self, base: EmbeddingSpace):
        from pretrain.measured_neighbours import MeasuredRepresentation

        self.base = base
        self.space, self.key, self.title, self.catalogue = base.space, base.key, base.title, base.catalogue
        self.images, self.images_problem, self.has_images = base.images, base.images_problem, base.has_images
        self.projector_lock, self.index_note = base.projector_lock, ""
        self.measured = MeasuredRepresentation().fit(base.space.embeddings, base.catalogue)
        self.index = CosineIndex().fit(self.measured.transform(base.space.embeddings, base.catalogue))

    def query_vector(self, vector: np.ndarray, measurements: Mapping[str, float] | None = None) -> np.ndarray:
        return self.measured.transform(np.asarray(vector, dtype=np.float32)[None], [dict(measurements or {})])[0]

    @property
    def similarity_description(self) -> str:
        return (
            f"cosine similarity of the {self.embedding_dim}-d representations with the pixel "
            f"measurements appended ({self.measured.describe()})"
        )

    def measured_view(self) -> MeasuredEmbeddingSpace:
        return self


def _bundle_images(space) -> tuple[np.ndarray | None, str]:
    """The bundle's image memmap, if the bundle is there and holds exactly this space's sources;
    and, when it is there but damaged, what is wrong (shown on the cards instead of "no image")."""
    from pretrain.data.bundle import load_bundle

    path = space.bundle_path
    if path is None or not Path(path).is_dir():
        return None, ""
    try:
        bundle = load_bundle(path)
    except ExplorerError as exc:
        return None, f"bundle damaged: {exc}"
    same = (
        len(bundle.catalogue) == len(space.catalogue_map)
        and (
            bundle.catalogue["source_id"].astype(str).to_numpy()
            == space.catalogue_map["source_id"].astype(str).to_numpy()
        ).all()
    )
    return (bundle.images, "") if same else (None, "")


@functools.lru_cache(maxsize=2048)  # bounded memory: 2048 x 22 kB
def _cached_file_image(path: str) -> np.ndarray | None:
    from pretrain.data.fits_io import read_cutout

    try:
        return _model_image_from_cutout(read_cutout(Path(path)))
    except ExplorerError:  # an unreadable file: no image, said on its card
        return None


class FirstImageSpace(ExplorerSpace):
    """A space without images of its own: FIRST cutouts of its sources' positions, on request."""

    # Images: FIRST cutouts through the look-up client. ``image`` looks only in the client's
    # disk cache (no network: the gallery must stay fast); ``fetch_image`` may download.
    def _request(self, row: int, client):
        from astropy.coordinates import SkyCoord

        ra, dec = self.catalogue["ra"].iloc[row], self.catalogue["dec"].iloc[row]
        return client.request(SkyCoord(float(ra), float(dec), unit="deg"))

    def image(self, row: int, client=None) -> np.ndarray | None:
        if row in self._images:
            return self._images[row]
        client = client or _default_client()
        cutout = client.cached(self._request(row, client))  # only an entry the cache may trust
        if cutout is None:
            return None
        return self._remember(row, _model_image_from_cutout(cutout))

    def is_blank(self, row: int) -> bool:
        """The source's FIRST cutout was fetched and holds no image (blank, or outside the survey)."""
        return row in self._images and self._images[row] is None

    def fetch_image(self, row: int, client=None) -> np.ndarray | None:
        """The model image of a source, downloading its FIRST cutout if needed.

        Raises the client's errors (NoNetworkError, OutsideFootprintError, ...); returns
        None when the cutout holds no significant emission.
        """
        cached = self.image(row, client)
        if cached is not None:
            return cached
        from pretrain.data.preprocess import preprocess_image
        from pretrain.errors import BlankImageError, OutsideFootprintError

        client = client or _default_client()
        try:
            cutout = client.fetch(self._request(row, client).position)
        except OutsideFootprintError:
            self._remember(row, None)  # SkyView's blank answer: no image, and no use asking again
            raise
        try:
            image = preprocess_image(cutout.data, cutout.pixel_scale_arcsec)
        except BlankImageError:
            image = None
        return self._remember(row, image)

    @functools.cached_property
    def _images(self) -> dict[int, np.ndarray | None]:
        return {}

    def _remember(self, row: int, image: np.ndarray | None) -> np.ndarray | None:
        if len(self._images) > 2048:  # bounded memory: 2048 x 22 kB
            self._images.clear()
        self._images[row] = image
        return image


class CatalogueSpace(FirstImageSpace):
    """A published map without representations: neighbours on the map, images from FIRST."""

    has_embeddings = False
    has_images = False
    index: MapIndex

    def __init__(self, catalogue: pd.DataFrame, key: str, title: str):
        self.key, self.title = key, title
        self.catalogue = catalogue.reset_index(drop=True)
        self.index = MapIndex().fit(self.catalogue[["umap_x", "umap_y"]].to_numpy())

    def _query_of_row(self, row: int) -> np.ndarray:
        return self.index.points_[row]


class FetchedImageEmbeddingSpace(FirstImageSpace, EmbeddingSpace):
    """An embedding space without a bundle or cutout files (made from given vectors): FIRST images."""

    has_images = False

    def image(self, row: int, client=None) -> np.ndarray | None:
        return FirstImageSpace.image(self, row, client)


def _default_client():
    """A FIRST cutout client at ``EXPLORER_SKYVIEW_URL`` (read now, not at import)."""
    from pretrain.data.first_client import cutout_client

    return cutout_client("first")


def _model_image_from_cutout(cutout) -> np.ndarray | None:
    from pretrain.data.preprocess import preprocess_image

    try:
        return preprocess_image(cutout.data, cutout.pixel_scale_arcsec)
    except ExplorerError:
        return None


def read_rgz_map(path: str | Path) -> pd.DataFrame:
    """The published RGZ DR1 map in the app's column names (``size`` -> angular extent).

    ``source_id`` is the RGZ name, with ``_2`` appended to the second entry of a name that
    the catalogue lists twice; ``rgz_name`` keeps the name as published.
    """
    path = Path(path)
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:
        raise ExplorerError(f"{path}: cannot read the RGZ DR1 map ({exc}).") from exc
    needed = {"rgz_name", "ra", "dec", "size", "umap_x", "umap_y"}
    if not needed <= set(frame.columns):
        raise ExplorerError(f"{path}: expected columns {sorted(needed)}, found {sorted(frame.columns)}.")
    from pretrain.data.names import unique_source_ids

    names = frame["rgz_name"].astype(str).tolist()
    out = pd.DataFrame(
        {
            # some names appear twice (the same object entered twice): ids must be unique
            "source_id": unique_source_ids(names),
            "rgz_name": names,
            "umap_x": frame["umap_x"].to_numpy(np.float32),
            "umap_y": frame["umap_y"].to_numpy(np.float32),
            "ra": frame["ra"].to_numpy(np.float64),
            "dec": frame["dec"].to_numpy(np.float64),
            "angular_extent_arcsec": frame["size"].to_numpy(np.float64),
        }
    )
    for column in frame.columns:  # anything else the file carries
        if column not in needed and column not in out:
            out[column] = frame[column].to_numpy()
    return out


def open_space(entry: SpaceEntry) -> ExplorerSpace:
    """Load the space behind a selector entry (the default one must be prepared first)."""
    if entry.path is None:
        raise ExplorerError(f"the space {entry.title!r} has no folder or file to open.")
    if entry.kind == "catalogue":
        return CatalogueSpace(read_rgz_map(entry.path), entry.key, entry.title)
    from pretrain.space import load_space

    space = EmbeddingSpace(load_space(entry.path), entry.key, entry.title)
    if space.images is None and CUTOUT_FILE_COLUMN not in space.catalogue and {"ra", "dec"} <= set(space.catalogue):
        # its images: FIRST cutouts of its positions (the loaded space and its index are reused)
        return FetchedImageEmbeddingSpace(space.space, entry.key, entry.title)
    return space


# --- the encoder a space was made with ------------------------------------------------------


def weights_candidates(space: EmbeddingSpace) -> list[Path]:
    """Where the weights a space was embedded with may be, most likely first."""
    from explorer.default_space import weights_path
    from pretrain.provenance import default_backbone_path

    name = space.weights_file
    candidates = [weights_path(), default_backbone_path()]
    if name:
        candidates += [config.ASSETS_DIR / name, space.space.path / name, space.space.path.parent / name]
        runs = config.REPO_ROOT / "runs"
        if runs.is_dir():
            candidates += sorted(runs.glob(f"*/{name}"))
    unique = []
    for path in candidates:
        if path not in unique:
            unique.append(path)
    return unique


def find_weights(space: EmbeddingSpace) -> Path:
    """The weights file whose SHA-256 is the one recorded in the space (ExplorerError if none)."""
    from pretrain.provenance import weights_sha256

    given = space.vectors_from_file
    if given is not None:
        raise ExplorerError(
            f"This space's vectors were read from {given.get('file', 'a file')} (made outside this program, "
            "by a model it does not have), so a new image cannot be embedded and placed on its map. "
            "Choose a space made with `python -m pretrain embed` to place images."
        )
    for path in weights_candidates(space):
        if path.is_file() and weights_sha256(path) == space.weights_sha256:
            return path
    raise ExplorerError(
        f"The weights this space was embedded with ({space.weights_file or 'unknown file'}, sha256 "
        f"{space.weights_sha256[:12]}...) were not found, so a new image cannot be placed on its map. "
        "Set EXPLORER_WEIGHTS to that file, or choose another space."
    )
