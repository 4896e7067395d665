"""The look-up page through AppTest: FIRST cutouts from the stand-in SkyView, uploads, failures."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from explorer.sky import separation_arcsec
from pretrain.data.names import parse_mirabest_name
from pretrain.space import load_space
from tests.app_space import app_test, build_small_space, gallery_html, plotly_spec, small_space_root
from tests.standins.skyview import SkyViewStandIn, real_files


@pytest.fixture(scope="session")
def small_space(mirabest_dir, tmp_path_factory):
    return build_small_space(mirabest_dir, small_space_root(tmp_path_factory))


@pytest.fixture(scope="module")
def skyview(shared_data):
    server = SkyViewStandIn(shared_data).start()
    yield server
    server.stop()


@pytest.fixture
def app_env(small_space, skyview, monkeypatch):
    for key, value in small_space.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("EXPLORER_SKYVIEW_URL", skyview.url)
    monkeypatch.delenv("EXPLORER_SPACES", raising=False)
    return small_space


@pytest.fixture(scope="module")
def space(small_space):
    return load_space(small_space.cache / "spaces" / "mirabest")


def _look_up(text: str, **state):
    at = app_test()
    for key, value in state.items():
        at.session_state[key] = value
    at.switch_page("pages/2_Lookup.py")
    at.run()
    at.text_input(key="lookup-text").input(text)
    at.button[0].click()  # the form's "Look up" button
    at.run()
    assert not at.exception, at.exception
    return at


def _errors(at) -> str:
    return " ".join(e.value for e in at.error)


def test_looking_up_a_catalogued_position_reproduces_its_embedding(app_env, space, skyview):
    """The FIRST cutout of a MiraBest source goes the same way as the training images:
    looked up, it lands on its own embedding (the stand-in serves the file's own pixels)."""
    cat = space.catalogue_map
    # a source that the stand-in serves from its MiraBest file (not from skyview_raw/, whose
    # uncompressed pixels differ from the quantised .fits.fz by a few % of the noise)
    raw = [f for f in real_files(skyview.data_dir)[0] if f.kind != "mirabest"]
    row = next(
        i
        for i in np.flatnonzero(cat["label"].to_numpy() == "FRII")
        if not raw or min(separation_arcsec(cat["ra"].iloc[i], cat["dec"].iloc[i], f.ra, f.dec) for f in raw) > 60
    )
    info = parse_mirabest_name(cat["file"].iloc[row])
    at = _look_up(f"{cat['ra'].iloc[row]:.5f} {cat['dec'].iloc[row]:+.5f}")
    assert _errors(at) == ""
    assert Path(skyview.served_files[-1]).name == Path(cat["file"].iloc[row]).name
    result = at.session_state["lookup"]
    unit = space.embeddings[row] / np.linalg.norm(space.embeddings[row])
    assert float(result.embedding @ unit / np.linalg.norm(result.embedding)) > 0.9999
    # placed on the saved map (UMAP's transform is stochastic: inside the map's extent, not a fixed point)
    xy = cat[["umap_x", "umap_y"]].to_numpy()
    span = xy.max(axis=0) - xy.min(axis=0)
    assert np.all(result.map_xy > xy.min(axis=0) - span) and np.all(result.map_xy < xy.max(axis=0) + span)
    assert separation_arcsec(result.ra, result.dec, info.ra, info.dec) < 5.0
    assert len(at.image) >= 2  # raw cutout and model input side by side
    assert any("Placed on the map" in s.value for s in at.success)
    assert any(cat["source_id"].iloc[row] in i.value for i in at.info)  # "this position is in the space as"
    html = gallery_html(at)
    ids = re.findall(r'data-source-id="([^"]+)"', html)
    assert len(ids) == 12 and cat["source_id"].iloc[row] not in ids  # itself: dropped as a sky duplicate
    marker = [t for t in plotly_spec(at)["data"] if t["name"].startswith(f"{cat['ra'].iloc[row]:.5f}")]
    assert len(marker) == 1 and marker[0]["x"] == [pytest.approx(result.map_xy[0])]  # the × on the map


def test_a_look_up_by_representation_and_measurements_lands_on_its_own_source(app_env, space, skyview):
    """With neighbours by representation + pixel measurements, the looked-up cutout is measured
    as the bundle measured its file, so its vector is its catalogued source's."""
    from explorer.space_registry import EmbeddingSpace

    cat = space.catalogue_map
    raw = [f for f in real_files(skyview.data_dir)[0] if f.kind != "mirabest"]
    row = next(
        i
        for i in np.flatnonzero((cat["label"].to_numpy() == "FRII") & cat["fr_ratio"].notna().to_numpy())
        if not raw or min(separation_arcsec(cat["ra"].iloc[i], cat["dec"].iloc[i], f.ra, f.dec) for f in raw) > 60
    )
    at = _look_up(f"{cat['ra'].iloc[row]:.5f} {cat['dec'].iloc[row]:+.5f}", neighbours_by="measured")
    assert _errors(at) == ""
    result = at.session_state["lookup"]
    assert result.measurements["fr_ratio"] == pytest.approx(cat["fr_ratio"].iloc[row], rel=1e-6)
    assert result.measurements["angular_extent_estimated_arcsec"] == pytest.approx(
        cat["angular_extent_estimated_arcsec"].iloc[row], rel=1e-6
    )
    view = EmbeddingSpace(space, "default:mirabest", "MiraBest").measured_view()
    query = view.query_vector(result.embedding, result.measurements)
    stored = view.index.unit_vectors_[row]
    assert float(query @ stored / np.linalg.norm(query)) > 0.9999
    html = gallery_html(at)
    ids = re.findall(r'data-source-id="([^"]+)"', html)
    expected = view.neighbours_of_row(row, 12, 30.0)
    assert ids == cat["source_id"].to_numpy()[expected.rows].tolist()  # the neighbours of its catalogued self
    assert any("pixel measurements appended" in c.value for c in at.caption)


def test_a_list_by_representation_and_measurements_ranks_each_row_as_a_single_look_up_does(app_env, space, skyview):
    """A list in measured mode measures each row from the cutout fetched for it: every row gets
    the measurements and the measured neighbours that the same position looked up alone gets."""
    from explorer import lookup
    from explorer.space_registry import EmbeddingSpace
    from explorer.widgets.spaces import encoder_for
    from pretrain import batch_lookup as batch
    from pretrain.data.first_client import cutout_client

    cat = space.catalogue_map
    rows = np.flatnonzero(cat["fr_ratio"].notna().to_numpy())[:3]
    texts = [f"{cat['ra'].iloc[i]:.5f} {cat['dec'].iloc[i]:+.5f}" for i in rows]
    plain = EmbeddingSpace(space, "default:mirabest", "MiraBest")
    view, encoder = plain.measured_view(), encoder_for(plain)

    outcome = lookup.look_up_list(batch.parse_list("\n".join(texts)), view, encoder, cutout_client, 12, 30.0, "list")
    assert [r.status for r in outcome.rows] == [batch.OK] * 3
    for row, text in zip(outcome.rows, texts):
        alone = lookup.place(lookup.prepare(lookup.fetch_cutout(text, cutout_client()), text), view, encoder)
        measurements = lookup.measurements_of(alone)
        assert np.isfinite(measurements["fr_ratio"]) and row.measurements == measurements
        found = view.neighbours_of_vector(alone.embedding, 12, 30.0, (alone.ra, alone.dec), measurements)
        assert row.neighbour_rows.tolist() == list(found.rows)
    plain_rows = lookup.look_up_list(batch.parse_list("\n".join(texts)), plain, encoder, cutout_client, 12, 30.0, "l")
    assert all(r.measurements == {} for r in plain_rows.rows)  # the representation alone: nothing measured
    assert any(a.neighbour_rows.tolist() != b.neighbour_rows.tolist() for a, b in zip(outcome.rows, plain_rows.rows))


def test_a_name_is_resolved_and_placed(app_env):
    at = _look_up("3C 236")
    assert _errors(at) == ""
    assert any("Placed on the map" in s.value for s in at.success)
    assert 'data-count="12"' in gallery_html(at)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("10.0 -60.0", "outside the FIRST survey footprint"),
        ("Nonexistent galaxy 123", "could not resolve the name"),
        ("400 +10", "outside 0..360"),
        ("", "Type a position"),
    ],
)
def test_bad_look_ups_say_what_is_wrong_and_the_app_keeps_running(app_env, text, expected):
    at = _look_up(text)
    assert expected in _errors(at)
    assert gallery_html(at) == ""
    at.text_input(key="lookup-text").input("3C 236")  # the next look-up works
    at.button[0].click()
    at.run()
    assert _errors(at) == "" and 'data-count="12"' in gallery_html(at)


