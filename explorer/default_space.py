"""The app's default space: MiraBest, embedded with the shipped backbone, kept in the user cache.

First start: find (or download) the MiraBest FITS files -> build a bundle -> embed it with
the backbone -> fit the map. Each step reports progress through one callback, so the app
can show it. Later starts reuse the cached space, unless it is stale: made with other
weights (their SHA-256 differs), or from a bundle that no longer matches the MiraBest
folder (another folder, or another number of files). Then the stale part is rebuilt.

The app's first start is quick (``quick=True``): its bundle leaves out the pixel
measurements (about half of the preprocessing: ``build_bundle(measure=False)``), and it
embeds with one forward pass per image (``PROVISIONAL_SYMMETRY``), an eighth of the work of
the orientation-averaged representation (``config.EMBED_SYMMETRY``, d4), so the map is on
screen sooner. Such a space is ready but *provisional*; :func:`refine_default_space` (run in
the background by :func:`start_refinement`) then builds the measured bundle and embeds the d4
representation into folders beside them, swaps both in, and the app reloads the space. A
backbone whose representation is invariant by construction (the D4 network) gets its final
representation at the quick start (one pass is all it needs): only the measurements follow.

Environment: ``EXPLORER_WEIGHTS`` (a backbone other than ``assets/``'s default),
``EXPLORER_MIRABEST_DIR`` (a local MiraBest folder, see :mod:`pretrain.data.mirabest`),
``EXPLORER_CACHE`` (where bundles and spaces go).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pretrain import config
from pretrain.errors import ExplorerError

Progress = Callable[[str, float, str], None]  # (stage, fraction 0..1, message)
STAGES = ("data", "bundle", "embeddings", "map")
DEFAULT_SPACE_NAME = "mirabest"
# The representation of a quick first start: one forward pass per image.
PROVISIONAL_SYMMETRY = "none"
# One preparation at a time in a process: two browser tabs opening the app at once would
# otherwise both write the same bundle and space folders.
_PREPARE_LOCK = threading.Lock()


def weights_path() -> Path:
    """The backbone the app embeds with: ``EXPLORER_WEIGHTS``, else the one shipped in ``assets/``."""
    from pretrain.provenance import default_backbone_path

    override = os.environ.get("EXPLORER_WEIGHTS", "").strip()
    return Path(override).expanduser() if override else default_backbone_path()


def check_weights() -> Path:
    """The weights file, or a clear error saying it is missing and what to do."""
    path = weights_path()
    if not path.is_file():
        if os.environ.get("EXPLORER_WEIGHTS", "").strip():
            raise ExplorerError(
                f"EXPLORER_WEIGHTS points at {path}, which does not exist. "
                "Point it at a backbone .safetensors file, or unset it to use the shipped one."
            )
        raise ExplorerError(
            f"The shipped backbone weights are missing ({path}). Without them the MiraBest space cannot "
            "be embedded. Get a complete checkout of the project (assets/ holds the weights), train a "
            "backbone with `python -m pretrain train`, or set EXPLORER_WEIGHTS to a .safetensors file."
        )
    return path


def bundle_path() -> Path:
    return config.cache_dir() / "bundles" / DEFAULT_SPACE_NAME


def space_path() -> Path:
    return config.cache_dir() / "spaces" / DEFAULT_SPACE_NAME


def _fits_files(folder: Path) -> list[Path]:
    from pretrain.files import is_fits_name

    # as bundle counts its inputs: hidden files are skipped, a broken link is an input that failed
    return [
        p
        for p in folder.iterdir()
        if is_fits_name(p.name) and not p.name.startswith(".") and (p.is_file() or (p.is_symlink() and not p.exists()))
    ]


def bundle_matches(bundle_dir: Path, fits_dir: Path) -> bool:
    """Is the bundle at ``bundle_dir`` a complete build of exactly the files now in ``fits_dir``?

    Compared: the bundle format's version, the input folder recorded in the manifest and
    the number of its files (images + failures + duplicates). An older format, a different
    folder or a file added or removed makes the bundle stale.
    """
    manifest_file = bundle_dir / "manifest.json"
    if not manifest_file.is_file():
        return False
    try:
        manifest = json.loads(manifest_file.read_text())
    except (OSError, ValueError):
        return False
    from pretrain.data.bundle import FORMAT_VERSION

    if manifest.get("format_version") != FORMAT_VERSION:  # made by an older version: columns missing
        return False
    inputs = manifest.get("inputs") or []
    if len(inputs) != 1 or Path(inputs[0].get("path", "")).resolve() != fits_dir.resolve():
        return False
    if int(inputs[0].get("n_items", -1)) != len(_fits_files(fits_dir)):
        return False
    from pretrain.data.bundle import load_bundle

    try:  # a truncated images.npy or a damaged catalogue: rebuilt, not shown as "no image"
        load_bundle(bundle_dir)
    except ExplorerError:
        return False
    return True


@dataclass
class DefaultSpaceState:
    """Where the default space stands: ``ready`` or what has to be (re)built and why."""

    ready: bool
    reason: str  # for people: "ready", "not prepared yet", "made with other weights", ...
    space_path: Path
    weights_path: Path
    # ready, but with the quick one-pass representation or without the pixel measurements
    provisional: bool = False
    # provisional for its representation: the d4 one is still to be made
    one_pass: bool = False


def fingerprint() -> tuple:
    """Cheap facts that change whenever the default space's state may have changed.

    (Paths and modification times of the weights, the space's manifest and the MiraBest
    folder.) The app caches :func:`default_space_state` on this, so a rerun does not hash
    the weights again.
    """
    from pretrain.data.mirabest import find_local_mirabest

    def stamp(path: Path):
        try:
            st = path.stat()
            return str(path), st.st_mtime_ns, st.st_size
        except OSError:
            return str(path), None, None

    local = find_local_mirabest()
    return (
        stamp(weights_path()),
        stamp(space_path() / "manifest.json"),
        stamp(bundle_path() / "manifest.json"),
        stamp(local[0]) if local else None,
    )


def default_space_state() -> DefaultSpaceState:
    """Check (cheaply, no network) whether the cached default space can be used as it is."""
    from pretrain.data.mirabest import find_local_mirabest

    space, weights = space_path(), weights_path()
    if not weights.is_file():
        return DefaultSpaceState(False, "the backbone weights are missing", space, weights)
    if not space.is_dir():
        return DefaultSpaceState(False, "not prepared yet", space, weights)
    local = find_local_mirabest()
    bundle = bundle_path()
    if local is not None and not bundle_matches(bundle, local[0]):
        return DefaultSpaceState(False, "the MiraBest files changed since it was prepared", space, weights)
    try:
        bundle_manifest = json.loads((bundle / "manifest.json").read_text())
        bundle_id = bundle_manifest["bundle_id"]
    except (OSError, ValueError, KeyError, TypeError):
        return DefaultSpaceState(False, "its dataset bundle is missing", space, weights)
    from pretrain.data.bundle import is_measured
    from pretrain.space import is_stale

    stale = is_stale(space, weights, bundle_id)
    if stale and _is_provisional(space, weights, bundle_id):
        return DefaultSpaceState(
            True, "ready (one-pass representation)", space, weights, provisional=True, one_pass=True
        )
    if not stale and not is_measured(bundle_manifest):
        return DefaultSpaceState(True, "ready (pixel measurements to come)", space, weights, provisional=True)
    if stale:
        return DefaultSpaceState(False, f"the cached space is stale: {stale}", space, weights)
    return DefaultSpaceState(True, "ready", space, weights)


def _is_provisional(space: Path, weights: Path, bundle_id: str | None) -> bool:
    """A complete space of these weights and bundle, embedded with the quick one-pass representation."""
    from pretrain.space import is_stale

    if quick_symmetry(weights) == config.EMBED_SYMMETRY:
        return False
    return not is_stale(space, weights, bundle_id, symmetry=PROVISIONAL_SYMMETRY)


def quick_symmetry(weights: Path) -> str:
    """The representation a quick first start embeds with: one pass (``PROVISIONAL_SYMMETRY``),
    or the final one (``config.EMBED_SYMMETRY``) for an invariant backbone, which the d4
    average costs no more than one pass (``pretrain.embed.views_for``)."""
    from pretrain.models.backbone import weights_metadata
    from pretrain.models.resnet import parse_architecture

    try:
        invariant = parse_architecture(weights_metadata(weights).get("architecture", "resnet18-1ch"))[2] == "d4"
    except Exception:  # unreadable or unknown weights: loading them says what is wrong
        invariant = False
    return config.EMBED_SYMMETRY if invariant else PROVISIONAL_SYMMETRY


def prepare_default_space(progress: Progress | None = None, device: str = "auto", quick: bool = False):
    """Make sure the MiraBest space is in the cache and current; return it (a ``pretrain.space.Space``).

    ``progress(stage, fraction, message)`` is called as each stage advances; stages are
    ``data`` (finding / downloading the files), ``bundle``, ``embeddings`` and ``map``.
    Work already done and still valid is reused (a complete bundle, a fresh space).
    ``quick``: embed with one pass per image when the space has to be made (and accept such
    a provisional space as it is); :func:`refine_default_space` makes the d4 one later.
    """
    with _PREPARE_LOCK:
        return _prepare(progress or (lambda stage, fraction, message: None), device, quick)


def refine_default_space(progress: Progress | None = None, device: str = "auto"):
    """Replace a provisional (one-pass) default space by the orientation-averaged one; return it.

    The new space is written into a folder beside the old one and swapped in by renaming,
    so a reader sees either the old space or the new one, never half of one. Returns None
    (and does nothing) when the space is not provisional.
    """
    with _PREPARE_LOCK:
        return _refine(progress or (lambda stage, fraction, message: None), device)


class Preparation:
    """The default space being prepared in a background thread, with the latest progress.

    The thread belongs to the process, not to a browser session: a page change, a
    widget touched or a second tab while it runs does not stop it (any of those would
    interrupt a preparation run inside a Streamlit script and make it start over).
    """

    def __init__(self, device: str = "auto", refine: bool = False):
        self.refine = refine  # the background refinement of a provisional space, not a preparation
        self._lock = threading.Lock()
        self.started = time.monotonic()
        self._stages: dict[str, tuple[float, str]] = {stage: (0.0, "") for stage in STAGES}
        self.error: BaseException | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(device,), name="prepare default space", daemon=True)

    def start(self) -> Preparation:
        self._thread.start()
        return self

    def _report(self, stage: str, fraction: float, message: str) -> None:
        with self._lock:
            self._stages[stage] = (float(min(max(fraction, 0.0), 1.0)), message)

    def _run(self, device: str) -> None:
        try:
            if self.refine:
                refine_default_space(self._report, device)
            else:
                threading.Thread(target=_compile_map_code, name="compile the map's code", daemon=True).start()
                prepare_default_space(self._report, device, quick=True)
        except BaseException as exc:  # kept for the page to show (or raise, if it is a bug)
            self.error = exc
        finally:
            self._done.set()

    def progress(self) -> dict[str, tuple[float, str]]:
        """{stage: (fraction 0..1, latest message)} for every stage, in order."""
        with self._lock:
            return dict(self._stages)

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait until it has finished (or ``timeout_s`` passed); True when finished."""
        return self._done.wait(timeout_s)


