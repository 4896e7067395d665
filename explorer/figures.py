"""Plotly figures of a map: WebGL scatter coloured by a column, with highlighted neighbours.

Every trace carries ``customdata`` rows ``[row, ra, dec, extent]`` (float32, sent to the
browser as compact typed arrays): ``row`` is the source's row in the space's catalogue,
which is what a click or a lasso selection reports back; the other three feed the hover
text. Colour is continuous (colour bar, optional log scale) or categorical (one trace per
value, so the legend can hide a class).

A survey-sized map (more than ``POINTS_MAX`` sources) is drawn as a density image of every
source (coloured like the points, opacity by density), with points on top for at most
``POINTS_MAX`` of the sources in the current view (``view``: the map's axis ranges, kept
in the address by :mod:`explorer.widgets.view_keeper`): zoomed in far enough, every source
in view is a point and a click picks exactly the one under the mouse. Which sources are
shown when there are more is fixed per map (a seeded random priority), so a zoom only adds
points. Software WebGL draws ~50 k points in about a second; a million would take tens of
seconds and a 50 MB message on every click (BENCHMARKS.md, bench_big_map).
"""

from __future__ import annotations

import base64
import io
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.colors
import plotly.graph_objects as go

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
# More sources than this: a density image, and points only for those in view (EXPLORER_MAP_POINTS_MAX
# overrides it, e.g. to measure the alternative of drawing every point: bench/bench_big_map.py).
POINTS_MAX = int(os.environ.get("EXPLORER_MAP_POINTS_MAX", "60000"))
# On a density map, points (hover, click) for at most this many of the sources in view: at 1 M
# sources half of POINTS_MAX brings a click's gallery in half the time in Chromium (BENCHMARKS.md,
# bench_big_map_space); zoomed in far enough, every source in view is a point.
DENSITY_POINTS_MAX = int(os.environ.get("EXPLORER_MAP_DENSITY_POINTS", "30000"))
EXTENT_MARKER_PAD = 16  # the invisible corners' marker: larger than the star (point size + 14)
DENSITY_BINS = (960, 720)  # the density image's pixels over the whole map (x, y): ~1 screen pixel each
VIEW_MARGIN = 0.05  # points just outside the view are sent too (a small pan shows no gap)
HOVER_DISTANCE_PX = 8  # a click farther than this from every point picks none (plotly's default: 20)
MISSING_COLOUR = "rgba(150,150,150,0.35)"


# Values with a meaning of their own: a run's mistakes stand out (one colour per split), its right
# answers recede.
def fixed_category_colours() -> dict[str, str]:
    # Imported here, not at the top: training_results -> gallery -> facts -> figures is a cycle.
    from explorer.training_results import MARK_COLOURS

    return {"misclassified": "#D55E00", **MARK_COLOURS}


def __getattr__(name: str):  # FIXED_CATEGORY_COLOURS, as before (built when first asked for)
    if name == "FIXED_CATEGORY_COLOURS":
        return fixed_category_colours()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


def hover_names(catalogue: pd.DataFrame, rows: np.ndarray | None = None) -> np.ndarray:
    """The bold first hover line of each source (of ``rows``): its name, and its label where there is one."""
    if rows is not None:
        catalogue = catalogue.iloc[rows]
    names = catalogue["source_id"].astype(str).to_numpy()
    if "label" in catalogue.columns:
        labels = catalogue["label"].fillna("").astype(str).to_numpy()
        with_label = labels != ""
        names = names.astype(object)
        names[with_label] = names[with_label] + " · " + labels[with_label]
    return names


def point_data(catalogue: pd.DataFrame, rows: np.ndarray | None = None) -> np.ndarray:
    """``customdata`` rows ``[row, ra, dec, extent]`` (float32) for every source (or ``rows``)."""
    rows = np.arange(len(catalogue)) if rows is None else np.asarray(rows, dtype=np.int64)
    data = np.full((len(rows), 4), np.nan, dtype=np.float32)
    data[:, 0] = rows  # exact in float32 up to 16.7 M sources
    for i, column in ((1, "ra"), (2, "dec"), (3, "angular_extent_arcsec")):
        if column in catalogue:
            data[:, i] = catalogue[column].to_numpy(np.float32)[rows]
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
    """The map's coordinates, shared by every trace; hover data made only for the points drawn."""

    catalogue: pd.DataFrame
    x: np.ndarray
    y: np.ndarray
    shown: np.ndarray  # bool per source: drawn as a point (all of them below POINTS_MAX)
    size: float

    def scatter(self, rows: np.ndarray, **kwargs) -> go.Scattergl:
        rows = np.asarray(rows, dtype=np.int64)
        return go.Scattergl(
            x=self.x[rows],
            y=self.y[rows],
            customdata=point_data(self.catalogue, rows),  # what a click returns
            text=hover_names(self.catalogue, rows),
            **kwargs,
        )

    def drawn(self, rows: np.ndarray) -> np.ndarray:
        """Those of ``rows`` that are drawn as points."""
        return rows[self.shown[rows]]


