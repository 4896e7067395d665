"""The selected source's neighbourhood (label purity, trust in the map, outlier score) and the
gallery of a space's most unusual sources."""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer.gallery import gallery_html
from explorer.neighbour_list import neighbour_cards
from explorer.neighbourhood import label_purity, map_trust, most_unusual, space_outlier_scores
from explorer.space_registry import ExplorerSpace, Neighbours
from explorer.widgets.sidebar import neighbour_settings
from pretrain import config

OUTLIER_SCORE_NAME = f"distance to the {config.APP_OUTLIER_K}th most similar source (1 − cos)"


def neighbourhood_facts(space: ExplorerSpace, row: int) -> None:
    """One caption: how pure the shown neighbours are, how far the map is to be trusted here, how unusual."""
    k, radius = neighbour_settings()
    catalogue = space.catalogue
    parts = []
    if "label" in catalogue:
        shown = space.neighbours_of_row(row, k, radius)
        purity = label_purity(catalogue["label"].to_numpy(), row, shown.rows)
        if purity.labelled and purity.label:
            parts.append(
                f"label purity **{purity.fraction:.0%}**: {purity.same} of {purity.labelled} labelled "
                f"neighbours are {purity.label}"
            )
        elif purity.labelled:
            parts.append("neighbours' labels: " + ", ".join(f"{lab} {n}" for lab, n in purity.counts.items()))
    if space.has_embeddings:
        full, _ = space.index.query_index(row, k)
        trust = map_trust(catalogue[["umap_x", "umap_y"]].to_numpy(), row, full)
        parts.append(
            f"map trust **{trust:.0%}**: of its {len(full)} most similar sources, "
            f"{round(trust * len(full))} are also its nearest on the map"
        )
    scores = space_outlier_scores(space)
    if scores is not None:
        more_usual = float(np.mean(scores < scores[row]))
        parts.append(f"outlier score {scores[row]:.3f} (more unusual than {more_usual:.0%} of the space)")
    if parts:
        st.caption("Neighbourhood · " + " · ".join(parts))


def unusual_sources(space: ExplorerSpace) -> None:
    """An expander with the space's most unusual sources (highest outlier score first)."""
    scores = space_outlier_scores(space)
    if scores is None:
        return
    n = min(config.APP_OUTLIER_SHOWN, len(space))
    with st.expander(f"The {n} most unusual sources of this space", icon=":material/crisis_alert:"):
        st.caption(
            f"Ranked by the cosine distance to each source's {config.APP_OUTLIER_K}th most similar source: "
            "the sources whose neighbour lists are poorest. Rare morphologies, artefacts and sources larger "
            "than the field end up here. Colour the map by “outlier score” to see where they lie."
        )
        rows = most_unusual(scores, n)
        cards = neighbour_cards(space, Neighbours(rows, scores[rows], OUTLIER_SCORE_NAME))
        # Its own class name: the page's neighbour gallery stays the only "nb-gallery" block.
        st.html(gallery_html(cards, OUTLIER_SCORE_NAME, query_id="most-unusual").replace("nb-gallery", "nb-unusual"))
