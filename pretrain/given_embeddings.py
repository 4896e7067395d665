"""Embeddings made elsewhere (Zoobot, AstroCLIP, a user's own model), read from a Parquet file and checked.

The file holds one row per source: ``source_id``, ``ra`` and ``dec`` (degrees, ICRS), the
embedding, and any catalogue columns (kept, shown and offered as colours by the app). The
embedding is either one list column (``embedding``, ``embeddings``, ``vector`` or
``features``, or the only list column, or the one ``--column`` names) or numbered float
columns ``PREFIX_0 .. PREFIX_{D-1}`` (``emb_0, emb_1, ...``); any dimension. A column
``cutout_file`` may name each source's FITS cutout (relative paths are taken from the
Parquet file's folder); the app then shows those images.

Every problem is an :class:`EmbeddingsFileError` that says what is wrong and where.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pretrain.errors import ExplorerError

REQUIRED_COLUMNS = ("source_id", "ra", "dec")
LIST_COLUMN_NAMES = ("embedding", "embeddings", "vector", "features")
CUTOUT_FILE_COLUMN = "cutout_file"
_NUMBERED = re.compile(r"^(.*?)_?(\d+)$")
SHOWN = 5  # ids named in a message


class EmbeddingsFileError(ExplorerError):
    """A given embeddings file cannot make a space (the message says why and what to do)."""


@dataclass
class GivenEmbeddings:
    vectors: np.ndarray  # (N, D) float32
    catalogue: pd.DataFrame  # source_id (str), ra, dec and the other columns, in the file's row order
    column: str  # the list column, or "PREFIX_0..PREFIX_{D-1}"
    path: Path


def read_given_embeddings(path: str | Path, column: str | None = None) -> GivenEmbeddings:
    """Read and check an embeddings Parquet file (see the module's docstring)."""
    path = Path(path)
    if not path.is_file():
        raise EmbeddingsFileError(f"{path}: no such file; pass --embeddings FILE.parquet.")
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise EmbeddingsFileError(f"{path} is not a readable Parquet file ({exc}).") from exc
    names = table.column_names
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise EmbeddingsFileError(
            f"{path} lacks the column(s) {', '.join(missing)}; it needs {', '.join(REQUIRED_COLUMNS)} and an "
            f"embedding. Its columns: {_listed(names)}."
        )
    embedding_columns, column_name = _embedding_columns(table, path, column)
    ids = pd.Series(table.column("source_id").to_pandas()).astype(str)
    if table.column("source_id").null_count:
        raise EmbeddingsFileError(f"{path}: {table.column('source_id').null_count} rows have no source_id.")
    if len(ids) == 0:
        raise EmbeddingsFileError(f"{path} has no rows.")
    _check_unique(ids, path)
    vectors = _vectors(table, embedding_columns, ids, path)
    _check_finite(vectors, ids, path, column_name)
    catalogue = table.drop_columns(embedding_columns).to_pandas()
    catalogue["source_id"] = ids.to_numpy()
    _check_positions(catalogue, ids, path)
    if CUTOUT_FILE_COLUMN in catalogue:
        catalogue[CUTOUT_FILE_COLUMN] = _resolved_paths(catalogue[CUTOUT_FILE_COLUMN], path.parent)
    return GivenEmbeddings(vectors, catalogue, column_name, path)


def _listed(names, shown: int = 12) -> str:
    names = list(names)
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _is_list(field: pa.Field) -> bool:
    return pa.types.is_list(field.type) or pa.types.is_large_list(field.type) or pa.types.is_fixed_size_list(field.type)


def _embedding_columns(table: pa.Table, path: Path, column: str | None) -> tuple[list[str], str]:
    """The columns holding the embedding, and how to name them in messages."""
    schema = table.schema
    lists = [f.name for f in schema if _is_list(f)]
    if column is not None:
        if column in schema.names and column in lists:
            return [column], column
        numbered = _numbered_groups(schema).get(column)
        if numbered:
            return numbered, f"{numbered[0]}..{numbered[-1]}"
        raise EmbeddingsFileError(
            f"{path}: --column {column} is neither a list column nor the prefix of numbered columns "
            f"({column}_0, {column}_1, ...). List columns: {_listed(lists) or 'none'}."
        )
    for name in LIST_COLUMN_NAMES:
        if name in lists:
            return [name], name
    if len(lists) == 1:
        return lists, lists[0]
    if len(lists) > 1:
        raise EmbeddingsFileError(f"{path} has several list columns ({_listed(lists)}); say which with --column NAME.")
    groups = {prefix: cols for prefix, cols in _numbered_groups(schema).items() if len(cols) >= 2}
    if len(groups) == 1:
        cols = next(iter(groups.values()))
        return cols, f"{cols[0]}..{cols[-1]}"
    if len(groups) > 1:
        raise EmbeddingsFileError(
            f"{path} has several sets of numbered columns ({', '.join(p + '_0..' for p in groups)}); "
            "say which is the embedding with --column PREFIX."
        )
    raise EmbeddingsFileError(
        f"{path} has no embedding: expected a list column ({', '.join(LIST_COLUMN_NAMES)}) or numbered float "
        f"columns (emb_0, emb_1, ...). Its columns: {_listed(schema.names)}."
    )


def _numbered_groups(schema: pa.Schema) -> dict[str, list[str]]:
    """Numeric columns named PREFIX_0 .. PREFIX_{D-1} (numbers contiguous from 0), by prefix, in order."""
    found: dict[str, dict[int, str]] = {}
    for field in schema:
        match = _NUMBERED.match(field.name)
        if match and (pa.types.is_floating(field.type) or pa.types.is_integer(field.type)):
            found.setdefault(match.group(1), {})[int(match.group(2))] = field.name
    return {
        prefix: [numbers[i] for i in range(len(numbers))]
        for prefix, numbers in found.items()
        if prefix and set(numbers) == set(range(len(numbers)))
    }


def _vectors(table: pa.Table, columns: list[str], ids: pd.Series, path: Path) -> np.ndarray:
    n = len(ids)
    if len(columns) > 1:  # numbered columns
        return np.column_stack([table.column(c).to_numpy().astype(np.float32) for c in columns])
    name = columns[0]
    chunked = table.column(name)
    if chunked.null_count:
        rows = np.flatnonzero(chunked.is_null().to_numpy(zero_copy_only=False))
        raise EmbeddingsFileError(
            f"{path}: {len(rows)} rows have no {name} (null), e.g. {_ids(ids, rows)}; every source needs a vector."
        )
    lengths = pc.list_value_length(chunked).to_numpy(zero_copy_only=False)
    dim = int(np.bincount(lengths).argmax()) if n else 0
    ragged = np.flatnonzero(lengths != dim)
    if len(ragged):
        raise EmbeddingsFileError(
            f"{path}: the {name} vectors are ragged: most have {dim} values but {len(ragged)} rows do not "
            f"(e.g. {_ids(ids, ragged)} with {lengths[ragged[0]]}). Every vector must have the same length."
        )
    if dim == 0:
        raise EmbeddingsFileError(f"{path}: the {name} vectors are empty.")
    array = chunked.combine_chunks()
    values = pc.list_flatten(array)
    if not (pa.types.is_floating(values.type) or pa.types.is_integer(values.type)):
        raise EmbeddingsFileError(f"{path}: {name} holds {values.type} values; it must hold numbers.")
    if values.null_count:  # a null value (how pandas writes NaN) is reported with the non-finite ones
        values = pc.fill_null(values.cast(pa.float32()), float("nan"))
    return values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(n, dim)


def _ids(ids: pd.Series, rows) -> str:
    rows = np.asarray(rows)
    shown = ", ".join(ids.iloc[rows[:SHOWN]].tolist())
    return shown + (f" and {len(rows) - SHOWN} more" if len(rows) > SHOWN else "")


def _check_unique(ids: pd.Series, path: Path) -> None:
    repeated = ids[ids.duplicated(keep=False)]
    if len(repeated):
        names = repeated.drop_duplicates()
        raise EmbeddingsFileError(
            f"{path}: source_id must be unique, but {len(names)} ids appear more than once "
            f"(e.g. {', '.join(names.iloc[:SHOWN])}). Remove or rename the duplicates."
        )


def _check_finite(vectors: np.ndarray, ids: pd.Series, path: Path, column: str) -> None:
    bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if len(bad):
        raise EmbeddingsFileError(
            f"{path}: {len(bad)} vectors in {column} hold NaN, null or infinite values (e.g. {_ids(ids, bad)}); "
            "fix or drop those rows."
        )
    zero = np.flatnonzero(~np.any(vectors != 0, axis=1))
    if len(zero):
        raise EmbeddingsFileError(
            f"{path}: {len(zero)} vectors in {column} are all zeros (e.g. {_ids(ids, zero)}): a zero vector has "
            "no direction, so no cosine similarity. Fix or drop those rows."
        )


def _check_positions(catalogue: pd.DataFrame, ids: pd.Series, path: Path) -> None:
    for name, low, high, note in (("ra", 0.0, 360.0, "0 <= ra < 360"), ("dec", -90.0, 90.0, "-90 <= dec <= 90")):
        values = pd.to_numeric(catalogue[name], errors="coerce").to_numpy(np.float64)
        inside = (values >= low) & ((values < high) if name == "ra" else (values <= high))
        bad = np.flatnonzero(~inside)
        if len(bad):
            raise EmbeddingsFileError(
                f"{path}: {len(bad)} rows have {name} outside {note} degrees or missing (e.g. {_ids(ids, bad)}: "
                f"{values[bad[0]]}). Positions must be ICRS degrees."
            )
        catalogue[name] = values


def _resolved_paths(files: pd.Series, folder: Path) -> pd.Series:
    """Cutout file names as absolute paths (relative ones from the Parquet file's folder); empty stays empty."""

    def resolve(name) -> str:
        if not isinstance(name, str) or not name.strip():
            return ""
        file = Path(name).expanduser()
        return str(file if file.is_absolute() else (folder / file).resolve())

    return files.map(resolve)
