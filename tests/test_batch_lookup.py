"""A list looked up at once (pretrain.batch_lookup, `lookup --list`): the SkyView stand-in, failures mixed in.

The list mixes real FIRST positions (the stand-in serves the real files' pixels) and names
with rows that must fail, each its own way: malformed, outside the footprint (refused at
once, or SkyView's blank image), an unknown name, a service that answers HTTP 500, one
that never answers in time. Every row must end with a result or a clear error.
"""

from __future__ import annotations

import io
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd
import pytest
from astropy.io.votable import parse as parse_votable
from astropy.table import Table

from explorer.sky import separation_arcsec
from pretrain import batch_lookup as batch
from pretrain.data.first_client import FirstCutoutClient
from pretrain.errors import ExplorerError
from tests.standins.skyview import SkyViewStandIn, real_files

# Generous for a loaded 2-core machine; the slow row (the stand-in waits 12 s) gives up after 6 s.
FAST = dict(timeout_s=5.0, retries=1, backoff_s=0.01, total_timeout_s=6.0)


# --- parsing (no network) -------------------------------------------------------------------
def test_plain_lines_positions_names_comments_and_bad_lines():
    rows = batch.parse_list(
        "# my sources\n139.148 +4.681\n\n09 16 35.5 +04 40 52\n3C 236\n400 +10\n139.1\n" + "x" * 1200 + "\n",
        "list.txt",
    )
    assert [r.line for r in rows] == [2, 4, 5, 6, 7, 8]  # comments and blank lines skipped, line numbers kept
    assert rows[0].position is not None and rows[0].position.ra.deg == pytest.approx(139.148)
    assert rows[1].position is not None and rows[1].position.ra.deg == pytest.approx(139.14792, abs=1e-4)
    assert rows[2].look_up_by_name and rows[2].name == "3C 236"
    assert rows[3].status == batch.MALFORMED and "outside 0..360" in rows[3].error
    assert rows[4].status == batch.MALFORMED and "not a sky position" in rows[4].error  # one number: not a name
    assert rows[5].status == batch.MALFORMED and f"at most {batch.MAX_LINE_CHARS}" in rows[5].error
    assert all(not r.status for r in rows[:3])  # good rows wait to be looked up


@pytest.mark.parametrize(
    "text",
    [
        "name,ra,dec\nA,139.148,4.681\nB,,\n",
        "Object;RAJ2000;DEJ2000\nA;139.148;+4.681\nB;;\n",
        "RA [deg]\tDec [deg]\tsource_name\n139.148\t4.681\tA\n\t\tB\n",
        "_RAJ2000|_DEJ2000|MAIN_ID\n139.148|4.681|A\n||B\n",
    ],
)
def test_tables_find_their_position_and_name_columns(text):
    rows = batch.parse_list(text)
    assert len(rows) == 2
    assert rows[0].position.dec.deg == pytest.approx(4.681) and rows[0].name == "A"
    assert rows[1].position is None and rows[1].look_up_by_name and rows[1].name == "B"


def test_table_rows_that_cannot_be_read_say_why():
    rows = batch.parse_list("name,ra,dec\nC,3C,x\nD,139.1,\n,,\n3C 236,,\n")
    assert [r.status for r in rows] == [batch.MALFORMED] * 3 + [""]
    assert "not a sky position" in rows[0].error
    assert "only RA is given" in rows[1].error
    assert "neither RA and Dec nor a name" in rows[2].error
    assert rows[3].name == "3C 236"


def test_a_one_column_name_table_keeps_names_with_blanks():
    rows = batch.parse_list("Name\n3C 236\nNGC 1265\n")
    assert [r.name for r in rows] == ["3C 236", "NGC 1265"]


