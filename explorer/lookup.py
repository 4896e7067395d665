"""A new image on a space's map: FIRST cutout (or uploaded FITS) -> model input -> embedding -> map.

An uploaded file may be of another survey (VLASS, NVSS, ...): its header or pixel scale says
which (``pretrain/surveys.py``), and that survey's profile sets the clipping threshold and the
beam of the extent estimate; every image is resampled onto the model's (FIRST's) grid.

Every step raises an :class:`~pretrain.errors.ExplorerError` with a message for the user
(broken file, blank image, unknown name, outside the footprint, no network); the page
shows it and carries on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from explorer.similarity import format_similarity
from pretrain import config
from pretrain.batch_lookup import model_input
from pretrain.data.fits_io import Cutout, read_cutout
from pretrain.errors import ExplorerError, FitsReadError
from pretrain.surveys import Survey


@dataclass
class LookupResult:
    """A looked-up or uploaded image, ready to show and (when the space allows) placed on the map."""

    title: str  # what was asked for: the typed text, or the file name
    cutout: Cutout
    model_image: np.ndarray  # uint8 150 x 150, exactly what the encoder sees (central 70 px)
    extent_arcsec: float  # estimated from the pixels of the raw cutout
    embedding: np.ndarray | None = None  # (512,) raw representation
    map_xy: np.ndarray | None = None  # (2,) on the space's saved map
    space_key: str = ""  # the space the embedding / position belong to
    notes: list[str] = field(default_factory=list)
    survey: str = "FIRST"  # the survey whose profile prepared the image (pretrain/surveys.py)
    measurements: dict[str, float] | None = None  # its pixel measurements, once asked for (measurements_of)

    @property
    def ra(self) -> float:
        return float(self.cutout.centre.ra.deg)

    @property
    def dec(self) -> float:
        return float(self.cutout.centre.dec.deg)


class LookupFailure(Exception):
    """Why a look-up failed (the page keeps it in the session to show it); ``title``: what was asked for."""

    def __init__(self, title: str, message: str):
        super().__init__(message)
        self.title = title


def fetch_cutout(text: str, client) -> Cutout:
    """Typed text -> FIRST cutout: coordinates if they parse as such, else an object name."""
    from pretrain.data.positions import parse_position

    text = (text or "").strip()
    if not text:
        raise ExplorerError(
            "Type a position (e.g. 139.148 +4.681, or 09h16m35.5s +04d40m52s) or an object name (e.g. 3C 236)."
        )
    position = parse_position(text)  # PositionError (an ExplorerError) if out of range
    if position is not None:
        return client.fetch(position)
    return client.fetch(name=text)


def read_uploaded_fits(data: bytes, file_name: str) -> Cutout:
    """An uploaded file's bytes -> cutout (FitsReadError says what is wrong with it)."""
    if not data:
        raise FitsReadError(f"{file_name}: the file is empty (0 bytes).")
    return read_cutout(bytes(data), source=file_name)


def prepare(cutout: Cutout, title: str, survey: Survey | str | None = None) -> LookupResult:
    """Preprocess exactly as the training images were; estimate the angular extent.

    ``survey``: the cutout's survey (a key or profile of ``pretrain.surveys``); ``None``: its
    header or pixel scale says, else FIRST.
    """
    profile, image, extent = model_input(cutout, title, survey)  # BlankImageError if empty or blank
    result = LookupResult(title=title, cutout=cutout, model_image=image, extent_arcsec=extent, survey=profile.name)
    if abs(cutout.pixel_scale_arcsec - config.MODEL_PIXEL_SCALE_ARCSEC) > 0.05:
        result.notes.append(
            f"The image has {cutout.pixel_scale_arcsec:.2f}″ pixels; it was resampled to "
            f"FIRST's {config.MODEL_PIXEL_SCALE_ARCSEC}″ before the model saw it."
        )
    field_arcsec = min(cutout.shape) * cutout.pixel_scale_arcsec
    if field_arcsec < config.IMAGE_FIELD_ARCSEC * 0.99:
        result.notes.append(
            f"The image covers {field_arcsec:.0f}″, less than the model's "
            f"{config.IMAGE_FIELD_ARCSEC:.0f}″ field; the rest was padded with zeros."
        )
    return result


