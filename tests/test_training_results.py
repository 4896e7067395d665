"""A finished run's results for people (explorer/training_results.py): the split of each
mistake, the confusion matrix, the error gallery's cards, run names and tables with no
empty cells."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from explorer import jobs
from explorer import training_results as tr
from explorer.gallery import gallery_html
from tests.test_reliability_runs import _run_folder

CLASSES = ("FRI", "FRII")


def _predictions() -> pd.DataFrame:
    """Ten sources as pretrain.finetune writes them (bundle order)."""
    rows = [
        # source, label, P(FRII), split
        ("a", "FRI", 0.10, "test"),  # right
        ("b", "FRI", 0.70, "test"),  # wrong, P(FRII) 0.70
        ("c", "FRII", 0.05, "test"),  # wrong, P(FRI) 0.95: the most confident test mistake
        ("d", "FRII", 0.90, "test"),  # right
        ("e", "FRI", 0.80, "ood"),  # wrong
        ("f", "FRII", 0.60, "train"),  # right
        ("g", "FRI", 0.99, "train"),  # wrong
        ("h", None, 0.40, "unlabelled"),  # a hybrid: no label for the task
        ("i", "FRII", 0.45, "unused"),  # wrong, outside the label budget
        ("j", "FRI", 0.30, "ood"),  # right
    ]
    frame = pd.DataFrame(rows, columns=["source_id", "label", "prob_FRII", "split"])
    frame["predicted"] = np.where(frame["prob_FRII"] > 0.5, "FRII", "FRI")
    correct = [None if pd.isna(label) else label == pred for label, pred in zip(frame["label"], frame["predicted"])]
    frame["correct"] = pd.array(correct, dtype="boolean")
    return frame


def test_each_mistake_says_its_split_and_unlabelled_sources_say_nothing():
    marks = tr.prediction_marks(_predictions())
    assert list(marks) == [
        "correct",
        "misclassified · test",
        "misclassified · test",
        "correct",
        "misclassified · out of distribution",
        "correct",
        "misclassified · training",
        None,
        "misclassified · not in the label budget",
        "correct",
    ]
    # Every mark has its own fixed map colour, and the mistakes' colours differ from each other.
    colours = {mark: tr.MARK_COLOURS[mark] for mark in marks.dropna().unique()}
    errors = [colour for mark, colour in colours.items() if mark != "correct"]
    assert len(set(errors)) == len(errors) == 4


def test_the_map_draws_each_split_of_mistakes_in_its_own_colour_on_top():
    from explorer.figures import map_figure

    predictions = _predictions()
    catalogue = pd.DataFrame(
        {
            "source_id": predictions["source_id"],
            "umap_x": np.arange(10.0),
            "umap_y": np.zeros(10),
            "ra": np.full(10, 150.0),
            "dec": np.full(10, 2.0),
            "angular_extent_arcsec": np.full(10, 30.0),
        }
    )
    traces = {t.name.rsplit(" (", 1)[0]: t for t in map_figure(catalogue, tr.prediction_marks(predictions), "m").data}
    assert traces["misclassified · test"].marker.color == "#D55E00"
    assert traces["misclassified · out of distribution"].marker.color != traces["misclassified · test"].marker.color
    names = list(traces)
    assert all(names.index(name) > names.index("correct") for name in names if name.startswith("misclassified"))


def test_confusion_matrix_counts_the_split_and_keeps_empty_cells():
    predictions = _predictions()
    test = tr.confusion_matrix(predictions, CLASSES, "test")
    assert test.loc["FRI", "FRI"] == 1 and test.loc["FRI", "FRII"] == 1
    assert test.loc["FRII", "FRI"] == 1 and test.loc["FRII", "FRII"] == 1
    assert list(test.index) == list(test.columns) == list(CLASSES)
    train = tr.confusion_matrix(predictions, CLASSES, "train")
    assert train.to_numpy().tolist() == [[0, 1], [0, 1]]  # no FRI predicted at all: zeros, not gaps
    assert int(tr.confusion_matrix(predictions, CLASSES, "unlabelled").to_numpy().sum()) == 0

    figure = tr.confusion_figure(test, title="test")
    heatmap = figure.data[0]
    assert heatmap.type == "heatmap"
    assert np.asarray(heatmap.z).tolist() == test.to_numpy().tolist()
    assert list(heatmap.x) == list(heatmap.y) == list(CLASSES)
    assert heatmap.text[0][1].startswith("1<br>(50 %)")  # the count, then the share of the true class
    assert figure.layout.xaxis.title.text == "predicted label" and figure.layout.yaxis.title.text == "true label"


def test_error_table_lists_test_mistakes_first_most_confident_first():
    errors = tr.error_table(_predictions())
    assert list(errors["source_id"]) == ["c", "b", "e", "g", "i"]
    assert list(errors["split"]) == ["test", "test", "out of distribution", "training", "not in the label budget"]
    assert errors["probability"].tolist() == pytest.approx([0.95, 0.70, 0.80, 0.99, 0.55])
    assert list(errors["row"]) == [2, 1, 4, 6, 8]  # positions in the predictions (bundle rows)
    assert errors.notna().all().all()  # nothing empty


def test_error_cards_show_true_and_predicted_label_and_the_probability():
    errors = tr.error_table(_predictions())
    images = np.zeros((10, 150, 150), np.uint8)
    images[2, 70:80, 70:80] = 255
    catalogue = pd.DataFrame({"angular_extent_arcsec": np.arange(10.0), "ra": np.full(10, 150.0), "dec": 2.0})
    cards = tr.error_cards(errors, images, catalogue)
    first = cards[0]
    assert (first.source_id, first.label, first.rank) == ("c", "FRII → FRI", 1)
    assert first.score == pytest.approx(0.95) and first.extent_arcsec == 2.0
    assert np.array_equal(first.image, images[2])
    html = gallery_html(cards, score_name="probability of the predicted class", score_short="P", query_id="errors")
    assert 'data-count="5"' in html and "P 0.950" in html and "FRII → FRI" in html
    assert tr.error_cards(errors, None)[0].image is None  # no bundle: cards without images


def _runs() -> pd.DataFrame:
    """Rows as explorer.jobs.list_runs gives them, with the gaps a real listing has."""
    return pd.DataFrame(
        [
            {
                "run_id": "20261201-235834-a1b2c3",
                "state": "finished",
                "task": "mirabest-fr",
                "mode": "linear probe",
                "labels": "all (665)",
                "depth": 0,
                "epochs": 20,
                "epoch": 1,
                "seed": 0,
                "test_error_percent": 9.615,
                "ood_error_percent": 31.2,
                "wall_time_s": 41.0,
            },
            {
                "run_id": "20261202-001500-d4e5f6",
                "state": "running",
                "task": "griese-bent",
                "mode": "fine-tune",
                "labels": "72",
                "depth": 1,
                "epochs": 30,
                "epoch": 3,
                "seed": 1,
                "test_error_percent": None,
                "ood_error_percent": None,
                "wall_time_s": None,
            },
            {
                "run_id": "20261202-002000-0a0b0c",
                "state": "failed",
                "task": "mirabest-fr",
                "mode": "scratch",
                "labels": "all",
                "depth": 5,
                "epochs": None,
                "epoch": 0,
                "seed": None,
                "test_error_percent": float("nan"),
                "ood_error_percent": float("nan"),
                "wall_time_s": float("nan"),
            },
        ]
    )


def test_run_names_say_task_depth_labels_epochs_and_error():
    names = [tr.run_name(row) for row in _runs().to_dict("records")]
    assert names[0] == "FRI/FRII · probe · all 665 labels · fitted · 9.6 % test error · 01 Dec 23:58"
    assert names[1] == "bent · depth 1 · 72 labels · 30 ep · running · 02 Dec 00:15"
    assert names[2].startswith("FRI/FRII · from scratch · all labels · ? ep · failed")
    assert not any("None" in name or "nan" in name for name in names)


def test_results_table_has_no_empty_cells():
    table = tr.results_table(_runs())
    assert len(table) == 3
    assert table.notna().all().all()
    cells = table.astype(str).to_numpy().ravel()
    assert not any(cell in ("None", "nan", "NaN", "<NA>", "") for cell in cells)
    first = table.iloc[0]
    # a probe has no epochs
    assert (first["test error"], first["OOD error"], first["epochs"]) == ("9.62 %", "31.20 %", "–")
    assert table.iloc[1]["test error"] == "–" and table.iloc[1]["epochs"] == "30"


def test_split_counts_summarise_the_errors_per_split():
    counts = tr.split_counts(_predictions()).set_index("split")
    assert counts.loc["test", "sources"] == 4 and counts.loc["test", "errors"] == 2
    assert counts.loc["test", "error"] == "50.0 %"
    assert "no label" not in counts.index
    assert counts.notna().all().all()


def test_palette_is_distinct():
    assert len(set(tr.PALETTE)) == len(tr.PALETTE)
    assert len(set(tr.CURVE_COLOURS.values())) == len(tr.CURVE_COLOURS)


# --- a run's name over a run folder that changes under it (the Training page's "Show run" menu)
RUN = "20260101-000000-abcdef"
FINISHED_METRICS = {"test_error_percent": 12.5, "n_train": 46, "n_test": 104, "wall_time_s": 5.0, "device": "cpu"}


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_RUNS", str(tmp_path / "runs"))
    return jobs.runs_dir()


def _name_now(run_id: str) -> str:
    return next(tr.run_name(row) for row in jobs.list_runs().to_dict("records") if row["run_id"] == run_id)


def test_a_run_name_is_true_from_the_first_epoch_to_the_end(runs):
    """The page draws run names when a run starts or ends: what it drew at the start stays true
    while the run trains, and the name read after the end says how it ended."""
    job = {"run_id": RUN, "host": "another-machine", "options": {"task": "mirabest-fr", "depth": 1, "epochs": 5}}
    path = _run_folder(runs, RUN, job_json=job, status_json={"state": "running", "epoch": 0, "epochs": 5})
    at_start = _name_now(RUN)
    assert at_start == "FRI/FRII · depth 1 · all labels · 5 ep · running · 01 Jan 00:00"
    (path / "status.json").write_text(json.dumps({"state": "running", "epoch": 3, "epochs": 5}))
    (path / "progress.jsonl").write_text(
        "".join(json.dumps({"epoch": e, "loss": 1.0 / e, "train_acc": 0.7, "test_acc": 0.6}) + "\n" for e in (1, 2, 3))
    )
    assert _name_now(RUN) == at_start  # three epochs on, the name drawn at the start still holds
    (path / "status.json").write_text(json.dumps({"state": "finished", "epoch": 5, "epochs": 5}))
    (path / "metrics.json").write_text(json.dumps(FINISHED_METRICS))
    assert _name_now(RUN) == "FRI/FRII · depth 1 · all 46 labels · 5 ep · 12.5 % test error · 01 Jan 00:00"
    (path / "status.json").write_text(json.dumps({"state": "cancelled", "epoch": 4, "epochs": 5}))
    assert "cancelled at epoch 4" in _name_now(RUN)
