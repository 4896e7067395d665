"""Streamlit building blocks shared by the pages: sidebar, space loading, map, panels, gallery.

This is the one module of ``explorer`` that imports Streamlit; the science it shows lives
in the other modules (similarity, sky, figures, gallery, lookup, space_registry), which
are tested without a browser. Heavy objects (spaces, the encoder) are cached with
``st.cache_resource``; a click on the map reruns only the map fragment (``st.fragment``).

Session state used here: ``space_key`` (the sidebar's space), ``n_neighbours``,
``sky_radius_arcsec``, ``map_state`` ({space key: {"query": row, "selected": [rows]}})
and ``lookup`` (the last look-up result or error).
"""

from __future__ import annotations

import functools
import os
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from explorer import default_space
from explorer.colour_columns import aligned, extra_colour_columns
from explorer.figures import colour_columns, is_categorical, map_figure, pretty_name, rows_from_selection
from explorer.gallery import Card, display_stretch, gallery_html, rgb_image
from explorer.sky import sexagesimal
from explorer.space_registry import (
    CatalogueSpace,
    EmbeddingSpace,
    ExplorerSpace,
    SpaceEntry,
    discover_spaces,
    find_weights,
    open_space,
)
from pretrain import config
from pretrain.errors import ExplorerError

SPACE_KEY = "space_key"
K_KEY = "n_neighbours"
RADIUS_KEY = "sky_radius_arcsec"
MAP_STATE = "map_state"
MAIN_IMAGE_PX = 300
FACT_COLUMNS = (  # shown first in a source's panel, when the space has them
    ("label", "label"),
    ("confident", "confident"),
    ("subtype", "subtype"),
    ("angular_extent_arcsec", "angular extent (″)"),
    ("angular_extent_estimated_arcsec", "estimated extent (″)"),
    ("redshift", "redshift"),
    ("ra", "RA (°)"),
    ("dec", "Dec (°)"),
    ("survey", "survey"),
)
CSV_COLUMNS = ("source_id", "ra", "dec", "angular_extent_arcsec", "label", "confident", "subtype", "redshift")


# --- spaces and the sidebar -------------------------------------------------------------------

APP_MARK = "_explorer_app_frame"


def page_config() -> None:
    st.set_page_config(page_title="Radio galaxy explorer", page_icon=":material/satellite_alt:", layout="wide")


def mark_app_run() -> None:
    """Called by app.py on every run, before the page: the page knows the app's frame is there."""
    st.session_state[APP_MARK] = True


def require_app() -> None:
    """Give a page the app's frame (page config, sidebar) when app.py did not run around it.

    In the app, app.py always runs first (its ``st.navigation`` runs the page). One case
    escapes it: when a deep link (e.g. ``/Lookup``, a tab reconnecting after a restart) is
    the first request of a freshly started server, Streamlit still treats ``pages/`` as a
    legacy multipage folder (until some session has called ``st.navigation``) and runs the
    page file alone, with the folder's files as the navigation. The page then leaves that
    mode, as ``st.navigation`` itself does, and reruns: app.py takes over with the same
    page. A page script run on its own elsewhere (an AppTest of the page file) draws the
    frame itself (AppTest starts every run in the legacy mode, so it is not handed over
    there: a rerun would drop the widget event that started the run).
    """
    if st.session_state.pop(APP_MARK, False):
        return
    from streamlit.runtime.pages_manager import PagesManager

    if getattr(PagesManager, "uses_pages_directory", False) and _real_server():
        PagesManager.uses_pages_directory = False
        st.rerun()
    page_config()
    sidebar()


def _real_server() -> bool:
    """True under ``streamlit run``; False under AppTest, whose runtime is a mock."""
    from streamlit import runtime

    return runtime.exists() and type(runtime.get_instance()) is runtime.Runtime


@st.cache_data(ttl=15, show_spinner=False)
def _entries(cache_root: str, spaces_env: str) -> list[SpaceEntry]:
    return discover_spaces()


def space_entries() -> list[SpaceEntry]:
    return _entries(str(config.cache_dir()), os.environ.get("EXPLORER_SPACES", ""))


