"""The small torch-free helpers: atomic writes, hashes, FITS names, timestamps, devices,
row normalisation, provenance and the fine-tuning run folder."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pretrain import config
from pretrain.clock import utc_timestamp
from pretrain.devices import choose_device, cpu_description, cpu_model
from pretrain.errors import ExplorerError
from pretrain.files import (
    FITS_SUFFIXES,
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    is_fits_name,
    sha256_bytes,
    sha256_file,
)
from pretrain.provenance import default_backbone_path, package_versions, weights_sha256
from pretrain.run_folder import PROGRESS_FILE, STATUS_FILE, RunFolder
from pretrain.vectors import l2_normalise


def test_atomic_writes_replace_whole_files_and_leave_nothing_behind(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_text(target, "old")
    atomic_write_json(target, {"n": np.int64(3), "x": np.float32(0.5), "ok": np.bool_(True), "p": Path("/x")})
    text = target.read_text()
    assert text.endswith("\n") and json.loads(text) == {"n": 3, "x": 0.5, "ok": True, "p": "/x"}
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.bin"]


def test_atomic_path_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "checkpoint.pt"
    target.write_text("complete")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "complete"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_atomic_write_keeps_the_usual_file_permissions(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic_write_text(tmp_path / "atomic.txt", "x")
    assert (tmp_path / "atomic.txt").stat().st_mode == plain.stat().st_mode


def test_sha256_of_bytes_and_files(tmp_path):
    data = os.urandom(3 << 20)  # more than one read chunk
    (tmp_path / "w").write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert sha256_bytes(data) == expected
    assert sha256_file(tmp_path / "w") == expected


def test_weights_hash_follows_a_rewritten_file(tmp_path):
    weights = tmp_path / "w.safetensors"
    atomic_write_bytes(weights, b"a" * 100)
    first = weights_sha256(weights)
    atomic_write_bytes(weights, b"b" * 100)  # same size, new content
    assert first == sha256_bytes(b"a" * 100)
    assert weights_sha256(weights) == sha256_bytes(b"b" * 100)


def test_provenance_facts():
    assert default_backbone_path() == config.ASSETS_DIR / config.DEFAULT_BACKBONE_FILE
    versions = package_versions()
    assert versions["numpy"] == np.__version__ and "python" in versions


def test_fits_suffixes_cover_every_spelling():
    for name in ("a.fits", "A.FITS.FZ", "a.fits.gz", "a.fit", "a.fit.fz", "a.fts"):
        assert is_fits_name(name), name
    for name in ("a.png", "a.fits.part", "fits"):
        assert not is_fits_name(name), name
    assert len(set(FITS_SUFFIXES)) == len(FITS_SUFFIXES)


def test_utc_timestamp_format():
    moment = dt.datetime(2026, 1, 31, 13, 4, 5, 999, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert utc_timestamp(moment) == "2026-01-31T12:04:05Z"
    now = utc_timestamp()
    assert pd.Timestamp(now).tzinfo is not None
    assert abs(pd.Timestamp(now) - pd.Timestamp.now(tz="UTC")) < pd.Timedelta(minutes=1)


def test_choose_device():
    import torch

    assert choose_device("cpu") == torch.device("cpu")
    assert choose_device(torch.device("cpu")) == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    for auto in ("auto", None, ""):
        assert choose_device(auto).type == expected
    with pytest.raises(ExplorerError, match="unknown device"):
        choose_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ExplorerError, match="no CUDA GPU"):
            choose_device("cuda")


def test_cpu_names():
    assert cpu_model()
    assert cpu_description().endswith(f"({os.cpu_count()} cores)")


def test_l2_normalise_rows():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [1e-20, 0.0]])
    unit = l2_normalise(x)
    assert unit.dtype == np.float32
    np.testing.assert_allclose(unit, [[0.6, 0.8], [0.0, 0.0], [1.0, 0.0]], rtol=1e-5)  # tiny rows too
    np.testing.assert_allclose(l2_normalise(np.array([0.0, 2.0])), [0.0, 1.0])  # one vector


def test_run_folder_status_and_progress(tmp_path):
    run = RunFolder(tmp_path)
    run.set_status("running", epoch=np.int64(1))
    run.set_status(stage="training")
    status = json.loads((tmp_path / STATUS_FILE).read_text())
    assert status["state"] == "running" and status["stage"] == "training" and status["epoch"] == 1
    assert status["pid"] == os.getpid() and status["updated"].endswith("Z")
    run.append_progress({"epoch": 1, "loss": np.float32(0.25)})
    assert json.loads((tmp_path / PROGRESS_FILE).read_text()) == {"epoch": 1, "loss": 0.25}


def test_the_app_side_modules_do_not_import_torch():
    code = (
        "import sys; import explorer.jobs, explorer.default_space, pretrain.space, pretrain.provenance, "
        "pretrain.devices, pretrain.run_folder; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=config.REPO_ROOT)
    assert out.stdout.strip() == "False"
