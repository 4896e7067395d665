"""The app-wide sidebar: the space selector and the neighbour settings (every page reads them).

Session state: ``space_key`` (the chosen space), ``n_neighbours``, ``sky_radius_arcsec``;
all three also in the address (:mod:`explorer.widgets.url_state`); and ``neighbours_by`` (the
representation alone, or with the pixel measurements appended: ``by=measured`` in the address).
"""

from __future__ import annotations

import os

import streamlit as st

from explorer.space_registry import SpaceEntry, discover_spaces
from explorer.widgets import url_state
from explorer.widgets.view_keeper import keep_plot_views
from pretrain import config

SPACE_KEY = "space_key"
K_KEY = "n_neighbours"
RADIUS_KEY = "sky_radius_arcsec"
BASIS_KEY = "neighbours_by"
BASES = {  # how neighbours are found in an embedding space (pretrain/measured_neighbours.py)
    "representation": "the representation",
    "measured": "representation + extent, FR ratio",
}
K_RANGE = (4, 48)
RADIUS_RANGE = (0, 120)


@st.cache_data(ttl=15, show_spinner=False)
def _entries(cache_root: str, spaces_env: str) -> list[SpaceEntry]:
    return discover_spaces()


def space_entries() -> list[SpaceEntry]:
    """Every space the selector offers (re-discovered every 15 s, or when the cache or EXPLORER_SPACES change)."""
    return _entries(str(config.cache_dir()), os.environ.get("EXPLORER_SPACES", ""))


def forget_entries() -> None:
    """Discover the spaces again on the next run (a space was just prepared)."""
    _entries.clear()


def entry_for(key: str) -> SpaceEntry:
    """The selector's entry for ``key``; the first one (MiraBest) when there is none."""
    for entry in space_entries():
        if entry.key == key:
            return entry
    return space_entries()[0]


def sidebar() -> None:
    """The app-wide sidebar: space selector and neighbour settings (both pages use them)."""
    entries = space_entries()
    titles = {e.key: e.title for e in entries}
    url_state.read_once(list(titles), SPACE_KEY, K_KEY, RADIUS_KEY, K_RANGE, RADIUS_RANGE, BASIS_KEY, tuple(BASES))
    if st.session_state.get(SPACE_KEY) not in titles:
        st.session_state[SPACE_KEY] = entries[0].key
    st.session_state.setdefault(K_KEY, config.APP_NEIGHBOURS_K)
    st.session_state.setdefault(RADIUS_KEY, int(config.APP_SKY_DUPLICATE_RADIUS_ARCSEC))
    with st.sidebar:
        st.markdown("### :material/satellite_alt: Radio galaxy explorer")
        keys: list[str] = list(titles)
        st.selectbox(
            "Space",
            keys,
            format_func=lambda key: titles.get(key, key),
            key=SPACE_KEY,
            on_change=_space_changed,
            help="A space is a data set's map and representations. Prepared spaces in the "
            "cache, folders in EXPLORER_SPACES, and the published RGZ DR1 map.",
        )
        if entry_for(st.session_state[SPACE_KEY]).kind == "catalogue":
            st.caption(
                "Catalogue only: the published map's coordinates, no representations. "
                "Neighbours are the nearest points **on the map**; images come from FIRST."
            )
        _neighbour_sliders(entry_for(st.session_state[SPACE_KEY]).kind != "catalogue")
        _help_link()
        keep_plot_views()  # the maps keep their zoom across reruns
    k, radius = neighbour_settings()
    url_state.follow(
        space=st.session_state[SPACE_KEY],
        k=None if k == config.APP_NEIGHBOURS_K else k,
        radius=None if radius == config.APP_SKY_DUPLICATE_RADIUS_ARCSEC else int(radius),
        by="measured" if measured_neighbours() else None,
    )


def _neighbour_sliders(embedding_space: bool) -> None:
    # In a form: dragging or pressing the arrow keys does not rerun the page at every step.
    st.session_state.setdefault(BASIS_KEY, "representation")
    with st.form("neighbour_settings", border=False):
        st.markdown("**Neighbours**")
        st.slider("How many", *K_RANGE, key=K_KEY, step=1)
        st.slider(
            "Drop sky duplicates within (″)",
            *RADIUS_RANGE,
            key=RADIUS_KEY,
            step=5,
            help="A neighbour closer than this on the sky to the query or to an earlier neighbour "
            "is the same object catalogued twice: it is dropped. 0 keeps everything.",
        )
        if embedding_space:
            st.radio(
                "Similar by",
                list(BASES),
                format_func=BASES.__getitem__,
                key=BASIS_KEY,
                help="The representation alone (what the map shows), or with two pixel measurements "
                "appended: the angular extent and the FR ratio. On MiraBest the second finds neighbours "
                "of the same FR class more often, also for sources kept out of pretraining "
                "(BENCHMARKS.md, bench_measurements). Spaces without measurements use the representation.",
            )
        st.form_submit_button("Apply", icon=":material/check:")


def _help_link() -> None:
    """The Help page (what the map and the similarity mean, caveats, credits)."""
    try:
        st.page_link("pages/4_Help.py", label="What am I looking at? (Help)", icon=":material/help:")
    except Exception:  # a page run on its own (an AppTest of one file) has no navigation to link into
        pass


def _space_changed() -> None:
    for name in ("source", "colour"):  # a source id or column of the previous space means nothing here
        st.query_params.pop(name, None)


def measured_neighbours() -> bool:
    """Whether the sidebar asks for neighbours by representation + pixel measurements."""
    return st.session_state.get(BASIS_KEY) == "measured"


def neighbour_settings() -> tuple[int, float]:
    """(how many neighbours, sky-duplicate radius in arcsec) as set in the sidebar."""
    return int(st.session_state.get(K_KEY, config.APP_NEIGHBOURS_K)), float(
        st.session_state.get(RADIUS_KEY, config.APP_SKY_DUPLICATE_RADIUS_ARCSEC)
    )
