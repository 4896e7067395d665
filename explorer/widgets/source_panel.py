"""One source's panel: its model image, its main catalogue facts, and all its columns."""

from __future__ import annotations

import streamlit as st

from explorer.facts import facts_html, field_warning
from explorer.gallery import north_up, rgb_image
from explorer.image_view import raw_cutout_path
from explorer.space_registry import ExplorerSpace, FirstImageSpace
from explorer.widgets.first_images import catalogue_image_controls
from explorer.widgets.image_viewer import viewer_dialog
from explorer.widgets.links import source_links
from explorer.widgets.neighbourhood import neighbourhood_facts
from explorer.widgets.tags import source_tags
from pretrain import config

MAIN_IMAGE_PX = 300  # the panel's (and the look-up page's) images, on screen
COMPACT_IMAGE_PX = 110  # beside the facts, in the map page's right-hand column


def source_panel(
    space: ExplorerSpace, row: int, coloured_by: tuple[str, object] | None = None, compact: bool = False
) -> None:
    """Image and catalogue entry of one source (and the value the map is coloured by).

    ``compact``: a smaller image beside the facts (the map page's right-hand column).
    """
    entry = space.catalogue.iloc[row]
    label = str(entry.get("label", "") or "")
    st.markdown(f"##### {entry['source_id']}" + (f" &nbsp;·&nbsp; **{label}**" if label else ""))
    image_box, facts_box = st.columns([1, 1.7]) if compact else (st.container(), st.container())
    with image_box:
        image = space.image(row)
        if image is None and isinstance(space, FirstImageSpace):
            image = catalogue_image_controls(space, row)
        if image is not None:
            field = f"{config.IMAGE_SIZE_PX} px = {config.IMAGE_FIELD_ARCSEC / 60:.1f}′"
            st.image(
                rgb_image(north_up(image), MAIN_IMAGE_PX, crop_box_px=config.MODEL_INPUT_PX),
                caption=f"{field}; box: the model's {config.MODEL_INPUT_PX} px"
                if compact
                else f"Model image: {field} (the box: the central {config.MODEL_INPUT_PX} px the model sees)",
                width=COMPACT_IMAGE_PX if compact else MAIN_IMAGE_PX,
            )
        if (image is not None or raw_cutout_path(entry) is not None) and st.button(
            "Image viewer",
            key=f"viewer-open:{space.key}:{row}",
            icon=":material/zoom_in:",
            type="tertiary",
            help="The survey cutout on RA/Dec axes: stretch and limits, colour bar in mJy/beam, beam, "
            "scale bar, the model's field and its input as contours; download it as FITS.",
        ):
            viewer_dialog(space, row)
    with facts_box:
        if compact:  # a denser table beside the image
            st.html("<style>.facts{font-size:12.5px;margin:0}.facts td{padding:1px 10px 1px 0}</style>")
        st.html(facts_html(entry, extra=[coloured_by] if coloured_by else (), compact=compact))
        warning = field_warning(entry.get("angular_extent_arcsec"))
        if warning:
            st.warning(warning, icon=":material/crop_free:")
    if not compact:  # (the map page shows these below its gallery, so the neighbours stay in view)
        source_details(space, row)


def source_details(space: ExplorerSpace, row: int) -> None:
    """Below the image and facts: links out, the neighbourhood's figures, tags, every catalogue column."""
    source_links(space.catalogue.iloc[row])
    neighbourhood_facts(space, row)
    source_tags(space, row)
    all_columns(space, row)


def all_columns(space: ExplorerSpace, row: int) -> None:
    """Every catalogue column of one source, folded away."""
    with st.expander("All catalogue columns"):
        st.dataframe(space.catalogue.iloc[row].rename("value").astype(str).to_frame(), width="stretch")