def sidebar() -> None:
    """The app-wide sidebar: space selector and neighbour settings (both pages use them)."""
    entries = space_entries()
    titles = {e.key: e.title for e in entries}
    if st.session_state.get(SPACE_KEY) not in titles:
        st.session_state[SPACE_KEY] = entries[0].key
    st.session_state.setdefault(K_KEY, config.APP_NEIGHBOURS_K)
    st.session_state.setdefault(RADIUS_KEY, int(config.APP_SKY_DUPLICATE_RADIUS_ARCSEC))
    with st.sidebar:
        st.markdown("### :material/satellite_alt: Radio galaxy explorer")
        st.selectbox(
            "Space",
            list(titles),
            format_func=titles.get,
            key=SPACE_KEY,
            on_change=_space_changed,
            help="A space is a data set's map and representations. Prepared spaces in the "
            "cache, folders in EXPLORER_SPACES, and the published RGZ DR1 map.",
        )
        entry = _entry(st.session_state[SPACE_KEY])
        if entry.kind == "catalogue":
            st.caption(
                "Catalogue only: the published map's coordinates, no representations. "
                "Neighbours are the nearest points **on the map**; images come from FIRST."
            )
        st.markdown("**Neighbours**")
        st.slider("How many", 4, 48, key=K_KEY, step=1)
        st.slider(
            "Drop sky duplicates within (″)",
            0,
            120,
            key=RADIUS_KEY,
            step=5,
            help="A neighbour closer than this on the sky to the query or to an earlier neighbour "
            "is the same object catalogued twice: it is dropped. 0 keeps everything.",
        )


def _space_changed() -> None:
    st.query_params.pop("source", None)  # a source id of the previous space means nothing here


def _entry(key: str) -> SpaceEntry:
    for entry in space_entries():
        if entry.key == key:
            return entry
    return space_entries()[0]


@st.cache_resource(show_spinner="Loading the space…", max_entries=6)
def _open(key: str, title: str, kind: str, path: str, stamp) -> ExplorerSpace:
    space = open_space(SpaceEntry(key, title, kind, Path(path)))
    if isinstance(space, EmbeddingSpace):  # compile UMAP's transform before the first look-up
        threading.Thread(target=_quietly(space.warm_up), name=f"warm-up {title}", daemon=True).start()
    return space


def _quietly(function):
    def run():
        try:
            function()
        except Exception:  # a broken projector is reported when a look-up needs it
            pass

    return run


def _stamp(path: Path):
    target = path / "manifest.json" if path.is_dir() else path
    try:
        return target.stat().st_mtime_ns
    except OSError:
        return None


def current_space() -> ExplorerSpace:
    """The space chosen in the sidebar, loaded (and, for MiraBest, prepared first if needed).

    Stops the page with a clear message when the space cannot be opened.
    """
    entry = _entry(st.session_state.get(SPACE_KEY, "") or space_entries()[0].key)
    if entry.kind == "default":
        _ensure_default_space()
    try:
        return _open(entry.key, entry.title, entry.kind, str(entry.path), _stamp(entry.path))
    except ExplorerError as exc:
        st.error(f"The space **{entry.title}** cannot be opened: {exc}")
        st.stop()


@st.cache_resource(show_spinner=False, max_entries=8)
def _default_state(fingerprint: tuple) -> default_space.DefaultSpaceState:
    return default_space.default_space_state()


def _ensure_default_space() -> None:
    """Prepare the MiraBest space with visible progress when it is missing or stale."""
    state = _default_state(default_space.fingerprint())
    if state.ready:
        return
    st.header("Preparing the MiraBest space")
    try:
        default_space.check_weights()
    except ExplorerError as exc:
        st.error(str(exc))
        st.info("Meanwhile you can browse the published RGZ DR1 map: choose it under **Space** in the sidebar.")
        st.stop()
    st.write(
        f"The default space ({state.reason}) is made once and kept in `{state.space_path.parent}`: "
        "the MiraBest images are preprocessed into a bundle, embedded with the backbone "
        f"(`{state.weights_path.name}`) and laid out on a 2-D map. Later starts reuse it."
    )
    # The work runs in a background thread of the server (explorer.default_space): leaving
    # the page or opening a second tab meanwhile does not start it over; this only shows it.
    job = default_space.start_preparation()
    with st.status("Preparing the MiraBest space…", expanded=True) as status:
        bars = {
            stage: st.progress(0.0, text=title)
            for stage, title in (
                ("data", "MiraBest files"),
                ("bundle", "Preprocessing → bundle"),
                ("embeddings", "Embedding with the backbone"),
                ("map", "Map (PCA → UMAP)"),
            )
        }
        shown: dict = {}
        while True:
            finished = job.wait(0.5)
            for stage, (fraction, message) in job.progress().items():
                if message and shown.get(stage) != (fraction, message):
                    bars[stage].progress(fraction, text=message)
                    shown[stage] = (fraction, message)
            if finished:
                break
            # the time so far, also while a stage reports nothing (the map fit); and each
            # update lets Streamlit end this run at once when the user goes elsewhere
            status.update(label=f"Preparing the MiraBest space… {time.monotonic() - job.started:.0f} s", expanded=True)
        if job.error is not None:
            status.update(label="Preparing the MiraBest space failed", state="error")
            if not isinstance(job.error, ExplorerError):
                raise job.error  # a bug: show its traceback
            st.error(str(job.error))
            st.stop()
        status.update(label="The MiraBest space is ready", state="complete")
    _default_state.clear()
    _entries.clear()
    st.rerun()


