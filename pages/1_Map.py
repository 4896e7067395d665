"""The map: coloured by angular extent or any column; click a source for its nearest neighbours.

A click on the map reruns only the map fragment (``st.fragment``): the source panel, the
neighbour gallery, the selection table and the map itself. The map is on the left, the
selected source and its neighbours on the right (both in view at 1280 x 800); the map keeps
its zoom across reruns (:mod:`explorer.widgets.view_keeper`). Session state: ``map_state``
(:mod:`explorer.widgets.map_state`), ``colour:<space>`` and ``log:<space>:<column>`` (the
colour controls), ``goto:<space>`` (the go-to box); the query parameters ``source`` and
``colour`` follow the source shown and the colour (:mod:`explorer.widgets.url_state`), ``view``
the zoom (:mod:`explorer.widgets.view_keeper`). A map of
more than ``explorer.figures.POINTS_MAX`` sources is a density image with the view's points.
"""

from __future__ import annotations

import functools

import pandas as pd
import streamlit as st

from explorer.colour_columns import SIMILARITY_COLUMN, aligned, extra_colour_columns, similarity_column
from explorer.facts import colour_fact
from explorer.figures import (
    DENSITY_POINTS_MAX,
    POINTS_MAX,
    colour_columns,
    is_categorical,
    map_figure,
    pretty_name,
    rows_from_selection,
)
from explorer.goto import find_source, row_of_id
from explorer.space_registry import ExplorerSpace, Neighbours
from explorer.tags import TagStore
from explorer.widgets import frame
from explorer.widgets.map_state import space_state
from explorer.widgets.neighbourhood import unusual_sources
from explorer.widgets.neighbours import neighbours_section
from explorer.widgets.selection import selection_section
from explorer.widgets.sidebar import neighbour_settings
from explorer.widgets.source_panel import source_details, source_panel
from explorer.widgets.spaces import current_space
from explorer.widgets.tags import tag_sets
from explorer.widgets.url_state import follow
from explorer.widgets.view_keeper import current_view, view_input
from pretrain import config

MAP_HEIGHT_PX = 480
# Less empty space above the page's heading: the map and the neighbours fit in 800 px.
PAGE_CSS = (
    "<style>[data-testid=stMainBlockContainer]{padding-top:1.5rem}"
    "[data-testid=stColumn] h5{font-size:1rem}</style>"  # the right-hand column's headings
)


@st.cache_data(ttl=10, show_spinner=False)
def _extra_columns(space_key: str, _space: ExplorerSpace, tags_version: tuple = ()) -> dict[str, pd.Series]:
    return extra_colour_columns(_space)


def colour_controls(space: ExplorerSpace) -> tuple[str, pd.Series | None, bool]:
    """Colour-by selector, log toggle and go-to box; returns (name, values aligned with rows, log).

    Colouring by similarity to the selected source returns no values: they follow each
    click, so the map fragment computes them (:func:`colour_values`).
    """
    basis = f"{space.key}|measured={getattr(space, 'uses_measurements', False)}"  # outliers: each view's own
    extra = _extra_columns(basis, space, TagStore(space.key).version())  # a new tag: a new colour at once
    options = colour_columns(space.catalogue, extra)
    if space.has_embeddings:
        options.append(SIMILARITY_COLUMN)
    key = f"colour:{space.key}"
    wanted = st.query_params.get("colour")
    if key not in st.session_state and wanted in options:  # a shared link or a reload
        st.session_state[key] = wanted
    if st.session_state.get(key) is not None and st.session_state[key] not in options:
        del st.session_state[key]  # e.g. a run's prediction column that is gone
    left, right, goto = st.columns([2, 1, 3], vertical_alignment="bottom")
    with goto:
        goto_box(space)
    with left:
        name = st.selectbox("Colour by", options, key=key, format_func=pretty_name)
    follow(colour=None if name in (None, options[0]) else name)
    if name is None:
        return "", None, False
    if name == SIMILARITY_COLUMN:
        return name, None, False
    values = space.catalogue[name] if name in space.catalogue else aligned(extra[name], space.catalogue["source_id"])
    continuous = not is_categorical(values)
    positive = continuous and bool((pd.to_numeric(values, errors="coerce") > 0).any())
    with right:
        log = st.toggle(
            "log scale",
            value=continuous and name.startswith("angular_extent"),
            key=f"log:{space.key}:{name}",
            disabled=not positive,
            help="Colour by log10 of the value (only for positive numbers).",
        )
    return name, values, bool(log and positive)


def goto_box(space: ExplorerSpace) -> None:
    """A source id, a catalogued name or a position: selects that source (or says it is not here)."""
    key = f"goto:{space.key}"
    with st.form(key, border=False), st.container(horizontal=True, vertical_alignment="bottom"):
        st.text_input(
            "Go to a source",
            key=f"{key}:text",
            placeholder="source id, catalogued name, or RA Dec",
            help="A source id of this space, a name in its catalogue, or a position (degrees or "
            f"sexagesimal; the nearest source within {config.APP_CATALOGUE_MATCH_ARCSEC:.0f}″). "
            "Names are not resolved over the network here (the Look-up page does that).",
        )
        st.form_submit_button("Go", on_click=_go_to, args=(space, key))
    note = st.session_state.get(f"{key}:note")
    if note:
        (st.caption if note[0] else st.warning)(note[1])


def _go_to(space: ExplorerSpace, key: str) -> None:
    found = find_source(space.catalogue, st.session_state.get(f"{key}:text", ""), config.APP_CATALOGUE_MATCH_ARCSEC)
    st.session_state[f"{key}:note"] = (found.row is not None, found.message)
    if found.row is not None:
        space_state(space.key)["query"] = found.row


