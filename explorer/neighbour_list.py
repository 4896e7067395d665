"""A neighbour list as people get it: the gallery's cards, the CSV table, the dropped-duplicates note.

No Streamlit here: :mod:`explorer.widgets.neighbours` draws what these build.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from explorer.gallery import Card
from explorer.space_registry import ExplorerSpace, FirstImageSpace, Neighbours

CSV_COLUMNS = ("source_id", "ra", "dec", "angular_extent_arcsec", "label", "confident", "subtype", "redshift")
DROPPED_SHOWN = 6  # source ids named in the dropped-duplicates note


def neighbour_frame(space: ExplorerSpace, neighbours: Neighbours, query_id: str = "") -> pd.DataFrame:
    """The neighbour list as a table (what the CSV download holds)."""
    columns = [c for c in CSV_COLUMNS if c in space.catalogue.columns]
    frame = space.catalogue.iloc[neighbours.rows][columns].reset_index(drop=True)
    score = "cosine_similarity" if space.has_embeddings else "map_distance"
    percentile = space.similarity_percentile(neighbours.scores)
    if percentile is not None:
        frame.insert(0, "similarity_percentile", np.round(percentile, 3))
    frame.insert(0, score, np.round(neighbours.scores.astype(np.float64), 5))
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    if query_id:
        frame.insert(0, "query", query_id)
    return frame


def dropped_note(space: ExplorerSpace, neighbours: Neighbours, radius_arcsec: float) -> str:
    """What the sky-duplicate filter dropped ('' when nothing)."""
    if not len(neighbours.dropped):
        return ""
    ids = ", ".join(space.catalogue["source_id"].iloc[neighbours.dropped].astype(str).tolist()[:DROPPED_SHOWN])
    return (
        f"{len(neighbours.dropped)} sky duplicate(s) within {radius_arcsec:g}″ of an earlier result dropped: {ids}"
        + ("…" if len(neighbours.dropped) > DROPPED_SHOWN else "")
    )


def neighbour_cards(space: ExplorerSpace, neighbours: Neighbours) -> list[Card]:
    """One gallery card per neighbour, best first (an image-less one says why)."""
    cards = []
    percentiles = space.similarity_percentile(neighbours.scores)
    if percentiles is None:
        percentiles = np.full(len(neighbours.rows), np.nan)
    for rank, (row, score, percentile) in enumerate(zip(neighbours.rows, neighbours.scores, percentiles), start=1):
        entry = space.catalogue.iloc[row]
        image = space.image(int(row))
        cards.append(
            Card(
                rank=rank,
                source_id=str(entry["source_id"]),
                image=image,
                score=float(score),
                label=str(entry.get("label", "") or ""),
                extent_arcsec=float(entry.get("angular_extent_arcsec", np.nan)),
                ra=float(entry.get("ra", np.nan)),
                dec=float(entry.get("dec", np.nan)),
                note="" if image is not None else _missing_image_note(space, int(row)),
                percentile=float(percentile),
            )
        )
    return cards


def _missing_image_note(space: ExplorerSpace, row: int) -> str:
    if isinstance(space, FirstImageSpace):
        return "blank FIRST cutout" if space.is_blank(row) else "FIRST image not fetched yet"
    return getattr(space, "images_problem", "") or "no image"


def unfetched(cards: list[Card]) -> list[int]:
    """Positions in the list of the neighbours whose FIRST image can still be fetched."""
    return [c.rank - 1 for c in cards if c.image is None and c.note.startswith("FIRST image not")]