def _compile_map_code() -> None:
    """UMAP's numba code compiled while the bundle is made (the map step would otherwise wait
    for it); a failure here is left for the map step itself to report."""
    try:
        from pretrain.mapping import compile_map_code

        compile_map_code()
    except Exception:
        pass


_CURRENT: Preparation | None = None
_REFINEMENT: Preparation | None = None
_CURRENT_LOCK = threading.Lock()


def start_preparation(device: str = "auto") -> Preparation:
    """The running background preparation of the default space, started when there is none.

    Every caller while one runs gets the same one (and its progress). Once it has
    finished, the next call starts a new one: after a failure that is a retry; after a
    success, the work still valid is reused (a complete bundle, a fresh space).
    """
    global _CURRENT
    with _CURRENT_LOCK:
        if _CURRENT is None or _CURRENT.finished:
            _CURRENT = Preparation(device).start()
        return _CURRENT


def start_refinement(device: str = "auto") -> Preparation:
    """The running background refinement of a provisional default space, started when there is none.

    As with :func:`start_preparation`, every caller while it runs gets the same one; after it
    has finished, the next call starts another (which returns at once when the space is no
    longer provisional).
    """
    global _REFINEMENT
    with _CURRENT_LOCK:
        if _REFINEMENT is None or _REFINEMENT.finished:
            _REFINEMENT = Preparation(device, refine=True).start()
        return _REFINEMENT


