"""Labelled tasks for fine-tuning and linear probes: which sources train, which score.

A task turns a bundle's catalogue into a :class:`TaskData`: one binary label per row
(1 = the positive class, 0 = the negative one, -1 = no label for this task) and the rows
that may be used for training, the test rows, and the out-of-distribution rows scored
separately. The test split is fixed (``config.FINETUNE_SPLIT_SEED``), not drawn from the
run's seed, so runs with different seeds and label budgets are scored on the same sources,
like the study's standard test set.

Tasks:

- ``mirabest-fr``: FRI vs FRII on MiraBest Confident, the documented stratified test split
  of 104 sources (:func:`pretrain.evaluate.mirabest_confident_split`); also scored on the
  Uncertain FRI/FRII sources (out of distribution). Hybrids are never used.
- ``griese-bent``: bent vs not bent (FRI, FRII, Compact) in Griese et al. (2023), a
  stratified test split of ``config.GRIESE_TEST_FRACTION``.
- ``frdeep-first-to-nvss``: FRI vs FRII trained on FRDEEP's FIRST images (the original
  release's training split), tested on the FIRST test images and, out of distribution, on
  the NVSS images of the same test sources: a cross-survey test (45" beam, not 5").

Every task names the shared-data folders its default bundle is built from, so a user (or
the app) can run a task without building a bundle by hand (:func:`default_bundle`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pretrain import config
from pretrain.errors import ExplorerError


class TaskError(ExplorerError):
    """A task cannot be set up on the given bundle (wrong data set, too few labels, ...)."""


@dataclass(frozen=True)
class TaskData:
    """Which rows of a bundle a task uses, and their labels (indices into the bundle)."""

    y: np.ndarray  # int8 per bundle row: 1 positive, 0 negative, -1 no label for this task
    train: np.ndarray  # rows the label budget is drawn from
    test: np.ndarray
    ood: np.ndarray  # scored separately; may be empty

    def __post_init__(self):
        sets = [set(self.train.tolist()), set(self.test.tolist()), set(self.ood.tolist())]
        if sets[0] & sets[1] or sets[0] & sets[2]:
            raise AssertionError("a test or out-of-distribution row is also a training row")


@dataclass(frozen=True)
class Task:
    name: str
    title: str  # one line for menus
    negative: str  # class names, negative then positive
    positive: str
    ood_name: str  # what the out-of-distribution rows are ("" if the task has none)
    inputs: tuple[tuple[str, str], ...]  # (kind, folder under SHARED_DATA_DIR) of the default bundle
    prepare: Callable[[pd.DataFrame], TaskData]
    bundle_name: str  # the default bundle: cache_dir() / "bundles" / bundle_name
    duplicate_radius_arcsec: float = config.DUPLICATE_RADIUS_ARCSEC  # for the default bundle
    short: str = ""  # a few characters for run names ("FRI/FRII"); the name when empty

    @property
    def short_name(self) -> str:
        return self.short or self.name

    def input_folders(self) -> list[tuple[str, Path]]:
        """(kind, folder) of the default bundle's inputs; MiraBest is found (or downloaded)
        the way the app finds it, so the app's MiraBest bundle is reused."""
        if self.bundle_name == "mirabest":
            from pretrain.data.mirabest import find_mirabest

            return [("fits", find_mirabest(download=True))]
        return [(kind, config.SHARED_DATA_DIR / folder) for kind, folder in self.inputs]

    @property
    def classes(self) -> tuple[str, str]:
        return (self.negative, self.positive)

    def data(self, catalogue: pd.DataFrame) -> TaskData:
        """The task's labels and splits on a bundle's catalogue (raises TaskError if unusable)."""
        data = self.prepare(catalogue.reset_index(drop=True))
        for name, rows in (("training", data.train), ("test", data.test)):
            present = set(np.unique(data.y[rows]).tolist()) if len(rows) else set()
            if present != {0, 1}:
                raise TaskError(
                    f"task {self.name}: the bundle's {name} split does not hold both classes "
                    f"({self.negative}, {self.positive}); build the bundle from the task's data "
                    f"({', '.join(p for _, p in self.inputs)} under {config.SHARED_DATA_DIR})."
                )
        return data


