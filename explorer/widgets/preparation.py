"""Preparing the default MiraBest space on first start, with visible progress.

The work itself runs in a background thread of the server (:mod:`explorer.default_space`):
leaving the page or opening a second tab meanwhile does not start it over; this only shows it.
"""

from __future__ import annotations

import time

import streamlit as st

from explorer import default_space
from explorer.widgets.sidebar import forget_entries
from pretrain.errors import ExplorerError

STAGES = (
    ("data", "MiraBest files"),
    ("bundle", "Preprocessing → bundle"),
    ("embeddings", "Embedding with the backbone"),
    ("map", "Map (PCA → UMAP)"),
)


@st.cache_resource(show_spinner=False, max_entries=8)
def _default_state(fingerprint: tuple) -> default_space.DefaultSpaceState:
    return default_space.default_space_state()


def ensure_default_space() -> None:
    """Prepare the MiraBest space with visible progress when it is missing or stale."""
    state = _default_state(default_space.fingerprint())
    if state.ready:
        if state.provisional:
            _refinement_notice()
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
    _follow(default_space.start_preparation())
    _default_state.clear()
    forget_entries()
    st.rerun()


def _follow(job: default_space.Preparation) -> None:
    """Show the job's progress until it ends; stop the page with its message if it failed."""
    with st.status("Preparing the MiraBest space…", expanded=True) as status:
        bars = {stage: st.progress(0.0, text=title) for stage, title in STAGES}
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


@st.fragment(run_every=2.0)
def _refinement_notice() -> None:
    """While a quick first start's one-pass space is refined in the background: say so, and
    rerun the page into the refined space once it is in place."""
    job = default_space.current_refinement()
    if job is not None and job.finished and job.error is not None:
        # not retried on every rerun: a restart of the app tries again
        st.warning(
            f"The orientation-averaged representation could not be made ({job.error}); the map shows "
            "the quick one-pass representation. Restart the app to try again."
        )
        return
    if job is None or (job.finished and default_space.default_space_state().provisional):
        job = default_space.start_refinement()
    if job.finished:
        st.rerun(scope="app")  # the refined space is in place (its new manifest reloads it)
    progress = job.progress()
    measured, embedded = progress["bundle"][0], progress["embeddings"][0]
    if measured < 1.0:
        step = f"measuring the sources: {measured:.0%}"
    elif embedded < 1.0:
        step = f"{embedded:.0%} embedded"
    else:
        step = (progress["map"][1] or "fitting the map").lower()
    if _default_state(default_space.fingerprint()).one_pass:
        st.caption(
            "⏳ A first map, from one pass per image. The orientation-averaged representation (the one "
            "neighbours and look-ups use from then on) and the pixel measurements (fluxes, FR ratio, "
            f"components) are being computed in the background ({step}). "
            "The map and neighbours update when they are ready."
        )
    else:  # a backbone invariant by construction has its final representation already
        st.caption(
            "⏳ The pixel measurements (fluxes, FR ratio, components) are being computed in the "
            f"background ({step}). The map updates when they are ready."
        )