def points_in_view(
    x: np.ndarray, y: np.ndarray, view: tuple[float, float, float, float] | None, limit: int = POINTS_MAX
) -> np.ndarray:
    """Bool per source: the sources drawn as points, at most ``limit`` of those in ``view``
    ((x0, x1, y0, y1) with a margin; the whole map when ``None``), chosen by a priority
    fixed per map (seeded), so zooming in only ever adds points."""
    inside = np.ones(len(x), dtype=bool)
    if view is not None:
        x0, x1, y0, y1 = view
        mx, my = VIEW_MARGIN * abs(x1 - x0), VIEW_MARGIN * abs(y1 - y0)
        inside = (x >= min(x0, x1) - mx) & (x <= max(x0, x1) + mx) & (y >= min(y0, y1) - my) & (y <= max(y0, y1) + my)
    candidates = np.flatnonzero(inside)
    if candidates.size > limit:
        priority = np.random.default_rng(len(x)).permutation(len(x))  # the same order for a map every time
        candidates = candidates[np.argpartition(priority[candidates], limit - 1)[:limit]]
    shown = np.zeros(len(x), dtype=bool)
    shown[candidates] = True
    return shown


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
    view: tuple[float, float, float, float] | None = None,
    points_max: int = POINTS_MAX,
    density_key: object = None,
    density_points_max: int | None = None,
) -> go.Figure:
    """The map as a WebGL scatter, with optional overlays.

    ``colour`` (aligned with ``catalogue``'s rows) colours the points; ``neighbours`` rows
    get rings, ``query`` a star, ``marker`` (map x, y) a cross for a looked-up image,
    ``selected`` rows (a box/lasso selection) outlines. ``revision`` keeps the user's zoom
    while overlays change (plotly ``uirevision``). More than ``points_max`` sources: a
    density image of all of them and points for those in ``view`` (x0, x1, y0, y1);
    ``density_key`` (e.g. the space and colour) lets the next figure reuse that image.
    """
    n = len(catalogue)
    x = catalogue["umap_x"].to_numpy(np.float32)
    y = catalogue["umap_y"].to_numpy(np.float32)
    dense = n > points_max
    in_view_max = density_points_max or min(points_max, DENSITY_POINTS_MAX)
    shown = points_in_view(x, y, view, in_view_max) if dense else np.ones(n, dtype=bool)
    if dense:  # the source shown and its neighbours are points (their rings can be clicked) wherever they are
        for rows in (neighbours, [query] if query is not None and query >= 0 else None):
            if rows is not None and len(rows):
                shown[np.asarray(rows, dtype=np.int64)] = True
    n_shown = int(shown.sum())
    points = _Points(
        catalogue=catalogue,
        x=x,
        y=y,
        shown=shown,
        size=point_size or float(np.clip(9.0 - 1.2 * np.log10(max(n_shown, 1)), 3.0, 7.0)),
    )
    fig = go.Figure()
    _add_extent(fig, points)
    if dense:
        _add_density(fig, points, colour, log_colour, density_key)
    if colour is None:
        marker_style = dict(size=points.size, color="#56B4E9", opacity=0.8)
        rows = np.flatnonzero(shown)
        fig.add_trace(points.scatter(rows, name="sources", showlegend=False, marker=marker_style, **_BASE))
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
    fixed_colours = fixed_category_colours()
    for i, key in enumerate(keys + [None]):
        rows = np.flatnonzero(values == key) if key is not None else np.flatnonzero(pd.isna(colour).to_numpy())
        total = rows.size
        rows = points.drawn(rows)
        if total == 0:
            continue
        label = "(none)" if key is None or str(key) == "" else str(key)
        fixed = fixed_colours.get(str(key), CATEGORY_COLOURS[i % len(CATEGORY_COLOURS)])
        colour_of_class = MISSING_COLOUR if key is None else fixed
        marker_style = dict(size=points.size, opacity=0.85, color=colour_of_class)
        fig.add_trace(points.scatter(rows, name=f"{label} ({total})", marker=marker_style, **_BASE))
    fig.update_layout(legend=dict(title=dict(text=colour_name), itemsizing="constant", bgcolor="rgba(0,0,0,0)"))