@st.cache_resource(show_spinner="Loading the encoder…", max_entries=2)
def _encoder(path: str, mtime_ns: int):
    from pretrain.models.backbone import load_encoder

    return load_encoder(path, device="cpu")


def encoder_for(space: EmbeddingSpace):
    """The encoder the space was embedded with (ExplorerError if its weights are not found)."""
    path = find_weights(space)
    return _encoder(str(path), path.stat().st_mtime_ns)


def neighbour_settings() -> tuple[int, float]:
    return int(st.session_state.get(K_KEY, config.APP_NEIGHBOURS_K)), float(
        st.session_state.get(RADIUS_KEY, config.APP_SKY_DUPLICATE_RADIUS_ARCSEC)
    )


def space_header(space: ExplorerSpace, page: str) -> None:
    kind = (
        "cosine similarity of 512-d representations"
        if space.has_embeddings
        else "catalogue only: neighbours on the 2-D map"
    )
    if space.has_embeddings and space.space.symmetry == "d4":
        kind += " (each averaged over the image's turns by 90° and mirror images)"
    st.markdown(f"#### {page} · {space.title}")
    st.caption(f"{len(space):,} sources · {kind}")


# --- colour -------------------------------------------------------------------------------------


@st.cache_data(ttl=10, show_spinner=False)
def _extra_columns(space_key: str, _space: ExplorerSpace) -> dict[str, pd.Series]:
    return extra_colour_columns(_space)


def colour_controls(space: ExplorerSpace) -> tuple[str, pd.Series | None, bool]:
    """Colour-by selector and log toggle; returns (name, values aligned with rows, log)."""
    extra = _extra_columns(space.key, space)
    options = colour_columns(space.catalogue, extra)
    key = f"colour:{space.key}"
    if st.session_state.get(key) is not None and st.session_state[key] not in options:
        del st.session_state[key]  # e.g. a run's prediction column that is gone
    left, right, _ = st.columns([2, 1, 3], vertical_alignment="bottom")
    with left:
        name = st.selectbox("Colour by", options, key=key, format_func=pretty_name)
    if name is None:
        return "", None, False
    values = space.catalogue[name] if name in space.catalogue else aligned(extra[name], space.catalogue["source_id"])
    continuous = not is_categorical(values)
    positive = continuous and bool((pd.to_numeric(values, errors="coerce") > 0).any())
    with right:
        log = st.toggle(
            "log scale",
            value=continuous and name.startswith("angular_extent"),
            key=f"log:{space.key}:{name}",
            disabled=not positive,
            help="Colour by log10 of the value (only for positive numbers).",
        )
    return name, values, bool(log and positive)


# --- the map page ----------------------------------------------------------------------------------


def _map_state(space: ExplorerSpace) -> dict:
    states = st.session_state.setdefault(MAP_STATE, {})
    state = states.setdefault(space.key, {"query": None, "selected": []})
    wanted = st.query_params.get("source")
    if wanted and state.get("from_url") != wanted:  # a shared link: ?source=<source_id>
        state["from_url"] = wanted
        try:
            state["query"] = space.row_of(wanted)
        except KeyError:
            st.toast(f"{wanted} is not in this space.")
    return state


def _on_map_select(space_key: str, chart_key: str) -> None:
    """Store what the user clicked or boxed (called before the fragment reruns)."""
    event = st.session_state.get(chart_key) or {}
    selection = event.get("selection", {}) if hasattr(event, "get") else {}
    rows = rows_from_selection(selection.get("points", []))
    state = st.session_state.setdefault(MAP_STATE, {}).setdefault(space_key, {"query": None, "selected": []})
    if selection.get("box") or selection.get("lasso") or len(rows) > 1:
        state["selected"] = rows
    elif len(rows) == 1:
        state["query"] = rows[0]
        state["from_url"] = st.query_params.get("source")


