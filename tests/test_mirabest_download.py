"""Finding and downloading MiraBest, against a GitHub stand-in serving real MiraBest files."""

from __future__ import annotations

import json
import re
import shutil
import socket
import warnings

import pytest

from pretrain import config
from pretrain.__main__ import main
from pretrain.data.mirabest import download_mirabest, find_mirabest, mirabest_cache_dir
from pretrain.errors import DatasetNotFoundError, DownloadError
from tests.standins.github import GitHubStandin

N_FILES = 20
FAST = dict(backoff=0.01, timeout=5.0)  # small back-off keeps retry tests quick


@pytest.fixture(scope="module")
def subset(mirabest_dir):
    """Real MiraBest files, served from where they lie (spread over the classes)."""
    files = sorted(p for p in mirabest_dir.iterdir() if p.name.endswith(".fits.fz"))
    step = len(files) // N_FILES
    return files[::step][:N_FILES]


@pytest.fixture
def github(subset):
    with GitHubStandin(subset, config.MIRABEST_COMMIT) as gh:
        yield gh


@pytest.fixture
def no_local_copy(monkeypatch, tmp_path):
    """A fresh machine: no EXPLORER_MIRABEST_DIR, no shared data folder (cache is per test)."""
    monkeypatch.delenv(config.MIRABEST_DIR_ENV, raising=False)
    monkeypatch.setattr(config, "SHARED_DATA_DIR", tmp_path / "no-shared-data")


@pytest.fixture
def fast_retries(monkeypatch):
    """Keep the configured number of retries, with a tiny back-off, where no argument reaches."""
    monkeypatch.setattr(config, "MIRABEST_BACKOFF_S", 0.01)


def _download(gh, dest, **kwargs):
    options = dict(base_url=gh.raw_url, api_url=gh.api_url, expected_count=N_FILES, **FAST)
    options.update(kwargs)
    return download_mirabest(dest, **options)


def _same_files(dest, originals) -> bool:
    return all((dest / f.name).read_bytes() == f.read_bytes() for f in originals)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_download_gives_verified_identical_files_and_manifest(github, subset, tmp_path):
    calls = []
    dest = _download(github, tmp_path / "mb", progress=lambda done, total: calls.append((done, total)))

    assert dest == tmp_path / "mb"
    assert sorted(p.name for p in dest.glob("*.fits.fz")) == sorted(f.name for f in subset)
    assert _same_files(dest, subset)
    assert not list(dest.glob("*.part"))
    manifest = json.loads((dest / config.MIRABEST_MANIFEST).read_text())
    assert manifest["commit"] == config.MIRABEST_COMMIT
    assert sorted(f["name"] for f in manifest["files"]) == sorted(f.name for f in subset)
    assert {f["name"]: f["size"] for f in manifest["files"]} == {f.name: f.stat().st_size for f in subset}
    # The README and the FITS tree entry of the listing are not files of the data set.
    assert not (dest / "README.md").exists()
    assert calls[0] == (0, N_FILES) and calls[-1] == (N_FILES, N_FILES)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert len(github.raw_requests()) == N_FILES


def test_second_call_makes_no_file_requests(github, subset, no_local_copy):
    with pytest.warns(UserWarning, match=f"not the {config.MIRABEST_FILE_COUNT} expected"):
        first = find_mirabest(base_url=github.raw_url, api_url=github.api_url)
    assert first == mirabest_cache_dir()
    assert first.name == f"mirabest-{config.MIRABEST_COMMIT[:7]}"
    assert _same_files(first, subset)
    requests_after_first = len(github.requests)

    # A complete cache is found without any network request at all ...
    assert find_mirabest(base_url=github.raw_url, api_url=github.api_url) == first
    assert find_mirabest(download=False) == first
    assert len(github.requests) == requests_after_first
    # ... and an explicit re-download lists the folder but fetches no file.
    _download(github, first)
    assert len(github.raw_requests()) == N_FILES
    assert len(github.api_requests()) == 2


