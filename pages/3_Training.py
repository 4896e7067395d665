"""Training: fine-tune the backbone, or train a linear probe, on labelled sources.

The sidebar form starts a run as a background process (``explorer.jobs``); this page only
starts, follows and cancels runs. Everything shown is read from the runs folder, so the
page keeps working while a run trains, after a reload and in other tabs, and a run that
crashed says why.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from explorer import default_space, jobs, training_results
from explorer.gallery import gallery_html
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
                help="0: linear probe on the frozen encoder's d4 representation (the one the map shows; the "
                "probe and figure of `pretrain evaluate`). D: the last D blocks "
                f"learn too, each block down at {config.FINETUNE_LAYER_DECAY}x "
                "the learning rate of the one above.",
            )
            scratch = st.checkbox(
                "From random weights (supervised baseline)",
                help="The same network trained from scratch, every layer: what the "
                "pretrained backbone is compared with.",
            )
            epochs = st.number_input(
                "Epochs",
                min_value=1,
                max_value=1000,
                value=config.FINETUNE_EPOCHS,
                step=1,
                help="Passes over the training labels. A linear probe (depth 0) has none: it is the "
                "logistic regression of `pretrain evaluate`, fitted to convergence on the app's representation.",
            )
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
    if RUNNING in st.session_state:  # this run of the page draws it: the live section need not rerun the page
        st.session_state[RUNNING] = [*st.session_state[RUNNING], run_id]
    st.toast(f"Started run {run_id}", icon="🚀")


def curves(progress: pd.DataFrame) -> None:
    if len(progress) < 2:  # one point draws no line, only an axis ticked "1.000000"
        st.caption("No epoch finished yet." if progress.empty else "The curves start after the second epoch.")
        return
    table = progress.set_index("epoch")
    colours = training_results.CURVE_COLOURS
    left, right = st.columns(2)
    with left:
        st.markdown("Training loss")
        st.line_chart(table[["loss"]], height=220, x_label="epoch", color=[colours["train"]])
    with right:
        st.markdown("Accuracy")
        st.line_chart(
            table[["train_acc", "test_acc"]].rename(columns={"train_acc": "train", "test_acc": "test"}),
            height=220,
            x_label="epoch",
            color=[colours["train"], colours["test"]],  # columns in order: train, test
        )


def descriptions(runs: pd.DataFrame) -> dict[str, str]:
    """One line per run for menus and headings: task, depth, labels, epochs, error, start time."""
    return {row["run_id"]: training_results.run_name(row) for row in runs.to_dict("records")}


def live_run(run_id: str, title: str) -> None:
    status = jobs.run_status(run_id)
    epoch, epochs = int(status.get("epoch") or 0), int(status.get("epochs") or 1)
    with st.container(border=True):
        st.markdown(f"**{title}**")
        st.caption(f"run {run_id}")  # the name of its colours on the Map page
        stage = status.get("stage") or "starting"
        probe = status.get("mode") == "linear probe"  # one fit, no epochs
        counted = f"linear probe · {stage}" if probe else f"epoch {epoch} / {epochs} · {stage}"
        st.progress(min(epoch / epochs, 1.0), text=counted)
        progress = jobs.read_progress(run_id)
        if not progress.empty:
            last = progress.iloc[-1]
            a, b, c = st.columns(3)
            a.metric("loss", f"{last['loss']:.3f}")
            b.metric("train accuracy", f"{100 * last['train_acc']:.1f} %")
            c.metric("test accuracy", "–" if pd.isna(last["test_acc"]) else f"{100 * last['test_acc']:.1f} %")
        if not probe:  # one fit: no curves to wait for
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
    before = st.session_state.get(RUNNING)
    st.session_state[RUNNING] = running
    if before is not None and set(before) != set(running):
        # A run started (here or elsewhere) or ended: refresh the whole page, whose table of runs,
        # "Show run" menu and results are drawn only then (this part reruns alone every few seconds).
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
        summary(run_id, metrics)
    predictions = jobs.read_predictions(run_id) if metrics else None
    if predictions is not None and metrics:
        results(run_id, metrics, predictions)
    if metrics and metrics.get("probe"):
        probe_strength(metrics["probe"])
    else:
        curves(jobs.read_progress(run_id))
    with st.expander("Settings and files"):
        st.json(jobs.read_config(run_id) or jobs.read_job(run_id))
        st.caption(f"Folder: {jobs.run_path(run_id)}")


def summary(run_id: str, metrics: dict) -> None:
    a, b, c, d = st.columns(4)
    test_error = training_results.percent_text(metrics.get("test_error_percent"))
    a.metric("test error", test_error, help=f"{metrics['n_test']} test sources")
    if metrics.get("ood_error") is not None:
        b.metric(
            "out-of-distribution error",
            training_results.percent_text(metrics.get("ood_error_percent")),
            help=f"{metrics['ood_name']}: {metrics['n_ood']} sources",
        )
    c.metric("training labels", metrics["n_train"])
    d.metric("wall time", f"{metrics['wall_time_s']:.0f} s", help=f"{metrics['device']}: {metrics['device_name']}")
    if metrics.get("probe"):
        probe = metrics["probe"]
        st.caption(
            f"Linear probe: the logistic regression of `pretrain evaluate` (strength C = {probe['C']:g}, chosen by "
            f"{probe['folds']}-fold cross-validation on the training labels) on the {probe['features']}: "
            "the same figure `evaluate` reports for this split."
        )
    positive = metrics.get("positive_class", "FRII")
    st.caption(
        f"On the **Map** page, colour by *run {run_id}: P({positive})* or "
        f"*run {run_id}: misclassified* to see this run's predictions; each mistake says its split."
    )


@st.cache_resource(max_entries=4, show_spinner=False)
def _bundle(path: str):
    from pretrain.data.bundle import load_bundle

    return load_bundle(path)


def _run_bundle(run_id: str):
    """The run's bundle (images and catalogue), or None when it cannot be opened any more."""
    from pretrain.errors import ExplorerError

    recorded = (jobs.read_config(run_id) or {}).get("bundle")
    if not recorded:
        return None
    try:
        return _bundle(str(recorded))
    except (ExplorerError, OSError):
        return None


