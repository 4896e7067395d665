"""The source panel's links out (NED, SIMBAD, FIRST, NVSS, VLASS, Legacy Survey, SDSS)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from explorer.links import links_html

LINKS_CSS = "<style>.sky-links{font-size:14px}.sky-links a{text-decoration:none}</style>"


def source_links(entry: pd.Series) -> None:
    """One line of links by the source's position, each opening in a new tab (nothing without one)."""
    block = links_html(entry.get("ra"), entry.get("dec"))
    if block:
        st.html(LINKS_CSS + '<div class="source-links">Look it up: ' + block + "</div>")