def test_a_votable_is_read_by_ucd():
    table = Table({"id": ["A", "B"], "alpha": [139.148, np.nan], "delta": [4.681, np.nan]})
    buffer = io.BytesIO()
    table.write(buffer, format="votable")
    from astropy.io.votable import parse

    votable = parse(io.BytesIO(buffer.getvalue()))
    fields = {f.name: f for f in votable.get_first_table().fields}
    fields["alpha"].ucd, fields["delta"].ucd = "pos.eq.ra;meta.main", "pos.eq.dec;meta.main"
    out = io.BytesIO()
    votable.to_xml(out)
    rows = batch.parse_list(out.getvalue(), "list.vot")
    assert rows[0].position.ra.deg == pytest.approx(139.148) and rows[0].name == "A"
    assert rows[1].position is None and rows[1].name == "B"  # masked / NaN position: the name is looked up


def test_a_broken_votable_and_caps_refuse_the_list_with_a_message():
    with pytest.raises(ExplorerError, match="not a readable VOTable"):
        batch.parse_list(b"<?xml version='1.0'?><VOTABLE><RESOURCE><TABLE>", "list.vot")
    with pytest.raises(ExplorerError, match=f"at most {batch.MAX_ROWS} are looked up"):
        batch.parse_list("\n".join(f"{i % 360} +10" for i in range(batch.MAX_ROWS + 1)))
    with pytest.raises(ExplorerError, match="no positions or names"):
        batch.parse_list("# nothing\n\n")
    with pytest.raises(ExplorerError, match="MB is read"):
        batch.parse_list(b"1" * (batch.MAX_LIST_BYTES + 1))


def test_the_results_votable_has_ucds_units_provenance_and_reads_back_as_a_list():
    from pretrain.votable import read_votable

    placed = batch.ListRow(row=1, line=2, text="139.148 +4.681", position=batch.position_of(139.148, 4.681))
    placed.status, placed.extent_arcsec, placed.map_xy = batch.OK, 42.5, np.array([1.5, -2.0])
    placed.neighbour_rows, placed.neighbour_scores = np.array([1, 0]), np.array([0.97, 0.91], dtype=np.float32)
    failed = batch.ListRow(row=2, line=3, text="400 +10")
    failed.fail(batch.MALFORMED, "RA 400 is outside 0-360 degrees.")
    frame = batch.results_frame([placed, failed], pd.DataFrame({"source_id": ["s0", "s1"]}), k=2)
    document = batch.results_votable(frame, {"backbone_sha256": "ab" * 32})

    fields = {f.name: f for f in parse_votable(io.BytesIO(document)).get_first_table().fields}
    assert (fields["ra"].ucd, str(fields["ra"].unit)) == ("pos.eq.ra;meta.main", "deg")
    assert (fields["angular_extent_arcsec"].ucd, str(fields["angular_extent_arcsec"].unit)) == (
        "phys.angSize;src",
        "arcsec",
    )
    assert fields["nn2_source_id"].ucd == "meta.id" and fields["nn1_cosine"].ucd == "stat.correlation"
    assert fields["status"].ucd == "meta.code.status" and fields["in_space_sep_arcsec"].ucd == "pos.angDistance"
    rows, infos, _ = read_votable(document)
    assert rows["status"].tolist() == [batch.OK, batch.MALFORMED]
    assert rows["nn1_source_id"].tolist()[0] == "s1" and rows["nn1_cosine"].iloc[0] == pytest.approx(0.97)
    assert infos == {"backbone_sha256": "ab" * 32}
    # the results file is itself a list the look-up reads (its position columns found by UCD)
    again = batch.parse_list(document, "results.vot")
    assert again[0].position is not None and again[0].position.ra.deg == pytest.approx(139.148)


def test_the_default_space_is_the_apps():
    from explorer.default_space import space_path

    assert batch.default_space_path() == space_path()