ERRORS_SHOWN = 24  # cards per split in the error gallery


def results(run_id: str, metrics: dict, predictions: pd.DataFrame) -> None:
    """Where the run is right and wrong: errors per split, confusion matrices, a gallery of the mistakes."""
    classes = tuple((jobs.read_config(run_id) or {}).get("classes") or sorted(predictions["predicted"].unique()))
    st.markdown("**Results by split**")
    st.dataframe(training_results.split_counts(predictions), hide_index=True)
    splits = [("test", "test")]
    if metrics.get("n_ood"):
        splits.append(("ood", "out of distribution"))
    splits.append(("train", "training"))
    columns = st.columns(len(splits))
    for column, (split, title) in zip(columns, splits, strict=True):
        with column:
            matrix = training_results.confusion_matrix(predictions, classes, split)
            st.plotly_chart(
                training_results.confusion_figure(matrix, title=f"Confusion matrix: {title}"),
                key=f"confusion-{run_id}-{split}",
                config={"displayModeBar": False},
            )
    errors = training_results.error_table(predictions)
    st.markdown(f"**Misclassified sources** ({len(errors)})")
    if errors.empty:
        st.caption("No labelled source is misclassified.")
        return
    bundle = _run_bundle(run_id)
    if bundle is None:
        st.caption("The run's bundle cannot be opened any more: the gallery shows no images.")
    positive = training_results.positive_class(predictions)
    for split in training_results.ERROR_SPLITS:
        name = training_results.SPLIT_NAMES[split]
        shown = errors[errors["split"] == name]
        if shown.empty:
            continue
        more = f"; the {ERRORS_SHOWN} most confident shown" if len(shown) > ERRORS_SHOWN else ""
        st.caption(f"{name}: {len(shown)} misclassified{more}. Chip: true → predicted; P: the prediction's probability")
        cards = training_results.error_cards(
            shown.head(ERRORS_SHOWN),
            None if bundle is None else bundle.images,
            None if bundle is None else bundle.catalogue,
        )
        st.html(
            gallery_html(
                cards,
                score_name="probability of the predicted class",
                query_id=f"errors-{run_id}-{split}",
                score_short="P",
            )
        )
    with st.expander("The misclassified sources as a table"):
        table = errors.drop(columns=["row"]).rename(columns={f"prob_{positive}": f"P({positive})"})
        st.dataframe(
            table,
            hide_index=True,
            column_config={
                "probability": st.column_config.NumberColumn("P(prediction)", format="%.3f"),
                f"P({positive})": st.column_config.NumberColumn(format="%.3f"),
            },
        )


def probe_strength(probe: dict) -> None:
    """A probe has no epochs: its curve is the cross-validated accuracy against the regularisation."""
    scores = pd.DataFrame(probe.get("cv_accuracy") or [])
    if scores.empty:
        return
    figure = go.Figure(
        go.Scatter(
            x=scores["C"],
            y=scores["accuracy"],
            mode="lines+markers",
            line=dict(color=training_results.CURVE_COLOURS["train"]),
            name="cross-validated accuracy",
        )
    )
    figure.add_vline(x=probe["C"], line=dict(color=training_results.CURVE_COLOURS["test"], dash="dash"))
    figure.update_layout(
        height=240,
        margin=dict(l=10, r=10, t=30, b=10),
        title=dict(text="Probe: cross-validated accuracy by strength (dashed: the C used)", font=dict(size=14)),
        xaxis=dict(type="log", title=dict(text="C (inverse regularisation strength)")),
        yaxis=dict(title=dict(text="accuracy")),
    )
    st.plotly_chart(figure, key="probe-strength", config={"displayModeBar": False})


def past_section() -> None:
    runs = jobs.list_runs()
    st.subheader("Runs")
    if runs.empty:
        st.caption("No runs yet.")
        return
    st.dataframe(training_results.results_table(runs), hide_index=True, width="stretch")
    ids: list[str] = runs["run_id"].tolist()
    chosen = st.session_state.get(SELECTED)
    # Given again on every run, even unchanged: the browser shows the chosen run's name as it was
    # last sent (Streamlit sends it only when the value is set from here), so without this the
    # box went on saying "running" after the run had ended while the menu's list was up to date.
    st.session_state[SELECTED] = chosen if chosen in ids else ids[0]
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