def place(result: LookupResult, space, encoder) -> LookupResult:
    """Embed the model image with the space's encoder and put it on the space's saved map."""
    from pretrain.space import place_image

    with space.projector_lock:  # waits for a background warm-up instead of compiling twice
        embedding, xy = place_image(space.space, encoder, result.model_image, device="cpu")
    result.embedding = np.asarray(embedding, dtype=np.float32)
    result.map_xy = np.asarray(xy, dtype=np.float64)
    result.space_key = space.key
    return result


def measurements_of(result: LookupResult) -> dict[str, float]:
    """The image's pixel measurements (extent, FR ratio, ...), measured once from its cutout, for
    neighbours by representation + measurements; {} (the space's typical values) if unmeasurable."""
    if result.measurements is None:
        from pretrain.measured_neighbours import measured_or_typical

        result.measurements = measured_or_typical(result.cutout, result.survey)
    return result.measurements


# --- a list of positions or names (the page's "A list" tab) ------------------------------------
@dataclass
class ListLookup:
    """A looked-up list on one space (kept in the session): its rows and the results table."""

    source: str  # the file name, or "pasted list"
    space_key: str
    rows: list  # pretrain.batch_lookup.ListRow, in list order
    frame: pd.DataFrame  # pretrain.batch_lookup.results_frame
    k: int
    sky_radius_arcsec: float
    space_version: dict = field(default_factory=dict)  # pretrain.batch_lookup.run_key: rebuilt space, stale list

    def is_for(self, space) -> bool:
        """Was this list placed on ``space`` as it is now (not on another space, or before it was rebuilt)?"""
        from pretrain.batch_lookup import run_key

        return self.space_key == space.key and self.space_version == run_key(space.space)

    @property
    def placed(self) -> list:
        return [r for r in self.rows if r.map_xy is not None]


def look_up_list(
    rows: list,
    space,
    encoder,
    client_factory: Callable[[], object],
    k: int,
    sky_radius_arcsec: float,
    source: str,
    fetched: Callable[[int, int, object], None] | None = None,
    embedded: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> ListLookup:
    """Fetch, prepare, embed and place every row on an embedding space, with each one's neighbours.

    ``space``: an ``explorer.space_registry.EmbeddingSpace`` (its index and sky-duplicate rule
    give the neighbours, as for a single look-up); ``fetched`` / ``embedded``: progress
    callbacks, called in this thread.
    """
    from pretrain import batch_lookup as batch

    measured = getattr(space, "uses_measurements", False)  # each row measured from its own cutout
    batch.fetch_rows(rows, client_factory, workers=workers or batch.WORKERS, progress=fetched, measure=measured)  # type: ignore[arg-type]
    batch.place_rows(rows, space.space, encoder, device="cpu", progress=embedded, lock=space.projector_lock)

    def finder(measurements=None):
        def neighbours(vector: np.ndarray, count: int, where):
            found = space.neighbours_of_vector(vector, count, sky_radius_arcsec, where, measurements)
            return found.rows, found.scores

        return neighbours

    if measured:
        for row in rows:
            batch.add_neighbours([row], finder(row.measurements), k, space.catalogue)
    else:
        batch.add_neighbours(rows, finder(), k, space.catalogue)
    frame = batch.results_frame(rows, space.catalogue, k)
    return ListLookup(source, space.key, rows, frame, k, sky_radius_arcsec, batch.run_key(space.space))


LIST_LAYER_COLOUR = "#FF9F0A"  # the list's points: orange is in no colour scale of the map, nor its rings and ×


def list_layer(placed: list):
    """The placed rows as one map trace (a plotly Scattergl of diamonds, hover: input and best match)."""
    import plotly.graph_objects as go

    hover = [
        f"<b>{row.text}</b><br>row {row.row}"
        + (f" · most similar: {format_similarity(row.neighbour_scores[0])}" if len(row.neighbour_scores) else "")
        for row in placed
    ]
    return go.Scattergl(
        x=[float(r.map_xy[0]) for r in placed],
        y=[float(r.map_xy[1]) for r in placed],
        name=f"looked-up list ({len(placed)})",
        mode="markers",
        showlegend=False,  # the caption under the map says what the diamonds are (a legend would cover the colour bar)
        hovertext=hover,
        hoverinfo="text",
        marker=dict(symbol="diamond", size=11, color=LIST_LAYER_COLOUR, line=dict(color="black", width=1.5)),
    )