def test_interrupted_download_resumes(github, subset, tmp_path):
    dest = tmp_path / "mb"
    cut_short = subset[3].name
    github.drop_first = {cut_short}

    def interrupt(done, total):  # the user presses Ctrl-C half-way through
        if done >= N_FILES // 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _download(github, dest, progress=interrupt, retries=0, workers=1)
    partial = (dest / (cut_short + ".part")).stat().st_size
    assert 0 < partial < subset[3].stat().st_size
    assert not (dest / config.MIRABEST_MANIFEST).exists()
    present = {p.name for p in dest.glob("*.fits.fz")}
    missing = {f.name for f in subset} - present
    assert present and missing

    before = len(github.raw_requests())
    _download(github, dest)
    again = github.raw_requests()[before:]
    assert {r.name for r in again} == missing
    assert len(again) == len(missing)  # each missing file once
    resumed = next(r for r in again if r.name == cut_short)
    assert (resumed.range, resumed.status) == (f"bytes={partial}-", 206)  # only the rest
    assert _same_files(dest, subset)
    assert (dest / config.MIRABEST_MANIFEST).exists()


@pytest.mark.parametrize("range_support", [True, False])
def test_dropped_connection_is_resumed_within_a_run(github, subset, tmp_path, range_support):
    name = subset[0].name
    github.drop_first = {name}
    github.range_support = range_support

    dest = _download(github, tmp_path / "mb")

    tries = [r for r in github.raw_requests() if r.name == name]
    assert len(tries) == 2
    assert tries[0].range is None
    # Asks for the rest only (from what had arrived before the drop) ...
    received = int(re.fullmatch(r"bytes=(\d+)-", tries[1].range).group(1))
    assert 0 < received <= subset[0].stat().st_size // 2
    assert tries[1].status == (206 if range_support else 200)  # ... else takes the whole file again
    assert _same_files(dest, subset)


def test_corrupted_file_is_detected(github, subset, tmp_path):
    bad = subset[5].name
    github.corrupt = {bad}
    dest = tmp_path / "mb"

    with pytest.raises(DownloadError) as caught:
        _download(github, dest, retries=1)
    message = str(caught.value)
    assert f"FITS/{bad}" in message and "SHA-1" in message
    assert sum(name in message for name in (f.name for f in subset)) == 1  # only that file named
    assert not (dest / bad).exists() and not (dest / (bad + ".part")).exists()
    assert not (dest / config.MIRABEST_MANIFEST).exists()
    good = [f for f in subset if f.name != bad]
    assert _same_files(dest, good)  # the rest are kept
    assert len([r for r in github.raw_requests() if r.name == bad]) == 2  # retried once

    github.corrupt = set()  # the server is fixed: the next run fetches only that file
    before = len(github.raw_requests())
    _download(github, dest)
    assert [r.name for r in github.raw_requests()[before:]] == [bad]
    assert _same_files(dest, subset)


def test_a_damaged_file_in_the_folder_is_fetched_again(github, subset, tmp_path):
    dest = _download(github, tmp_path / "mb")
    victim = dest / subset[2].name
    victim.write_bytes(victim.read_bytes()[:-10] + b"0123456789")  # same size, wrong bytes
    before = len(github.raw_requests())
    _download(github, dest)
    assert [r.name for r in github.raw_requests()[before:]] == [subset[2].name]
    assert _same_files(dest, subset)


@pytest.mark.timeout(60)
def test_no_network_gives_a_clear_error(no_local_copy, fast_retries):
    closed = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(DownloadError, match=config.MIRABEST_DIR_ENV) as caught:
        find_mirabest(base_url=closed + "/raw", api_url=closed + "/api")
    assert "no network" in str(caught.value)


def test_no_network_on_the_command_line(no_local_copy, fast_retries, tmp_path, capsys):
    closed = f"http://127.0.0.1:{_closed_port()}"
    code = main(["download-mirabest", "--dest", str(tmp_path / "mb"), "--base-url", closed, "--api-url", closed])
    err = capsys.readouterr().err
    assert code == 2
    assert config.MIRABEST_DIR_ENV in err and "Traceback" not in err


