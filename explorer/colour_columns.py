"""Extra columns to colour a map by, beyond the space's own catalogue (e.g. model predictions).

A *provider* is a function ``provider(space) -> {name: pd.Series indexed by source_id}``.
Register one with :func:`register`; the map page offers every column the providers return
for the current space, after the catalogue's own columns. Sources a provider says nothing
about are shown as "no value".

Built in: fine-tuned models' predictions, read by ``explorer.jobs.prediction_colour_columns``
when that module (the Training page's) provides it; the user's tags ("tag: NAME",
:mod:`explorer.tags`), the outlier score (:mod:`explorer.neighbourhood`) and the pixel
measurements' fluxes on a log scale (:data:`LOG_FLUX_COLUMNS`: they span four decades, so a
linear colour scale shows only the brightest few). The measurements themselves
(:data:`pretrain.data.measurements.COLUMNS`) are catalogue columns of spaces built from a
bundle that has them and are offered as the catalogue's own; a space built before them has
neither, and opens as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

Provider = Callable[[object], dict]
_PROVIDERS: list[Provider] = []
log = logging.getLogger(__name__)


def register(provider: Provider) -> Provider:
    """Add a provider (usable as a decorator). Registering the same function twice is a no-op."""
    if provider not in _PROVIDERS:
        _PROVIDERS.append(provider)
    return provider


def _any_predictions() -> bool:
    """Has any fine-tuning run written predictions? (Checked without importing torch.)"""
    import os

    from pretrain import config

    override = os.environ.get(getattr(config, "RUNS_DIR_ENV", "EXPLORER_RUNS"), "").strip()
    runs = Path(override).expanduser() if override else config.cache_dir() / "runs"
    return runs.is_dir() and any(runs.glob("*/predictions.parquet"))


def _training_predictions(space) -> dict[str, pd.Series]:
    if not _any_predictions():  # explorer.jobs imports torch: not worth it for nothing
        return {}
    try:
        from explorer.jobs import prediction_colour_columns
    except ImportError:
        return {}
    return prediction_colour_columns(space)


def _outlier_score(space) -> dict[str, pd.Series]:
    from explorer.neighbourhood import outlier_colour_columns

    return outlier_colour_columns(space)


def _tags(space) -> dict[str, pd.Series]:
    from explorer.tags import tag_colour_columns

    return tag_colour_columns(space)


LOG_FLUX_COLUMNS = {  # catalogue column -> colour option
    "integrated_flux_mjy": "log10 flux density (mJy)",
    "peak_flux_mjy": "log10 peak flux (mJy/beam)",
}


def _log_fluxes(space) -> dict[str, pd.Series]:
    catalogue = space.catalogue
    columns = {}
    for column, name in LOG_FLUX_COLUMNS.items():
        if column not in catalogue.columns:
            continue
        values = pd.to_numeric(catalogue[column], errors="coerce").to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            logged = np.where(values > 0, np.log10(values), np.nan)
        columns[name] = pd.Series(logged, index=catalogue["source_id"].astype(str).to_numpy(), name=name)
    return columns


def extra_colour_columns(space) -> dict[str, pd.Series]:
    """Every provider's columns for ``space``; a failing provider is logged and skipped."""
    columns: dict[str, pd.Series] = {}
    for provider in [*_PROVIDERS, _log_fluxes, _training_predictions, _outlier_score, _tags]:
        try:
            found = provider(space) or {}
        except Exception as exc:  # one broken provider must not break the map
            log.warning("colour provider %s failed: %s", getattr(provider, "__name__", provider), exc)
            continue
        for name, series in found.items():
            if isinstance(series, pd.Series):
                columns[str(name)] = series
    return columns


def aligned(series: pd.Series, source_ids: pd.Series) -> pd.Series:
    """``series`` (indexed by source_id) in the order of ``source_ids``; missing ones are NA."""
    series = series[~series.index.duplicated(keep="last")]
    return pd.Series(
        series.reindex(source_ids.astype(str).to_numpy()).to_numpy(), index=source_ids.index, name=series.name
    )


SIMILARITY_COLUMN = "similarity to the selected source"


def similarity_column(space, row: int | None) -> pd.Series | None:
    """Cosine similarity of every source's representation to that of catalogue row ``row``
    (aligned with the rows; None without a selected source or without representations)."""
    if row is None or not space.has_embeddings:
        return None
    index = space.index  # a colour for every source: one pass over all vectors, not a search
    return pd.Series(index.similarities(index.unit_vectors_[row]), name=SIMILARITY_COLUMN)