def current_refinement() -> Preparation | None:
    """The latest refinement started in this process (running or finished), if any."""
    return _REFINEMENT


def _prepare(report: Progress, device: str, quick: bool):
    from pretrain.data.bundle import load_bundle
    from pretrain.data.mirabest import find_mirabest
    from pretrain.space import embed_bundle_to_space, is_stale, load_space

    weights = check_weights()

    report("data", 0.0, "Looking for the MiraBest FITS files")
    fits_dir = find_mirabest(
        download=True,
        progress=lambda done, total: report(
            "data", done / max(total, 1), f"Downloading MiraBest: {done}/{total} files"
        ),
    )
    report("data", 1.0, f"MiraBest files in {fits_dir}")

    bundle_dir = bundle_path()
    bundle = load_bundle(bundle_dir) if bundle_matches(bundle_dir, fits_dir) else None
    if bundle is not None and (bundle.measured or quick):
        report("bundle", 1.0, f"Reusing the bundle of {len(bundle)} images")
    else:
        # quick: the pixel measurements are left to the refinement
        report("bundle", 0.0, "Preprocessing the images into a bundle")
        bundle = _build_bundle(fits_dir, bundle_dir, report, measure=not quick)
        report("bundle", 1.0, f"Bundle of {len(bundle)} images ready")

    space_dir = space_path()
    if space_dir.is_dir() and (
        not is_stale(space_dir, weights, bundle.bundle_id)
        or (quick and _is_provisional(space_dir, weights, bundle.bundle_id))
    ):
        report("embeddings", 1.0, "Reusing the embeddings")
        report("map", 1.0, "Reusing the map")
        return load_space(space_dir)

    symmetry = quick_symmetry(weights) if quick else config.EMBED_SYMMETRY
    provisional = symmetry != config.EMBED_SYMMETRY
    what = "one pass per image; the orientation-averaged representation follows" if provisional else "the backbone"
    report("embeddings", 0.0, f"Embedding images ({what})")
    space = embed_bundle_to_space(
        bundle, weights, out=space_dir, device=device, progress=_embed_progress(report), symmetry=symmetry
    )
    report("map", 1.0, f"Map of {len(space.catalogue_map)} sources ready")
    return space


