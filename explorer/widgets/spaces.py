"""The space chosen in the sidebar and the encoder it was embedded with, each loaded once (cached)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from explorer.space_registry import EmbeddingSpace, ExplorerSpace, SpaceEntry, find_weights, open_space
from explorer.widgets.preparation import ensure_default_space
from explorer.widgets.sidebar import SPACE_KEY, entry_for, measured_neighbours, space_entries
from pretrain.errors import ExplorerError

if TYPE_CHECKING:  # torch is imported when the first encoder is loaded, not with the page
    from pretrain.models.resnet import ResNet18Encoder


@st.cache_resource(show_spinner="Loading the space…", max_entries=6)
def _open(key: str, title: str, kind: str, path: str, stamp: int | None) -> ExplorerSpace:
    space = open_space(SpaceEntry(key, title, kind, Path(path)))
    if isinstance(space, EmbeddingSpace):  # compile UMAP's transform before the first look-up
        threading.Thread(target=_quietly(space.warm_up), name=f"warm-up {title}", daemon=True).start()
    return space


def _quietly(function: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        try:
            function()
        except Exception:  # a broken projector is reported when a look-up needs it
            pass

    return run


def _stamp(path: Path | None) -> int | None:
    """When the space on disk last changed (its manifest's mtime): a new stamp reloads it."""
    if path is None:
        return None
    target = path / "manifest.json" if path.is_dir() else path
    try:
        return target.stat().st_mtime_ns
    except OSError:
        return None


def current_space() -> ExplorerSpace:
    """The space chosen in the sidebar, loaded (and, for MiraBest, prepared first if needed).

    Stops the page with a clear message when the space cannot be opened.
    """
    entry = entry_for(st.session_state.get(SPACE_KEY, "") or space_entries()[0].key)
    if entry.kind == "default":
        ensure_default_space()
    try:
        space = _open(entry.key, entry.title, entry.kind, str(entry.path), _stamp(entry.path))
    except ExplorerError as exc:
        st.error(f"The space **{entry.title}** cannot be opened: {exc}")
        st.stop()
    if measured_neighbours() and isinstance(space, EmbeddingSpace):
        space = _measured(space)
    note = getattr(space, "index_note", "")  # an old space whose neighbour index was built on opening
    if note and not st.session_state.get(f"index-note:{space.key}"):
        st.session_state[f"index-note:{space.key}"] = True
        st.toast(note, icon=":material/info:")
    return space


def _measured(space: EmbeddingSpace) -> EmbeddingSpace:
    """The space with neighbours by representation + pixel measurements, if it has them."""
    with st.spinner("Indexing the representations with the pixel measurements…"):
        view = space.measured_view()
    if view is None:
        st.sidebar.caption("This space has no pixel measurements: neighbours by the representation.")
        return space
    return view


@st.cache_resource(show_spinner="Loading the encoder…", max_entries=2)
def _encoder(path: str, mtime_ns: int) -> ResNet18Encoder:
    from pretrain.models.backbone import load_encoder

    return load_encoder(path, device="cpu")


def encoder_for(space: EmbeddingSpace) -> ResNet18Encoder:
    """The encoder the space was embedded with (ExplorerError if its weights are not found)."""
    path = find_weights(space)
    return _encoder(str(path), path.stat().st_mtime_ns)
