"""The FIRST cutout client, end to end against the SkyView stand-in on 127.0.0.1.

The client is the production code; only its base URL points at the stand-in, which
serves real FIRST cutouts from ../shared/data the way SkyView serves them.
"""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from pretrain.data.first_client import FirstCutoutClient
from pretrain.data.fits_io import read_cutout
from pretrain.data.positions import parse_position
from pretrain.errors import (
    CutoutServiceError,
    NameResolveError,
    NoNetworkError,
    OutsideFootprintError,
    PositionError,
)
from tests.standins.skyview import SkyViewStandIn

FAST = dict(timeout_s=2.0, retries=3, backoff_s=0.01, total_timeout_s=10.0)  # small back-off for tests
FAR_SOUTH = SkyCoord(10.0 * u.deg, -60.0 * u.deg)  # never observed by FIRST (Dec < -40 deg)
GALACTIC_PLANE = SkyCoord(280.0 * u.deg, 5.0 * u.deg)  # north, but not in FIRST: SkyView answers blank


@pytest.fixture(scope="module")
def standin(shared_data):
    with SkyViewStandIn(shared_data) as server:
        yield server


@pytest.fixture
def skyview(standin):
    standin.reset()
    yield standin
    standin.reset()


@pytest.fixture
def client(skyview, tmp_path):
    return FirstCutoutClient(base_url=skyview.url, cache_dir=tmp_path / "cutouts", **FAST)


def _cache_files(client: FirstCutoutClient) -> list[Path]:
    return sorted(client.cache_dir.glob("*")) if client.cache_dir.exists() else []


def _equal_up_to_shift(a: np.ndarray, b: np.ndarray, max_shift: int = 2) -> bool:
    """``a`` is ``b`` moved by a whole number of pixels (compared where both overlap)."""
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            ya, yb = slice(max(dy, 0), a.shape[0] + min(dy, 0)), slice(max(-dy, 0), b.shape[0] + min(-dy, 0))
            xa, xb = slice(max(dx, 0), a.shape[1] + min(dx, 0)), slice(max(-dx, 0), b.shape[1] + min(-dx, 0))
            if np.array_equal(a[ya, xa], b[yb, xb], equal_nan=True):
                return True
    return False


# --- real pixels, by position and by name ----------------------------------------------
def test_fetch_by_position_returns_the_real_skyview_file(client, skyview_raw_dir):
    path = sorted(skyview_raw_dir.glob("*.fits"))[3]
    real = read_cutout(path)
    cutout = client.fetch(real.centre)
    assert cutout.shape == (300, 300)
    assert np.array_equal(cutout.data, real.data, equal_nan=True)
    assert cutout.centre.separation(real.centre).arcsec < 1.0
    assert Path(cutout.source).parent == client.cache_dir


def test_fetch_by_position_serves_a_mirabest_file_at_a_smaller_size(client, mirabest_dir):
    path = sorted(mirabest_dir.glob("2*.fits.fz"))[10]
    real = read_cutout(path)
    cutout = client.fetch(real.centre, pixels=150)
    assert cutout.shape == (150, 150)
    assert np.array_equal(cutout.data, real.data[75:225, 75:225], equal_nan=True)
    assert abs(cutout.pixel_scale_arcsec - 1.8) < 0.01


def test_fetch_by_name_resolves_at_the_service(client, frdeep_dir):
    with open(frdeep_dir / "catalogue.csv", newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["Object_ID"] == "3C 236")
    catalogued = SkyCoord(row["RA(J2000)"], row["DEC(J2000)"], unit=(u.hourangle, u.deg))
    real = read_cutout(frdeep_dir / "FIRST" / "3C 236_II.fits.fz")
    cutout = client.fetch(name="3C 236", pixels=150)
    assert cutout.shape == (150, 150)
    assert cutout.centre.separation(catalogued).arcsec < 1.0  # centred where SkyView resolved it
    assert _equal_up_to_shift(cutout.data, real.data)  # the real pixels, re-centred
    assert np.nanmax(cutout.data) > 0