def _build_bundle(fits_dir: Path, out: Path, report: Progress, measure: bool):
    from pretrain.data.bundle import build_bundle

    what = "Preprocessing images" if not measure else "Preprocessing and measuring images"
    return build_bundle(
        fits_dirs=[fits_dir],
        out=out,
        overwrite=True,
        measure=measure,
        progress=lambda done, total, message: report("bundle", done / max(total, 1), f"{what}: {done}/{total}"),
    )


def _refine(report: Progress, device: str):
    from dataclasses import replace

    from pretrain.data.bundle import load_bundle
    from pretrain.space import embed_bundle_to_space, load_space

    weights = check_weights()
    space_dir, bundle_dir = space_path(), bundle_path()
    if not default_space_state().provisional:
        return None  # refined already, or stale for another reason: a preparation's job
    bundle = load_bundle(bundle_dir)
    # dot-folders beside the ones they replace: the space list does not offer them
    staging_space = _clear(space_dir.with_name(f".{space_dir.name}.refining"))
    staging_bundle = _clear(bundle_dir.with_name(f".{bundle_dir.name}.measuring"))
    measure_now = not bundle.measured
    if measure_now:
        report("bundle", 0.0, "Measuring the sources in their images")
        fits_dir = Path(bundle.manifest["inputs"][0]["path"])
        built = _build_bundle(fits_dir, staging_bundle, report, measure=True)
        # the space records the bundle where it is about to be moved to
        bundle = replace(built, path=bundle_dir)
    report("bundle", 1.0, f"Bundle of {len(bundle)} measured images")
    report("embeddings", 0.0, "Embedding the orientation-averaged (d4) representation")
    embed_bundle_to_space(
        bundle,
        weights,
        out=staging_space,
        device=device,
        progress=_embed_progress(report),
        symmetry=config.EMBED_SYMMETRY,
    )
    if measure_now:
        _swap_in(staging_bundle, bundle_dir)
    _swap_in(staging_space, space_dir)
    space = load_space(space_dir)
    report("map", 1.0, f"Refined map of {len(space.catalogue_map)} sources ready")
    return space


def _clear(folder: Path) -> Path:
    """``folder``, removed if a refinement that was interrupted left it."""
    import shutil

    for leftover in (folder, folder.with_name(folder.name + ".old")):
        if leftover.exists():
            shutil.rmtree(leftover)
    return folder


def _swap_in(new: Path, target: Path) -> None:
    """Put ``new`` where ``target`` is, by renaming: a reader sees the old folder or the new one."""
    import shutil

    old = new.with_name(new.name + ".old")
    target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _embed_progress(report: Progress) -> Callable[[int, int, str], None]:
    def embed_progress(done: int, total: int, message: str) -> None:
        # pretrain.space reports (done, total, "embedding images") per batch, then announces
        # the map fit and the writing with done == total.
        if message == "embedding images":
            report("embeddings", done / max(total, 1), f"Embedding images: {done}/{total}")
        else:
            report("embeddings", 1.0, f"Embedded {total} images")
            report("map", 0.5 if "writing" in message else 0.0, message[:1].upper() + message[1:])

    return embed_progress
