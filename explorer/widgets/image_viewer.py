"""The image viewer's widget: stretch, percentile limits, field and contours; the figure; FITS download.

The drawing is :mod:`explorer.image_view` (pure, tested); this module only holds the controls.
The settings are kept per page (``<key>:stretch`` ... in the session), so the stretch chosen for
one source stays for the next. Figures are cached by source and settings: going back to a
source, or to a stretch already seen, draws nothing.
"""

from __future__ import annotations

import dataclasses

import streamlit as st

from explorer.image_view import (
    DEFAULT_PERCENTILES,
    FIELDS,
    STRETCHES,
    ViewImage,
    ViewSettings,
    caption,
    extent_warning,
    fits_bytes,
    fits_file_name,
    render_png,
    view_of_entry,
)
from explorer.space_registry import ExplorerSpace, FirstImageSpace
from explorer.widgets.first_images import cached_cutout_path
from pretrain.errors import ExplorerError

FIELD_TITLES = {"cutout": "whole cutout", "model image": "model image (4.5′)", "model field": "model's field (2.1′)"}


@st.cache_data(max_entries=64, show_spinner=False)
def _figure(identity: str, settings: tuple, _view: ViewImage) -> bytes:
    """The PNG of one source's view for one set of settings (``identity`` names the source)."""
    return render_png(_view, ViewSettings(*settings))


def viewer_settings(key: str) -> ViewSettings:
    """The viewer's controls, one above the other (beside the figure); returns what they say."""
    stretch = st.segmented_control(
        "Stretch", STRETCHES, default=ViewSettings.stretch, key=f"{key}:stretch", help="How values map to colour."
    )
    field = st.selectbox("Show", list(FIELDS), format_func=lambda name: FIELD_TITLES[name], key=f"{key}:field")
    lower_box, upper_box = st.columns(2)
    with lower_box:
        lower = st.number_input(
            "Lower percentile",
            0.0,
            99.9,
            DEFAULT_PERCENTILES[0],
            step=0.5,
            key=f"{key}:lower",
            help="The colour scale starts at this percentile of the pixels shown (84: about the sky's "
            "median + 1σ; 50: the median; 0.5 shows the negative noise and sidelobes too).",
        )
    with upper_box:
        upper = st.number_input(
            "Upper percentile",
            0.1,
            100.0,
            DEFAULT_PERCENTILES[1],
            step=0.1,
            format="%.2f",
            key=f"{key}:upper",
            help="Pixels above this percentile are shown at the top colour (100: the peak).",
        )
    contours = st.toggle(
        "Contours of the model input",
        value=ViewSettings.contours,
        key=f"{key}:contours",
        help="The image the model is given (clipped at 3σ, scaled), as contours over the raw cutout.",
    )
    return ViewSettings(stretch or ViewSettings.stretch, float(lower), float(upper), bool(contours), field or FIELDS[0])


def image_viewer(view: ViewImage, key: str, identity: str) -> None:
    """One source's image with the controls beside it, its caption, the extent warning and the FITS download."""
    controls, figure = st.columns([1, 2], gap="small")
    with controls:
        settings = viewer_settings(key)
        try:
            settings = settings.checked()
        except ValueError as exc:
            st.warning(f"{exc} Showing the default limits.")
            settings = dataclasses.replace(
                settings, lower_percentile=DEFAULT_PERCENTILES[0], upper_percentile=DEFAULT_PERCENTILES[1]
            )
        st.download_button(
            "Download the cutout (FITS)",
            data=lambda: fits_bytes(view),  # written only when clicked
            file_name=fits_file_name(view),
            mime="application/fits",
            key=f"{key}:fits:{identity}",
            icon=":material/download:",
            help="The original file when the image came from one (with its header and WCS), else a FITS "
            "file written with the cutout's header.",
        )
    with figure:
        png = _figure(identity, dataclasses.astuple(settings), view)
        st.image(png, width="content")  # its own 600 px (sharp), narrower where the column is
    warning = extent_warning(view)
    if warning:
        st.warning(warning, icon=":material/crop_free:")
    st.caption(caption(view, settings))


def view_of_row(space: ExplorerSpace, row: int) -> ViewImage | None:
    """A source's image for the viewer: its survey cutout when it is on disk, else its model image."""
    entry = space.catalogue.iloc[row]
    path = cached_cutout_path(space, row) if isinstance(space, FirstImageSpace) else None
    return view_of_entry(entry, space.image(row), path)


@st.dialog("Image viewer", width="large")
def viewer_dialog(space: ExplorerSpace, row: int) -> None:
    """The viewer of one source as a dialog over the map page (its controls rerun only the dialog)."""
    try:
        view = view_of_row(space, row)
    except ExplorerError as exc:
        st.error(f"The source's FITS file cannot be read: {exc}")
        return
    if view is None:
        st.info("No image of this source yet: fetch its FIRST image first.")
        return
    image_viewer(view, key="viewer", identity=f"{space.key}:{row}")
