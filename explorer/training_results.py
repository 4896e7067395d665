"""What a finished training run says, in forms a user can act on. No Streamlit here.

From a run folder's ``predictions.parquet`` (one row per bundle source, in bundle order:
``source_id``, ``label``, ``prob_<positive>``, ``predicted``, ``correct``, ``split``; see
:mod:`pretrain.finetune`) and the run listing of :func:`explorer.jobs.list_runs`:

- :func:`prediction_marks`: per source "correct" or "misclassified · <split>" (training,
  test, out of distribution, not in the label budget): the map's colours and the source
  panel say which split each mistake belongs to;
- :func:`confusion_matrix` and :func:`confusion_figure` (a plotly heatmap with counts);
- :func:`error_table` and :func:`error_cards`: the misclassified sources, most confident
  mistakes first, as cards for the gallery of :mod:`explorer.gallery`;
- :func:`run_name`: one line saying task, depth, labels, epochs and error;
- :func:`results_table`: the listing of runs for display, with no empty ("None") cells.

Colours come from one colour-blind-safe qualitative palette (Okabe & Ito 2008), :data:`PALETTE`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from explorer.gallery import Card

# Okabe-Ito: distinguishable with every common colour-vision deficiency.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
CURVE_COLOURS = {"train": PALETTE[0], "test": PALETTE[1], "ood": PALETTE[3]}  # blue, vermillion, purple

# predictions.parquet's split values -> words for people
SPLIT_NAMES = {
    "train": "training",
    "test": "test",
    "ood": "out of distribution",
    "unused": "not in the label budget",
    "unlabelled": "no label",
}
ERROR_SPLITS = ("test", "ood", "train", "unused")  # the order errors are listed in
CORRECT_MARK = "correct"
MISSING = "–"  # what a table shows for a figure that does not exist (never "None")


def error_mark(split: str) -> str:
    """The map colour value of a misclassified source of ``split`` ("misclassified · test")."""
    return f"misclassified · {SPLIT_NAMES.get(split, split)}"


# The map's fixed colours for a run's marks (explorer.figures uses them): the mistakes stand
# out, one colour per split; the right answers recede.
MARK_COLOURS = {
    CORRECT_MARK: "rgba(86,180,233,0.45)",
    error_mark("test"): PALETTE[1],
    error_mark("ood"): PALETTE[3],
    error_mark("train"): PALETTE[4],
    error_mark("unused"): PALETTE[6],
}


def prediction_marks(predictions: pd.DataFrame) -> pd.Series:
    """Per prediction row: "correct", "misclassified · <split>", or None (no label for the task)."""
    correct = predictions["correct"].astype("object")
    split = predictions["split"].astype(str)
    marks = [
        None if pd.isna(c) else (CORRECT_MARK if bool(c) else error_mark(s))
        for c, s in zip(correct, split, strict=True)
    ]
    return pd.Series(marks, index=predictions.index, dtype=object)


def positive_class(predictions: pd.DataFrame) -> str:
    """The task's positive class, from the ``prob_<positive>`` column."""
    columns = [c for c in predictions.columns if c.startswith("prob_")]
    if not columns:
        raise ValueError("the predictions have no prob_<class> column")
    return columns[0][len("prob_") :]


def confusion_matrix(predictions: pd.DataFrame, classes, split: str = "test") -> pd.DataFrame:
    """Counts of (true label, predicted label) among the labelled sources of ``split``.

    Rows: the true class, columns: the predicted class, both in the order of ``classes``
    (every class present, zeros included).
    """
    rows = predictions[(predictions["split"] == split) & predictions["label"].notna()]
    table = pd.crosstab(rows["label"].astype(str), rows["predicted"].astype(str))
    classes = [str(c) for c in classes]
    table = table.reindex(index=classes, columns=classes, fill_value=0).astype(int)
    table.index.name, table.columns.name = "true label", "predicted label"
    return table