def test_unknown_commit_is_reported(github, tmp_path):
    with pytest.raises(DownloadError, match="no commit"):
        _download(github, tmp_path / "mb", commit="0" * 40)


def test_count_different_from_the_pinned_data_set_warns(github, tmp_path):
    with pytest.warns(UserWarning, match=f"{N_FILES} FITS files, not the {config.MIRABEST_FILE_COUNT}"):
        _download(github, tmp_path / "mb", expected_count=config.MIRABEST_FILE_COUNT)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _download(github, tmp_path / "mb2")  # the expected count: no warning


def test_environment_variable_wins_over_everything(github, subset, tmp_path, monkeypatch):
    # A complete cache and the shared data folder both exist; the named folder still wins.
    _download(github, mirabest_cache_dir())
    assert (config.SHARED_DATA_DIR / "mirabest").is_dir()
    named = tmp_path / "my-mirabest"
    named.mkdir()
    for f in subset[:3]:
        shutil.copy(f, named / f.name)
    monkeypatch.setenv(config.MIRABEST_DIR_ENV, str(named))
    before = len(github.requests)
    assert find_mirabest(base_url=github.raw_url, api_url=github.api_url) == named
    assert len(github.requests) == before


def test_environment_variable_naming_a_missing_folder_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv(config.MIRABEST_DIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(DatasetNotFoundError, match="not a folder"):
        find_mirabest(download=False)
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv(config.MIRABEST_DIR_ENV, str(tmp_path / "empty"))
    with pytest.raises(DatasetNotFoundError, match="holds no FITS files"):
        find_mirabest(download=False)


def test_shared_data_folder_is_used_when_present(mirabest_dir, monkeypatch):
    monkeypatch.delenv(config.MIRABEST_DIR_ENV, raising=False)
    assert find_mirabest(download=False) == config.SHARED_DATA_DIR / "mirabest"


def test_nothing_available_without_download_is_a_clear_error(no_local_copy):
    with pytest.raises(DatasetNotFoundError) as caught:
        find_mirabest(download=False)
    message = str(caught.value)
    assert config.MIRABEST_DIR_ENV in message and "download-mirabest" in message


def test_command_downloads_and_prints_where(github, subset, tmp_path, capsys):
    dest = tmp_path / "mb"
    with pytest.warns(UserWarning):  # 20 files, not 1255
        code = main(
            ["download-mirabest", "--dest", str(dest), "--base-url", github.raw_url, "--api-url", github.api_url]
        )
    assert code == 0
    assert str(dest) in capsys.readouterr().out
    assert _same_files(dest, subset)


def test_a_server_dripping_bytes_is_given_up_at_the_deadline(github, subset, tmp_path, monkeypatch):
    """A read time-out restarts with every byte; the per-file deadline does not."""
    import time

    slow = subset[3].name
    github.trickle = {slow}
    monkeypatch.setattr(config, "MIRABEST_FILE_DEADLINE_S", 1.0)
    dest = tmp_path / "mb"
    start = time.monotonic()
    with pytest.raises(DownloadError) as caught:
        _download(github, dest, retries=1)
    assert time.monotonic() - start < 30  # the file alone would take ~20 min at this rate
    message = str(caught.value)
    assert f"FITS/{slow}" in message and "too slow" in message
    assert _same_files(dest, [f for f in subset if f.name != slow])  # the rest are kept

    github.trickle = set()  # the server recovers: the next run resumes the partial file
    before = len(github.raw_requests())
    _download(github, dest)
    resumed = [r for r in github.raw_requests()[before:] if r.name == slow]
    assert len(resumed) == 1 and resumed[0].range is not None and resumed[0].status == 206
    assert _same_files(dest, subset)


def test_a_huge_listing_is_refused_while_it_is_read(github, tmp_path, monkeypatch):
    github.listing_padding = 3 * 1024**2
    monkeypatch.setattr(config, "MIRABEST_LISTING_MAX_BYTES", 1024**2)
    with pytest.raises(DownloadError, match="more than 1 MB for the file listing"):
        _download(github, tmp_path / "mb")