# --- the stand-in with failures mixed in -----------------------------------------------------
class FailingSkyView(SkyViewStandIn):
    """The stand-in, answering HTTP 500 or nothing in time for chosen positions (others as usual)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.failing: dict[tuple[float, float], str] = {}  # (ra, dec) -> "500" or "slow"

    def _log(self, kind: str, path: str) -> int | None:
        status = super()._log(kind, path)
        if kind != "query":
            return status
        text = (parse_qs(urlsplit(path).query).get("Position") or [""])[0]
        where = self._resolve(text.strip())
        for (ra, dec), how in self.failing.items():
            if where is not None and separation_arcsec(ra, dec, *where) < 1.0:
                if how == "slow":
                    self._stop.wait(self.slow_s)
                    return status
                return 500
        return status

    def queried(self) -> list[tuple[float, float] | None]:
        with self._lock:
            paths = [p for kind, p in self.requests if kind == "query"]
        return [self._resolve((parse_qs(urlsplit(p).query).get("Position") or [""])[0]) for p in paths]


@pytest.fixture(scope="module")
def failing_skyview(shared_data):
    server = FailingSkyView(shared_data).start()
    server.slow_s = 12.0
    yield server
    server.stop()


def _real_positions(shared_data: Path, count: int, skip: int = 0) -> list[tuple[float, float]]:
    files = [f for f in real_files(shared_data)[0] if f.kind == "mirabest"]
    return [(f.ra, f.dec) for f in files[skip : skip + count]]


def mixed_list(
    good: list[tuple[float, float]], server: FailingSkyView, bad_lines: tuple[tuple[str, str], ...] = ()
) -> tuple[str, dict[int, str]]:
    """A list of the ``good`` positions and names with failing rows mixed in; expected status per line."""
    failing_500, failing_slow = good[-2], good[-1]
    server.failing = {failing_500: "500", failing_slow: "slow"}
    lines = ["# a list from a paper", "RA,Dec,Name"]
    expected: dict[int, str] = {}

    def add(text: str, status: str) -> None:
        lines.append(text)
        expected[len(lines)] = status

    for i, (ra, dec) in enumerate(good[:-2]):
        add(f"{ra:.5f},{dec:+.5f},src{i}", batch.OK)
        if i == 1:
            add(",,3C 236", batch.OK)
            add("400,+10,", batch.MALFORMED)
        if i == 3:
            add("10.0,-60.0,far south", batch.OUTSIDE)  # refused without a request
            add("280.0,+5.0,galactic plane", batch.OUTSIDE)  # SkyView's blank image
        if i == 5:
            add(",,Nonexistent galaxy 123", batch.UNRESOLVED)
            add("12:99:00,+10:00:00,bad minutes", batch.MALFORMED)
            add("139.1,,half", batch.MALFORMED)
    add(f"{failing_500[0]:.5f},{failing_500[1]:+.5f},fails", batch.SERVICE)
    add(f"{failing_slow[0]:.5f},{failing_slow[1]:+.5f},hangs", batch.NO_ANSWER)
    add(",,3C 192", batch.OK)
    for text, status in bad_lines:  # more rows that must fail, each its own way
        add(text, status)
    return "\n".join(lines) + "\n", expected


@pytest.mark.slow  # ~12 s: 18 rows, one of them waits for its time-out
def test_every_row_ends_with_its_result_or_a_clear_error_and_a_rerun_uses_the_cache(
    shared_data, failing_skyview, tmp_path
):
    failing_skyview.reset()
    text, expected = mixed_list(_real_positions(shared_data, 10), failing_skyview)
    rows = batch.parse_list(text, "paper.csv")
    assert len(rows) == len(expected) == 18

    def client():
        return FirstCutoutClient(base_url=failing_skyview.url, cache_dir=tmp_path / "cutouts", **FAST)

    seen: list[int] = []
    batch.fetch_rows(rows, client, workers=4, progress=lambda done, total, row: seen.append(done))
    assert sorted(seen) == list(range(1, 19)) and seen[-1] == 18  # one report per row, in this thread
    assert {r.line: r.status for r in rows} == expected
    for row in rows:
        if row.ok:
            assert row.model_image is not None and row.model_image.shape == (150, 150)
            assert Path(row.cutout_path).is_file() and not row.from_cache
            assert np.isfinite(row.extent_arcsec)
            if row.position is not None:  # the cutout is where the list said
                c = row.centre
                assert separation_arcsec(c.ra.deg, c.dec.deg, row.position.ra.deg, row.position.dec.deg) < 2
        else:
            assert row.error and row.model_image is None
    by_status = {r.status: r.error for r in rows}
    assert "outside the FIRST survey footprint" in by_status[batch.OUTSIDE]
    assert "could not resolve the name 'Nonexistent galaxy 123'" in by_status[batch.UNRESOLVED]
    assert "answered HTTP 500" in by_status[batch.SERVICE]
    assert "within the time-out" in by_status[batch.NO_ANSWER]

    # the rerun: the rows done come from the cache; only the rows that failed at the service ask again
    failing_skyview.reset()
    failing_skyview.failing = {}
    again = batch.parse_list(text, "paper.csv")
    batch.fetch_rows(again, client, workers=4)
    assert all(r.from_cache for r in again if r.line in {r0.line for r0 in rows if r0.ok})
    assert sum(r.ok for r in again) == sum(r.ok for r in rows) + 2  # the 500 and the slow row now work
    asked = failing_skyview.queried()
    retried = [r for r in rows if r.status in (batch.SERVICE, batch.NO_ANSWER, batch.UNRESOLVED, batch.OUTSIDE)]
    assert len(asked) == len(retried) - 1  # "far south" is refused before any request, as before


def test_measured_rows_carry_their_cutouts_pixel_measurements(shared_data, failing_skyview, tmp_path):
    """``measure=True`` (neighbours by representation + measurements) measures each row from the
    cutout in hand, as a single look-up measures its cutout; without it rows carry none."""
    from pretrain.data.fits_io import read_cutout
    from pretrain.measured_neighbours import cutout_neighbour_measurements

    failing_skyview.reset()
    text = "\n".join(f"{ra:.5f} {dec:+.5f}" for ra, dec in _real_positions(shared_data, 3, skip=20))

    def client():
        return FirstCutoutClient(base_url=failing_skyview.url, cache_dir=tmp_path / "cutouts", **FAST)

    measured = batch.fetch_rows(batch.parse_list(text), client, workers=2, measure=True)
    plain = batch.fetch_rows(batch.parse_list(text), client, workers=2)
    assert all(r.ok for r in measured + plain)
    assert all(r.measurements == {} for r in plain)
    for row in measured:
        expected = dict(cutout_neighbour_measurements(read_cutout(row.cutout_path)))
        assert row.measurements == expected
        assert np.isfinite(row.measurements["angular_extent_estimated_arcsec"])
        assert row.measurements["angular_extent_estimated_arcsec"] == pytest.approx(row.extent_arcsec)


def test_an_unexpected_failure_is_that_rows_error_only(tmp_path):
    class Broken:  # a client whose every method fails with a bug
        def __getattr__(self, name):
            raise RuntimeError("bug in the client")

    rows = batch.parse_list("139.148 +4.681\n3C 236\n")
    batch.fetch_rows(rows, Broken, workers=2)
    assert [r.status for r in rows] == [batch.UNEXPECTED] * 2 and "RuntimeError: bug in the client" in rows[0].error


# --- on a space: the command line and the neighbours --------------------------------------
@pytest.fixture(scope="module")
def small_space(mirabest_dir, tmp_path_factory):
    from tests.app_space import build_small_space, small_space_root

    return build_small_space(mirabest_dir, small_space_root(tmp_path_factory))


MORE_BAD_LINES = (  # (line, status): no cutout is fetched for any of them
    ("200.0,-75.0,deep south", batch.OUTSIDE),
    ("15.0,-89.9,pole", batch.OUTSIDE),
    ("359.0,-70.5,south again", batch.OUTSIDE),
    ("abc,def,letters", batch.MALFORMED),
    ("1e5,2,huge", batch.MALFORMED),
    ("12,95,dec too large", batch.MALFORMED),
    ("23:61:00,+10:00:00,bad minutes", batch.MALFORMED),
    ("10,,no dec", batch.MALFORMED),
    (",20,no ra", batch.MALFORMED),
    (",,", batch.MALFORMED),
    ("-5,10,negative ra", batch.MALFORMED),
    ("12 30 00,+100 00 00,bad dec", batch.MALFORMED),
    ("nan,nan,not numbers", batch.MALFORMED),
    ("12,-91,below the pole", batch.MALFORMED),
    ("200.0,-80.0,far south 2", batch.OUTSIDE),
    ("1.2.3,4,two points", batch.MALFORMED),
    ("0.0,-45.0,just south of FIRST", batch.OUTSIDE),
    ("12h30m,+10d,half sexagesimal", batch.MALFORMED),
    ("100.0,-41.0,below FIRST's limit", batch.OUTSIDE),
    ("300.0,-50.0,south", batch.OUTSIDE),
    ("180,+95,beyond the pole", batch.MALFORMED),
    ("361,0,ra too large", batch.MALFORMED),
    ("12:30,+10:00,two sexagesimal parts", batch.MALFORMED),
    ("12 30 00,,ra only", batch.MALFORMED),
    ("+,-,signs", batch.MALFORMED),
    ("0x10,0x20,hex", batch.MALFORMED),
)


def test_command_line_list_writes_results_with_neighbours_and_resumes_from_the_cache(
    small_space, shared_data, failing_skyview, tmp_path, monkeypatch, capsys
):
    from pretrain.__main__ import main
    from pretrain.space import load_space

    monkeypatch.setenv("EXPLORER_WEIGHTS", str(small_space.weights))  # the space's (random) backbone
    monkeypatch.setenv("EXPLORER_SKYVIEW_URL", failing_skyview.url)
    space_dir = small_space.cache / "spaces" / "mirabest"
    space = load_space(space_dir)
    catalogue = space.catalogue_map
    in_space = [(float(catalogue["ra"].iloc[i]), float(catalogue["dec"].iloc[i])) for i in range(0, 40, 5)]
    others = _real_positions(shared_data, 8, skip=400)  # MiraBest files outside the small space
    failing_skyview.reset()
    text, expected = mixed_list(in_space + others, failing_skyview, MORE_BAD_LINES)
    assert len(expected) == 50 and sum(s == batch.OK for s in expected.values()) == 16
    listing = tmp_path / "paper.csv"
    listing.write_text(text)
    out = tmp_path / "results"
    argv = ["lookup", "--list", str(listing), "--out", str(out), "--k", "4", "--timeout", "5", "--retries", "0"]
    argv += ["--device", "cpu", "--space", str(space_dir)]
    assert main(argv) == 0
    printed = capsys.readouterr()
    assert "from the cache" in printed.out and "cutouts" in printed.err  # summary, tqdm bar

    frame = pd.read_csv(out / "results.csv", keep_default_na=False, na_values=[""])
    assert len(frame) == 50 and frame["line"].tolist() == sorted(expected)
    assert dict(zip(frame["line"], frame["status"], strict=True)) == expected
    good = frame[frame["status"] == batch.OK]
    assert good["nn4_source_id"].str.len().gt(0).all() and good["nn1_cosine"].between(-1, 1).all()
    assert (good["nn1_cosine"] >= good["nn4_cosine"]).all()
    assert good[["map_x", "map_y"]].notna().all().all()
    bad = frame[frame["status"] != batch.OK]
    assert bad["error"].str.len().gt(20).all() and bad["nn1_source_id"].isna().all()
    # the rows at a position of the space are that source (and it is not its own neighbour)
    twins = good[good["name"].isin([f"src{i}" for i in range(len(in_space))])]
    assert len(twins) == len(in_space) and twins["in_space_as"].str.len().gt(0).all()
    assert not (twins["in_space_as"] == twins["nn1_source_id"]).any()

    embeddings = np.load(out / "embeddings.npy")
    assert embeddings.shape == (50, 512)
    assert np.isfinite(embeddings[frame["status"].eq(batch.OK).to_numpy()]).all()
    assert np.isnan(embeddings[frame["status"].ne(batch.OK).to_numpy()]).all()
    # a row at a catalogued position reproduces that source's embedding (the stand-in serves its file,
    # unless a skyview_raw file, whose pixels differ by a few % of the noise, lies there too)
    raw = [f for f in real_files(shared_data)[0] if f.kind == "skyview_raw"]
    row = next(
        int(i)
        for i in twins.index
        if min(separation_arcsec(twins["ra"][i], twins["dec"][i], f.ra, f.dec) for f in raw) > 60
    )
    twin_row = int(np.flatnonzero(catalogue["source_id"].astype(str) == twins["in_space_as"][row])[0])
    unit = space.embeddings[twin_row] / np.linalg.norm(space.embeddings[twin_row])
    assert float(embeddings[row] @ unit / np.linalg.norm(embeddings[row])) > 0.999

    votable = parse_votable(str(out / "results.vot"))
    table = votable.get_first_table()
    assert {f.name: f.ucd for f in table.fields}["ra"] == "pos.eq.ra;meta.main"
    read = table.to_table().to_pandas()
    assert len(read) == 50 and list(read["status"]) == list(frame["status"])
    assert {i.name: i.value for i in votable.resources[0].infos}["backbone_sha256"] == space.weights_sha256

    # the same neighbours as the app's search of that space
    from explorer.space_registry import EmbeddingSpace

    app_space = EmbeddingSpace(space, "test", "test")
    finder = batch.SpaceNeighbours(space)
    for i in good.index[:5]:
        where = (float(frame["ra"].iloc[i]), float(frame["dec"].iloc[i]))
        rows_found, scores = finder(embeddings[i], 4, where)
        app = app_space.neighbours_of_vector(embeddings[i], 4, 30.0, where)
        assert rows_found.tolist() == app.rows.tolist() and np.allclose(scores, app.scores, atol=1e-5)

    # the rerun: done rows from the cache, only the rows that failed at the service are asked again
    failing_skyview.reset()
    failing_skyview.failing = {}
    assert main(argv) == 0
    assert "16 from the earlier run" in capsys.readouterr().out  # the rows done are not embedded again
    again = pd.read_csv(out / "results.csv", keep_default_na=False, na_values=[""])
    assert (again["status"] == batch.OK).sum() == len(good) + 2
    assert again.loc[good.index, "from_cache"].all()
    assert np.allclose(np.load(out / "embeddings.npy")[good.index], embeddings[good.index])
    assert len(failing_skyview.queried()) == 4  # the 500 row, the slow row, the unknown name, the blank position


def test_command_line_refuses_a_list_without_its_folder_or_space(tmp_path):
    import argparse

    from pretrain.commands import lookup

    parser = argparse.ArgumentParser()
    lookup.add_arguments(parser)
    listing = tmp_path / "list.txt"
    listing.write_text("139.148 +4.681\n")
    for argv, message in (
        (["--list", str(listing)], "--list needs --out DIR"),
        (["--list", str(listing), "--out", str(tmp_path / "o"), "--space", str(tmp_path)], f"No space at {tmp_path}"),
        (["--list", str(listing), "--ra", "1", "--dec", "2", "--out", str(tmp_path / "o")], "leave out --ra"),
        (["--list", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "o")], "Cannot read the list"),
    ):
        with pytest.raises(ExplorerError, match=message):
            lookup.run(parser.parse_args(argv))


# --- the Look-up page's "A list" tab -----------------------------------------------------------
def test_the_list_tab_places_a_list_on_the_map_with_errors_per_row(small_space, failing_skyview, monkeypatch):
    from pretrain.space import load_space

    for key, value in small_space.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("EXPLORER_SKYVIEW_URL", failing_skyview.url)
    monkeypatch.delenv("EXPLORER_SPACES", raising=False)
    failing_skyview.reset()
    failing_skyview.failing = {}
    catalogue = load_space(small_space.cache / "spaces" / "mirabest").catalogue_map
    lines = [f"{catalogue['ra'].iloc[i]:.5f} {catalogue['dec'].iloc[i]:+.5f}" for i in (1, 9, 17, 25, 33)]
    lines += ["3C 236", "400 +10", "10.0 -60.0", "Nonexistent galaxy 123", "3C 192"]
    # the app's cache is shared with the other app tests: leave its cutouts as they were
    cutouts = small_space.cache / "cutouts"
    before = set(cutouts.glob("*")) if cutouts.is_dir() else set()
    try:
        _check_the_list_tab(small_space, catalogue, lines)
    finally:
        for path in set(cutouts.glob("*")) - before if cutouts.is_dir() else ():
            path.unlink(missing_ok=True)


def _check_the_list_tab(small_space, catalogue, lines) -> None:
    from explorer.lookup import ListLookup
    from tests.app_space import app_test, gallery_html, plotly_spec

    at = app_test()
    at.switch_page("pages/2_Lookup.py")
    at.run()
    at.text_area(key="lookup-list-text").input("\n".join(lines))
    next(b for b in at.button if b.label == "Look up the list").click()
    at.run()
    assert not at.exception, at.exception
    outcome = at.session_state["lookup-list"]
    assert isinstance(outcome, ListLookup)
    assert [r.status for r in outcome.rows] == ["ok"] * 6 + ["malformed", "outside footprint", "unknown name", "ok"]
    assert any("7 of 10 rows placed" in w.value for w in at.warning)
    table = at.dataframe[0].value
    assert len(table) == 10 and table["error"].iloc[6].startswith("RA 400.0 deg is outside")
    assert table["nn1_source_id"].iloc[:6].str.len().gt(0).all()
    assert all(outcome.frame["in_space_as"].iloc[:5] == catalogue["source_id"].iloc[[1, 9, 17, 25, 33]].to_numpy())
    # the map: the list as a layer of 7 points, the chosen row's neighbours ringed, its gallery below
    spec = plotly_spec(at, len(at.get("plotly_chart")) - 1)
    layer = next(t for t in spec["data"] if t.get("name", "").startswith("looked-up list"))
    assert _points(layer["x"]) == 7
    rings = next(t for t in spec["data"] if t.get("name") == "neighbours")
    assert _points(rings["x"]) == len(outcome.rows[0].neighbour_rows) == 12  # the sidebar's k
    assert 'data-count="12"' in gallery_html(at)
    # another row's neighbours
    at.selectbox(key="lookup-list-show").select(outcome.rows[5].row)
    at.run()
    assert not at.exception
    spec = plotly_spec(at, len(at.get("plotly_chart")) - 1)
    assert [t["name"] for t in spec["data"] if t.get("mode") == "markers+text" and t["name"] != "neighbours"] == [
        "3C 236"
    ]  # the × of the row shown
    rings = next(t for t in spec["data"] if t.get("name") == "neighbours")
    assert _points(rings["x"]) == 12 and 'data-count="12"' in gallery_html(at)


def _points(values) -> int:
    """How many values a plotly array holds (a list, or a typed array: base64 'bdata' of 'dtype')."""
    if isinstance(values, dict):
        import base64

        return len(base64.b64decode(values["bdata"])) // np.dtype(values["dtype"]).itemsize
    return len(values)