def confusion_figure(matrix: pd.DataFrame, title: str = "", height: int = 320) -> go.Figure:
    """The confusion matrix as a heatmap: counts (and the share of the true class) in each cell."""
    counts = matrix.to_numpy()
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros(counts.shape, float), where=totals > 0)
    text = [
        [f"{n}<br>({100 * f:.0f} %)" for n, f in zip(row, fractions, strict=True)]
        for row, fractions in zip(counts, share, strict=True)
    ]
    figure = go.Figure(
        go.Heatmap(
            z=counts,
            x=[str(c) for c in matrix.columns],
            y=[str(c) for c in matrix.index],
            text=text,
            texttemplate="%{text}",
            textfont=dict(size=16),
            colorscale="Cividis",  # sequential and colour-blind safe
            showscale=False,
            hovertemplate="true %{y}, predicted %{x}: %{z} sources<extra></extra>",
        )
    )
    figure.update_layout(
        title=dict(text=title, font=dict(size=14)) if title else None,
        height=height,
        margin=dict(l=10, r=10, t=40 if title else 10, b=10),
        xaxis=dict(title=dict(text="predicted label"), side="bottom", type="category"),
        yaxis=dict(title=dict(text="true label"), autorange="reversed", type="category"),
    )
    return figure


def error_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """The misclassified labelled sources, test first, then out of distribution, training and the rest;
    within a split the most confident mistakes first.

    Columns: ``row`` (position in the predictions, i.e. the bundle row), ``source_id``,
    ``split`` (its words), ``label``, ``predicted``, ``probability`` (of the predicted class),
    ``prob_<positive>``.
    """
    positive = positive_class(predictions)
    prob_positive = predictions[f"prob_{positive}"].astype(float).to_numpy()
    predicted = predictions["predicted"].astype(str).to_numpy()
    confidence = np.where(predicted == positive, prob_positive, 1.0 - prob_positive)
    frame = pd.DataFrame(
        {
            "row": np.arange(len(predictions)),
            "source_id": predictions["source_id"].astype(str).to_numpy(),
            "split_key": predictions["split"].astype(str).to_numpy(),
            "label": predictions["label"].astype(object).to_numpy(),
            "predicted": predicted,
            "probability": confidence,
            f"prob_{positive}": prob_positive,
        }
    )
    correct = predictions["correct"].astype("object").to_numpy()
    wrong = np.array([not pd.isna(c) and not bool(c) for c in correct], dtype=bool)
    frame = frame[wrong & frame["split_key"].isin(ERROR_SPLITS).to_numpy()].copy()
    frame["order"] = frame["split_key"].map({s: i for i, s in enumerate(ERROR_SPLITS)})
    frame = frame.sort_values(["order", "probability"], ascending=[True, False], kind="stable")
    frame.insert(2, "split", frame["split_key"].map(SPLIT_NAMES))
    return frame.drop(columns=["order", "split_key"]).reset_index(drop=True)


def error_cards(errors: pd.DataFrame, images, catalogue: pd.DataFrame | None = None) -> list[Card]:
    """Gallery cards of misclassified sources (rows of :func:`error_table`), in that order.

    ``images``: the run's bundle images (indexed by ``row``; None: cards without images);
    ``catalogue``: the bundle's catalogue, for each card's extent and position.
    A card's chip says "true → predicted"; its score is the probability of the prediction.
    """
    cards = []
    for rank, error in enumerate(errors.itertuples(index=False), start=1):
        row = int(error.row)
        entry = catalogue.iloc[row] if catalogue is not None and row < len(catalogue) else pd.Series(dtype=object)
        cards.append(
            Card(
                rank=rank,
                source_id=str(error.source_id),
                image=None if images is None else np.asarray(images[row]),
                score=float(error.probability),
                label=f"{error.label} → {error.predicted}",
                extent_arcsec=_float(entry.get("angular_extent_arcsec")),
                ra=_float(entry.get("ra")),
                dec=_float(entry.get("dec")),
                note="image not available",
            )
        )
    return cards


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


# --- Names and tables -------------------------------------------------------------------


def _task_short(task: object) -> str:
    from pretrain.tasks import TASKS

    known = TASKS.get(str(task))
    return known.short_name if known else str(task or "task?")


def _depth_words(mode: object, depth: object) -> str:
    if mode == "scratch":
        return "from scratch"
    if mode == "linear probe" or str(depth) == "0":
        return "probe"
    return f"depth {depth}"


