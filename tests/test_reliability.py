"""Issue #17: nothing lost, nothing run that should not run, no input that freezes the server."""

from __future__ import annotations

import io
import json
import resource
import time
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits

from pretrain.__main__ import main as cli
from pretrain.data.bundle import build_bundle, load_bundle
from pretrain.errors import ExplorerError, FitsReadError, PositionError


def _fits_folder(skyview_raw_dir: Path, folder: Path, n: int = 3) -> Path:
    """A folder of links to a few real FITS files (the real data is never copied)."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in sorted(skyview_raw_dir.glob("*.fits"))[:n]:
        (folder / f.name).symlink_to(f)
    return folder


# --- A. nothing outside a folder the project wrote is deleted ----------------------------


def test_bundle_out_equal_to_the_input_is_refused_and_kept(skyview_raw_dir, tmp_path, capsys):
    data = _fits_folder(skyview_raw_dir, tmp_path / "data")
    before = sorted(p.name for p in data.iterdir())
    assert cli(["bundle", "--fits", str(data), "--out", str(data), "--overwrite"]) == 2
    assert "input" in capsys.readouterr().err
    assert sorted(p.name for p in data.iterdir()) == before
    # an --out holding the input folder is refused as well
    assert cli(["bundle", "--fits", str(data), "--out", str(tmp_path), "--overwrite"]) == 2
    assert sorted(p.name for p in data.iterdir()) == before


def test_overwrite_replaces_only_a_bundle(skyview_raw_dir, tmp_path, capsys):
    data = _fits_folder(skyview_raw_dir, tmp_path / "data")
    thesis = tmp_path / "work"
    thesis.mkdir()
    (thesis / "thesis.tex").write_text("years of work")
    assert cli(["bundle", "--fits", str(data), "--out", str(thesis), "--overwrite"]) == 2
    assert "not one; nothing was deleted" in capsys.readouterr().err
    assert (thesis / "thesis.tex").read_text() == "years of work"
    # a bundle the tool wrote is still replaced
    first = build_bundle(fits_dirs=[data], out=tmp_path / "b", progress=False)
    again = build_bundle(fits_dirs=[data], out=tmp_path / "b", progress=False, overwrite=True)
    assert load_bundle(again.path).bundle_id == first.bundle_id


@pytest.mark.parametrize("out", [".", "/proc/x/bundle"])
def test_bundle_out_dot_or_unwritable_is_a_clear_error(skyview_raw_dir, tmp_path, monkeypatch, capsys, out):
    data = _fits_folder(skyview_raw_dir, tmp_path / "data")
    work = tmp_path / "cwd"
    work.mkdir()
    (work / "notes.txt").write_text("keep")
    monkeypatch.chdir(work)
    assert cli(["bundle", "--fits", str(data), "--out", out, "--overwrite"]) == 2
    assert "error:" in capsys.readouterr().err
    assert (work / "notes.txt").read_text() == "keep"


def test_bundle_out_dot_in_an_empty_folder_is_refused_clearly(skyview_raw_dir, tmp_path, monkeypatch, capsys):
    data = _fits_folder(skyview_raw_dir, tmp_path / "data")
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    assert cli(["bundle", "--fits", str(data), "--out", "."]) == 2
    assert "current folder" in capsys.readouterr().err


# --- B. loading a space runs no code ---------------------------------------------------


def _clusters(n_per: int = 20, dim: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6.0, size=(3, dim))
    x = np.concatenate([c + rng.normal(size=(n_per, dim)) for c in centres]).astype(np.float32)
    return x, np.repeat(np.arange(3), n_per)


def _space(tmp_path: Path, x: np.ndarray):
    from pretrain.mapping import MapProjector
    from pretrain.space import save_space

    projector = MapProjector(random_state=1, n_neighbors=10)
    xy = projector.fit_transform(x)
    ids = [f"J{i:04d}" for i in range(len(x))]
    provenance = {"weights": {"sha256": "w", "file": "w.safetensors"}, "bundle": {"id": "b"}}
    return save_space(tmp_path / "space", ids, x, xy, None, projector, provenance), xy


class _Boom:
    """Unpickling this runs code: it leaves a file behind."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "code ran"))


def test_a_planted_pickle_never_runs(tmp_path):
    import joblib

    from pretrain.files import sha256_file
    from pretrain.space import PROJECTOR_FILE, SpaceError, is_stale, load_space

    x, _ = _clusters()
    space, _ = _space(tmp_path, x)
    marker = tmp_path / "ran.txt"
    # someone who can write the cache replaces the projector and its hash in the manifest
    for name in (PROJECTOR_FILE, "projector.joblib"):
        joblib.dump(_Boom(str(marker)), space.path / name)
    manifest = json.loads((space.path / "manifest.json").read_text())
    manifest["files"][PROJECTOR_FILE]["sha256"] = sha256_file(space.path / PROJECTOR_FILE)
    (space.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ExplorerError):
        _ = load_space(space.path).projector
    # an old-format space (a pickled projector) is stale and never unpickled
    manifest["format_version"] = 1
    (space.path / "manifest.json").write_text(json.dumps(manifest))
    assert "older version" in str(is_stale(space.path))
    with pytest.raises(SpaceError, match="never loaded"):
        load_space(space.path)
    assert not marker.exists()


