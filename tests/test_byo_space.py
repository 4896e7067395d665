"""`pretrain space --embeddings`: a space from vectors made elsewhere — bad files refused with a clear
message, a good one made into a space with its map, index and provenance, searched by `pretrain
neighbours`, and opened by the app (its images from the FITS files the catalogue names)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench.make_synthetic_embeddings import clustered_embeddings
from pretrain.__main__ import main
from pretrain.files import sha256_file
from pretrain.given_embeddings import EmbeddingsFileError, read_given_embeddings

N, DIM = 400, 16


def _frame(n: int = N, dim: int = DIM, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "source_id": [f"SRC{i:04d}" for i in range(n)],
            "ra": rng.uniform(0, 360, n),
            "dec": rng.uniform(-30, 80, n),
            "label": np.where(np.arange(n) % 3, "FRI", "FRII"),
            "embedding": list(clustered_embeddings(n, dim, seed=seed)),
        }
    )


def _write(frame: pd.DataFrame, path) -> str:
    frame.to_parquet(path, index=False)
    return str(path)


def _error(path, column=None) -> str:
    with pytest.raises(EmbeddingsFileError) as caught:
        read_given_embeddings(path, column)
    return str(caught.value)


def test_a_list_column_and_numbered_columns_read_the_same(tmp_path):
    frame = _frame()
    given = read_given_embeddings(_write(frame, tmp_path / "list.parquet"))
    assert given.vectors.shape == (N, DIM) and given.column == "embedding"
    assert list(given.catalogue.columns) == ["source_id", "ra", "dec", "label"]
    np.testing.assert_array_equal(given.vectors, np.stack(frame["embedding"]))
    numbered = frame.drop(columns="embedding").join(
        pd.DataFrame(np.stack(frame["embedding"]), columns=[f"emb_{i}" for i in range(DIM)])
    )
    numbered["size_1"] = 1.0  # one numbered column alone is not an embedding
    from_columns = read_given_embeddings(_write(numbered, tmp_path / "numbered.parquet"))
    assert from_columns.column == "emb_0..emb_15" and "size_1" in from_columns.catalogue
    np.testing.assert_array_equal(from_columns.vectors, given.vectors)
    frame = frame.rename(columns={"embedding": "zoobot"}).assign(clip=frame["embedding"])
    assert "several list columns (zoobot, clip); say which" in _error(_write(frame, tmp_path / "two.parquet"))
    chosen = read_given_embeddings(tmp_path / "two.parquet", column="clip")
    assert chosen.column == "clip" and "clip" not in chosen.catalogue and "zoobot" in chosen.catalogue


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda f: f.drop(columns="dec"), r"lacks the column\(s\) dec"),
        (lambda f: f.drop(columns="embedding"), "has no embedding"),
        (lambda f: f.assign(source_id=["SRC0007"] * 2 + list(f["source_id"][2:])), "more than once.*SRC0007"),
        (lambda f: f.assign(ra=np.r_[361.0, f["ra"][1:]]), "ra outside 0 <= ra < 360.*SRC0000"),
        (lambda f: f.assign(dec=np.r_[f["dec"][:3], np.nan, f["dec"][4:]]), "dec outside.*or missing.*SRC0003"),
    ],
)
def test_bad_files_are_refused_with_what_is_wrong(tmp_path, spoil, message):
    assert re.search(message, _error(_write(spoil(_frame()), tmp_path / "bad.parquet")))


def test_ragged_non_finite_and_zero_vectors_are_refused(tmp_path):
    frame = _frame()
    vectors = list(frame["embedding"])
    ragged = frame.assign(embedding=vectors[:5] + [vectors[5][:10]] + vectors[6:])
    assert re.search(r"ragged.*16 values.*SRC0005 with 10", _error(_write(ragged, tmp_path / "r.parquet")))
    broken = [v.copy() for v in vectors]
    broken[8][3] = np.nan
    broken[9][0] = np.inf
    text = _error(_write(frame.assign(embedding=broken), tmp_path / "n.parquet"))
    assert "2 vectors in embedding hold NaN, null or infinite values (e.g. SRC0008, SRC0009)" in text
    zero = [v.copy() for v in vectors]
    zero[4][:] = 0
    assert "all zeros (e.g. SRC0004)" in _error(_write(frame.assign(embedding=zero), tmp_path / "z.parquet"))
    table = pa.Table.from_pandas(frame.drop(columns="embedding"), preserve_index=False)
    nulls = [list(map(float, v)) for v in vectors]
    nulls[2] = None
    pq.write_table(table.append_column("embedding", pa.array(nulls, pa.list_(pa.float32()))), tmp_path / "x.parquet")
    assert "1 rows have no embedding (null), e.g. SRC0002" in _error(tmp_path / "x.parquet")


def test_the_command_reports_a_bad_file_and_writes_nothing(tmp_path, capsys):
    path = _write(_frame().drop(columns="ra"), tmp_path / "bad.parquet")
    assert main(["space", "--embeddings", path, "--out", str(tmp_path / "space")]) == 2
    assert "lacks the column(s) ra" in capsys.readouterr().err
    assert not (tmp_path / "space" / "manifest.json").exists()
    assert main(["space", "--embeddings", str(tmp_path / "none.parquet"), "--out", str(tmp_path / "s")]) == 2
    assert "no such file" in capsys.readouterr().err


# --- a whole space (fits a map: slow) ------------------------------------------------------------


@pytest.fixture(scope="module")
def byo_space(tmp_path_factory, mirabest_dir):
    """A given-embeddings space of N sources whose first rows name real MiraBest FITS cutouts, made by the
    command line; its index is made approximate (threshold lowered) so that the FAISS path is exercised."""
    from pretrain.neighbour_index import IndexSettings
    from pretrain.space import space_from_embeddings

    root = tmp_path_factory.mktemp("byo")
    frame = _frame()
    fits = sorted(p for p in mirabest_dir.iterdir() if p.name.endswith((".fits", ".fits.fz")))[:3]
    frame["cutout_file"] = [str(p) for p in fits] + [""] * (N - len(fits))
    path = root / "given.parquet"
    _write(frame, path)
    space = space_from_embeddings(path, root / "space", index_settings=IndexSettings(exact_max_vectors=100))
    return root, path, space


@pytest.mark.slow
def test_a_given_file_becomes_a_space_with_its_provenance_and_index(byo_space, capsys):
    from pretrain.neighbour_index import INDEX_FILE, IVF_FLAT
    from pretrain.space import load_space

    root, path, _ = byo_space
    space = load_space(root / "space")
    assert len(space) == N and space.embeddings.shape == (N, DIM)
    assert {"label", "cutout_file", "umap_x", "umap_y"} <= set(space.catalogue_map.columns)
    assert np.all(np.isfinite(space.map_xy))
    given = space.manifest["vectors_from"]
    assert given["sha256"] == sha256_file(path) and given["dim"] == DIM and given["column"] == "embedding"
    assert space.manifest["weights"]["sha256"] is None and space.vectors_from_file == given
    assert space.manifest["index"]["kind"] == IVF_FLAT and (root / "space" / INDEX_FILE).is_file()
    index = space.neighbour_index
    assert index.kind == IVF_FLAT and index.note == ""  # loaded from the file, memory-mapped
    # a new vector equal to a source lands on that source (the projector's neighbours come from the index)
    np.testing.assert_allclose(space.projector.transform(space.embeddings[7:8])[0], space.map_xy[7], atol=1e-4)

    assert main(["neighbours", "--space", str(root / "space"), "--source", "SRC0007", "-k", "5", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    rows, sims = index.query_row(7, 5)
    assert [n["source_id"] for n in answer["results"][0]["neighbours"]] == [f"SRC{r:04d}" for r in rows]
    assert answer["index"] == IVF_FLAT and answer["results"][0]["query_ms"] > 0
    assert main(["neighbours", "--space", str(root / "space"), "--source", "SRC0007", "-k", "5", "--exact"]) == 0
    text = capsys.readouterr().out
    assert "recall" in text and "median query time" in text and "SRC0007" in text
    assert main(["neighbours", "--space", str(root / "space"), "--source", "NOPE", "-k", "5"]) == 2
    assert "NOPE: not in the space" in capsys.readouterr().err


@pytest.mark.slow
def test_an_old_space_without_an_index_gets_one_on_opening(byo_space, tmp_path):
    import shutil

    from pretrain.neighbour_index import INDEX_FILE, IndexSettings
    from pretrain.space import MANIFEST_FILE, load_space

    root, _, _ = byo_space
    old = tmp_path / "old"
    shutil.copytree(root / "space", old)
    (old / INDEX_FILE).unlink()
    manifest = json.loads((old / MANIFEST_FILE).read_text())
    manifest.pop("index")
    (old / MANIFEST_FILE).write_text(json.dumps(manifest))
    space = load_space(old)
    assert space.neighbour_index.exact  # 400 sources: exact, as before the index existed
    import pretrain.neighbour_index as neighbour_index

    original = neighbour_index.IndexSettings
    try:  # a threshold below the space's size: it is big enough to need an approximate index
        neighbour_index.IndexSettings = lambda: IndexSettings(exact_max_vectors=100)  # type: ignore[assignment,misc]
        space = load_space(old)
        assert not space.neighbour_index.exact and "saved into the space" in space.neighbour_index.note
    finally:
        neighbour_index.IndexSettings = original  # type: ignore[misc]
    assert (old / INDEX_FILE).is_file() and "index" in json.loads((old / MANIFEST_FILE).read_text())


@pytest.mark.slow
def test_the_app_opens_a_given_embeddings_space(byo_space, monkeypatch, tmp_path):
    from explorer.space_registry import discover_spaces, open_space
    from tests.app_space import app_test, gallery_html, plotly_spec

    root, _, space = byo_space
    monkeypatch.setenv("EXPLORER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EXPLORER_SPACES", str(root / "space"))
    entry = [e for e in discover_spaces() if e.path == root / "space"][0]
    opened = open_space(entry)
    assert opened.has_embeddings and opened.has_images and not opened.index.exact
    assert opened.image(0) is not None and opened.image(0).shape == (150, 150)  # from its cutout_file
    assert opened.image(5) is None  # no file named: no image, no error

    at = app_test()
    at.session_state["space_key"] = entry.key
    at.query_params["source"] = "SRC0000"
    at.run()
    assert not at.exception, at.exception
    assert any(f"{N} sources" in c.value for c in at.caption)  # the map shows every source
    assert plotly_spec(at)["data"]
    html = gallery_html(at)
    shown = re.findall(r'data-source-id="([^"]+)"', html)
    expected = opened.neighbours_of_row(0, len(shown)).rows
    assert shown and shown == [f"SRC{r:04d}" for r in expected]
