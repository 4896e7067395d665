"""Tag controls: tag / untag a source (its panel) or a whole selection, and the space's tag sets
(select them on the map, export them). The tags live on disk (:mod:`explorer.tags`)."""

from __future__ import annotations

import streamlit as st

from explorer.space_registry import ExplorerSpace
from explorer.tags import TagStore, parse_tags, tag_set_frame
from explorer.widgets.export import vo_buttons
from explorer.widgets.map_state import space_state

TAG_HELP = "Free text; commas separate several tags. Kept on disk for this space, shared by every tab."


def _tag_form(space: ExplorerSpace, source_ids: list[str], key: str, label: str) -> None:
    with st.form(key=key, clear_on_submit=True, border=False):
        text = st.text_input(label, placeholder="e.g. bent, check in LoTSS", help=TAG_HELP)
        # the buttons on a row of their own: beside the field, a narrow panel squashed them to "T"
        add_col, remove_col = st.columns(2)
        add = add_col.form_submit_button("Tag", icon=":material/sell:", width="stretch")
        remove = remove_col.form_submit_button("Untag", width="stretch")
    tags = parse_tags(text)
    if (add or remove) and tags:
        store = TagStore(space.key)
        (store.add if add else store.remove)(source_ids, tags)
        st.rerun(scope="app")  # the map's colour menu offers the new "tag: ..." columns


def source_tags(space: ExplorerSpace, row: int) -> None:
    """The source's tags and a field to tag / untag it."""
    source_id = str(space.catalogue["source_id"].iloc[row])
    current = sorted(TagStore(space.key).tags_by_source().get(source_id, ()), key=str.lower)
    st.caption("Tags: " + (" · ".join(f"**{t}**" for t in current) if current else "none yet"))
    _tag_form(space, [source_id], f"tags:{space.key}:{source_id}", "Tag this source")


def selection_tags(space: ExplorerSpace, rows: list[int]) -> None:
    """Tag / untag every source of a selection at once."""
    ids = space.catalogue["source_id"].iloc[rows].astype(str).tolist()
    _tag_form(space, ids, f"tags:{space.key}:selection", f"Tag all {len(ids)} selected sources")


def tag_sets(space: ExplorerSpace) -> None:
    """The space's tags: choose one to select its sources on the map or export them."""
    store = TagStore(space.key)
    counts = store.tag_counts()
    if not counts:
        return
    with st.expander(f"Tagged sources ({len(counts)} tag{'s' if len(counts) != 1 else ''})", icon=":material/sell:"):
        tag = st.selectbox("Tag", list(counts), format_func=lambda t: f"{t} ({counts[t]})", key=f"tagset:{space.key}")
        if tag is None:
            return
        frame = tag_set_frame(space.catalogue, store, tag)
        st.caption("Colour the map by it: “tag: " + tag + "” in the colour menu.")
        with st.container(horizontal=True):
            if st.button("Select them on the map", key=f"tagset:{space.key}:select", icon=":material/select_all:"):
                space_state(space.key)["selected"] = [space.row_of(s) for s in frame["source_id"].astype(str)]
                st.rerun()
            st.download_button(
                "Download the tag set (CSV)",
                frame.to_csv(index=False).encode(),
                file_name=f"tag_{tag}.csv",
                mime="text/csv",
                key=f"tagset:{space.key}:csv",
                icon=":material/download:",
            )
            vo_buttons(space, frame, f"tag {tag}", f"tagset:{space.key}", params={"tag": tag, "n_sources": len(frame)})
