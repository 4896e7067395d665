"""A box / lasso selection on the map as a table: the CSV's frame, the one people read, a label count.

No Streamlit here: :mod:`explorer.widgets.selection` draws it.
"""

from __future__ import annotations

import pandas as pd

from explorer.figures import pretty_name

HIDDEN_COLUMNS = ("umap_x", "umap_y", "file", "input")  # the map's own columns: no use in a table


def selection_frame(catalogue: pd.DataFrame, rows: list[int]) -> pd.DataFrame:
    """The selected rows with the catalogue's own column names (what the CSV holds)."""
    columns = [c for c in catalogue.columns if c not in HIDDEN_COLUMNS]
    return catalogue.iloc[rows][columns].reset_index(drop=True)


def selection_display(frame: pd.DataFrame) -> pd.DataFrame:
    """The selection as people read it: named columns with units, none left empty
    (the CSV keeps the catalogue's own column names)."""
    filled = [
        c for c in frame.columns if not frame[c].isna().all() and not frame[c].astype(str).str.strip().eq("").all()
    ]
    return frame[filled].rename(columns=pretty_name)


def label_counts(frame: pd.DataFrame) -> str:
    """'FRI: 3 · FRII: 2' for a selection with labels ('' without)."""
    if "label" not in frame or not frame["label"].astype(str).str.len().gt(0).any():
        return ""
    counts = frame["label"].replace("", "(none)").value_counts()
    return " · ".join(f"{label}: {count}" for label, count in counts.items())