def test_no_network_is_reported(app_env, monkeypatch):
    monkeypatch.setenv("EXPLORER_SKYVIEW_URL", "http://127.0.0.1:9/current/cgi/basicform.pl")  # nothing listens
    at = _look_up("150.0 +30.0")
    assert "Could not reach the FIRST cutout service" in _errors(at)


def _fits_bytes(data: np.ndarray, with_wcs: bool = True) -> bytes:
    header = fits.Header()
    if with_wcs:
        header.update(
            CTYPE1="RA---TAN",
            CTYPE2="DEC--TAN",
            CRVAL1=150.0,
            CRVAL2=30.0,
            CRPIX1=50.5,
            CRPIX2=50.5,
            CDELT1=-0.0005,
            CDELT2=0.0005,
        )
    buffer = io.BytesIO()
    fits.PrimaryHDU(data.astype(np.float32), header=header).writeto(buffer)
    return buffer.getvalue()


def _upload(name: str, content: bytes):
    at = app_test()
    at.switch_page("pages/2_Lookup.py")
    at.run()
    at.file_uploader[0].set_value((name, content, "application/fits"))
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("truncated.fits", b"SIMPLE  =                    T" + b" " * 100, "truncated"),
        ("page.fits", b"<!DOCTYPE html><html><body>Error</body></html>", "HTML"),
        ("nan.fits", None, "NaN"),
        ("blank.fits", None, "no significant emission"),
    ],
)
def test_broken_uploads_are_refused_with_a_reason(app_env, name, content, expected):
    if name == "nan.fits":
        content = _fits_bytes(np.full((100, 100), np.nan))
    elif name == "blank.fits":
        content = _fits_bytes(np.random.default_rng(0).normal(0, 1e-4, (100, 100)))
    at = _upload(name, content)
    assert name in _errors(at) and expected.lower() in _errors(at).lower()


