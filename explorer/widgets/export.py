"""Virtual Observatory hand-off beside the CSV downloads: a VOTable download and 'send to TOPCAT / Aladin'."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import streamlit as st

from explorer.samp_send import send_votable
from explorer.space_registry import ExplorerSpace
from explorer.votable import space_provenance, votable_bytes


def vo_buttons(
    space: ExplorerSpace,
    frame: pd.DataFrame,
    name: str,
    key: str,
    description: str = "",
    params: Mapping[str, object] | None = None,
) -> None:
    """Download ``frame`` as a VOTable (with the space's provenance) or broadcast it over SAMP."""
    document = votable_bytes(frame, name, description, infos=space_provenance(space), params=params)
    stem = "".join(c if c.isalnum() or c in "_-+." else "_" for c in name)
    st.download_button(
        "VOTable",
        document,
        file_name=f"{stem}.vot",
        mime="application/x-votable+xml",
        key=f"{key}:votable",
        icon=":material/table_view:",
        help="For TOPCAT, Aladin or astropy: positions with UCDs and units, the scores and labels, "
        "and where the list came from (backbone SHA-256, space, settings).",
    )
    if st.button(
        "Send to TOPCAT / Aladin",
        key=f"{key}:samp",
        icon=":material/send:",
        help="Over SAMP, to the desktop tools running on this machine (TOPCAT and Aladin each start a hub).",
    ):
        result = send_votable(document, name)
        (st.success if result.sent else st.warning)(result.message)
