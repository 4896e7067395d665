"""FIRST images fetched on request, for a catalogue-only space (it has no images of its own).

The cutouts are cached on disk by the space; these widgets only ask for them, with a
person waiting (short time-outs).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import streamlit as st

from explorer.space_registry import FirstImageSpace
from pretrain import config
from pretrain.errors import ExplorerError, NoNetworkError

if TYPE_CHECKING:  # imported when first used: astroquery is slow to import
    from pretrain.data.first_client import FirstCutoutClient

FAILED_IDS_SHOWN = 8  # source ids named in the note on images that could not be used


def interactive_client() -> FirstCutoutClient:
    """A cutout client with short time-outs: a person is waiting."""
    from pretrain.data.first_client import cutout_client

    return cutout_client(
        timeout_s=config.APP_CUTOUT_TIMEOUT_S,
        retries=1,
        total_timeout_s=2 * config.APP_CUTOUT_TIMEOUT_S,
    )


def cached_cutout_path(space: FirstImageSpace, row: int) -> Path | None:
    """The FIRST cutout of a catalogue source in the client's disk cache (no network), if fetched."""
    client = interactive_client()
    path = client.cache_path(space._request(row, client))
    return path if path.is_file() else None


def catalogue_image_controls(space: FirstImageSpace, row: int) -> np.ndarray | None:
    """For a catalogue-only space: a button that fetches the FIRST image (cached afterwards)."""
    if st.button("Fetch its FIRST image", key=f"fetch1:{space.key}:{row}", icon=":material/download:"):
        try:
            with st.spinner("Fetching the FIRST cutout…"):
                image = space.fetch_image(row, interactive_client())
            if image is None:
                st.warning("The FIRST cutout holds no significant emission (blank image).")
            return image
        except ExplorerError as exc:
            st.error(str(exc))
    else:
        st.caption(
            "This space has no images of its own; cutouts come from FIRST (SkyView) on request and are cached on disk."
        )
    return None


def fetch_gallery_images(space: FirstImageSpace, rows: list[int]) -> list[str]:
    """Fetch the FIRST images of ``rows`` with a progress bar; returns what to tell the user.

    A source whose own cutout is unusable (blank, outside the footprint, a bad answer) is
    noted and the others are still fetched; a network failure stops the batch (every
    further request would fail the same way).
    """
    client = interactive_client()
    bar = st.progress(0.0, text="Fetching FIRST cutouts…")
    failed: list[tuple[int, ExplorerError]] = []
    notes: list[str] = []
    for i, row in enumerate(rows, start=1):
        try:
            space.fetch_image(row, client)
        except NoNetworkError as exc:
            notes.append(f"Stopped after {i - 1} of {len(rows)} images: {exc}")
            break
        except ExplorerError as exc:
            failed.append((row, exc))
        bar.progress(i / len(rows), text=f"Fetched {i}/{len(rows)} FIRST cutouts")
    bar.empty()
    if failed:
        notes.insert(0, _failure_note(space, failed, len(rows)))
    return notes


def _failure_note(space: FirstImageSpace, failed: list[tuple[int, ExplorerError]], asked: int) -> str:
    ids = space.catalogue["source_id"].iloc[[row for row, _ in failed]].astype(str).tolist()
    first_id, first_error = ids[0], failed[0][1]
    shown = FAILED_IDS_SHOWN
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    others = f" Also without an image: {', '.join(ids[1:shown])}{more}." if len(ids) > 1 else ""
    return f"{len(failed)} of {asked} FIRST cutouts could not be used. {first_id}: {first_error}" + others
