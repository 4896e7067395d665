"""The representation a linear probe (``finetune --depth 0``) is fitted on: the app's.

The app shows, searches and evaluates the d4 representation (``config.EMBED_SYMMETRY``:
the mean of the encoder's outputs over the image's 8 turns and mirror images), and
``pretrain evaluate`` scores a space's stored embeddings. So the probe reads the same
vectors from a space when one matches the run -- made with the same weights (SHA-256),
from the same bundle (its id), with the same symmetry, holding every source of the bundle
-- and otherwise embeds the bundle the way ``embed`` does (:func:`pretrain.embed.embed_images`).

Where a space is looked for: ``--space`` when given (then it must match, or the run says
why it cannot use it), else every space folder under ``config.cache_dir() / "spaces"``
(the app's prepared spaces, MiraBest's among them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pretrain import config
from pretrain.errors import ExplorerError

Report = Callable[[str], None]  # a stage message for the run's status


@dataclass(frozen=True)
class ProbeFeatures:
    features: np.ndarray  # (bundle rows, dim) float32, in the bundle's row order
    origin: str  # "space" (read from a space) or "computed" (embedded for this run)
    space: str | None  # the space folder read, when origin is "space"
    symmetry: str

    def describe(self) -> str:
        where = f"read from the space {self.space}" if self.space else "embedded for this run"
        return f"{self.symmetry} representation, {where}"


def cached_space_folders() -> list[Path]:
    """The space folders in the user cache (each with a manifest), sorted by name."""
    root = config.cache_dir() / "spaces"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / "manifest.json").is_file())


def space_mismatch(space_path: Path, weights_hash: str, bundle_id: str | None, symmetry: str) -> str:
    """'' when the space at ``space_path`` holds the representation asked for, else why not."""
    from pretrain.space import SpaceError, manifest_mismatch, read_manifest

    try:
        manifest = read_manifest(space_path)
    except SpaceError as exc:
        return str(exc)
    if manifest["weights"].get("sha256") != weights_hash:
        return f"it was embedded with other weights ({manifest['weights'].get('file')})"
    return manifest_mismatch(manifest, bundle_id, symmetry)


def space_features(space_path: Path, source_ids: np.ndarray) -> np.ndarray:
    """The space's embeddings for ``source_ids`` (in that order); SpaceError when some are missing."""
    from pretrain.space import SpaceError, load_space

    space = load_space(space_path)
    position = {sid: i for i, sid in enumerate(space.source_ids.astype(str))}
    ids = np.asarray(source_ids).astype(str)
    missing = [sid for sid in ids if sid not in position]
    if missing:
        raise SpaceError(f"the space at {space_path} lacks {len(missing)} of the bundle's sources (e.g. {missing[0]}).")
    return np.ascontiguousarray(space.embeddings[[position[sid] for sid in ids]], dtype=np.float32)


def probe_features(
    bundle,
    weights_path: Path,
    weights_hash: str,
    device,
    space: str | Path | None = None,
    symmetry: str = config.EMBED_SYMMETRY,
    report: Report | None = None,
) -> ProbeFeatures:
    """The representation of every row of ``bundle``: from a matching space, else embedded.

    ``space`` given: it must match (else ExplorerError saying why); None: the cached spaces
    are tried, and the bundle is embedded when none matches.
    """
    say = report or (lambda message: None)
    source_ids = bundle.catalogue["source_id"].astype(str).to_numpy()
    candidates = [Path(space)] if space is not None else cached_space_folders()
    for folder in candidates:
        why = space_mismatch(folder, weights_hash, bundle.bundle_id, symmetry)
        if not why:
            say(f"reading the {symmetry} representation from the space {folder.name}")
            try:
                return ProbeFeatures(space_features(folder, source_ids), "space", str(folder), symmetry)
            except ExplorerError as exc:
                why = str(exc)
        if space is not None:
            raise ExplorerError(
                f"--space {space}: cannot use it for this run ({why}). Leave out --space to embed the bundle."
            )
    from pretrain.embed import embed_images
    from pretrain.models.backbone import load_encoder

    encoder = load_encoder(weights_path, device=device)
    total = len(source_ids)

    def progress(done: int, _total: int) -> None:
        say(f"embedding images ({symmetry}): {done} / {total}")

    features = embed_images(encoder, bundle.images, device=device, progress=progress, symmetry=symmetry)
    return ProbeFeatures(np.asarray(features, np.float32), "computed", None, symmetry)