# --- the cache ---------------------------------------------------------------------------
def test_repeated_request_makes_no_network_call(client, skyview, skyview_raw_dir, tmp_path):
    real = read_cutout(sorted(skyview_raw_dir.glob("*.fits"))[0])
    first = client.fetch_path(real.centre)
    assert skyview.request_count > 0
    count = skyview.request_count
    assert client.fetch_path(real.centre) == first
    # ... also from a fresh client on the same cache (another session of the app)
    again = FirstCutoutClient(base_url=skyview.url, cache_dir=client.cache_dir, **FAST)
    assert np.array_equal(again.fetch(real.centre).data, real.data, equal_nan=True)
    assert again.fetch_path(name=None, position=real.centre) == first
    assert skyview.request_count == count
    # a different size is a different cutout
    client.fetch(real.centre, pixels=100)
    assert skyview.request_count > count


def test_name_lookups_are_cached_too(client, skyview):
    client.fetch(name="3C 192", pixels=150)
    count = skyview.request_count
    assert client.fetch(name="3C  192", pixels=150).shape == (150, 150)  # same name, other spacing
    assert skyview.request_count == count


def test_a_damaged_cache_entry_is_fetched_again(client, skyview, skyview_raw_dir):
    real = read_cutout(sorted(skyview_raw_dir.glob("*.fits"))[1])
    path = client.fetch_path(real.centre)
    path.write_bytes(path.read_bytes()[:5000])  # e.g. a disk filled up by something else
    count = skyview.request_count
    cutout = client.fetch(real.centre)
    assert skyview.request_count > count
    assert np.array_equal(cutout.data, real.data, equal_nan=True)


def test_an_interrupted_cache_write_leaves_no_entry(client, skyview_raw_dir, monkeypatch):
    import pretrain.data.first_client as first_client

    def interrupted(*args):
        raise KeyboardInterrupt  # Ctrl-C after the data is written, before it is in place

    real = read_cutout(sorted(skyview_raw_dir.glob("*.fits"))[7])
    monkeypatch.setattr(first_client.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        client.fetch(real.centre)
    assert _cache_files(client) == []  # neither a half entry nor a temporary file
    monkeypatch.undo()
    assert np.array_equal(client.fetch(real.centre).data, real.data, equal_nan=True)


# --- what goes wrong ---------------------------------------------------------------------
@pytest.mark.parametrize("blank", [0.0, float("nan")])
def test_outside_the_footprint_is_reported(client, skyview, blank):
    skyview.blank_value = blank
    count = skyview.request_count
    with pytest.raises(OutsideFootprintError) as info:
        client.fetch(GALACTIC_PLANE)
    assert skyview.request_count > count  # only SkyView's blank image can tell here
    message = str(info.value)
    assert "outside the FIRST survey footprint" in message and "blank image" in message and "10,000" in message
    assert "Dec +5.00000" in message  # says which position
    assert _cache_files(client) == []  # a blank image is not kept


def test_far_south_is_refused_without_a_request(client, skyview):
    count = skyview.request_count
    with pytest.raises(OutsideFootprintError) as info:
        client.fetch(FAR_SOUTH)
    assert skyview.request_count == count
    message = str(info.value)
    assert "outside the FIRST survey footprint" in message and "-60.00000" in message and "-40 deg" in message


def test_unknown_name_is_reported(client):
    with pytest.raises(NameResolveError) as info:
        client.fetch(name="Not A Radio Galaxy 42")
    assert "Not A Radio Galaxy 42" in str(info.value)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_network_gives_a_clear_error_within_the_budget(tmp_path):
    client = FirstCutoutClient(
        base_url=f"http://127.0.0.1:{_closed_port()}/current/cgi/basicform.pl",
        cache_dir=tmp_path,
        timeout_s=1.0,
        retries=2,
        backoff_s=0.05,
        total_timeout_s=3.0,
    )
    start = time.monotonic()
    with pytest.raises(NoNetworkError) as info:
        client.fetch(SkyCoord(150 * u.deg, 30 * u.deg))
    assert time.monotonic() - start < 3.0 + 2.0  # the budget, plus slack for a busy machine
    assert "no network" in str(info.value).lower() and "3 attempts" in str(info.value)


def test_dns_failure_is_reported_as_no_network(tmp_path, monkeypatch):
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):  # no resolver is asked: the name fails here
        if str(host).endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    client = FirstCutoutClient(
        base_url="http://skyview.invalid/current/cgi/basicform.pl", cache_dir=tmp_path, retries=1, backoff_s=0.01
    )
    with pytest.raises(NoNetworkError, match="DNS"):
        client.fetch(SkyCoord(150 * u.deg, 30 * u.deg))