def map_page(space: ExplorerSpace) -> None:
    space_header(space, "Map")
    name, values, log = colour_controls(space)
    k, radius = neighbour_settings()
    _map_fragment(space, name, values, log, k, radius)


@st.fragment
def _map_fragment(
    space: ExplorerSpace, colour_name: str, colour: pd.Series | None, log_colour: bool, k: int, radius: float
) -> None:
    state = _map_state(space)
    query = state.get("query")
    if query is not None and not (0 <= query < len(space)):
        query = state["query"] = None
    neighbours = space.neighbours_of_row(query, k, radius) if query is not None else None
    left, right = st.columns([3, 2], gap="medium")
    below = st.container()
    # The panel and the gallery are sent before the map: the browser shows them while it
    # redraws the (much heavier) WebGL map with the new highlights.
    with right:
        if query is None:
            st.info(
                "**Click a source on the map** to see its image, its catalogue entry and the sources "
                "most similar to it.",
                icon=":material/touch_app:",
            )
        else:
            source_panel(space, query, coloured_by=_colour_fact(colour_name, colour, query))
            source_id = str(space.catalogue["source_id"].iloc[query])
            # The link follows the source shown; remembered as seen, so that only a link
            # changed from outside (a shared one) picks the source on a later run. (A click
            # on the map used to leave the old link here, and the next "continue from a
            # neighbour" was then undone by it.)
            state["from_url"] = source_id
            if st.query_params.get("source") != source_id:
                st.query_params["source"] = source_id
    with below:
        if state.get("selected"):
            selection_section(space, state)
        if neighbours is not None:
            neighbours_section(space, neighbours, query_row=query, key=f"nb:{space.key}", in_fragment=True)
    with left:
        chart_key = f"map:{space.key}"
        figure = map_figure(
            space.catalogue,
            colour,
            colour_name,
            log_colour,
            neighbours=None if neighbours is None else neighbours.rows,
            query=query,
            selected=state.get("selected") or None,
            revision=space.key,
            height=620,
        )
        st.plotly_chart(
            figure,
            key=chart_key,
            on_select=functools.partial(_on_map_select, space.key, chart_key),
            selection_mode=("points", "box", "lasso"),
            width="stretch",
            config={"scrollZoom": True, "displaylogo": False},
        )
        st.caption(
            "Click a source to see it and its nearest neighbours · box / lasso (toolbar) selects a "
            "group · scroll to zoom, double-click to reset. The axes have no physical meaning."
        )


def _colour_fact(colour_name: str, colour: pd.Series | None, row: int) -> tuple[str, object] | None:
    """(title, value) of the map's colour for one source, when it is not a catalogue fact
    already shown (a fine-tuned run's P(FRII) or its misclassified mark, say)."""
    if colour is None or row >= len(colour) or colour_name in dict(FACT_COLUMNS):
        return None
    return pretty_name(colour_name), colour.iloc[row]


def source_panel(space: ExplorerSpace, row: int, coloured_by: tuple[str, object] | None = None) -> None:
    """Image and catalogue entry of one source (and the value the map is coloured by)."""
    entry = space.catalogue.iloc[row]
    label = str(entry.get("label", "") or "")
    st.markdown(f"##### {entry['source_id']}" + (f" &nbsp;·&nbsp; **{label}**" if label else ""))
    image = space.image(row)
    if image is None and isinstance(space, CatalogueSpace):
        image = _catalogue_image_controls(space, row)
    if image is not None:
        st.image(
            rgb_image(image, MAIN_IMAGE_PX, crop_box_px=config.MODEL_INPUT_PX),
            caption=f"Model image: {config.IMAGE_SIZE_PX} px = {config.IMAGE_FIELD_ARCSEC / 60:.1f}′ "
            f"(the box: the central {config.MODEL_INPUT_PX} px the model sees)",
            width=MAIN_IMAGE_PX,
        )
    st.html(_facts_html(entry, extra=[coloured_by] if coloured_by else ()))
    with st.expander("All catalogue columns"):
        st.dataframe(entry.rename("value").astype(str).to_frame(), width="stretch")


