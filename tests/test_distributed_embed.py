"""`embed --engine dask`: chunked, resumable, on a local cluster of two workers, equal to one process.

The bundle is synthetic (tests/test_train.py's radio sources) and the encoder a random
narrow ResNet-18 (width 16): what is tested is the job, not the representation.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from pretrain import config
from pretrain.data.bundle import IMAGES_FILE, load_bundle
from pretrain.embed import embed_images
from pretrain.engines.dask_engine import DaskEmbedder, parts_folder_of
from pretrain.engines.parts import JOB_FILE, PartsJob, plan_chunks
from pretrain.errors import ExplorerError
from pretrain.models.backbone import load_encoder, save_encoder
from pretrain.models.resnet import resnet18_encoder
from tests.test_train import write_synthetic_bundle

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def job_inputs(tmp_path_factory):
    """A 48-image bundle, small random weights, and the one-process embedding (d4) of it."""
    folder = tmp_path_factory.mktemp("distributed")
    bundle = write_synthetic_bundle(folder / "bundle", n_fri=20, n_frii=20, n_point=8)
    torch.manual_seed(0)
    weights = save_encoder(resnet18_encoder(width=16), folder / "w.safetensors")
    images = load_bundle(bundle).images
    reference = embed_images(load_encoder(weights), images, batch_size=4, device="cpu", symmetry="d4")
    return bundle, weights, reference


def test_parts_job_adopts_whole_parts_redoes_changed_ones_and_drops_other_jobs(tmp_path):
    assert [(c.start, c.stop) for c in plan_chunks(10, 4)] == [(0, 4), (4, 8), (8, 10)]
    key = {"images": 10, "weights_sha256": "a"}
    job = PartsJob.open(tmp_path / "p", key, chunk_images=4)
    assert [c.index for c in job.pending] == [0, 1, 2]
    rng = np.random.default_rng(0)
    data = rng.normal(size=(10, 3)).astype(np.float32)
    job.write_part(job.chunks[0], data[0:4])
    job.write_part(job.chunks[1], data[4:8])
    # A part written just before the job was killed, not yet listed in job.json: adopted.
    listed = json.loads((tmp_path / "p" / JOB_FILE).read_text())
    np.save(tmp_path / "p" / "part-000002.npy", data[8:10])
    (tmp_path / "p" / ".part-000001.npy.123-abcd.tmp").write_bytes(b"half a part")  # a write cut short
    reopened = PartsJob.open(tmp_path / "p", key, chunk_images=4)
    assert reopened.pending == [] and reopened.done[2]["adopted"]
    assert not list((tmp_path / "p").glob(".*.tmp"))
    np.testing.assert_array_equal(reopened.assemble(), data)
    # A listed part whose content changed since is embedded again, the others kept.
    (tmp_path / "p" / JOB_FILE).write_text(json.dumps(listed))
    np.save(tmp_path / "p" / "part-000001.npy", data[4:8] + 1)
    again = PartsJob.open(tmp_path / "p", key, chunk_images=4)
    assert [c.index for c in again.pending] == [1]
    assert 0 in again.done and not (tmp_path / "p" / "part-000001.npy").exists()
    # Another job's parts (other weights) are never mixed in.
    other = PartsJob.open(tmp_path / "p", {**key, "weights_sha256": "b"}, chunk_images=4)
    assert len(other.pending) == 3 and not list((tmp_path / "p").glob("part-*.npy"))


@pytest.mark.slow
def test_a_two_worker_cluster_by_address_embeds_as_one_process(job_inputs, tmp_path):
    """An existing cluster (--address) of two workers; the local cluster the command starts by
    default is the one of the kill-and-resume test below."""
    from distributed import LocalCluster

    bundle, weights, reference = job_inputs
    images = load_bundle(bundle).images
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None, processes=True) as cluster:
        address = cluster.scheduler_address
        embedder = DaskEmbedder(bundle / IMAGES_FILE, "b", weights, tmp_path / "parts", address=address, chunk_images=8)
        calls = []
        z = embedder(None, images, 4, "cpu", progress=lambda d, t: calls.append((d, t)), symmetry="d4")
    np.testing.assert_allclose(z, reference, rtol=1e-5, atol=1e-6)
    assert sorted(embedder.computed) == list(range(6)) and embedder.reused == []
    assert calls[0] == (0, 48) and calls[-1] == (48, 48) and len(calls) == 7
    done = json.loads((tmp_path / "parts" / JOB_FILE).read_text())["done"]
    assert len({done[str(i)]["worker"] for i in range(6)}) == 2  # both workers took chunks
    # The same job again: every chunk is on disk, nothing is embedded (no cluster is asked).
    again = DaskEmbedder(bundle / IMAGES_FILE, "b", weights, tmp_path / "parts", address=address, chunk_images=8)
    np.testing.assert_array_equal(again(None, images, 4, "cpu", symmetry="d4"), z)
    assert again.computed == [] and sorted(again.reused) == list(range(6))


def test_an_unreachable_cluster_is_a_clear_error(job_inputs, tmp_path, monkeypatch):
    bundle, weights, _ = job_inputs
    monkeypatch.setattr(config, "EMBED_CLUSTER_TIMEOUT_S", 2.0)
    address = "tcp://127.0.0.1:9"  # the discard port: nothing listens there
    embedder = DaskEmbedder(bundle / IMAGES_FILE, "b", weights, tmp_path / "p", address=address, chunk_images=8)
    with pytest.raises(ExplorerError, match=r"no Dask scheduler answered at tcp://127.0.0.1:9"):
        embedder(None, load_bundle(bundle).images, 4, "cpu", symmetry="d4")


def _command(bundle: Path, weights: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "pretrain", "embed", "--bundle", str(bundle), "--out", str(out),
        "--weights", str(weights), "--device", "cpu", "--batch-size", "4",
        "--engine", "dask", "--workers", "2", "--chunk-size", "4",
    ]  # fmt: skip


def _done_chunks(parts: Path) -> dict:
    try:
        return json.loads((parts / JOB_FILE).read_text())["done"]
    except (OSError, ValueError):
        return {}


@pytest.mark.slow
def test_a_job_killed_midway_resumes_without_embedding_any_chunk_twice(job_inputs, tmp_path):
    """The CLI on a two-worker cluster, SIGKILLed (with its workers) after a few of its 12
    chunks; the same command finishes the rest and writes the one-process embedding."""
    bundle, weights, reference = job_inputs
    out = tmp_path / "space"
    parts = parts_folder_of(out)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    job = subprocess.Popen(
        _command(bundle, weights, out), cwd=REPO, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while len(_done_chunks(parts)) < 3 and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        os.killpg(job.pid, signal.SIGKILL)  # the driver and the workers it started, at once
        job.wait()
    done_before = _done_chunks(parts)
    assert 3 <= len(done_before) < 12, f"the job was not killed midway ({len(done_before)} of 12 chunks done)"
    assert not (out / "manifest.json").exists()  # no space was written
    # Every listed part is on disk; a part written after the last listing is whole too (adopted).
    files_before = {p.name for p in parts.glob("part-*.npy")}
    assert files_before >= {f"part-{int(i):06d}.npy" for i in done_before}

    rerun = subprocess.run(_command(bundle, weights, out), cwd=REPO, env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    reused = len(files_before)
    assert f"{12 - reused} chunks embedded, {reused} taken from an earlier run" in rerun.stderr
    assert not parts.exists()  # removed once the space was written

    table = pq.read_table(out / "embeddings.parquet")
    embeddings = np.stack(table.column("embedding").to_numpy(zero_copy_only=False))
    assert table.column("source_id").to_pylist() == load_bundle(bundle).catalogue["source_id"].tolist()
    np.testing.assert_allclose(embeddings, reference, rtol=1e-5, atol=1e-6)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["parameters"]["engine"] == "dask (local cluster, 2 workers)"


def test_the_command_refuses_inconsistent_engine_flags(job_inputs, tmp_path, capsys):
    from pretrain.__main__ import main

    bundle, weights, _ = job_inputs
    args = ["embed", "--bundle", str(bundle), "--out", str(tmp_path / "s"), "--weights", str(weights)]
    assert main([*args, "--address", "tcp://127.0.0.1:8786"]) == 2
    assert "--address names a Dask cluster: add --engine dask" in capsys.readouterr().err
    assert main([*args, "--engine", "dask", "--chunk-size", "0"]) == 2
    assert "--chunk-size must be at least 1" in capsys.readouterr().err
