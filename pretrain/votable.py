"""A table as a VOTable, the Virtual Observatory's table format (TOPCAT, Aladin, astropy and pyvo
read it), with UCDs, units and where the table came from; and such a document read back.

The one writer behind every VOTable the project makes: the app's neighbour lists, selections
and tag sets (:mod:`explorer.votable` gives it the catalogue's columns) and the batch look-up's
results (:mod:`pretrain.batch_lookup`). Each caller passes its columns' UCDs and units; a column
it does not name goes out without them. Provenance goes in as INFO elements (identifiers, text)
and PARAM elements (numbers and settings).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd

ColumnMeta = Mapping[str, tuple[str | None, str | None]]  # column -> (UCD1+ word, unit)


def votable_bytes(
    frame: pd.DataFrame,
    name: str,
    description: str = "",
    infos: Mapping[str, object] | None = None,
    params: Mapping[str, object] | None = None,
    columns: ColumnMeta | None = None,
) -> bytes:
    """``frame`` as a VOTable document (bytes): ``columns`` gives each named column its UCD and unit,
    ``infos`` become INFO elements of the resource and ``params`` PARAM elements of the table."""
    from astropy.io.votable.tree import Info, Param
    from astropy.table import Table

    meta = columns or {}
    table = Table.from_pandas(_table_ready(frame.reset_index(drop=True)))
    for column in table.colnames:
        ucd, unit = meta.get(column, (None, None))
        if unit:
            table[column].unit = unit
        if ucd:
            table[column].meta["ucd"] = ucd
    votable = _from_table(table, name)
    resource = votable.resources[0]
    vo_table = resource.tables[0]
    vo_table.name = name
    if description:
        vo_table.description = description
    for field in vo_table.fields:
        ucd, _ = meta.get(field.name, (None, None))
        if ucd:
            field.ucd = ucd
    for key, value in (infos or {}).items():
        resource.infos.append(Info(name=str(key), value=str(value)))
    for key, value in (params or {}).items():
        vo_table.params.append(_param(votable, Param, str(key), value))
    buffer = io.BytesIO()
    votable.to_xml(buffer)
    return buffer.getvalue()


def read_votable(data: bytes | str) -> tuple[pd.DataFrame, dict[str, str], dict[str, object]]:
    """(rows, INFOs, PARAMs) of a VOTable written by :func:`votable_bytes` (a file path or the bytes)."""
    from astropy.io.votable import parse

    source = io.BytesIO(data) if isinstance(data, bytes) else data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        votable = parse(source)
    resource = votable.resources[0]
    table = resource.tables[0]
    infos = {info.name: info.value for info in resource.infos}
    params = {p.name: (p.value.decode() if isinstance(p.value, bytes) else p.value) for p in table.params}
    return table.to_table().to_pandas(), infos, params


def _table_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns VOTable can hold: object columns as text (mixed Python objects are not)."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or str(out[column].dtype) in ("string", "category"):
            out[column] = out[column].map(lambda v: "" if v is None or v is pd.NA else str(v)).astype(str)
        elif out[column].dtype == bool:
            out[column] = out[column].astype(bool)
    return out


def _from_table(table, name: str):
    from astropy.io.votable import from_table

    return from_table(table, table_id=_xml_id(name))


def _xml_id(name: str) -> str:
    """A valid XML ID from a name (letters, digits, _ - .; starting with a letter)."""
    cleaned = "".join(c if c.isalnum() or c in "_-." else "_" for c in name)
    return cleaned if cleaned[:1].isalpha() else "t_" + cleaned


def _param(votable, param_class, name: str, value: object):
    if isinstance(value, (bool, np.bool_)):
        return param_class(votable, name=name, datatype="boolean", value=bool(value))
    if isinstance(value, (int, np.integer)):
        return param_class(votable, name=name, datatype="long", value=int(value))
    if isinstance(value, (float, np.floating)):
        unit = "arcsec" if name.endswith("_arcsec") else None
        return param_class(votable, name=name, datatype="double", value=float(value), unit=unit)
    text = str(value)
    return param_class(votable, name=name, datatype="char", arraysize="*", value=text)