def _created(space: ExplorerSpace) -> str:
    """When an embedding space was written ('' for a catalogue space)."""
    return str(getattr(getattr(space, "space", None), "manifest", {}).get("created", ""))


def map_state(space: ExplorerSpace) -> dict:
    """The map's state for the space, with the source of a shared link (``?source=``) applied once."""
    state = space_state(space.key)
    wanted = st.query_params.get("source")
    if wanted and state.get("from_url") != wanted:  # a shared link: ?source=<source_id>
        state["from_url"] = wanted
        row = row_of_id(space.catalogue["source_id"], wanted)  # '+' typed in a link arrives as a space
        if row is None:
            st.toast(f"{wanted} is not in this space.")
        else:
            state["query"] = row
    return state


def on_map_select(space_key: str, chart_key: str) -> None:
    """Store what the user clicked or boxed (called before the fragment reruns). A click
    reports the point nearest where the mouse went down, to the sub-pixel (the view
    keeper's script corrects plotly's pick, which rounds the mouse to whole pixels)."""
    event = st.session_state.get(chart_key) or {}
    selection = event.get("selection", {}) if hasattr(event, "get") else {}
    rows = rows_from_selection(selection.get("points", []))
    state = space_state(space_key)
    if selection.get("box") or selection.get("lasso") or len(rows) > 1:
        state["selected"] = rows
    elif len(rows) == 1:
        state["query"] = rows[0]
        state["from_url"] = st.query_params.get("source")


@st.fragment
def map_fragment(
    space: ExplorerSpace, colour_name: str, colour: pd.Series | None, log_colour: bool, k: int, radius: float
) -> None:
    state = map_state(space)
    query = state.get("query")
    if query is not None and not (0 <= query < len(space)):
        query = state["query"] = None
    neighbours = space.neighbours_of_row(query, k, radius) if query is not None else None
    if colour_name == SIMILARITY_COLUMN:
        colour = similarity_column(space, query)
    left, right = st.columns([3, 2], gap="medium")
    below = st.container()
    # The panel and the gallery are sent before the map: the browser shows them while it
    # redraws the (much heavier) WebGL map with the new highlights.
    with right:
        panel(space, state, query, colour_name, colour)
        if neighbours is not None:
            neighbours_section(space, neighbours, query_row=query, key=f"nb:{space.key}", in_fragment=True)
        if query is not None:
            source_details(space, query)
    with below:
        if state.get("selected"):
            selection_section(space, state)
    with left:
        map_chart(space, state, query, neighbours, (colour_name, colour, log_colour))


def panel(space: ExplorerSpace, state: dict, query: int | None, colour_name: str, colour: pd.Series | None) -> None:
    """The clicked source's panel (a hint before any click); the link follows the source shown."""
    if query is None:
        st.info(
            "**Click a source on the map** to see its image, its catalogue entry and the sources most similar to it.",
            icon=":material/touch_app:",
        )
        return
    source_panel(space, query, coloured_by=colour_fact(colour_name, colour, query), compact=True)
    source_id = str(space.catalogue["source_id"].iloc[query])
    # The link follows the source shown; remembered as seen, so that only a link
    # changed from outside (a shared one) picks the source on a later run. (A click
    # on the map used to leave the old link here, and the next "continue from a
    # neighbour" was then undone by it.)
    state["from_url"] = source_id
    if st.query_params.get("source") != source_id:
        st.query_params["source"] = source_id


def map_chart(
    space: ExplorerSpace,
    state: dict,
    query: int | None,
    neighbours: Neighbours | None,
    colouring: tuple[str, pd.Series | None, bool],
) -> None:
    """The map with the query, its neighbours and the selection highlighted; clicks go to ``on_map_select``."""
    colour_name, colour, log_colour = colouring
    chart_key = f"map:{space.key}"
    dense = len(space) > POINTS_MAX  # a density image, and points for the sources in view
    view = current_view() if dense else None
    follows_query = colour_name == SIMILARITY_COLUMN
    figure = map_figure(
        space.catalogue,
        colour,
        colour_name,
        log_colour,
        neighbours=None if neighbours is None else neighbours.rows,
        query=query,
        selected=state.get("selected") or None,
        revision=f"map:{space.key}",  # the view keeper's key (explorer.widgets.view_keeper)
        height=MAP_HEIGHT_PX,
        view=view,
        # the space's creation time too: a space rebuilt under its name draws its own image
        density_key=(space.key, _created(space), colour_name, log_colour, query if follows_query else None),
    )
    st.plotly_chart(
        figure,
        key=chart_key,
        on_select=functools.partial(on_map_select, space.key, chart_key),
        selection_mode=("points", "box", "lasso"),
        width="stretch",
        config={"scrollZoom": True, "displaylogo": False},
    )
    if dense:
        view_input()  # the view keeper's script reports each zoom or pan here: the view's points are drawn
    st.caption(
        "Click a source to see it and its nearest neighbours · box / lasso (toolbar) selects a "
        "group · scroll to zoom, double-click to reset. The axes have no physical meaning."
        + (
            f" {len(space):,} sources: the shading is every source; points are drawn for up to "
            f"{DENSITY_POINTS_MAX:,} of those in view (zoom in for all of them)."
            if dense
            else ""
        )
    )


frame.require_app()
st.html(PAGE_CSS)
space = current_space()
frame.space_header(space, "Map")
name, values, log = colour_controls(space)
k, radius = neighbour_settings()
map_fragment(space, name, values, log, k, radius)
tag_sets(space)
unusual_sources(space)