FACTS_CSS = """<style>
.facts{border-collapse:collapse;font-size:14px;margin:2px 0 6px 0}
.facts td{padding:3px 14px 3px 0;border-bottom:1px solid rgba(127,127,127,.2)}
.facts td:first-child{opacity:.7}
.facts td:last-child{font-variant-numeric:tabular-nums}
</style>"""


def _is_missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and not np.isfinite(value))


def _facts_html(entry: pd.Series, extra=()) -> str:
    """The main catalogue facts of a source as a compact two-column table; ``extra``:
    more (title, value) rows first (the map's colour, when it is not a catalogue column)."""
    import html

    rows = []
    for title, value in extra:
        if _is_missing(value):
            continue
        shown = f"{value:.3f}" if isinstance(value, (float, np.floating)) else str(value)
        rows.append(f"<tr><td>{html.escape(str(title))}</td><td><b>{html.escape(shown)}</b></td></tr>")
    for column, title in FACT_COLUMNS:
        if column not in entry.index:
            continue
        value = entry[column]
        if _is_missing(value):
            continue
        if isinstance(value, (float, np.floating)):
            value = f"{value:.5f}" if column in ("ra", "dec") else f"{value:.4g}"
        if str(value) == "":
            continue
        rows.append(f"<tr><td>{html.escape(title)}</td><td>{html.escape(str(value))}</td></tr>")
        if column == "dec" and "ra" in entry.index:
            position = sexagesimal(entry["ra"], entry["dec"])
            rows.append(f"<tr><td>J2000 (h:m:s, d:m:s)</td><td>{html.escape(position)}</td></tr>")
    return FACTS_CSS + '<table class="facts">' + "".join(rows) + "</table>" if rows else ""


def _catalogue_image_controls(space: CatalogueSpace, row: int) -> np.ndarray | None:
    """For a catalogue-only space: a button that fetches the FIRST image (cached afterwards)."""
    if st.button("Fetch its FIRST image", key=f"fetch1:{space.key}:{row}", icon=":material/download:"):
        try:
            with st.spinner("Fetching the FIRST cutout…"):
                image = space.fetch_image(row, _interactive_client())
            if image is None:
                st.warning("The FIRST cutout holds no significant emission (blank image).")
            return image
        except ExplorerError as exc:
            st.error(str(exc))
    else:
        st.caption(
            "This space has no images of its own; cutouts come from FIRST (SkyView) on request and are cached on disk."
        )
    return None


def _interactive_client():
    """A cutout client with short time-outs: a person is waiting."""
    from pretrain.data.first_client import FirstCutoutClient

    return FirstCutoutClient(
        base_url=os.environ.get("EXPLORER_SKYVIEW_URL") or None,
        timeout_s=config.APP_CUTOUT_TIMEOUT_S,
        retries=1,
        total_timeout_s=2 * config.APP_CUTOUT_TIMEOUT_S,
    )


def neighbour_frame(space: ExplorerSpace, neighbours, query_id: str = "") -> pd.DataFrame:
    """The neighbour list as a table (what the CSV download holds)."""
    columns = [c for c in CSV_COLUMNS if c in space.catalogue.columns]
    frame = space.catalogue.iloc[neighbours.rows][columns].reset_index(drop=True)
    score = "cosine_similarity" if space.has_embeddings else "map_distance"
    frame.insert(0, score, np.round(neighbours.scores.astype(np.float64), 5))
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    if query_id:
        frame.insert(0, "query", query_id)
    return frame


