"""Training: fine-tune the backbone, or train a linear probe, on labelled sources.

The sidebar form starts a run as a background process (``explorer.jobs``); this page only
starts, follows and cancels runs. Everything shown is read from the runs folder, so the
page keeps working while a run trains, after a reload and in other tabs, and a run that
crashed says why.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from explorer import default_space, jobs
from explorer.widgets import frame
from pretrain import config
from pretrain.errors import ExplorerError
from pretrain.models.resnet import ResNet18Encoder
from pretrain.tasks import TASKS

frame.require_app()

BLOCKS = ResNet18Encoder.BLOCKS
DEPTHS = {
    0: "0 · linear probe (frozen encoder)",
    1: "1 · last block + head",
    **{d: f"{d} · last {d} blocks + head" for d in range(2, len(BLOCKS))},
    len(BLOCKS): f"{len(BLOCKS)} · every block + head",
}
SELECTED = "training_selected_run"
RUNNING = "training_running_runs"


def start_form() -> None:
    with st.sidebar:
        st.markdown("**Train a classifier**")
        with st.form("training_form"):
            task = st.selectbox(
                "Task",
                list(TASKS),
                format_func=lambda name: TASKS[name].title,
                index=list(TASKS).index(config.FINETUNE_TASK),
            )
            labels = st.number_input(
                "Label budget (0 = all)",
                min_value=0,
                value=0,
                step=1,
                help="How many labelled training sources to use: a stratified draw "
                "from the task's training split. The study used 72, 145, 291, all.",
            )
            depth = st.select_slider(
                "Depth",
                options=list(DEPTHS),
                value=config.FINETUNE_DEPTH,
                format_func=lambda d: str(d),
                help="0: linear probe on the frozen encoder. D: the last D blocks "
                f"learn too, each block down at {config.FINETUNE_LAYER_DECAY}x "
                "the learning rate of the one above.",
            )
            scratch = st.checkbox(
                "From random weights (supervised baseline)",
                help="The same network trained from scratch, every layer: what the "
                "pretrained backbone is compared with.",
            )
            epochs = st.number_input("Epochs", min_value=1, max_value=1000, value=config.FINETUNE_EPOCHS, step=1)
            seed = st.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, step=1)
            submitted = st.form_submit_button("Start training", type="primary", width="stretch")
        st.caption(DEPTHS[len(BLOCKS)] if scratch else DEPTHS[int(depth)])
    if submitted:
        start(task, int(labels) or None, int(depth), bool(scratch), int(epochs), int(seed))


def start(task: str, labels: int | None, depth: int, scratch: bool, epochs: int, seed: int) -> None:
    weights = None
    if not scratch:
        try:
            weights = default_space.check_weights()
        except ExplorerError as exc:
            st.sidebar.error(f"{exc} (Or tick *From random weights*.)")
            return
    try:
        run_id = jobs.start_run(
            task=task, labels=labels, depth=depth, scratch=scratch, epochs=epochs, seed=seed, weights=weights
        )
    except ExplorerError as exc:
        st.sidebar.error(str(exc))
        return
    st.session_state[SELECTED] = run_id
    st.toast(f"Started run {run_id}", icon="🚀")


def curves(progress: pd.DataFrame) -> None:
    if len(progress) < 2:  # one point draws no line, only an axis ticked "1.000000"
        st.caption("No epoch finished yet." if progress.empty else "The curves start after the second epoch.")
        return
    table = progress.set_index("epoch")
    left, right = st.columns(2)
    with left:
        st.markdown("Training loss")
        st.line_chart(table[["loss"]], height=220, x_label="epoch")
    with right:
        st.markdown("Accuracy")
        st.line_chart(
            table[["train_acc", "test_acc"]].rename(columns={"train_acc": "train", "test_acc": "test"}),
            height=220,
            x_label="epoch",
        )


def descriptions(runs: pd.DataFrame) -> dict[str, str]:
    """One line per run for menus and headings: id, task, mode, labels."""
    out = {}
    for row in runs.itertuples():
        labels = "all labels" if row.labels in ("all", None) else f"{row.labels} labels"
        out[row.run_id] = f"{row.run_id} · {row.task} · {row.mode} · {labels}"
    return out


def live_run(run_id: str, title: str) -> None:
    status = jobs.run_status(run_id)
    epoch, epochs = int(status.get("epoch") or 0), int(status.get("epochs") or 1)
    with st.container(border=True):
        st.markdown(f"**{title}**")
        stage = status.get("stage") or "starting"
        st.progress(min(epoch / epochs, 1.0), text=f"epoch {epoch} / {epochs} · {stage}")
        progress = jobs.read_progress(run_id)
        if not progress.empty:
            last = progress.iloc[-1]
            a, b, c = st.columns(3)
            a.metric("loss", f"{last['loss']:.3f}")
            b.metric("train accuracy", f"{100 * last['train_acc']:.1f} %")
            c.metric("test accuracy", "–" if pd.isna(last["test_acc"]) else f"{100 * last['test_acc']:.1f} %")
        curves(progress)
        if status.get("host"):
            st.caption(f"Training on {status['host']}: only that machine's app can follow or cancel it.")
        elif st.button("Cancel this run", key=f"cancel-{run_id}", icon=":material/stop_circle:"):
            try:
                with st.spinner("Stopping the run…"):
                    jobs.cancel_run(run_id)
            except ExplorerError as exc:
                st.error(str(exc))
                return
            st.rerun(scope="app")


@st.fragment(run_every=config.JOB_REFRESH_S)
def live_section() -> None:
    """Runs in progress, re-read every few seconds; only this part of the page reruns."""
    runs = jobs.list_runs()
    running = runs.loc[runs["state"] == "running", "run_id"].tolist()
    ended = set(st.session_state.get(RUNNING, [])) - set(running)
    st.session_state[RUNNING] = running
    if ended:  # a run just ended: refresh the whole page (the table of runs, the results)
        st.rerun(scope="app")
    st.subheader("In progress")
    if not running:
        st.caption("No run in progress. Start one from the sidebar.")
    titles = descriptions(runs)
    for run_id in running:
        live_run(run_id, titles[run_id])


def run_details(run_id: str) -> None:
    status = jobs.run_status(run_id)
    state = status.get("state")
    if state == "running":
        st.info("This run is still training: see *In progress* above.")
        return
    if state == "failed":
        st.error(f"The run failed: {status.get('error') or 'no reason recorded'}")
        with st.expander("Last lines of its log"):
            st.code(jobs.log_tail(run_id, 30) or "(empty log)", language=None)
    if state == "cancelled":
        st.warning(f"Cancelled at epoch {status.get('epoch', 0)} of {status.get('epochs', '?')}.")
    metrics = jobs.read_metrics(run_id)
    if metrics:
        a, b, c, d = st.columns(4)
        a.metric("test error", f"{metrics['test_error_percent']:.2f} %", help=f"{metrics['n_test']} test sources")
        if metrics.get("ood_error") is not None:
            b.metric(
                "out-of-distribution error",
                f"{metrics['ood_error_percent']:.2f} %",
                help=f"{metrics['ood_name']}: {metrics['n_ood']} sources",
            )
        c.metric("training labels", metrics["n_train"])
        d.metric("wall time", f"{metrics['wall_time_s']:.0f} s", help=f"{metrics['device']}: {metrics['device_name']}")
        positive = metrics.get("positive_class", "FRII")
        st.caption(
            f"On the **Map** page, colour by *run {run_id}: P({positive})* or "
            f"*run {run_id}: misclassified* to see this run's predictions."
        )
    curves(jobs.read_progress(run_id))
    with st.expander("Settings and files"):
        st.json(jobs.read_config(run_id) or jobs.read_job(run_id))
        st.caption(f"Folder: {jobs.run_path(run_id)}")


def past_section() -> None:
    runs = jobs.list_runs()
    st.subheader("Runs")
    if runs.empty:
        st.caption("No runs yet.")
        return
    table = runs[
        [
            "run_id",
            "state",
            "task",
            "mode",
            "labels",
            "depth",
            "epochs",
            "seed",
            "test_error_percent",
            "ood_error_percent",
            "wall_time_s",
        ]
    ]
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            "test_error_percent": st.column_config.NumberColumn("test error %", format="%.2f"),
            "ood_error_percent": st.column_config.NumberColumn("OOD error %", format="%.2f"),
            "wall_time_s": st.column_config.NumberColumn("wall time (s)", format="%.0f"),
        },
    )
    ids: list[str] = runs["run_id"].tolist()
    if st.session_state.get(SELECTED) not in ids:
        st.session_state[SELECTED] = ids[0]
    titles = descriptions(runs)
    selected = st.selectbox("Show run", ids, key=SELECTED, format_func=lambda run_id: titles.get(run_id, run_id))
    if selected is not None:  # never None: the options are not empty and the key holds one of them
        run_details(selected)


start_form()
st.title("Training")
st.caption(
    "Fine-tune the backbone on labelled sources, or train a linear probe, in the background. "
    f"Runs are kept in {jobs.runs_dir()}."
)
live_section()
past_section()