def test_slow_server_times_out_within_the_budget(client, skyview):
    skyview.mode, skyview.slow_s = "slow", 30.0
    slow = FirstCutoutClient(
        base_url=skyview.url, cache_dir=client.cache_dir, timeout_s=0.5, retries=5, backoff_s=0.01, total_timeout_s=1.5
    )
    start = time.monotonic()
    with pytest.raises(NoNetworkError, match="time-out"):
        slow.fetch(SkyCoord(150 * u.deg, 30 * u.deg))
    assert time.monotonic() - start < 1.5 + 2.0
    assert skyview.request_count >= 2  # it did retry while the budget lasted


def test_html_page_instead_of_fits_is_a_clear_error(client, skyview, skyview_raw_dir):
    skyview.mode = "html"
    real = read_cutout(sorted(skyview_raw_dir.glob("*.fits"))[2])
    with pytest.raises(CutoutServiceError) as info:
        client.fetch(real.centre)
    assert not isinstance(info.value, NoNetworkError)
    assert "HTML" in str(info.value)
    assert _cache_files(client) == []


def test_truncated_fits_is_a_clear_error_and_leaves_no_cache_entry(client, skyview, skyview_raw_dir):
    skyview.mode = "truncated"
    real = read_cutout(sorted(skyview_raw_dir.glob("*.fits"))[2])
    with pytest.raises(CutoutServiceError, match=r"truncated|damaged"):
        client.fetch(real.centre)
    assert _cache_files(client) == []  # not even a temporary file
    skyview.mode = None
    assert np.array_equal(client.fetch(real.centre).data, real.data, equal_nan=True)


@pytest.mark.parametrize("mode, message", [("offset", "centred 60.0 arcsec away"), ("size", "300 x 300 image")])
def test_an_image_that_is_not_what_was_asked_for_is_rejected(client, skyview, skyview_raw_dir, mode, message):
    skyview.mode = mode
    real = read_cutout(sorted(skyview_raw_dir.glob("*.fits"))[6])
    with pytest.raises(CutoutServiceError, match=message):
        client.fetch(real.centre, pixels=150)
    assert _cache_files(client) == []


def test_server_errors_are_retried_then_succeed(client, skyview, skyview_raw_dir):
    real = read_cutout(sorted(skyview_raw_dir.glob("*.fits"))[4])
    skyview.fail_next(2, status=500)
    cutout = client.fetch(real.centre)
    assert np.array_equal(cutout.data, real.data, equal_nan=True)
    assert skyview.request_count > 4  # the failed attempts came first


def test_persistent_server_errors_give_up_with_the_status(client, skyview):
    skyview.fail_next(100, status=503)
    with pytest.raises(CutoutServiceError, match="HTTP 503") as info:
        client.fetch(SkyCoord(150 * u.deg, 30 * u.deg))
    assert not isinstance(info.value, NoNetworkError)
    assert skyview.request_count == FAST["retries"] + 1  # bounded: one request per attempt


# --- typed positions ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, ra, dec",
    [
        ("139.148 4.681", 139.148, 4.681),
        ("139.148, +4.681", 139.148, 4.681),
        ("139.148,-4.681", 139.148, -4.681),
        ("09h16m35.5s +04d40m52s", 139.1479167, 4.6811111),
        ("09 16 35.5 +04 40 52", 139.1479167, 4.6811111),
        ("09:16:35.5 +04:40:52", 139.1479167, 4.6811111),
        ("10 06 01.74, +34 54 10.4", 151.50725, 34.9028889),
        ("12 00 00 -00 30 00", 180.0, -0.5),
    ],
)
def test_parse_position_reads_decimal_and_sexagesimal(text, ra, dec):
    coord = parse_position(text)
    assert coord is not None
    assert coord.separation(SkyCoord(ra * u.deg, dec * u.deg)).arcsec < 0.05


@pytest.mark.parametrize("text", ["3C 236", "NGC 1265", "4C 31.30", "WB 1504+1618", "M 87", ""])
def test_parse_position_leaves_names_alone(text):
    assert parse_position(text) is None


@pytest.mark.parametrize("text", ["400 10", "10 95", "09 61 00 +04 40 52"])
def test_parse_position_rejects_impossible_coordinates(text):
    with pytest.raises(PositionError):
        parse_position(text)