def neighbours_section(
    space: ExplorerSpace,
    neighbours,
    query_row: int | None = None,
    query_id: str | None = None,
    key: str = "nb",
    in_fragment: bool = False,
) -> None:
    """Gallery of the neighbours, the duplicate note, a CSV download and 'continue from'.

    ``in_fragment``: drawn inside an ``st.fragment`` (the map), so fetching the gallery's
    FIRST images reruns only the fragment; elsewhere (the look-up page) the page reruns.
    """
    query_id = query_id or (str(space.catalogue["source_id"].iloc[query_row]) if query_row is not None else "")
    how = (
        "by cosine similarity of the 512-d representations"
        if space.has_embeddings
        else "by distance **on the 2-D map** (this space has no representations)"
    )
    st.markdown(f"##### {len(neighbours.rows)} nearest neighbours {how}")
    _, radius = neighbour_settings()
    if len(neighbours.dropped):
        ids = ", ".join(space.catalogue["source_id"].iloc[neighbours.dropped].astype(str).tolist()[:6])
        st.caption(
            f"{len(neighbours.dropped)} sky duplicate(s) within {radius:g}″ of an earlier result dropped: {ids}"
            + ("…" if len(neighbours.dropped) > 6 else "")
        )
    cards = []
    for rank, (row, score) in enumerate(zip(neighbours.rows, neighbours.scores), start=1):
        entry = space.catalogue.iloc[row]
        image = space.image(int(row))
        note = ""
        if image is None:
            if isinstance(space, CatalogueSpace):
                note = "blank FIRST cutout" if space.is_blank(int(row)) else "FIRST image not fetched yet"
            else:
                note = "no image"
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
                note=note,
            )
        )
    st.html(gallery_html(cards, neighbours.score_name, query_id=query_id))

    frame = neighbour_frame(space, neighbours, query_id)
    cols = st.columns([1, 1, 2], vertical_alignment="center")
    with cols[0]:
        st.download_button(
            "Download the list (CSV)",
            frame.to_csv(index=False).encode(),
            file_name=f"neighbours_{query_id or 'query'}.csv",
            mime="text/csv",
            key=f"{key}:csv",
            icon=":material/download:",
        )
    with cols[1]:
        missing = [c.rank - 1 for c in cards if c.image is None and c.note.startswith("FIRST image not")]
        if (
            isinstance(space, CatalogueSpace)
            and missing
            and st.button(f"Fetch {len(missing)} FIRST images", key=f"{key}:fetch", icon=":material/download:")
        ):
            st.session_state[f"{key}:fetch-notes"] = _fetch_gallery_images(
                space, [int(neighbours.rows[i]) for i in missing]
            )
            st.rerun(scope="fragment" if in_fragment else "app")
    if query_row is not None:
        with cols[2]:
            options = [None] + [int(r) for r in neighbours.rows]
            st.selectbox(
                "Continue from a neighbour",
                options,
                key=f"{key}:continue:{query_row}",
                format_func=lambda r: (
                    "—" if r is None else f"#{options.index(r)} {space.catalogue['source_id'].iloc[r]}"
                ),
                on_change=_continue_from,
                args=(space.key, f"{key}:continue:{query_row}"),
            )
    for note in st.session_state.pop(f"{key}:fetch-notes", None) or []:  # full width, below the buttons
        st.warning(note)


def _continue_from(space_key: str, widget_key: str) -> None:
    row = st.session_state.get(widget_key)
    if row is not None:
        st.session_state.setdefault(MAP_STATE, {}).setdefault(space_key, {"query": None, "selected": []})["query"] = row


def _fetch_gallery_images(space: CatalogueSpace, rows: list[int]) -> list[str]:
    """Fetch the FIRST images of ``rows`` with a progress bar; returns what to tell the user.

    A source whose own cutout is unusable (blank, outside the footprint, a bad answer) is
    noted and the others are still fetched; a network failure stops the batch (every
    further request would fail the same way).
    """
    from pretrain.errors import NoNetworkError

    client = _interactive_client()
    bar = st.progress(0.0, text="Fetching FIRST cutouts…")
    failed: list[tuple[int, ExplorerError]] = []
    notes: list[str] = []
    for i, row in enumerate(rows, start=1):
        try:
            space.fetch_image(row, client)
        except NoNetworkError as exc:
            notes.append(f"Stopped after {i - 1} of {len(rows)} images: {exc}")
            break
        except ExplorerError as exc:
            failed.append((row, exc))
        bar.progress(i / len(rows), text=f"Fetched {i}/{len(rows)} FIRST cutouts")
    bar.empty()
    if failed:
        ids = space.catalogue["source_id"].iloc[[row for row, _ in failed]].astype(str).tolist()
        first_id, first_error = ids[0], failed[0][1]
        more = f" and {len(ids) - 8} more" if len(ids) > 8 else ""
        others = f" Also without an image: {', '.join(ids[1:8])}{more}." if len(ids) > 1 else ""
        notes.insert(
            0, f"{len(failed)} of {len(rows)} FIRST cutouts could not be used. {first_id}: {first_error}" + others
        )
    return notes


def selection_display(frame: pd.DataFrame) -> pd.DataFrame:
    """The selection as people read it: named columns with units, none left empty
    (the CSV keeps the catalogue's own column names)."""
    filled = [
        c for c in frame.columns if not frame[c].isna().all() and not frame[c].astype(str).str.strip().eq("").all()
    ]
    return frame[filled].rename(columns=pretty_name)


