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
from explorer.gallery import north_up, rgb_image
from explorer.image_view import view_of_cutout
from explorer.lookup import LookupFailure, LookupResult
from explorer.similarity import CosineIndex, format_similarity
from explorer.sky import nearest_on_sky
from explorer.space_registry import CatalogueSpace, EmbeddingSpace, ExplorerSpace, Neighbours
from explorer.widgets import frame
from explorer.widgets.export import vo_buttons
from explorer.widgets.image_viewer import image_viewer
from explorer.widgets.neighbours import neighbours_section
from explorer.widgets.sidebar import neighbour_settings
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
LOOKUP_MODEL_IMAGE_PX = 220  # the model input beside the viewer


def lookup_client() -> FirstCutoutClient:
    from pretrain.data.first_client import cutout_client

    return cutout_client()  # the default survey (pretrain.surveys.DEFAULT_SURVEY)


def lookup_page(space: ExplorerSpace) -> None:
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
    lookup_viewer(result)  # the page's width: the figure at its own size beside its controls
    model, facts = st.columns([1, 2], gap="medium")
    neighbours: Neighbours | None = None
    query: int | None = None
    marker: tuple[float, float] | None = None
    with model:
        st.image(
            rgb_image(north_up(result.model_image), LOOKUP_MODEL_IMAGE_PX, crop_box_px=config.MODEL_INPUT_PX),
            caption=f"Model input (clipped at {config.CLIP_SIGMA:g}σ, {config.IMAGE_FIELD_ARCSEC / 60:.1f}′; "
            f"the box: the central {config.MODEL_INPUT_PX} px it sees)",
            width=LOOKUP_MODEL_IMAGE_PX,
        )
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


