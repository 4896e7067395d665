"""Plotly figures of a map: WebGL scatter coloured by a column, with highlighted neighbours.

Every trace carries ``customdata`` rows ``[row, ra, dec, extent]`` (float32, sent to the
browser as compact typed arrays): ``row`` is the source's row in the space's catalogue,
which is what a click or a lasso selection reports back; the other three feed the hover
text. Colour is continuous (colour bar, optional log scale) or categorical (one trace per
value, so the legend can hide a class).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from explorer.training_results import MARK_COLOURS

CATEGORICAL_MAX_VALUES = 24  # more distinct values than this: a numeric column is continuous
CONTINUOUS_SCALE = "Viridis"
CATEGORY_COLOURS = (  # colour-blind-friendly (Okabe-Ito), then Plotly's defaults
    "#E69F00",
    "#56B4E9",
    "#009E73",
    "#F0E442",
    "#0072B2",
    "#D55E00",
    "#CC79A7",
    "#999999",
    "#636EFA",
    "#EF553B",
    "#00CC96",
    "#AB63FA",
    "#FFA15A",
    "#19D3F3",
)
HOVER_DISTANCE_PX = 8  # a click farther than this from every point picks none (plotly's default: 20)
MISSING_COLOUR = "rgba(150,150,150,0.35)"
# Values with a meaning of their own: a run's mistakes stand out (one colour per split), its right
# answers recede.
FIXED_CATEGORY_COLOURS = {"misclassified": "#D55E00", **MARK_COLOURS}
NEIGHBOUR_COLOUR = "#00E5FF"
QUERY_COLOUR = "#FF2D55"
SELECTION_COLOUR = "#FFFFFF"
PREFERRED_COLOUR_COLUMNS = (  # the map is known to be ordered by extent; then the labels
    "angular_extent_arcsec",
    "label",
    "confident",
    "subtype",
    "redshift",
    "angular_extent_estimated_arcsec",
    "angular_extent_catalogued_arcsec",
)
NOT_COLOUR_COLUMNS = {"umap_x", "umap_y", "source_id", "file", "input", "name", "rgz_name", "row"}
NOT_COLOUR_COLUMNS |= {"ra", "dec", "image_ra", "image_dec"}  # positions: no pattern on a map of shapes
NOT_COLOUR_COLUMNS |= {"measurements_note"}  # why a pixel measurement is NaN: for the panel, not a colour
HOVER = (
    "<b>%{text}</b><br>RA %{customdata[1]:.4f}°, Dec %{customdata[2]:+.4f}°"
    "<br>extent %{customdata[3]:.1f}″<extra></extra>"
)


def is_categorical(values: pd.Series) -> bool:
    """Colour a column with discrete colours (labels, flags, few distinct numbers)?"""
    if isinstance(values.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(values):
        return True
    if pd.api.types.is_numeric_dtype(values):
        return pd.api.types.is_integer_dtype(values) and values.nunique(dropna=True) <= CATEGORICAL_MAX_VALUES
    return True


def colour_columns(catalogue: pd.DataFrame, extra: dict[str, pd.Series] | None = None) -> list[str]:
    """Columns a map can be coloured by: numeric ones, and categorical ones with few values.

    ``angular_extent_arcsec`` comes first (the quantity the map is known to be ordered by),
    then the labels; ``extra`` columns (e.g. a fine-tuned model's predictions) come last.
    """
    names = []
    for column in catalogue.columns:
        if column in NOT_COLOUR_COLUMNS:
            continue
        values = catalogue[column]
        if values.notna().sum() == 0:
            continue
        if is_categorical(values) and values.nunique(dropna=True) > CATEGORICAL_MAX_VALUES:
            continue  # free text, file names: no use as colours
        if values.nunique(dropna=True) < 2:
            continue  # one value (e.g. the survey): nothing to see
        names.append(column)
    first = [c for c in PREFERRED_COLOUR_COLUMNS if c in names]
    names = first + [c for c in names if c not in first]
    return names + [name for name in (extra or {}) if name not in names]


def hover_names(catalogue: pd.DataFrame) -> np.ndarray:
    """The bold first hover line of each source: its name, and its label where there is one."""
    names = catalogue["source_id"].astype(str).to_numpy()
    if "label" in catalogue.columns:
        labels = catalogue["label"].fillna("").astype(str).to_numpy()
        with_label = labels != ""
        names = names.astype(object)
        names[with_label] = names[with_label] + " · " + labels[with_label]
    return names


def point_data(catalogue: pd.DataFrame) -> np.ndarray:
    """``customdata`` rows ``[row, ra, dec, extent]`` (float32) for every source."""
    extent = catalogue.get("angular_extent_arcsec", np.nan)
    data = np.empty((len(catalogue), 4), dtype=np.float32)
    data[:, 0] = np.arange(len(catalogue))
    data[:, 1] = catalogue["ra"].to_numpy(np.float32) if "ra" in catalogue else np.nan
    data[:, 2] = catalogue["dec"].to_numpy(np.float32) if "dec" in catalogue else np.nan
    data[:, 3] = np.asarray(extent, dtype=np.float32)
    return data


def _log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Colour-bar ticks at 1-2-5 steps for a log10 colour axis spanning ``lo``..``hi`` (linear units)."""
    values = [
        m * 10.0**e for e in range(int(np.floor(np.log10(lo))) - 1, int(np.ceil(np.log10(hi))) + 1) for m in (1, 2, 5)
    ]
    values = [v for v in values if lo <= v <= hi] or [lo, hi]
    return [float(np.log10(v)) for v in values], [f"{v:g}" for v in values]


@dataclass(frozen=True)
class _Points:
    """The map's coordinates and per-point data, shared by every trace."""

    x: np.ndarray
    y: np.ndarray
    data: np.ndarray  # customdata: what a click returns
    text: np.ndarray  # hover names
    size: float

    def scatter(self, rows: np.ndarray, **kwargs) -> go.Scattergl:
        return go.Scattergl(x=self.x[rows], y=self.y[rows], customdata=self.data[rows], text=self.text[rows], **kwargs)


_BASE = dict(mode="markers", hovertemplate=HOVER)
# Rings and stars are larger than the points: hoverable, they would catch a click aimed
# at a point next to them. The point itself, under its ring, answers instead.
_OVERLAY = dict(mode="markers", hoverinfo="skip")


def map_figure(
    catalogue: pd.DataFrame,
    colour: pd.Series | None = None,
    colour_name: str = "",
    log_colour: bool = False,
    neighbours: np.ndarray | list[int] | None = None,
    query: int | None = None,
    marker: tuple[float, float] | None = None,
    marker_name: str = "looked-up source",
    selected: np.ndarray | list[int] | None = None,
    height: int = 640,
    point_size: float | None = None,
    revision: str = "map",
) -> go.Figure:
    """The map as a WebGL scatter, with optional overlays.

    ``colour`` (aligned with ``catalogue``'s rows) colours the points; ``neighbours`` rows
    get rings, ``query`` a star, ``marker`` (map x, y) a cross for a looked-up image,
    ``selected`` rows (a box/lasso selection) outlines. ``revision`` keeps the user's zoom
    while overlays change (plotly ``uirevision``).
    """
    n = len(catalogue)
    points = _Points(
        x=catalogue["umap_x"].to_numpy(np.float32),
        y=catalogue["umap_y"].to_numpy(np.float32),
        data=point_data(catalogue),
        text=hover_names(catalogue),
        size=point_size or float(np.clip(9.0 - 1.2 * np.log10(max(n, 1)), 3.0, 7.0)),
    )
    fig = go.Figure()
    if colour is None:
        marker_style = dict(size=points.size, color="#56B4E9", opacity=0.8)
        fig.add_trace(points.scatter(np.arange(n), name="sources", showlegend=False, marker=marker_style, **_BASE))
    elif is_categorical(colour):
        _add_categories(fig, points, colour, colour_name)
    else:
        _add_continuous(fig, points, colour, colour_name, log_colour)
    _add_overlays(fig, points, selected, neighbours, query)
    if marker is not None:
        fig.add_trace(
            go.Scattergl(
                x=[marker[0]],
                y=[marker[1]],
                name=marker_name,
                mode="markers+text",
                showlegend=False,
                text=[marker_name],
                textposition="top center",
                hoverinfo="text",
                textfont=dict(color=QUERY_COLOUR, size=13),
                marker=dict(symbol="x", size=18, color=QUERY_COLOUR, line=dict(color="white", width=1.5)),
            )
        )
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=30, b=10),
        uirevision=revision,
        dragmode="zoom",
        xaxis=dict(showticklabels=False, title=None, zeroline=False, showgrid=False),
        yaxis=dict(showticklabels=False, title=None, zeroline=False, showgrid=False, scaleanchor=None),
        hoverlabel=dict(font_size=12),
        clickmode="event+select",
        hoverdistance=HOVER_DISTANCE_PX,
    )
    return fig