def selection_section(space: ExplorerSpace, state: dict) -> None:
    """Table and CSV of a box / lasso selection."""
    rows = state["selected"]
    columns = [c for c in space.catalogue.columns if c not in ("umap_x", "umap_y", "file", "input")]
    frame = space.catalogue.iloc[rows][columns].reset_index(drop=True)
    st.markdown(f"##### {len(rows)} sources selected")
    if "label" in frame and frame["label"].astype(str).str.len().gt(0).any():
        counts = frame["label"].replace("", "(none)").value_counts()
        st.caption(" · ".join(f"{label}: {count}" for label, count in counts.items()))
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
        if st.button("Clear the selection", key=f"sel:{space.key}:clear"):
            state["selected"] = []
            st.rerun(scope="fragment")


# --- the look-up page ------------------------------------------------------------------------------

LOOKUP_KEY = "lookup"


def lookup_page(space: ExplorerSpace) -> None:
    from explorer import lookup

    space_header(space, "Look-up")
    st.caption(
        "A position or a name → the FIRST cutout (NASA SkyView, cached on disk) → preprocessed exactly as "
        "the training images → embedded → placed on this space's map, with its nearest neighbours."
    )
    with st.form("lookup-form", border=False):
        left, right = st.columns([4, 1], vertical_alignment="bottom")
        with left:
            text = st.text_input(
                "Position (RA Dec, degrees or sexagesimal) or object name",
                placeholder="e.g. 139.148 +4.681 · 09h16m35.5s +04d40m52s · 3C 236",
                key="lookup-text",
            )
        with right:
            submitted = st.form_submit_button("Look up", type="primary", icon=":material/search:", width="stretch")
    uploaded = st.file_uploader(
        "…or upload a FITS image (a radio continuum cutout with a sky WCS)",
        type=["fits", "fit", "fts", "fz"],
        key="lookup-upload",
    )
    if submitted:
        _run_lookup(
            space,
            lambda: lookup.fetch_cutout(text, _lookup_client()),
            text.strip() or "(empty)",
            spinner=f"Fetching the FIRST cutout for {text.strip()}…",
        )
    elif uploaded is not None and st.session_state.get("lookup-upload-id") != uploaded.file_id:
        st.session_state["lookup-upload-id"] = uploaded.file_id
        _run_lookup(
            space,
            lambda: lookup.read_uploaded_fits(uploaded.getvalue(), uploaded.name),
            uploaded.name,
            spinner=f"Reading {uploaded.name}…",
        )

    outcome = st.session_state.get(LOOKUP_KEY)
    if outcome is None:
        return
    if isinstance(outcome, _LookupFailure):
        message = str(outcome)
        shown = message if message.startswith(outcome.title) else f"**{outcome.title}**: {message}"
        st.error(shown, icon="⚠️")
        return
    if outcome.space_key != space.key and space.has_embeddings:
        _place(space, outcome)
    _show_lookup(space, outcome)


class _LookupFailure(Exception):
    def __init__(self, title: str, message: str):
        super().__init__(message)
        self.title = title


def _lookup_client():
    from pretrain.data.first_client import FirstCutoutClient

    return FirstCutoutClient(base_url=os.environ.get("EXPLORER_SKYVIEW_URL") or None)


def _run_lookup(space: ExplorerSpace, get_cutout, title: str, spinner: str) -> None:
    from explorer import lookup

    try:
        with st.spinner(spinner):
            cutout = get_cutout()
            result = lookup.prepare(cutout, title)
        if space.has_embeddings:
            _place(space, result)
        st.session_state[LOOKUP_KEY] = result
    except ExplorerError as exc:
        st.session_state[LOOKUP_KEY] = _LookupFailure(title, str(exc))
    except Exception as exc:  # a bug, not bad input: still say what happened and keep running
        st.session_state[LOOKUP_KEY] = _LookupFailure(title, f"unexpected {type(exc).__name__}: {exc}")


def _place(space: EmbeddingSpace, result) -> None:
    from explorer import lookup

    try:
        with st.spinner("Embedding and placing it on the map…"):
            lookup.place(result, space, encoder_for(space))
    except ExplorerError as exc:
        result.embedding, result.map_xy, result.space_key = None, None, ""
        result.notes.append(f"Not placed on the map: {exc}")


