"""The app's frame around every page: page config, the space heading, and the deep-link workaround.

Session state: ``_explorer_app_frame`` (set by app.py on each run, read by the page).
"""

from __future__ import annotations

import streamlit as st

from explorer.space_registry import EmbeddingSpace, ExplorerSpace, MeasuredEmbeddingSpace
from explorer.widgets.sidebar import sidebar

APP_MARK = "_explorer_app_frame"


def page_config() -> None:
    st.set_page_config(page_title="Radio galaxy explorer", page_icon=":material/satellite_alt:", layout="wide")


def mark_app_run() -> None:
    """Called by app.py on every run, before the page: the page knows the app's frame is there."""
    st.session_state[APP_MARK] = True


def require_app() -> None:
    """Give a page the app's frame (page config, sidebar) when app.py did not run around it.

    In the app, app.py always runs first (its ``st.navigation`` runs the page). One case
    escapes it: when a deep link (e.g. ``/Lookup``, a tab reconnecting after a restart) is
    the first request of a freshly started server, Streamlit still treats ``pages/`` as a
    legacy multipage folder (until some session has called ``st.navigation``) and runs the
    page file alone, with the folder's files as the navigation. The page then leaves that
    mode, as ``st.navigation`` itself does, and reruns: app.py takes over with the same
    page. A page script run on its own elsewhere (an AppTest of the page file) draws the
    frame itself (AppTest starts every run in the legacy mode, so it is not handed over
    there: a rerun would drop the widget event that started the run).
    """
    if st.session_state.pop(APP_MARK, False):
        return
    # Streamlit (1.67) has no public API to leave the legacy pages/ mode: the class flag
    # PagesManager.uses_pages_directory is set from "a pages/ folder exists" when the first
    # session starts and is cleared only by st.navigation (commands/navigation.py); while it
    # is set, the script runner runs the page through its v1 navigation (_mpa_v1), not app.py.
    # Clearing it as st.navigation does is the one way out (tests/test_browser.py checks it).
    from streamlit.runtime.pages_manager import PagesManager

    if getattr(PagesManager, "uses_pages_directory", False) and _real_server():
        PagesManager.uses_pages_directory = False
        st.rerun()
    page_config()
    sidebar()


def _real_server() -> bool:
    """True under ``streamlit run``; False under AppTest, whose runtime is a mock."""
    from streamlit import runtime

    return runtime.exists() and type(runtime.get_instance()) is runtime.Runtime


def space_header(space: ExplorerSpace, page: str) -> None:
    """The page's heading: the page, the space, its size and what its neighbours mean."""
    kind = (
        f"cosine similarity of {space.embedding_dim}-d representations"
        if isinstance(space, EmbeddingSpace)
        else "catalogue only: neighbours on the 2-D map"
    )
    if isinstance(space, EmbeddingSpace) and space.space.symmetry == "d4":
        kind += " (each averaged over the image's turns by 90° and mirror images)"
    if isinstance(space, MeasuredEmbeddingSpace):
        kind += f", with the pixel measurements appended ({space.measured.describe()})"
    st.markdown(f"#### {page} · {space.title}")
    st.caption(f"{len(space):,} sources · {kind}")