def _add_continuous(fig: go.Figure, points: _Points, colour: pd.Series, colour_name: str, log_colour: bool) -> None:
    """A colour scale with its bar; sources without a (positive, for log) value in grey."""
    values = pd.to_numeric(colour, errors="coerce").to_numpy(np.float64)
    finite = np.isfinite(values) & ((values > 0) if log_colour else True)
    missing = points.drawn(np.flatnonzero(~finite))
    if missing.size:
        marker_style = dict(size=points.size, color=MISSING_COLOUR)
        fig.add_trace(points.scatter(missing, name="no value", showlegend=False, marker=marker_style, **_BASE))
    every = np.flatnonzero(finite)
    rows = points.drawn(every)
    shown = np.log10(values[rows]) if log_colour else values[rows]
    colorbar = dict(title=dict(text=_colour_title(colour_name, log_colour), side="right"), thickness=14)
    if log_colour and every.size:
        colorbar["tickvals"], colorbar["ticktext"] = _log_ticks(float(values[every].min()), float(values[every].max()))
    # A class probability keeps its full 0..1 scale: a model unsure everywhere looks unsure.
    # The scale spans every source, not only those drawn (the same colours at every zoom).
    value_range = dict(cmin=0.0, cmax=1.0) if is_probability_column(colour_name) and not log_colour else {}
    if not value_range and every.size and rows.size < every.size:
        lo, hi = _colour_limits(values[every], log_colour)
        value_range = dict(cmin=lo, cmax=hi)
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


def _colour_limits(values: np.ndarray, log_colour: bool) -> tuple[float, float]:
    shown = np.log10(values) if log_colour else values
    return float(np.min(shown)), float(np.max(shown))


def _rgb_of_points(colour: pd.Series | None, log_colour: bool, n: int) -> np.ndarray:
    """(n, 3) colour of each source as its point would be drawn (0..255)."""
    grey = np.array([150.0, 150.0, 150.0])
    if colour is None:
        return np.tile(np.array([0x56, 0xB4, 0xE9], dtype=np.float64), (n, 1))
    rgb = np.tile(grey, (n, 1))
    if is_categorical(colour):
        values = colour.astype("object").where(colour.notna(), None).to_numpy()
        keys = sorted((v for v in pd.unique(values) if v is not None and v == v), key=lambda v: str(v))
        fixed_colours = fixed_category_colours()
        for i, key in enumerate(keys):
            hex_colour = fixed_colours.get(str(key), CATEGORY_COLOURS[i % len(CATEGORY_COLOURS)])
            rgb[values == key] = _rgb(hex_colour)
        return rgb
    values = pd.to_numeric(colour, errors="coerce").to_numpy(np.float64)
    finite = np.isfinite(values) & ((values > 0) if log_colour else True)
    if finite.any():
        shown = np.log10(values[finite]) if log_colour else values[finite]
        lo, hi = float(shown.min()), float(shown.max())
        t = (shown - lo) / (hi - lo) if hi > lo else np.zeros_like(shown)
        stops = np.array([_rgb(c) for c in getattr(plotly.colors.sequential, CONTINUOUS_SCALE)])
        at = np.linspace(0.0, 1.0, len(stops))
        table = np.stack([np.interp(np.linspace(0, 1, 256), at, stops[:, c]) for c in range(3)], axis=1)
        rgb[finite] = table[np.round(t * 255).astype(np.int64)]  # a 256-step table: fast at 1 M
    return rgb


def _rgb(colour: str) -> np.ndarray:
    """'#RRGGBB' or 'rgb(a)(r,g,b[,a])' -> (3,) floats 0..255."""
    if colour.startswith("#"):
        return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.float64)
    parts = colour[colour.index("(") + 1 : colour.index(")")].split(",")
    return np.array([float(p) for p in parts[:3]], dtype=np.float64)


