"""Neighbours by the representation and the pixel measurements together.

The study of issue #12 (BENCHMARKS.md, ``bench_measurements``) found that a source's
nearest neighbours share its Fanaroff-Riley class more often, also for sources kept out of
pretraining, and the linear probe errs less, when two of its pixel measurements
(``pretrain/data/measurements.py``) are appended to the representation: the angular extent
(log) and the FR ratio.

:class:`MeasuredRepresentation` makes those vectors, scikit-learn style: ``fit`` learns,
from a space's own sources, each representation column's mean and scale and each
measurement's (logged where it spans decades) median, mean and scale; ``transform`` gives
the standardised representation with the standardised measurements appended, each
weighted ``weight * sqrt(d) / 10`` of one representation column (d columns): at the default
weight 3 the two measurements together count for about a tenth of the cosine's variance
(2 * 0.09 d against d). A measurement that is missing (NaN: one-sided source, no emission)
takes the space's median, so it neither pulls nor pushes.

A new image (a look-up, an upload) is measured from its cutout
(:func:`cutout_neighbour_measurements`) and transformed with the space's fitted scales.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from pretrain import config

LOGGED = frozenset({"angular_extent_estimated_arcsec", "integrated_flux_mjy", "peak_flux_mjy", "lobe_flux_ratio"})


def has_measurements(table: pd.DataFrame, columns: tuple[str, ...] = config.NEIGHBOUR_MEASUREMENTS) -> bool:
    """Whether ``table`` (a space's catalogue) has every measurement column, each measured somewhere."""
    return all(c in table.columns and pd.to_numeric(table[c], errors="coerce").notna().any() for c in columns)


def standardised_measurements(table: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """(N, m) the named measurements of a table, each standardised over it (logged where
    :data:`LOGGED` says; NaN: the median): the columns :class:`MeasuredRepresentation` appends."""
    measured = MeasuredRepresentation(columns)
    raw = measured._raw(table)
    return measured._fit_measurements(raw)._standardise(raw)


class MeasuredRepresentation:
    """Representation + standardised pixel measurements, for cosine neighbours (fit / transform).

    >>> measured = MeasuredRepresentation().fit(space.embeddings, space.catalogue_map)
    >>> vectors = measured.transform(space.embeddings, space.catalogue_map)   # (N, d + 2)
    >>> query = measured.transform(new_embedding[None], [cutout_neighbour_measurements(cutout)])
    """

    def __init__(
        self,
        columns: tuple[str, ...] = config.NEIGHBOUR_MEASUREMENTS,
        weight: float = config.NEIGHBOUR_MEASUREMENT_WEIGHT,
    ):
        self.columns = tuple(columns)
        self.weight = float(weight)

    def _raw(self, table) -> np.ndarray:
        """(N, m) measurements, logged where :data:`LOGGED` says (non-positive values: NaN)."""
        frame = pd.DataFrame(list(table)) if not isinstance(table, pd.DataFrame) else table
        columns = []
        for name in self.columns:
            values = pd.to_numeric(frame[name], errors="coerce").to_numpy(np.float64) if name in frame else None
            if values is None:
                values = np.full(len(frame), np.nan)
            if name in LOGGED:
                with np.errstate(divide="ignore", invalid="ignore"):
                    values = np.log(np.where(values > 0, values, np.nan))
            columns.append(values)
        return np.column_stack(columns) if columns else np.zeros((len(frame), 0))

    def fit(self, embeddings: np.ndarray, table: pd.DataFrame) -> MeasuredRepresentation:
        """Learn the scales from a space's representations (N, d) and its catalogue (N rows)."""
        embeddings = np.asarray(embeddings, dtype=np.float64)
        if len(embeddings) != len(table):
            raise ValueError(f"{len(embeddings)} representations but {len(table)} catalogue rows")
        self.feature_mean_ = embeddings.mean(axis=0)
        self.feature_scale_ = embeddings.std(axis=0) + 1e-6
        self._fit_measurements(self._raw(table))
        self.n_features_in_ = embeddings.shape[1]
        return self

    def _fit_measurements(self, raw: np.ndarray) -> MeasuredRepresentation:
        with np.errstate(all="ignore"):
            median = np.nanmedian(raw, axis=0)
        self.fill_ = np.where(np.isfinite(median), median, 0.0)  # a column never measured: all at 0
        filled = np.where(np.isfinite(raw), raw, self.fill_)
        self.measurement_mean_ = filled.mean(axis=0)
        self.measurement_scale_ = filled.std(axis=0) + 1e-9
        return self

    def _standardise(self, raw: np.ndarray) -> np.ndarray:
        filled = np.where(np.isfinite(raw), raw, self.fill_)
        return (filled - self.measurement_mean_) / self.measurement_scale_

    def transform(self, embeddings: np.ndarray, table) -> np.ndarray:
        """(N, d + m) float32 vectors for ``embeddings`` (N, d) and their measurements (a
        DataFrame or a list of mappings, N rows; a missing column or value: the median)."""
        embeddings = np.asarray(embeddings, dtype=np.float64)
        if embeddings.ndim != 2 or embeddings.shape[1] != self.n_features_in_:
            raise ValueError(f"expected representations (N, {self.n_features_in_}), got {embeddings.shape}")
        z = (embeddings - self.feature_mean_) / self.feature_scale_
        raw = self._raw(table)
        if len(raw) != len(z):
            raise ValueError(f"{len(z)} representations but {len(raw)} rows of measurements")
        measured = self._standardise(raw)
        scale = self.weight * np.sqrt(z.shape[1]) / 10.0
        return np.column_stack([z, scale * measured]).astype(np.float32)

    def fit_transform(self, embeddings: np.ndarray, table: pd.DataFrame) -> np.ndarray:
        return self.fit(embeddings, table).transform(embeddings, table)

    def describe(self) -> str:
        """The measurements appended, for people: "angular extent, FR ratio"."""
        names = {"angular_extent_estimated_arcsec": "angular extent", "fr_ratio": "FR ratio"}
        return ", ".join(names.get(c, c.replace("_", " ")) for c in self.columns)


def cutout_neighbour_measurements(cutout, survey=None) -> Mapping[str, float]:
    """A new image's measurements for :meth:`MeasuredRepresentation.transform`, from its cutout
    (the same source mask and figures as a bundle's: ``cutout_measurements``)."""
    from pretrain.data.measurements import cutout_measurements

    measured = cutout_measurements(cutout, survey)
    values = measured.columns()
    values["angular_extent_estimated_arcsec"] = measured.angular_extent_arcsec
    return {name: float(value) for name, value in values.items() if isinstance(value, (int, float))}


def measured_or_typical(cutout, survey=None) -> dict[str, float]:
    """:func:`cutout_neighbour_measurements`, or {} (the space's typical values stand in) for an
    image the extent reads but the measurements cannot: a look-up never fails for want of them."""
    from pretrain.errors import ExplorerError

    try:
        return dict(cutout_neighbour_measurements(cutout, survey))
    except (ExplorerError, ValueError, KeyError):
        return {}