def test_placing_new_points_without_umap(tmp_path):
    from pretrain.space import load_space

    x, labels = _clusters()
    space, xy = _space(tmp_path, x)
    assert not (space.path / "projector.joblib").exists()
    loaded = load_space(space.path).projector
    # a member lands on its own position; a new point from cluster 2 among cluster 2
    np.testing.assert_allclose(loaded.transform(x[[0, 30]]), xy[[0, 30]], atol=1e-4)
    new = x[labels == 2].mean(0) + np.random.default_rng(3).normal(size=x.shape[1]).astype(np.float32)
    placed = loaded.transform(new)[0]
    assert labels[np.argmin(np.linalg.norm(xy - placed, axis=1))] == 2


def test_embed_out_that_is_not_a_space_is_refused(tmp_path):
    from pretrain.mapping import MapProjector
    from pretrain.space import SpaceError, save_space

    x, _ = _clusters()
    out = tmp_path / "work"
    out.mkdir()
    (out / "map.parquet").write_text("my own map")
    (out / "thesis.tex").write_text("years of work")
    projector = MapProjector(random_state=1, n_neighbors=10)
    xy = projector.fit_transform(x)
    provenance = {"weights": {"sha256": "w", "file": "w"}, "bundle": {"id": "b"}}
    with pytest.raises(SpaceError, match="not a space"):
        save_space(out, [str(i) for i in range(len(x))], x, xy, None, projector, provenance)
    assert (out / "map.parquet").read_text() == "my own map"


# --- C. inputs that would freeze the server ------------------------------------------------


def _seconds(fn, *args) -> float:
    start = time.perf_counter()
    try:
        fn(*args)
    except ExplorerError:
        pass
    return time.perf_counter() - start


@pytest.mark.parametrize("text", ["1" * 8000, "1" * 100_000, "1 " * 50_000 + "x", "1h1m" + "1" * 100_000])
def test_long_position_text_is_refused_at_once(text):
    from pretrain.data.positions import parse_position

    assert _seconds(parse_position, text) < 0.05
    with pytest.raises(PositionError, match="at most 200"):
        parse_position(text)


def test_position_regexes_are_linear():
    from pretrain.data import positions

    # just under the length bound, and far beyond it (the regexes alone)
    for text in ("1" * 199, "1" * 20_000, "1" + " " * 20_000 + "x", "1:" * 10_000, "1 1 1 " * 3000 + "x"):
        start = time.perf_counter()
        for regex in (positions._DECIMAL, positions._SEXAGESIMAL_PLAIN, positions._SEXAGESIMAL_MARKED):
            regex.match(" ".join(text.split()))
        assert time.perf_counter() - start < 0.1, text[:10]
    assert positions.parse_position("  139.148 ,   +4.681 ").ra.deg == pytest.approx(139.148)
    assert positions.parse_position("09   16 35.5   +04 40 52").dec.deg == pytest.approx(4.68111, abs=1e-4)


def test_lookup_box_caps_its_length():
    source = (Path(__file__).parents[1] / "pages" / "2_Lookup.py").read_text()
    assert "max_chars=config.POSITION_MAX_CHARS" in source


# --- C / D. FITS files too large, or whose WCS would be misread ---------------------------


def _header(ctype=("RA---SIN", "DEC--SIN"), crval=(150.0, 20.0), cdelt=1.8 / 3600, n=64) -> fits.Header:
    h = fits.Header()
    h["CTYPE1"], h["CTYPE2"] = ctype
    h["CRVAL1"], h["CRVAL2"] = crval
    h["CRPIX1"], h["CRPIX2"] = (n + 1) / 2, (n + 1) / 2
    h["CDELT1"], h["CDELT2"] = -cdelt, cdelt
    return h


def _fits_bytes(header: fits.Header, n: int = 64) -> bytes:
    image = np.random.default_rng(0).normal(size=(n, n)).astype(np.float32)
    image[28:36, 28:36] += 40
    buffer = io.BytesIO()
    fits.PrimaryHDU(image, header).writeto(buffer)
    return buffer.getvalue()


def test_a_huge_compressed_image_is_refused_from_its_header():
    from pretrain.data.fits_io import read_cutout

    buffer = io.BytesIO()
    hdu = fits.CompImageHDU(np.zeros((1000, 1000), np.int16), _header(n=1000))
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buffer)
    # the same small file, claiming 16000 x 16000 (what a 1.7 MB tile-compressed upload holds)
    raw = buffer.getvalue().replace(b"ZNAXIS1 =                 1000", b"ZNAXIS1 =                16000")
    raw = raw.replace(b"ZNAXIS2 =                 1000", b"ZNAXIS2 =                16000")
    assert raw != buffer.getvalue()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(FitsReadError, match="16000 x 16000 pixels"):
        read_cutout(raw, source="upload.fits.fz")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # kB: nothing decompressed