def _add_categories(fig: go.Figure, points: _Points, colour: pd.Series, colour_name: str) -> None:
    """One trace (and legend entry) per class; sources without a value last, in grey."""
    values = colour.astype("object").where(colour.notna(), None).to_numpy()
    keys = [v for v in pd.unique(values) if v is not None and v == v]
    keys.sort(key=lambda v: str(v))
    for i, key in enumerate(keys + [None]):
        rows = np.flatnonzero(values == key) if key is not None else np.flatnonzero(pd.isna(colour).to_numpy())
        if rows.size == 0:
            continue
        label = "(none)" if key is None or str(key) == "" else str(key)
        fixed = FIXED_CATEGORY_COLOURS.get(str(key), CATEGORY_COLOURS[i % len(CATEGORY_COLOURS)])
        colour_of_class = MISSING_COLOUR if key is None else fixed
        marker_style = dict(size=points.size, opacity=0.85, color=colour_of_class)
        fig.add_trace(points.scatter(rows, name=f"{label} ({rows.size})", marker=marker_style, **_BASE))
    fig.update_layout(legend=dict(title=dict(text=colour_name), itemsizing="constant", bgcolor="rgba(0,0,0,0)"))


def _add_continuous(fig: go.Figure, points: _Points, colour: pd.Series, colour_name: str, log_colour: bool) -> None:
    """A colour scale with its bar; sources without a (positive, for log) value in grey."""
    values = pd.to_numeric(colour, errors="coerce").to_numpy(np.float64)
    finite = np.isfinite(values) & ((values > 0) if log_colour else True)
    missing = np.flatnonzero(~finite)
    if missing.size:
        marker_style = dict(size=points.size, color=MISSING_COLOUR)
        fig.add_trace(points.scatter(missing, name="no value", showlegend=False, marker=marker_style, **_BASE))
    rows = np.flatnonzero(finite)
    shown = np.log10(values[rows]) if log_colour else values[rows]
    colorbar = dict(title=dict(text=_colour_title(colour_name, log_colour), side="right"), thickness=14)
    if log_colour and rows.size:
        colorbar["tickvals"], colorbar["ticktext"] = _log_ticks(float(values[rows].min()), float(values[rows].max()))
    # A class probability keeps its full 0..1 scale: a model unsure everywhere looks unsure.
    value_range = dict(cmin=0.0, cmax=1.0) if is_probability_column(colour_name) and not log_colour else {}
    marker_style = dict(
        size=points.size,
        color=shown.astype(np.float32),
        colorscale=CONTINUOUS_SCALE,
        opacity=0.85,
        colorbar=colorbar,
        showscale=True,
        **value_range,
    )
    fig.add_trace(points.scatter(rows, name=colour_name, showlegend=False, marker=marker_style, **_BASE))