@st.fragment
def lookup_viewer(result: LookupResult) -> None:
    """The cutout in the image viewer (its controls rerun only the viewer, not the map and neighbours)."""
    view = view_of_cutout(result.cutout, result.title, result.model_image, result.extent_arcsec)
    image_viewer(view, key="lookup-viewer", identity=f"lookup:{result.title}:{result.ra:.6f}:{result.dec:.6f}")


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
    measurements = lookup.measurements_of(result) if space.uses_measurements else None
    neighbours = space.neighbours_of_vector(embedding, k, radius, (result.ra, result.dec), measurements)
    best = space.catalogue["source_id"].iloc[neighbours.rows[0]] if len(neighbours.rows) else "–"
    best_similarity = format_similarity(neighbours.scores[0]) if len(neighbours.scores) else "–"
    st.success(f"Placed on the map (×). Most similar source: **{best}** (cosine similarity {best_similarity}).")
    row, sep = nearest_on_sky(result.ra, result.dec, space.catalogue["ra"], space.catalogue["dec"])
    if row >= 0 and sep <= config.APP_CATALOGUE_MATCH_ARCSEC:
        twin = space.catalogue["source_id"].iloc[row]
        query = space.query_vector(embedding, measurements)
        similarity = float(cast(CosineIndex, space.index).similarities(query, [row])[0])
        left_out = " The sky-duplicate filter leaves it out of the neighbours." if sep < radius else ""
        st.info(
            f"This position is in the space as **{twin}** ({sep:.1f}″ away, cosine similarity "
            f"{format_similarity(similarity)}).{left_out}"
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


# --- A list: many positions or names at once (pretrain.batch_lookup) ----------------------------
# Session state: ``lookup-list`` (the last ListLookup, or the message saying why the list was
# refused), ``lookup-list-text``, ``lookup-list-upload``, ``lookup-list-show`` (the row whose
# neighbours are shown).
LIST_KEY = "lookup-list"
LIST_TEXT_MAX_CHARS = 200_000  # the paste box; a list is also capped at batch_lookup.MAX_ROWS rows
LIST_SHOWN_COLUMNS = ("row", "input", "status", "ra", "dec", "angular_extent_arcsec", "in_space_as")


def list_lookup_section(space: ExplorerSpace) -> None:
    """Paste or upload a list; every row is looked up, placed on the map, with its neighbours."""
    from pretrain import batch_lookup as batch

    st.caption(
        "One position or name per line, or a CSV / TSV with RA and Dec (degrees or sexagesimal) or name columns, "
        f"or a VOTable; at most {batch.MAX_ROWS:,} rows. The cutouts are fetched {batch.WORKERS} at a time "
        "(cached on disk: a second look-up of the same list makes no request); a row that fails says why "
        "and the others go on. The same from the command line: `python -m pretrain lookup --list FILE --out DIR`."
    )
    with st.form("lookup-list-form", border=False):
        text = st.text_area(
            "Positions or names",
            key="lookup-list-text",
            height=140,
            max_chars=LIST_TEXT_MAX_CHARS,
            placeholder="139.148 +4.681\n09 16 35.5 +04 40 52\n3C 236",
        )
        uploaded = st.file_uploader(
            "…or upload a list (CSV, TSV, VOTable or text)",
            type=["csv", "tsv", "txt", "dat", "vot", "votable", "xml"],
            key="lookup-list-upload",
        )
        submitted = st.form_submit_button("Look up the list", type="primary", icon=":material/list:")
    if submitted:
        if uploaded is not None:
            run_list_lookup(space, uploaded.getvalue(), uploaded.name)
        else:
            run_list_lookup(space, text, "pasted list")
    outcome = st.session_state.get(LIST_KEY)
    if isinstance(outcome, str):
        st.error(outcome, icon="⚠️")
    elif isinstance(outcome, lookup.ListLookup):
        if not outcome.is_for(space):
            st.info(
                f"The list ({outcome.source}) was looked up on another space, or before this one was rebuilt: "
                "look it up again to place it here (its cutouts come from the cache)."
            )
        else:
            show_list_lookup(space, outcome)


def run_list_lookup(space: ExplorerSpace, data: bytes | str, source: str) -> None:
    from pretrain import batch_lookup as batch

    if not isinstance(space, EmbeddingSpace):
        st.session_state[LIST_KEY] = (
            "This space has no representations, so a list cannot be placed on its map. "
            "Choose an embedding space (e.g. MiraBest) in the sidebar."
        )
        return
    try:
        rows = batch.parse_list(data, source)
        encoder = encoder_for(space)
    except ExplorerError as exc:
        st.session_state[LIST_KEY] = str(exc)
        return
    k, radius = neighbour_settings()
    bar = st.progress(0.0, text=f"Fetching {len(rows)} cutouts…")

    def fetched(done: int, total: int, row) -> None:
        counts = ", ".join(f"{n} {status}" for status, n in batch.summary(rows).items() if status != "not looked up")
        bar.progress(done / max(total, 1), text=f"Fetching cutouts: {done} of {total} ({counts})")

    def embedded(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"Embedding and placing on the map: {done} of {total}")

    try:
        outcome = lookup.look_up_list(rows, space, encoder, lookup_client, k, radius, source, fetched, embedded)
    except ExplorerError as exc:
        st.session_state[LIST_KEY] = f"The list could not be looked up: {exc}"
    else:
        st.session_state[LIST_KEY] = outcome
        st.session_state.pop("lookup-list-show", None)
    finally:
        bar.empty()


def show_list_lookup(space: ExplorerSpace, outcome: lookup.ListLookup) -> None:
    """The summary, the results table with its exports, the map with the list's layer, one row's neighbours."""
    from pretrain import batch_lookup as batch

    counts = batch.summary(outcome.rows)
    placed = outcome.placed
    said = ", ".join(f"{n} {status}" for status, n in counts.items())
    (st.success if len(placed) == len(outcome.rows) else st.warning)(
        f"**{outcome.source}**: {len(placed)} of {len(outcome.rows)} rows placed on the map ({said})."
    )
    columns = [c for c in LIST_SHOWN_COLUMNS if c in outcome.frame]
    columns += [c for c in outcome.frame.columns if c.startswith("nn")] + ["error"]
    st.dataframe(outcome.frame[columns], hide_index=True, height=260, key=f"lookup-list-table:{space.key}")
    stem = "lookup_list"
    left, right = st.columns([1, 3])
    with left:
        st.download_button(
            "CSV",
            batch.results_csv(outcome.frame),
            file_name=f"{stem}.csv",
            mime="text/csv",
            key="lookup-list:csv",
            icon=":material/download:",
        )
    with right:
        vo_buttons(space, outcome.frame, stem, key="lookup-list", description=f"Look-up of {outcome.source}")
    if not placed:
        return
    labels = {r.row: f"row {r.row}: {r.text}" for r in placed}
    shown = st.selectbox("Neighbours of", list(labels), format_func=labels.__getitem__, key="lookup-list-show")
    row = next(r for r in placed if r.row == shown)
    figure = map_figure(
        space.catalogue,
        space.catalogue.get("angular_extent_arcsec", None),
        "angular_extent_arcsec",
        True,
        neighbours=row.neighbour_rows,
        marker=(float(row.map_xy[0]), float(row.map_xy[1])),
        marker_name=row.text[:30],
        revision=f"lookup-list:{space.key}",
        height=520,
    )
    figure.add_trace(lookup.list_layer(placed))
    st.plotly_chart(
        figure, key=f"lookup-list-map:{space.key}", width="stretch", config={"scrollZoom": True, "displaylogo": False}
    )
    st.caption(
        f"◆ the {len(placed)} rows placed on the map (hover for each one's input and best match) · "
        f"× row {row.row}, whose {len(row.neighbour_rows)} nearest neighbours are ringed and numbered."
    )
    if row.twin:
        st.info(f"This position is in the space as **{row.twin}** ({row.twin_sep_arcsec:.1f}″ away).")
    found = Neighbours(row.neighbour_rows, row.neighbour_scores, space.score_name)
    neighbours_section(space, found, query_row=None, query_id=row.text, key=f"lookup-list-nb:{space.key}")


frame.require_app()
_space = current_space()
frame.space_header(_space, "Look-up")
_one, _many = st.tabs(["One source", "A list"])
with _one:
    lookup_page(_space)
with _many:
    list_lookup_section(_space)