# --- Splits ---------------------------------------------------------------------------


def stratified_subset(rows: np.ndarray, y: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """``n`` of ``rows``, drawn with the class proportions of ``rows`` (all if ``n`` is None).

    ``y`` holds the labels of the whole bundle. The result is sorted (bundle order).
    """
    rows = np.asarray(rows)
    if n is None or n >= len(rows):
        return np.sort(rows)
    classes = np.unique(y[rows])
    if n < len(classes):
        raise TaskError(f"a label budget of {n} is smaller than the number of classes ({len(classes)}).")
    from sklearn.model_selection import train_test_split

    chosen, _ = train_test_split(rows, train_size=int(n), stratify=y[rows], random_state=seed)
    return np.sort(chosen)


def label_budget(data: TaskData, n: int | None, seed: int) -> np.ndarray:
    """The training rows of a run: ``n`` stratified labels from the task's training split."""
    if n is not None and n < 2:
        raise TaskError(f"--labels {n}: need at least 2 labelled sources (one of each class).")
    return stratified_subset(data.train, data.y, n, seed)


def _labels(catalogue: pd.DataFrame, negative: set[str], positive: set[str]) -> np.ndarray:
    label = catalogue["label"].fillna("").astype(str)
    y = np.full(len(catalogue), -1, dtype=np.int8)
    y[label.isin(negative).to_numpy()] = 0
    y[label.isin(positive).to_numpy()] = 1
    return y


def _require_labels(name: str, catalogue: pd.DataFrame, y: np.ndarray, inputs: str) -> None:
    if (y >= 0).sum() == 0:
        found = sorted(set(catalogue["label"].fillna("").astype(str)) - {""})
        raise TaskError(
            f"task {name}: the bundle holds none of the task's labels (found {found or 'no labels'}). "
            f"Use a bundle built from {inputs}, or leave out --bundle to build the default one."
        )


# --- mirabest-fr ----------------------------------------------------------------------


def _mirabest_fr(catalogue: pd.DataFrame) -> TaskData:
    from pretrain.evaluate import mirabest_confident_split

    y = _labels(catalogue, {"FRI"}, {"FRII"})
    _require_labels("mirabest-fr", catalogue, y, "MiraBest (mirabest/)")
    confident = catalogue["confident"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    train, test = mirabest_confident_split(
        catalogue, seed=config.FINETUNE_SPLIT_SEED, test_size=config.MIRABEST_TEST_SIZE
    )
    ood = np.flatnonzero((y >= 0) & ~confident)
    return TaskData(y=y, train=np.sort(np.asarray(train)), test=np.sort(np.asarray(test)), ood=ood)


# --- griese-bent ----------------------------------------------------------------------


def _griese_bent(catalogue: pd.DataFrame) -> TaskData:
    from sklearn.model_selection import train_test_split

    y = _labels(catalogue, {"FRI", "FRII", "Compact"}, {"Bent"})
    _require_labels("griese-bent", catalogue, y, "Griese et al. 2023 (griese2023/images/)")
    labelled = np.flatnonzero(y >= 0)
    train, test = train_test_split(
        labelled, test_size=config.GRIESE_TEST_FRACTION, stratify=y[labelled], random_state=config.FINETUNE_SPLIT_SEED
    )
    return TaskData(y=y, train=np.sort(train), test=np.sort(test), ood=np.array([], dtype=int))


# --- frdeep-first-to-nvss -------------------------------------------------------------


def frdeep_release_split(
    catalogue: pd.DataFrame, release: pd.DataFrame, radius_arcsec: float = config.FRDEEP_MATCH_RADIUS_ARCSEC
) -> np.ndarray:
    """The original release's split ("train"/"test", "" if unmatched) for each bundle row.

    Rows are matched to the release catalogue by sky position (the cutouts are centred on
    the catalogued positions; file names only carry truncated coordinates).
    """
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    ra_col, dec_col = release.columns[1], release.columns[2]
    reference = SkyCoord(release[ra_col].astype(str), release[dec_col].astype(str), unit=(u.hourangle, u.deg))
    rows = SkyCoord(catalogue["ra"].to_numpy() * u.deg, catalogue["dec"].to_numpy() * u.deg)
    nearest, separation, _ = rows.match_to_catalog_sky(reference)
    split = release["split"].astype(str).str.strip().str.lower().to_numpy()[nearest]
    return np.where(separation.arcsec <= radius_arcsec, split, "")


def _frdeep_first_to_nvss(catalogue: pd.DataFrame) -> TaskData:
    release_path = config.SHARED_DATA_DIR / "frdeep2" / "catalogue.csv"
    if not release_path.is_file():
        raise TaskError(
            f"task frdeep-first-to-nvss needs FRDEEP's release catalogue at {release_path} "
            "(set EXPLORER_SHARED_DATA to the folder holding frdeep2/)."
        )
    y = _labels(catalogue, {"FRI"}, {"FRII"})
    _require_labels("frdeep-first-to-nvss", catalogue, y, "FRDEEP (frdeep2/FIRST and frdeep2/NVSS)")
    split = frdeep_release_split(catalogue, pd.read_csv(release_path))
    survey = catalogue["survey"].fillna("").astype(str).str.upper().to_numpy()
    labelled = y >= 0
    first, nvss = labelled & (survey == "FIRST"), labelled & (survey == "NVSS")
    if not nvss.any():
        raise TaskError(
            "task frdeep-first-to-nvss: the bundle holds no NVSS images. Build it from both "
            "frdeep2/FIRST and frdeep2/NVSS with duplicate removal off (--duplicate-radius 0), "
            "or leave out --bundle to build the default one."
        )
    return TaskData(
        y=y,
        train=np.flatnonzero(first & (split == "train")),
        test=np.flatnonzero(first & (split == "test")),
        ood=np.flatnonzero(nvss & (split == "test")),
    )


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task(
            "mirabest-fr",
            "FRI vs FRII (MiraBest Confident; Uncertain as out of distribution)",
            "FRI",
            "FRII",
            "MiraBest Uncertain",
            (("fits", "mirabest"),),
            _mirabest_fr,
            "mirabest",
            short="FRI/FRII",
        ),
        Task(
            "griese-bent",
            "bent vs not bent (Griese et al. 2023)",
            "not bent",
            "Bent",
            "",
            (("images", "griese2023/images"),),
            _griese_bent,
            "griese2023",
            short="bent",
        ),
        # FIRST and NVSS images of one source share a position: keep both (no duplicate removal).
        Task(
            "frdeep-first-to-nvss",
            "FRI vs FRII, trained on FRDEEP FIRST, tested on NVSS (cross-survey)",
            "FRI",
            "FRII",
            "FRDEEP NVSS test sources",
            (("fits", "frdeep2/FIRST"), ("fits", "frdeep2/NVSS")),
            _frdeep_first_to_nvss,
            "frdeep2-first-nvss",
            duplicate_radius_arcsec=0.0,
            short="FRI/FRII FIRST→NVSS",
        ),
    )
}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise TaskError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}.") from None


