"""The table of a box / lasso selection on the map, with its CSV download."""

from __future__ import annotations

import streamlit as st

from explorer.selection_table import label_counts, selection_display, selection_frame
from explorer.space_registry import ExplorerSpace
from explorer.widgets.export import vo_buttons
from explorer.widgets.tags import selection_tags


def selection_section(space: ExplorerSpace, state: dict) -> None:
    """Table and CSV of a box / lasso selection (``state``: the map's state for the space)."""
    rows = state["selected"]
    frame = selection_frame(space.catalogue, rows)
    st.markdown(f"##### {len(rows)} sources selected")
    counts = label_counts(frame)
    if counts:
        st.caption(counts)
    st.dataframe(selection_display(frame), width="stretch", hide_index=True, height=min(38 + 35 * len(frame), 300))
    with st.container(horizontal=True):  # buttons at their natural width (narrow columns clipped the label)
        st.download_button(
            "Download the selection (CSV)",
            frame.to_csv(index=False).encode(),
            file_name=f"selection_{len(rows)}_sources.csv",
            mime="text/csv",
            key=f"sel:{space.key}:csv",
            icon=":material/download:",
        )
        vo_buttons(
            space, frame, f"selection of {len(rows)} sources", f"sel:{space.key}", params={"n_sources": len(rows)}
        )
        if st.button("Clear the selection", key=f"sel:{space.key}:clear"):
            state["selected"] = []
            st.rerun(scope="fragment")
    selection_tags(space, rows)