def _show_lookup(space: ExplorerSpace, result) -> None:
    from explorer.sky import nearest_on_sky

    st.markdown(f"##### {result.title}")
    centre = result.cutout.centre
    st.caption(
        f"Centre RA {result.ra:.5f}°, Dec {result.dec:+.5f}° "
        f"({centre.to_string('hmsdms', precision=1)}) · estimated angular extent "
        + (f"{result.extent_arcsec:.0f}″" if np.isfinite(result.extent_arcsec) else "–")
        + f" · {result.cutout.shape[1]}×{result.cutout.shape[0]} px at {result.cutout.pixel_scale_arcsec:.2f}″"
    )
    raw, model, facts = st.columns([1, 1, 1])
    with raw:
        field = max(result.cutout.shape) * result.cutout.pixel_scale_arcsec / 60
        st.image(
            rgb_image(display_stretch(result.cutout.data), MAIN_IMAGE_PX),
            caption=f"Raw cutout ({field:.1f}′, asinh stretch)",
            width=MAIN_IMAGE_PX,
        )
    with model:
        st.image(
            rgb_image(result.model_image, MAIN_IMAGE_PX, crop_box_px=config.MODEL_INPUT_PX),
            caption=f"Model input (clipped at {config.CLIP_SIGMA:g}σ, {config.IMAGE_FIELD_ARCSEC / 60:.1f}′; "
            f"the box: the central {config.MODEL_INPUT_PX} px it sees)",
            width=MAIN_IMAGE_PX,
        )
    k, radius = neighbour_settings()
    neighbours, query, marker = None, None, None
    with facts:
        for note in result.notes:
            st.info(note)
        if space.has_embeddings and result.map_xy is not None:
            neighbours = space.neighbours_of_vector(result.embedding, k, radius, (result.ra, result.dec))
            marker = (float(result.map_xy[0]), float(result.map_xy[1]))
            best = space.catalogue["source_id"].iloc[neighbours.rows[0]] if len(neighbours.rows) else "–"
            st.success(
                f"Placed on the map (×). Most similar source: **{best}** "
                f"(cosine similarity {neighbours.scores[0]:.3f})."
            )
            row, sep = nearest_on_sky(result.ra, result.dec, space.catalogue["ra"], space.catalogue["dec"])
            if row >= 0 and sep <= config.APP_CATALOGUE_MATCH_ARCSEC:
                twin = space.catalogue["source_id"].iloc[row]
                similarity = float(space.index.similarities(result.embedding)[row])
                left_out = " The sky-duplicate filter leaves it out of the neighbours." if sep < radius else ""
                st.info(
                    f"This position is in the space as **{twin}** ({sep:.1f}″ away, cosine similarity "
                    f"{similarity:.3f}).{left_out}"
                )
        elif isinstance(space, CatalogueSpace):
            row, sep = nearest_on_sky(result.ra, result.dec, space.catalogue["ra"], space.catalogue["dec"])
            if row >= 0 and sep <= config.APP_CATALOGUE_MATCH_ARCSEC:
                query = row
                neighbours = space.neighbours_of_row(row, k, radius)
                st.success(
                    f"In this catalogue: **{space.catalogue['source_id'].iloc[row]}**, {sep:.1f}″ away "
                    "(★ on the map). This space has no representations, so its neighbours are the nearest "
                    "points on the published map."
                )
            else:
                st.warning(
                    "This space has no representations, so a new image cannot be placed on its map. "
                    + (
                        f"The nearest catalogue source is {space.catalogue['source_id'].iloc[row]}, "
                        f"{sep / 60:.1f}′ away. "
                        if row >= 0
                        else ""
                    )
                    + "Choose an embedding space (e.g. MiraBest) to find similar sources."
                )
    if marker is not None or query is not None:
        colour = space.catalogue.get("angular_extent_arcsec", None)
        figure = map_figure(
            space.catalogue,
            colour,
            "angular_extent_arcsec",
            True,
            neighbours=None if neighbours is None else neighbours.rows,
            query=query,
            marker=marker,
            marker_name=result.title[:30],
            revision=f"lookup:{space.key}",
            height=520,
        )
        st.plotly_chart(
            figure, key=f"lookup-map:{space.key}", width="stretch", config={"scrollZoom": True, "displaylogo": False}
        )
    if neighbours is not None:
        neighbours_section(space, neighbours, query_row=None, query_id=result.title, key=f"lookup-nb:{space.key}")