# --- Default bundles --------------------------------------------------------------------


def default_bundle_path(task: Task | str) -> Path:
    """Where the task's default bundle lives (the user's cache; MiraBest's is the app's)."""
    task = get_task(task) if isinstance(task, str) else task
    return config.cache_dir() / "bundles" / task.bundle_name


def default_bundle(task: Task | str, progress=True) -> Path:
    """The task's default bundle, built from its data the first time (then reused)."""
    from pretrain.data.bundle import build_bundle, load_bundle
    from pretrain.errors import BundleError

    task = get_task(task) if isinstance(task, str) else task
    path = default_bundle_path(task)
    try:
        load_bundle(path)
        return path
    except BundleError:
        pass
    inputs = task.input_folders()
    missing = [str(folder) for _, folder in inputs if not Path(folder).is_dir()]
    if missing:
        raise TaskError(
            f"task {task.name}: no bundle given and its data is missing ({', '.join(missing)}). "
            "Pass --bundle, or set EXPLORER_SHARED_DATA to the folder holding the data."
        )
    build_bundle(
        inputs=[(kind, str(folder)) for kind, folder in inputs],
        out=path,
        progress=progress,
        overwrite=True,
        duplicate_radius_arcsec=task.duplicate_radius_arcsec,
    )
    return path
