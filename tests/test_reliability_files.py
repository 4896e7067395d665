"""Issue #17, files: unusual and hostile FITS files, what bundle reports about every file it
meets, and the cutout cache (its key, planted entries, shared folders)."""

from __future__ import annotations

import gzip
import io
import os
import resource
import shutil
import stat
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits

from pretrain.data.bundle import build_bundle
from pretrain.data.fits_io import read_cutout
from pretrain.errors import BundleError, FitsReadError

FAST = dict(timeout_s=5.0, retries=1, backoff_s=0.01, total_timeout_s=20.0)


def _header(ctype=("RA---SIN", "DEC--SIN"), crval=(150.0, 20.0), cdelt=1.8 / 3600, n=64, **cards) -> fits.Header:
    h = fits.Header()
    h["CTYPE1"], h["CTYPE2"] = ctype
    h["CRVAL1"], h["CRVAL2"] = crval
    h["CRPIX1"], h["CRPIX2"] = (n + 1) / 2, (n + 1) / 2
    h["CDELT1"], h["CDELT2"] = -cdelt, cdelt
    for key, value in cards.items():
        h[key] = value
    return h


def _fits_bytes(header: fits.Header, n: int = 64) -> bytes:
    image = np.random.default_rng(0).normal(size=(n, n)).astype(np.float32)
    image[n // 2 - 4 : n // 2 + 4, n // 2 - 4 : n // 2 + 4] += 40
    buffer = io.BytesIO()
    fits.PrimaryHDU(image, header).writeto(buffer)
    return buffer.getvalue()


# --- sizes bounded before the work -----------------------------------------------------


def test_a_huge_sparse_file_is_refused_from_its_length(tmp_path):
    path = tmp_path / "sparse.fits"
    with open(path, "wb") as f:
        f.write(_fits_bytes(_header()))
        f.truncate(6 * 1024**3)  # 6 GB on paper, nothing on disk
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with pytest.raises(FitsReadError, match="MB, more than"):
        read_cutout(path)
    assert time.perf_counter() - start < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # kB: the file was not read


def test_gzip_files_are_read_and_a_gzip_bomb_is_refused(tmp_path):
    raw = _fits_bytes(_header())
    (tmp_path / "ok.fits.gz").write_bytes(gzip.compress(raw))
    assert read_cutout(tmp_path / "ok.fits.gz").centre.separation(SkyCoord(150 * u.deg, 20 * u.deg)).arcsec < 3
    with pytest.raises(FitsReadError, match="truncated"):
        read_cutout(gzip.compress(raw)[:-200])
    # 1 GB of zeros behind a FITS card: ~1 MB on disk
    bomb = gzip.compress(raw[:2880] + bytes(1024**3), compresslevel=1)
    assert len(bomb) < 5 * 1024**2
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(FitsReadError, match="expands to more than"):
        read_cutout(bomb, source="bomb.fits.gz")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 600_000  # kB: never the whole GB


def test_a_pixel_scale_that_would_resample_to_a_huge_image_is_refused():
    with pytest.raises(FitsReadError, match="cover 192 deg"):  # CDELT = 3 deg: 64 px cover 192 deg
        read_cutout(_fits_bytes(_header(cdelt=3.0)))
    from pretrain.data.preprocess import crop_to_field
    from pretrain.errors import ExplorerError

    with pytest.raises(ExplorerError, match="model's grid"):
        crop_to_field(np.zeros((300, 300), np.float32), 3 * 3600.0)


# --- every world coordinate checked for its frame -----------------------------------------


def test_ecliptic_and_supergalactic_headers_are_converted_other_frames_refused():
    from astropy.coordinates import GeocentricMeanEcliptic, Supergalactic

    ecliptic = read_cutout(_fits_bytes(_header(ctype=("ELON-SIN", "ELAT-SIN"), crval=(150.0, 20.0))))
    expected = SkyCoord(150 * u.deg, 20 * u.deg, frame=GeocentricMeanEcliptic(equinox="J2000")).icrs
    assert ecliptic.centre.separation(expected).arcsec < 5  # was read as RA 150, Dec 20 (10 deg off)
    superg = read_cutout(_fits_bytes(_header(ctype=("SLON-SIN", "SLAT-SIN"), crval=(150.0, 20.0))))
    assert superg.centre.separation(SkyCoord(150 * u.deg, 20 * u.deg, frame=Supergalactic()).icrs).arcsec < 5
    with pytest.raises(FitsReadError, match="HPLN/HPLT"):  # the Sun's frame: not the sky's
        read_cutout(_fits_bytes(_header(ctype=("HPLN-TAN", "HPLT-TAN"))))
    with pytest.raises(FitsReadError, match="GAPPT"):
        read_cutout(_fits_bytes(_header(ctype=("RA---TAN", "DEC--TAN"), RADESYS="GAPPT")))


# --- bundle: a row for every file met, failures counted once -------------------------------


def test_bundle_reports_every_file_it_meets(skyview_raw_dir, mirabest_dir, tmp_path):
    raw = sorted(skyview_raw_dir.glob("*.fits"))
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.fits").symlink_to(raw[0])
    (data / "b.fits.gz").write_bytes(gzip.compress(raw[1].read_bytes()))
    (data / "sub" / "c.fits").symlink_to(raw[2])
    (data / ".hidden.fits").symlink_to(raw[3])
    (data / "broken.fits").symlink_to(tmp_path / "gone.fits")
    (data / "notes.txt").write_text("not an image")
    # a MiraBest file under a name 105 deg from its WCS: kept at the WCS position, with a warning row
    real = sorted(mirabest_dir.glob("*.fits.fz"))[0]
    code, rest = real.name.split("_", 1)
    ra = float(rest[:7])
    far = f"{code}_{(ra + 105) % 360:07.3f}{rest[7:]}"
    (data / far).symlink_to(real)
    bundle = build_bundle(fits_dirs=[data], out=tmp_path / "b", progress=False, duplicate_radius_arcsec=0)
    assert sorted(Path(f).name for f in bundle.catalogue["file"]) == sorted(["a.fits", "b.fits.gz", "c.fits", far])
    report = bundle.report().set_index("file")
    status = {Path(f).name: s for f, s in report["status"].items()}
    assert status == {
        ".hidden.fits": "skipped",
        "broken.fits": "failed",
        "notes.txt": "skipped",
        far: "warning",
    }
    assert "broken link" in report.loc[str(data / "broken.fits"), "reason"]
    assert "WCS position is used" in report.loc[str(data / far), "reason"]
    manifest = bundle.manifest
    assert (manifest["n_failed"], manifest["n_skipped"], manifest["n_warnings"]) == (1, 2, 1)
    assert manifest["inputs"][0]["n_items"] == 5  # four images and the broken link; skipped files are not inputs


def test_failures_are_counted_once(tmp_path):
    data = tmp_path / "bad"
    data.mkdir()
    for i in range(3):
        (data / f"x{i}.fits").write_text("not FITS")
    with pytest.raises(BundleError, match="none of the 3 inputs"):
        build_bundle(fits_dirs=[data], out=tmp_path / "out", progress=False)


# --- the cutout cache ------------------------------------------------------------------


@pytest.fixture(scope="module")
def standin(shared_data):
    from tests.standins.skyview import SkyViewStandIn

    with SkyViewStandIn(shared_data) as server:
        yield server


def _client(url: str, cache: Path):
    from pretrain.data.first_client import FirstCutoutClient

    return FirstCutoutClient(base_url=url, cache_dir=cache, **FAST)


def test_the_cache_key_names_the_service(standin, tmp_path):
    other = _client("http://127.0.0.1:9/other", tmp_path / "c")
    mine = _client(standin.url, tmp_path / "c")
    position = SkyCoord(150 * u.deg, 20 * u.deg)
    assert mine.cache_path(mine.request(position)) != other.cache_path(other.request(position))
    assert mine.cache_path(mine.request(name="3C 236")) != other.cache_path(other.request(name="3C 236"))


def test_planted_and_odd_cache_entries_are_not_served(standin, skyview_raw_dir, tmp_path):
    standin.reset()
    real = read_cutout(sorted(skyview_raw_dir.glob("*.fits"))[4])
    decoy = read_cutout(sorted(skyview_raw_dir.glob("*.fits"))[5])
    client = _client(standin.url, tmp_path / "c")
    request = client.request(real.centre)
    path = client.cache_path(request)
    path.parent.mkdir(parents=True)
    # a link planted under the entry's name (to another FITS file) is not this cutout
    path.symlink_to(sorted(skyview_raw_dir.glob("*.fits"))[5])
    assert client.cached(request) is None
    got = client.fetch(real.centre)
    assert np.array_equal(got.data, real.data, equal_nan=True) and not np.array_equal(got.data, decoy.data)
    assert path.is_file() and not path.is_symlink()
    # a folder in the entry's place: the look-up still works, uncached, and fetch_path says why
    path.unlink()
    path.mkdir()
    with pytest.warns(UserWarning, match="not cached"):
        assert np.array_equal(client.fetch(real.centre).data, real.data, equal_nan=True)
    from pretrain.errors import CutoutServiceError

    with pytest.warns(UserWarning), pytest.raises(CutoutServiceError, match="cannot be written to the cache"):
        client.fetch_path(real.centre)


@pytest.mark.skipif(os.geteuid() != 0, reason="a second user needs root to be made")
def test_a_second_user_reads_a_shared_cache_and_ignores_a_private_one(standin, skyview_raw_dir, tmp_path, request):
    """Root writes a cutout into a shared (g+ws) cache; user 'nobody' in the cache's group
    reads it without a network call. In a private cache, another user's file is not trusted."""
    standin.reset()
    real = read_cutout(sorted(skyview_raw_dir.glob("*.fits"))[6])
    shared = Path(tempfile.mkdtemp(prefix="shared-cache-", dir="/tmp"))  # pytest's folders are root's only
    request.addfinalizer(lambda: shutil.rmtree(shared, ignore_errors=True))
    os.chown(shared, 0, 100)
    shared.chmod(0o2775)
    client = _client(standin.url, shared / "cutouts")
    entry = client.fetch_path(real.centre)
    assert stat.S_IMODE(entry.stat().st_mode) & 0o060 == 0o060  # group-readable and -writable (was 0600)
    assert stat.S_IMODE(entry.parent.stat().st_mode) & 0o2070 == 0o2070  # the folder made in it is shared too
    requests_before = standin.request_count
    wanted = client.request(real.centre)
    read_fd, write_fd = os.pipe()
    child = os.fork()  # the second user: modules already imported (their files are root's)
    if child == 0:
        try:
            os.setgroups([100])
            os.setgid(100)
            os.setuid(65534)
            second = _client(standin.url, shared / "cutouts")
            cutout = second.cached(wanted)
            os.write(
                write_fd, b"hit" if cutout is not None and np.array_equal(cutout.data, real.data, True) else b"miss"
            )
        except BaseException as exc:
            os.write(write_fd, f"error {type(exc).__name__}: {exc}".encode()[:500])
        finally:
            os._exit(0)
    os.close(write_fd)
    answer = os.read(read_fd, 1000).decode()
    os.waitpid(child, 0)
    assert answer == "hit", answer
    assert standin.request_count == requests_before
    # another user's file in a private (not group-writable) cache is not trusted
    private = tmp_path / "private"
    mine = _client(standin.url, private)
    path = mine.cache_path(mine.request(real.centre))
    private.mkdir()
    path.write_bytes(entry.read_bytes())
    assert mine.cached(mine.request(real.centre)) is not None
    os.chown(path, 65534, 65534)
    assert mine.cached(mine.request(real.centre)) is None


# --- damaged spaces and bundles: reported for that item, with the command that rebuilds it --


def _small_space(tmp_path: Path, bundle_path: Path):
    from pretrain.mapping import MapProjector
    from pretrain.space import save_space

    x = np.random.default_rng(0).normal(size=(40, 16)).astype(np.float32)
    projector = MapProjector(random_state=1, n_neighbors=10)
    xy = projector.fit_transform(x)
    provenance = {"weights": {"sha256": "w", "file": "w.safetensors"}, "bundle": {"id": "b", "path": str(bundle_path)}}
    return save_space(tmp_path / "space", [f"J{i:04d}" for i in range(40)], x, xy, None, projector, provenance)


@pytest.mark.slow  # UMAP's first fit compiles (numba)
@pytest.mark.parametrize("name", ["map.parquet", "embeddings.parquet"])
def test_a_damaged_space_file_makes_the_space_stale_with_a_full_rebuild_command(tmp_path, name):
    from pretrain.space import SpaceError, is_stale, load_space

    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"weights")
    space = _small_space(tmp_path, tmp_path / "bundle")
    raw = (space.path / name).read_bytes()
    (space.path / name).write_bytes(raw[: len(raw) // 2])
    assert name in str(is_stale(space.path, weights))  # stale: the app's preparation rebuilds it
    with pytest.raises(SpaceError) as error:
        load_space(space.path)
    message = str(error.value)
    assert f"--bundle {tmp_path / 'bundle'}" in message and "--weights w.safetensors" in message
    assert f"--out {space.path}" in message


def test_a_truncated_images_file_is_reported_not_shown_as_no_image(tmp_path, skyview_raw_dir):
    from explorer.space_registry import _bundle_images
    from pretrain.data.bundle import load_bundle

    data = tmp_path / "data"
    data.mkdir()
    for f in sorted(skyview_raw_dir.glob("*.fits"))[:5]:
        (data / f.name).symlink_to(f)
    bundle = build_bundle(fits_dirs=[data], out=tmp_path / "bundle", progress=False)
    images = bundle.path / "images.npy"
    raw = images.read_bytes()
    images.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(BundleError, match=f"bundle --fits {data} --out {bundle.path} --overwrite"):
        load_bundle(bundle.path)

    class FakeSpace:
        bundle_path = bundle.path

    found, problem = _bundle_images(FakeSpace())
    assert found is None and "images.npy" in problem  # the cards say this instead of "no image"
    from explorer.default_space import bundle_matches

    assert not bundle_matches(bundle.path, data)  # the default space's bundle is rebuilt


# --- SkyView faults through the real client: huge answers, redirect loops, resets -------------


@pytest.mark.parametrize(
    "mode, words",
    [
        ("huge", "more than 64 MB for one cutout"),
        ("redirect", "Check the service URL"),
        ("reset", "Could not reach the FIRST cutout service"),
    ],
)
def test_service_faults_give_one_clear_error_and_cache_nothing(standin, tmp_path, mode, words):
    from pretrain.errors import CutoutServiceError

    standin.reset()
    standin.mode = mode
    client = _client(standin.url, tmp_path / "c")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        with pytest.raises(CutoutServiceError, match=words):
            client.fetch(SkyCoord(150 * u.deg, 20 * u.deg))
    finally:
        standin.reset()
    assert not any((tmp_path / "c").glob("*.fits"))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # kB: a 1 GB answer is not held