def test_a_galactic_header_is_converted_to_icrs():
    from astropy.coordinates import SkyCoord

    from pretrain.data.fits_io import read_cutout

    cutout = read_cutout(_fits_bytes(_header(ctype=("GLON-SIN", "GLAT-SIN"), crval=(120.0, 30.0))))
    expected = SkyCoord(120.0 * u.deg, 30.0 * u.deg, frame="galactic").icrs
    assert cutout.centre.separation(expected).arcsec < 5  # the centre pixel is within a pixel or two


@pytest.mark.parametrize("card", ["CRVAL1", "CDELT2"])
def test_a_nan_wcs_value_is_refused(card):
    from pretrain.data.fits_io import read_cutout

    raw = _fits_bytes(_header())
    at = raw.index(f"{card:8}= ".encode()) + 10
    raw = raw[:at] + b"NaN".rjust(20) + raw[at + 20 :]  # astropy refuses to write NaN cards itself
    with pytest.raises(FitsReadError, match="fix"):
        read_cutout(raw)


# --- C. a cutout service that trickles or floods ------------------------------------------


@pytest.fixture(scope="module")
def fault_server(shared_data):
    from tests.standins.skyview import SkyViewStandIn

    with SkyViewStandIn(shared_data) as server:
        yield server


def _client(server, tmp_path, total_s: float):
    from pretrain.data.first_client import FirstCutoutClient

    return FirstCutoutClient(
        base_url=server.url, cache_dir=tmp_path / "c", timeout_s=2.0, retries=1, backoff_s=0.01, total_timeout_s=total_s
    )


def test_a_trickling_service_is_given_up_on_time(fault_server, tmp_path):
    from astropy.coordinates import SkyCoord

    fault_server.reset()
    fault_server.mode, fault_server.trickle_s = "trickle", 0.1  # each byte well inside the 2 s time-out
    start = time.monotonic()
    try:
        with pytest.raises(ExplorerError):
            _client(fault_server, tmp_path, total_s=2.0).fetch(SkyCoord(150 * u.deg, 20 * u.deg))
    finally:
        fault_server.reset()
    assert time.monotonic() - start < 5.0  # the budget plus one read, not the page's length in seconds


def test_a_gzip_bomb_page_is_refused_while_streaming(fault_server, tmp_path):
    from astropy.coordinates import SkyCoord

    from tests.standins.skyview import _gzip_bomb

    fault_server.reset()
    _gzip_bomb(fault_server.bomb_bytes)  # made once, before the client's 2 s time-out starts (a busy machine)
    fault_server.mode = "bomb"  # ~250 kB on the wire, 256 MB decoded
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        with pytest.raises(ExplorerError, match="more than 4 MB"):
            _client(fault_server, tmp_path, total_s=20.0).fetch(SkyCoord(150 * u.deg, 20 * u.deg))
    finally:
        fault_server.reset()
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # kB


# --- D / E. file names that disagree with their WCS; parameters that switch checks off -----


def test_a_name_off_the_sky_or_far_from_its_wcs_does_not_stop_or_misplace(mirabest_dir, tmp_path):
    real = sorted(mirabest_dir.glob("*.fits.fz"))[:3]
    folder = _fits_folder(mirabest_dir, tmp_path / "mb", n=0)
    for f in real:
        (folder / f.name).symlink_to(f)
    code, rest = real[0].name.split("_", 1)
    (folder / f"{code}_999.000+095.000_{rest.split('_', 1)[1]}").symlink_to(real[0])  # Dec 95: off the sky
    ra = float(rest.split("_")[0][:7])
    far = f"{code}_{(ra + 105) % 360:07.3f}{rest.split('_')[0][7:]}_{rest.split('_', 1)[1]}"
    (folder / far).symlink_to(real[1])  # 105 deg from its WCS
    bundle = build_bundle(fits_dirs=[folder], out=tmp_path / "b", progress=False, duplicate_radius_arcsec=0)
    catalogue = bundle.catalogue
    assert len(catalogue) == 5
    offset = np.hypot(
        (catalogue["ra"] - catalogue["image_ra"]) * np.cos(np.radians(catalogue["dec"])),
        catalogue["dec"] - catalogue["image_dec"],
    )
    assert (offset * 3600 <= 300).all()  # the WCS wins over a name that disagrees


@pytest.mark.parametrize("radius", ["nan", "-5"])
def test_a_duplicate_radius_that_would_switch_deduplication_off_is_refused(skyview_raw_dir, tmp_path, capsys, radius):
    data = _fits_folder(skyview_raw_dir, tmp_path / "data")
    assert cli(["bundle", "--fits", str(data), "--out", str(tmp_path / "b"), "--duplicate-radius", radius]) == 2
    assert "--duplicate-radius" in capsys.readouterr().err