def _add_overlays(fig: go.Figure, points: _Points, selected, neighbours, query: int | None) -> None:
    """Outlines of a selection, numbered rings of the neighbours, a star on the query."""
    size = points.size
    if selected is not None and len(selected):
        outline = dict(size=size + 3, color="rgba(0,0,0,0)", line=dict(color=SELECTION_COLOUR, width=1.5))
        rows = np.asarray(selected, dtype=np.int64)
        fig.add_trace(points.scatter(rows, name="selected", showlegend=False, marker=outline, **_OVERLAY))
    if neighbours is not None and len(neighbours):
        rows = np.asarray(neighbours, dtype=np.int64)
        fig.add_trace(
            points.scatter(
                rows,
                name="neighbours",
                showlegend=False,
                mode="markers+text",
                textposition="top center",
                texttemplate=[str(i + 1) for i in range(rows.size)],
                textfont=dict(color=NEIGHBOUR_COLOUR, size=11),
                hoverinfo="skip",
                marker=dict(size=size + 8, color="rgba(0,0,0,0)", line=dict(color=NEIGHBOUR_COLOUR, width=2)),
            )
        )
    if query is not None and query >= 0:
        star = dict(symbol="star", size=size + 14, color=QUERY_COLOUR, line=dict(color="white", width=1.5))
        rows = np.array([query])
        fig.add_trace(points.scatter(rows, name="selected source", showlegend=False, marker=star, **_OVERLAY))


PRETTY_NAMES = {
    "angular_extent_arcsec": "angular extent (″)",
    "angular_extent_estimated_arcsec": "estimated extent (″)",
    "angular_extent_catalogued_arcsec": "catalogued extent (″)",
    "ra": "RA (°)",
    "dec": "Dec (°)",
    "image_ra": "image centre RA (°)",
    "image_dec": "image centre Dec (°)",
}


def is_probability_column(column: str) -> bool:
    """A fine-tuned run's class probability, e.g. 'run 20261123-...: P(FRII)'."""
    return column.startswith("run ") and ": P(" in column


def pretty_name(column: str) -> str:
    """A column's name for people (units in brackets, no underscores)."""
    return PRETTY_NAMES.get(column, column.replace("_", " "))


def _colour_title(name: str, log_colour: bool) -> str:
    return pretty_name(name) + (", log scale" if log_colour else "")


def rows_from_selection(points: list[dict]) -> list[int]:
    """Catalogue rows of the points in a Streamlit plotly selection event (order kept, unique)."""
    rows, seen = [], set()
    for point in points or []:
        custom = point.get("customdata")
        if custom is None:
            continue
        if isinstance(custom, dict):  # a typed-array row arrives as {"0": row, "1": ra, ...}
            custom = custom.get("0", custom.get(0))
        elif isinstance(custom, (list, tuple)):
            custom = custom[0]
        if custom is None:
            continue
        row = round(float(custom))
        if row not in seen:
            seen.add(row)
            rows.append(row)
    return rows
