"""A neighbour list, a selection or a tag set as a VOTable: the Virtual Observatory's table format
(TOPCAT, Aladin, astropy and pyvo read it), with UCDs, units and where the list came from.

Positions carry ``pos.eq.ra;meta.main`` / ``pos.eq.dec;meta.main`` in degrees, so VO tools
recognise them as the table's sky position at once. Provenance (the backbone's SHA-256, the
space, how the list was made) goes in as INFO elements (identifiers, text) and PARAM elements
(numbers and settings). The writer itself is :mod:`pretrain.votable` (the batch look-up's
results go through it too); this module holds what is the app's: its columns' UCDs and units
and a space's provenance. No Streamlit here: :mod:`explorer.widgets.export` offers the file.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from pretrain import votable

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


def votable_bytes(
    frame: pd.DataFrame,
    name: str,
    description: str = "",
    infos: Mapping[str, object] | None = None,
    params: Mapping[str, object] | None = None,
) -> bytes:
    """``frame`` (the app's catalogue columns) as a VOTable document; ``infos`` as INFO, ``params`` as PARAM."""
    return votable.votable_bytes(frame, name, description, infos, params, columns=COLUMN_META)


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
        infos["similarity"] = str(
            getattr(
                space,
                "similarity_description",
                f"cosine similarity of the {inner.embeddings.shape[1]}-d representations",
            )
        )
    else:
        infos["similarity"] = "distance on the published 2-D map (no representations)"
    return infos