def test_an_uploaded_real_fits_file_is_placed(app_env, skyview_raw_dir):
    path = sorted(skyview_raw_dir.glob("*.fits"))[0]
    at = _upload(path.name, path.read_bytes())
    assert _errors(at) == ""
    assert at.session_state["lookup"].map_xy is not None
    assert 'data-count="12"' in gallery_html(at)


def test_look_up_on_the_rgz_map_finds_the_catalogued_source(app_env, small_space):
    from explorer.space_registry import RGZ_KEY

    # 100_120.907+010.845 is both a MiraBest file of the small space and an RGZ DR1 source (14")
    at = _look_up("120.907 +10.845", space_key=RGZ_KEY)
    assert _errors(at) == ""
    assert any("RGZJ080337.6+105051" in s.value for s in at.success)
    assert "distance on the map" in gallery_html(at)


def test_fetching_the_gallery_images_on_the_look_up_page_notes_blank_cutouts_and_goes_on(app_env, skyview):
    from explorer.space_registry import RGZ_KEY

    at = _look_up("120.907 +10.845", space_key=RGZ_KEY)
    fetch = [b for b in at.button if b.label.startswith("Fetch") and b.label.endswith("FIRST images")]
    assert len(fetch) == 1
    wanted = int(fetch[0].label.split()[1])
    before = len(skyview.requests)
    fetch[0].click()
    at.run()  # a page rerun (this page is no fragment): it used to ask for a fragment rerun
    assert not at.exception, at.exception
    assert len(skyview.requests) > before
    html = gallery_html(at)
    assert "FIRST image not fetched yet" not in html  # each card has its image or says why not
    blank = html.count("blank FIRST cutout")
    assert blank + html.count("<img") >= wanted
    if blank:  # the stand-in serves blank cutouts away from its real files: one note, not a stop
        notes = " ".join(w.value for w in at.warning)
        assert f"{blank} of {wanted} FIRST cutouts could not be used" in notes and "Stopped" not in notes
    assert not any(b.label.startswith("Fetch") and b.label.endswith("FIRST images") for b in at.button)
