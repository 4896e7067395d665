"""The map page's state per space, kept in the session across pages and reruns.

Session state: ``map_state`` = {space key: {"query": row or None, "selected": [rows],
"from_url": the ``?source=`` value last seen}}.
"""

from __future__ import annotations

import streamlit as st

MAP_STATE = "map_state"


def space_state(space_key: str) -> dict:
    """The map's state for one space (created empty on first use)."""
    return st.session_state.setdefault(MAP_STATE, {}).setdefault(space_key, {"query": None, "selected": []})
