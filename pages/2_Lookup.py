"""Look-up: a position, a name or a FITS file -> FIRST cutout -> model input -> map -> neighbours.

Session state: ``lookup`` (the last result, or why it failed), ``lookup-text``,
``lookup-upload`` and ``lookup-upload-id`` (the upload last looked up).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import numpy as np
import streamlit as st

from explorer import lookup
from explorer.figures import map_figure
from explorer.gallery import display_stretch, rgb_image
from explorer.lookup import LookupFailure, LookupResult
from explorer.similarity import CosineIndex
from explorer.sky import nearest_on_sky
from explorer.space_registry import CatalogueSpace, EmbeddingSpace, ExplorerSpace, Neighbours
from explorer.widgets import frame
from explorer.widgets.neighbours import neighbours_section
from explorer.widgets.sidebar import neighbour_settings
from explorer.widgets.source_panel import MAIN_IMAGE_PX
from explorer.widgets.spaces import current_space, encoder_for
from pretrain import config
from pretrain.data.fits_io import Cutout
from pretrain.errors import ExplorerError

if TYPE_CHECKING:  # imported when first used: astroquery is slow to import
    from pretrain.data.first_client import FirstCutoutClient

# The last LookupResult or LookupFailure. Both classes live in explorer.lookup, not here: a
# page script runs afresh each time, so a class defined in it is a new class on every run and
# isinstance() would not know the one a previous run stored.
LOOKUP_KEY = "lookup"


def lookup_client() -> FirstCutoutClient:
    from pretrain.data.first_client import cutout_client

    return cutout_client()  # the default survey (pretrain.surveys.DEFAULT_SURVEY)


def lookup_page(space: ExplorerSpace) -> None:
    frame.space_header(space, "Look-up")
    st.caption(
        "A position or a name → the FIRST cutout (NASA SkyView, cached on disk) → preprocessed exactly as "
        "the training images → embedded → placed on this space's map, with its nearest neighbours."
    )
    lookup_inputs(space)
    outcome = st.session_state.get(LOOKUP_KEY)
    if outcome is None:
        return
    if isinstance(outcome, LookupFailure):
        message = str(outcome)
        shown = message if message.startswith(outcome.title) else f"**{outcome.title}**: {message}"
        st.error(shown, icon="⚠️")
        return
    if outcome.space_key != space.key and isinstance(space, EmbeddingSpace):
        place(space, outcome)
    show_lookup(space, outcome)


def lookup_inputs(space: ExplorerSpace) -> None:
    """The position / name form and the FITS upload; either one runs a look-up."""
    with st.form("lookup-form", border=False):
        left, right = st.columns([4, 1], vertical_alignment="bottom")
        with left:
            text = st.text_input(
                "Position (RA Dec, degrees or sexagesimal) or object name",
                placeholder="e.g. 139.148 +4.681 · 09h16m35.5s +04d40m52s · 3C 236",
                key="lookup-text",
                max_chars=config.POSITION_MAX_CHARS,
            )
        with right:
            submitted = st.form_submit_button("Look up", type="primary", icon=":material/search:", width="stretch")
    uploaded = st.file_uploader(
        "…or upload a FITS image (a radio continuum cutout with a sky WCS)",
        type=["fits", "fit", "fts", "fz"],
        key="lookup-upload",
    )
    if submitted:
        run_lookup(
            space,
            lambda: lookup.fetch_cutout(text, lookup_client()),
            text.strip() or "(empty)",
            spinner=f"Fetching the FIRST cutout for {text.strip()}…",
        )
    elif uploaded is not None and st.session_state.get("lookup-upload-id") != uploaded.file_id:
        st.session_state["lookup-upload-id"] = uploaded.file_id
        run_lookup(
            space,
            lambda: lookup.read_uploaded_fits(uploaded.getvalue(), uploaded.name),
            uploaded.name,
            spinner=f"Reading {uploaded.name}…",
        )


def run_lookup(space: ExplorerSpace, get_cutout: Callable[[], Cutout], title: str, spinner: str) -> None:
    """Get the cutout, prepare it, place it (embedding spaces); keep the result or why it failed."""
    try:
        with st.spinner(spinner):
            cutout = get_cutout()
            result = lookup.prepare(cutout, title)
        if isinstance(space, EmbeddingSpace):
            place(space, result)
        st.session_state[LOOKUP_KEY] = result
    except ExplorerError as exc:
        st.session_state[LOOKUP_KEY] = LookupFailure(title, str(exc))
    except Exception as exc:  # a bug, not bad input: still say what happened and keep running
        st.session_state[LOOKUP_KEY] = LookupFailure(title, f"unexpected {type(exc).__name__}: {exc}")


def place(space: EmbeddingSpace, result: LookupResult) -> None:
    try:
        with st.spinner("Embedding and placing it on the map…"):
            lookup.place(result, space, encoder_for(space))
    except ExplorerError as exc:
        result.embedding, result.map_xy, result.space_key = None, None, ""
        result.notes.append(f"Not placed on the map: {exc}")


def show_lookup(space: ExplorerSpace, result: LookupResult) -> None:
    """The cutout, the model input, what was found, the map with the result, its neighbours."""
    st.markdown(f"##### {result.title}")
    st.caption(lookup_caption(result))
    raw, model, facts = st.columns([1, 1, 1])
    with raw:
        field = max(result.cutout.shape) * result.cutout.pixel_scale_arcsec / 60
        st.image(
            rgb_image(display_stretch(result.cutout.data), MAIN_IMAGE_PX),
            caption=f"Raw cutout ({field:.1f}′, asinh stretch)",
            width=MAIN_IMAGE_PX,
        )
    with model:
        st.image(
            rgb_image(result.model_image, MAIN_IMAGE_PX, crop_box_px=config.MODEL_INPUT_PX),
            caption=f"Model input (clipped at {config.CLIP_SIGMA:g}σ, {config.IMAGE_FIELD_ARCSEC / 60:.1f}′; "
            f"the box: the central {config.MODEL_INPUT_PX} px it sees)",
            width=MAIN_IMAGE_PX,
        )
    neighbours: Neighbours | None = None
    query: int | None = None
    marker: tuple[float, float] | None = None
    with facts:
        for note in result.notes:
            st.info(note)
        if isinstance(space, EmbeddingSpace) and result.map_xy is not None and result.embedding is not None:
            neighbours = placed_facts(space, result, result.embedding)
            marker = (float(result.map_xy[0]), float(result.map_xy[1]))
        elif isinstance(space, CatalogueSpace):
            query, neighbours = catalogue_facts(space, result)
    if marker is not None or query is not None:
        lookup_map(space, result, neighbours, query, marker)
    if neighbours is not None:
        neighbours_section(space, neighbours, query_row=None, query_id=result.title, key=f"lookup-nb:{space.key}")


def lookup_caption(result: LookupResult) -> str:
    centre = result.cutout.centre
    return (
        f"Centre RA {result.ra:.5f}°, Dec {result.dec:+.5f}° "
        f"({centre.to_string('hmsdms', precision=1)}) · estimated angular extent "
        + (f"{result.extent_arcsec:.0f}″" if np.isfinite(result.extent_arcsec) else "–")
        + f" · {result.cutout.shape[1]}×{result.cutout.shape[0]} px at {result.cutout.pixel_scale_arcsec:.2f}″"
    )


def placed_facts(space: EmbeddingSpace, result: LookupResult, embedding: np.ndarray) -> Neighbours:
    """The result placed on an embedding space: its neighbours, the best match, its twin in the space."""
    k, radius = neighbour_settings()
    neighbours = space.neighbours_of_vector(embedding, k, radius, (result.ra, result.dec))
    best = space.catalogue["source_id"].iloc[neighbours.rows[0]] if len(neighbours.rows) else "–"
    st.success(
        f"Placed on the map (×). Most similar source: **{best}** (cosine similarity {neighbours.scores[0]:.3f})."
    )
    row, sep = nearest_on_sky(result.ra, result.dec, space.catalogue["ra"], space.catalogue["dec"])
    if row >= 0 and sep <= config.APP_CATALOGUE_MATCH_ARCSEC:
        twin = space.catalogue["source_id"].iloc[row]
        similarity = float(cast(CosineIndex, space.index).similarities(embedding, [row])[0])
        left_out = " The sky-duplicate filter leaves it out of the neighbours." if sep < radius else ""
        st.info(
            f"This position is in the space as **{twin}** ({sep:.1f}″ away, cosine similarity "
            f"{similarity:.3f}).{left_out}"
        )
    return neighbours


def catalogue_facts(space: CatalogueSpace, result: LookupResult) -> tuple[int | None, Neighbours | None]:
    """A catalogue-only space cannot place an image: the catalogue source at that position, if any."""
    k, radius = neighbour_settings()
    row, sep = nearest_on_sky(result.ra, result.dec, space.catalogue["ra"], space.catalogue["dec"])
    if row >= 0 and sep <= config.APP_CATALOGUE_MATCH_ARCSEC:
        st.success(
            f"In this catalogue: **{space.catalogue['source_id'].iloc[row]}**, {sep:.1f}″ away "
            "(★ on the map). This space has no representations, so its neighbours are the nearest "
            "points on the published map."
        )
        return row, space.neighbours_of_row(row, k, radius)
    nearest = (
        f"The nearest catalogue source is {space.catalogue['source_id'].iloc[row]}, {sep / 60:.1f}′ away. "
        if row >= 0
        else ""
    )
    st.warning(
        "This space has no representations, so a new image cannot be placed on its map. "
        + nearest
        + "Choose an embedding space (e.g. MiraBest) to find similar sources."
    )
    return None, None


def lookup_map(
    space: ExplorerSpace,
    result: LookupResult,
    neighbours: Neighbours | None,
    query: int | None,
    marker: tuple[float, float] | None,
) -> None:
    """The space's map with the result (× where placed, ★ on its catalogue source) and its neighbours."""
    figure = map_figure(
        space.catalogue,
        space.catalogue.get("angular_extent_arcsec", None),
        "angular_extent_arcsec",
        True,
        neighbours=None if neighbours is None else neighbours.rows,
        query=query,
        marker=marker,
        marker_name=result.title[:30],
        revision=f"lookup:{space.key}",
        height=520,
    )
    st.plotly_chart(
        figure, key=f"lookup-map:{space.key}", width="stretch", config={"scrollZoom": True, "displaylogo": False}
    )


frame.require_app()
lookup_page(current_space())