def density_image(
    x: np.ndarray, y: np.ndarray, rgb: np.ndarray, bins: tuple[int, int] = DENSITY_BINS
) -> tuple[str, tuple[float, float, float, float]]:
    """A PNG (data URI) of the map: each pixel the mean colour of its sources, opacity
    rising with their number (log scale); and its extent (x0, x1, y0, y1)."""
    from PIL import Image

    x0, x1, y0, y1 = float(x.min()), float(x.max()), float(y.min()), float(y.max())
    nx, ny = bins
    ix = np.clip(((x - x0) / max(x1 - x0, 1e-12) * nx).astype(np.int64), 0, nx - 1)
    iy = np.clip(((y1 - y) / max(y1 - y0, 1e-12) * ny).astype(np.int64), 0, ny - 1)  # image rows run down
    cell = iy * nx + ix
    count = np.bincount(cell, minlength=nx * ny).astype(np.float64)
    image = np.zeros((nx * ny, 4), dtype=np.float64)
    for c in range(3):
        image[:, c] = np.bincount(cell, weights=rgb[:, c], minlength=nx * ny) / np.maximum(count, 1.0)
    occupied = count > 0
    image[occupied, 3] = 255.0 * (0.35 + 0.65 * np.log1p(count[occupied]) / np.log1p(count.max()))
    png = io.BytesIO()
    # 256 colours: a fifth of the full-colour PNG's bytes (sent again with every click) and no
    # visible change, since the pixels are one colour scale times one opacity ramp.
    full = Image.fromarray(image.reshape(ny, nx, 4).round().astype(np.uint8), mode="RGBA")
    full.quantize(256, method=Image.Quantize.FASTOCTREE).save(png, format="PNG")
    return "data:image/png;base64," + base64.b64encode(png.getvalue()).decode("ascii"), (x0, x1, y0, y1)


_DENSITY_CACHE: dict[object, tuple[str, tuple[float, float, float, float]]] = {}


def _add_density(fig: go.Figure, points: _Points, colour: pd.Series | None, log_colour: bool, key=None) -> None:
    """Every source as a density image under the points, and two invisible corner points
    so that a double-click (autorange) returns to the whole map, not to the points drawn.
    ``key`` (hashable: the space and its colouring) keeps the image for the next click."""
    image = _DENSITY_CACHE.get(key) if key is not None else None
    if image is None:
        image = density_image(points.x, points.y, _rgb_of_points(colour, log_colour, len(points.x)))
        if key is not None:
            while len(_DENSITY_CACHE) >= 8:  # a few spaces x colourings
                _DENSITY_CACHE.pop(next(iter(_DENSITY_CACHE)))
            _DENSITY_CACHE[key] = image
    source, (x0, x1, y0, y1) = image
    fig.add_layout_image(
        source=source, xref="x", yref="y", x=x0, y=y1, sizex=x1 - x0, sizey=y1 - y0,
        sizing="stretch", layer="below", xanchor="left", yanchor="top",
    )  # fmt: skip


def _add_extent(fig: go.Figure, points: _Points) -> None:
    """Two invisible corner points spanning every source, with the largest marker of the map.
    Plotly pads the axes' autorange by the markers at the edges: without these, a star or a
    ring on a source at the edge (a neighbour can be anywhere) would widen the axes and move
    every point under the mouse between two clicks; and on a density map a double-click
    (autorange) returns to the whole map, not to the points drawn."""
    if not len(points.x):
        return
    x0, x1, y0, y1 = float(points.x.min()), float(points.x.max()), float(points.y.min()), float(points.y.max())
    fig.add_trace(
        go.Scattergl(
            x=[x0, x1], y=[y0, y1], mode="markers", marker=dict(size=points.size + EXTENT_MARKER_PAD, opacity=0),
            hoverinfo="skip", showlegend=False, name="map extent",
        )
    )  # fmt: skip


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
    # the pixel measurements (pretrain/data/measurements.py COLUMNS)
    "integrated_flux_mjy": "integrated flux (mJy)",
    "peak_flux_mjy": "peak flux (mJy/beam)",
    "n_components": "components",
    "fr_ratio": "FR ratio",
    "lobe_flux_ratio": "lobe flux ratio",
    "bending_angle_deg": "bending angle (°)",
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
