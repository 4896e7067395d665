"""The neighbour gallery of a source or a looked-up image: cards, CSV, fetching images, 'continue from'."""

from __future__ import annotations

import streamlit as st

from explorer.gallery import gallery_html
from explorer.neighbour_list import dropped_note, neighbour_cards, neighbour_frame, unfetched
from explorer.space_registry import EmbeddingSpace, ExplorerSpace, FirstImageSpace, Neighbours
from explorer.widgets.export import vo_buttons
from explorer.widgets.first_images import fetch_gallery_images
from explorer.widgets.map_state import space_state
from explorer.widgets.sidebar import neighbour_settings


def neighbours_section(
    space: ExplorerSpace,
    neighbours: Neighbours,
    query_row: int | None = None,
    query_id: str | None = None,
    key: str = "nb",
    in_fragment: bool = False,
) -> None:
    """Gallery of the neighbours, the duplicate note, a CSV download and 'continue from'.

    ``in_fragment``: drawn inside an ``st.fragment`` (the map), so fetching the gallery's
    FIRST images reruns only the fragment; elsewhere (the look-up page) the page reruns.
    """
    query_id = query_id or (str(space.catalogue["source_id"].iloc[query_row]) if query_row is not None else "")
    how = (
        f"by {space.similarity_description}"
        if isinstance(space, EmbeddingSpace)
        else "by distance **on the 2-D map** (this space has no representations)"
    )
    st.markdown(f"##### {len(neighbours.rows)} nearest neighbours")
    st.caption(how[0].upper() + how[1:])
    _, radius = neighbour_settings()
    note = dropped_note(space, neighbours, radius)
    if note:
        st.caption(note)
    cards = neighbour_cards(space, neighbours)
    st.html(gallery_html(cards, neighbours.score_name, query_id=query_id))

    if query_row is not None:  # right under the cards: one click goes on from a neighbour
        _continue_menu(space, neighbours, f"{key}:continue:{query_row}")
    cols = st.columns([1, 1], vertical_alignment="center")
    with cols[0]:
        st.download_button(
            "Download the list (CSV)",
            neighbour_frame(space, neighbours, query_id).to_csv(index=False).encode(),
            file_name=f"neighbours_{query_id or 'query'}.csv",
            mime="text/csv",
            key=f"{key}:csv",
            icon=":material/download:",
        )
    with cols[1]:
        missing = unfetched(cards)
        if (
            isinstance(space, FirstImageSpace)
            and missing
            and st.button(f"Fetch {len(missing)} FIRST images", key=f"{key}:fetch", icon=":material/download:")
        ):
            st.session_state[f"{key}:fetch-notes"] = fetch_gallery_images(
                space, [int(neighbours.rows[i]) for i in missing]
            )
            st.rerun(scope="fragment" if in_fragment else "app")
    with st.container(horizontal=True):  # the VO hand-off, beside the CSV's row
        vo_buttons(
            space,
            neighbour_frame(space, neighbours, query_id),
            f"neighbours of {query_id or 'query'}",
            key,
            params={"n_neighbours": len(neighbours.rows), "sky_radius_arcsec": radius, "score": neighbours.score_name},
        )
    for message in st.session_state.pop(f"{key}:fetch-notes", None) or []:  # full width, below the buttons
        st.warning(message)


def _continue_menu(space: ExplorerSpace, neighbours: Neighbours, widget_key: str) -> None:
    """The neighbours' ranks as buttons: a click makes that neighbour the map's query."""
    options = [int(r) for r in neighbours.rows]
    st.pills(
        "Continue from neighbour",
        options,
        key=widget_key,
        format_func=lambda r: f"#{options.index(r) + 1}",
        on_change=_continue_from,
        args=(space.key, widget_key),
        help="Click a card to see its whole image enlarged; click its number here to continue from it.",
    )


def _continue_from(space_key: str, widget_key: str) -> None:
    row = st.session_state.get(widget_key)
    if row is not None:
        space_state(space_key)["query"] = row
