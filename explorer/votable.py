"""A neighbour list, a selection or a tag set as a VOTable: the Virtual Observatory's table format
(TOPCAT, Aladin, astropy and pyvo read it), with UCDs, units and where the list came from.

Positions carry ``pos.eq.ra;meta.main`` / ``pos.eq.dec;meta.main`` in degrees, so VO tools
recognise them as the table's sky position at once. Provenance (the backbone's SHA-256, the
space, how the list was made) goes in as INFO elements (identifiers, text) and PARAM elements
(numbers and settings). No Streamlit here: :mod:`explorer.widgets.export` offers the file.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd

# column -> (UCD, unit). UCD1+ words (IVOA UCD list): meta.id, pos.eq.*, phys.angSize, src.redshift ...
COLUMN_META: dict[str, tuple[str, str | None]] = {
    "query": ("meta.id", None),
    "rank": ("meta.number", None),
    "cosine_similarity": ("stat.correlation", None),
    "map_distance": ("pos.distance", None),
    "source_id": ("meta.id;meta.main", None),
    "rgz_name": ("meta.id", None),
    "ra": ("pos.eq.ra;meta.main", "deg"),
    "dec": ("pos.eq.dec;meta.main", "deg"),
    "angular_extent_arcsec": ("phys.angSize;src", "arcsec"),
    "angular_extent_estimated_arcsec": ("phys.angSize;src", "arcsec"),
    "label": ("meta.code.class", None),
    "confident": ("meta.code.qual", None),
    "subtype": ("meta.code.class", None),
    "redshift": ("src.redshift", None),
    "outlier_score": ("stat.value", None),
    "tags": ("meta.note", None),
}


def _table_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns VOTable can hold: object columns as text (mixed Python objects are not)."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or str(out[column].dtype) in ("string", "category"):
            out[column] = out[column].map(lambda v: "" if v is None or v is pd.NA else str(v)).astype(str)
        elif out[column].dtype == bool:
            out[column] = out[column].astype(bool)
    return out


def votable_bytes(
    frame: pd.DataFrame,
    name: str,
    description: str = "",
    infos: Mapping[str, object] | None = None,
    params: Mapping[str, object] | None = None,
) -> bytes:
    """``frame`` as a VOTable document (bytes); ``infos`` as INFO, ``params`` as PARAM elements."""
    from astropy.io.votable.tree import Info, Param
    from astropy.table import Table

    table = Table.from_pandas(_table_ready(frame.reset_index(drop=True)))
    for column in table.colnames:
        ucd, unit = COLUMN_META.get(column, (None, None))
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
        ucd, _ = COLUMN_META.get(field.name, (None, None))
        if ucd:
            field.ucd = ucd
    for key, value in (infos or {}).items():
        resource.infos.append(Info(name=str(key), value=str(value)))
    for key, value in (params or {}).items():
        vo_table.params.append(_param(votable, Param, str(key), value))
    buffer = io.BytesIO()
    votable.to_xml(buffer)
    return buffer.getvalue()


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


def _app_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("radio-latent-explorer")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def space_provenance(space) -> dict[str, str]:
    """INFO elements for a space: which space, which backbone (SHA-256), how it was embedded."""
    infos = {"space": str(space.title), "space_key": str(space.key), "explorer_version": _app_version()}
    inner = getattr(space, "space", None)
    if inner is not None:  # an embedding space
        infos["backbone_sha256"] = str(inner.weights_sha256)
        infos["backbone_file"] = str(inner.manifest.get("weights", {}).get("file", ""))
        infos["embedding_symmetry"] = str(inner.symmetry)
        infos["space_created"] = str(inner.manifest.get("created", ""))
        infos["similarity"] = "cosine similarity of the 512-d representations"
    else:
        infos["similarity"] = "distance on the published 2-D map (no representations)"
    return infos
