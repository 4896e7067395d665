"""The view in the page's address: a reload or a shared link opens the same space, source and settings.

Query parameters: ``space`` (a space key), ``source`` (a source id; the map page),
``colour`` (the map's colour column), ``k`` (neighbours), ``radius`` (the sky-duplicate
radius, arcsec) and ``by`` (``measured``: neighbours by representation + pixel measurements);
``k``, ``radius`` and ``by`` only when they differ from the defaults. The zoom
is kept by the tab itself and written as ``view`` (x0,x1,y0,y1) by the page's script
(:mod:`explorer.widgets.view_keeper`), which also notes where a click went down
(``pick``, removed once read). The address is read
once per session (the first run) and then follows the widgets.
"""

from __future__ import annotations

import streamlit as st

RESTORED = "_url_restored"  # session state: the address was read into the widgets


def read_once(
    space_keys: list[str],
    space_key: str,
    k_key: str,
    radius_key: str,
    k_range,
    radius_range,
    basis_key: str = "",
    bases: tuple[str, ...] = (),
) -> None:
    """On a session's first run, set the space and the neighbour settings from the address."""
    if st.session_state.get(RESTORED):
        return
    st.session_state[RESTORED] = True
    params = st.query_params
    if params.get("space") in space_keys:
        st.session_state[space_key] = params["space"]
    for name, key, (lo, hi) in (("k", k_key, k_range), ("radius", radius_key, radius_range)):
        try:
            value = int(float(params[name]))
        except (KeyError, ValueError):
            continue
        st.session_state[key] = min(max(value, lo), hi)
    if basis_key and params.get("by") in bases:
        st.session_state[basis_key] = params["by"]


def follow(**values: object) -> None:
    """Write ``values`` into the address (a ``None`` value removes its parameter); unchanged ones are left."""
    for name, value in values.items():
        if value is None:
            if name in st.query_params:
                del st.query_params[name]
        elif st.query_params.get(name) != str(value):
            st.query_params[name] = str(value)