# --- the command line ---------------------------------------------------------------------
def _lookup(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, EXPLORER_CACHE=str(tmp_path / "cache"))
    return subprocess.run(
        [sys.executable, "-m", "pretrain", "lookup", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=120,
    )


def test_lookup_command_writes_a_readable_fits_file(skyview, skyview_raw_dir, tmp_path):
    real = read_cutout(sorted(skyview_raw_dir.glob("*.fits"))[5])
    out = tmp_path / "cutout.fits"
    result = _lookup(
        [
            "--ra",
            f"{real.centre.ra.deg:.5f}",
            "--dec",
            f"{real.centre.dec.deg:.5f}",
            "--out",
            str(out),
            "--base-url",
            skyview.url,
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert str(out) in result.stdout and "300 x 300" in result.stdout
    assert np.array_equal(read_cutout(out).data, real.data, equal_nan=True)


def test_lookup_command_errors_are_one_clear_line(skyview, tmp_path):
    result = _lookup(["--name", "Not A Radio Galaxy 42", "--base-url", skyview.url], tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error:") and "could not resolve" in result.stderr


# --- the survey profile and the one factory ---------------------------------------------
def test_the_factory_gives_the_same_first_requests_as_before(skyview, tmp_path, monkeypatch, skyview_raw_dir):
    from pretrain.data.first_client import cutout_client

    monkeypatch.setenv("EXPLORER_SKYVIEW_URL", skyview.url)  # read when the client is made
    client = cutout_client(cache_dir=tmp_path / "cutouts", **FAST)
    assert client.base_url == skyview.url and client.survey.key == "first"
    request = client.request(FAR_SOUTH)
    assert (request.survey, request.pixels, request.pixel_scale_arcsec) == ("VLA FIRST (1.4 GHz)", 300, 1.8)
    assert request.cache_file_name().startswith("first_")
    # the same cache entry as a client made directly, so caches made before still count
    direct = FirstCutoutClient(base_url=skyview.url, cache_dir=tmp_path / "cutouts")
    assert direct.cache_path(direct.request(FAR_SOUTH)) == client.cache_path(request)
    real = read_cutout(sorted(skyview_raw_dir.glob("*.fits"))[5])
    assert np.array_equal(client.fetch(real.centre).data, real.data, equal_nan=True)


def test_another_surveys_requests_and_footprint(skyview, tmp_path):
    from pretrain.data.first_client import cutout_client

    nvss = cutout_client("nvss", base_url=skyview.url, cache_dir=tmp_path / "cutouts", **FAST)
    position = SkyCoord(139.148 * u.deg, 4.681 * u.deg)
    request = nvss.request(position)
    assert (request.survey, request.pixel_scale_arcsec, request.pixels) == ("NVSS", 15.0, 36)  # 9 arcmin
    assert request.cache_file_name().startswith("nvss_")
    assert request.cache_key() != FirstCutoutClient(base_url=skyview.url).request(position).cache_key()
    count = skyview.request_count
    with pytest.raises(OutsideFootprintError) as info:
        nvss.fetch(FAR_SOUTH)
    assert skyview.request_count == count  # refused without a request
    message = str(info.value)
    assert "outside the NVSS survey footprint" in message and "south of Dec -40 deg" in message


def test_lookup_command_takes_a_survey(skyview, skyview_raw_dir, tmp_path, capsys, monkeypatch):
    from pretrain.__main__ import main as cli

    monkeypatch.setenv("EXPLORER_SKYVIEW_URL", skyview.url)
    real = read_cutout(sorted(skyview_raw_dir.glob("*.fits"))[2])
    ra, dec = real.centre.ra.deg, real.centre.dec.deg
    out = tmp_path / "cutout.fits"
    assert cli(["lookup", "--survey", "first", "--ra", str(ra), "--dec", str(dec), "--out", str(out)]) == 0
    assert "in VLA FIRST (1.4 GHz)" in capsys.readouterr().out
    assert np.array_equal(read_cutout(out).data, real.data, equal_nan=True)
    count = skyview.request_count
    assert cli(["lookup", "--survey", "nvss", "--ra", "10", "--dec", "-60"]) == 2
    assert "outside the NVSS survey footprint" in capsys.readouterr().err
    assert cli(["lookup", "--survey", "emu", "--ra", "10", "--dec", "-60"]) == 2
    assert "EMU has no cutout service" in capsys.readouterr().err
    assert skyview.request_count == count