def _labels_words(labels: object) -> str:
    text = str(labels) if labels is not None and not (isinstance(labels, float) and np.isnan(labels)) else "all"
    if text.startswith("all"):
        inside = text[text.find("(") + 1 : text.find(")")] if "(" in text else ""
        return f"all {inside} labels" if inside else "all labels"
    return f"{text} labels"


def _is_missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and not np.isfinite(value))


def _outcome(row: Mapping[str, Any]) -> str:
    state = row.get("state")
    if state == "finished":
        error: Any = row.get("test_error_percent")
        return "no test error" if _is_missing(error) else f"{float(error):.1f} % test error"
    if state == "running":
        # No epoch here: the page draws run names when a run starts or ends, not at every epoch, so a
        # name with "epoch 0" in it went on saying so; the live epoch is on the run's progress bar.
        return "running"
    if state == "cancelled":
        return f"cancelled at epoch {int(row.get('epoch') or 0)}"
    return str(state or "unknown state")


def _started(run_id: str) -> str:
    """ "01 Dec 23:58" from a run id (UTC start time plus random hex)."""
    try:
        stamp = pd.Timestamp(pd.to_datetime(str(run_id)[:15], format="%Y%m%d-%H%M%S"))
    except (ValueError, TypeError):
        return str(run_id)
    return f"{stamp:%d %b %H:%M}"


def run_name(row: Mapping[str, Any]) -> str:
    """One line for a run: task · depth · labels · epochs · error (or state) · start time (UTC).

    ``row``: a row of :func:`explorer.jobs.list_runs` (task, mode, depth, labels, epochs,
    state, epoch, test_error_percent, run_id). A linear probe is a logistic regression
    fitted to convergence, so its name says "fitted" where a trained run gives its epochs.
    """
    probe = _depth_words(row.get("mode"), row.get("depth")) == "probe"
    epochs: Any = row.get("epochs")
    epoch_words = "fitted" if probe else ("? ep" if _is_missing(epochs) else f"{int(epochs)} ep")
    parts = [
        _task_short(row.get("task")),
        _depth_words(row.get("mode"), row.get("depth")),
        _labels_words(row.get("labels")),
        epoch_words,
        _outcome(row),
        _started(str(row.get("run_id", ""))),
    ]
    return " · ".join(parts)


def percent_text(value: Any) -> str:
    return MISSING if _is_missing(value) else f"{float(value):.2f} %"


def results_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The run listing for display: one row per run, every cell a word or a figure.

    A figure that does not exist (a running run's error, a task without an
    out-of-distribution set, a probe's epochs) shows as "–", never as None/NaN.
    """
    rows = []
    for run in runs.to_dict("records"):
        probe = _depth_words(run.get("mode"), run.get("depth")) == "probe"
        wall = run.get("wall_time_s")
        rows.append(
            {
                "run": run_name(run),
                "state": str(run.get("state") or "unknown"),
                "test error": percent_text(run.get("test_error_percent")),
                "OOD error": percent_text(run.get("ood_error_percent")),
                "depth": _depth_words(run.get("mode"), run.get("depth")),
                "labels": _labels_words(run.get("labels")).removesuffix(" labels"),
                "epochs": MISSING if probe or _is_missing(run.get("epochs")) else str(int(run["epochs"])),
                "seed": MISSING if _is_missing(run.get("seed")) else str(int(run["seed"])),
                "wall time": MISSING if _is_missing(wall) else f"{float(wall):.0f} s",
                "run id": str(run.get("run_id")),
            }
        )
    columns = ["run", "state", "test error", "OOD error", "depth", "labels", "epochs", "seed", "wall time", "run id"]
    return pd.DataFrame(rows, columns=columns)


def split_counts(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per split with labels: sources, errors and the error rate (the results' summary table)."""
    marks = prediction_marks(predictions)
    rows = []
    for split in ERROR_SPLITS:
        in_split = (predictions["split"] == split).to_numpy() & marks.notna().to_numpy()
        n = int(in_split.sum())
        if n == 0:
            continue
        errors = int((marks[in_split] != CORRECT_MARK).sum())
        rows.append({"split": SPLIT_NAMES[split], "sources": n, "errors": errors, "error": f"{100 * errors / n:.1f} %"})
    return pd.DataFrame(rows, columns=["split", "sources", "errors", "error"])
