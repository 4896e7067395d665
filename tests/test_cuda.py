"""The CUDA paths: training (bf16 and fp32, with the monitor), resume, embedding.

These need a CUDA GPU and are skipped without one (CI has none). On a GPU machine:
``python -m pytest tests/test_cuda.py`` (synthetic data only: nothing from ../shared).
Each test covers a branch that only runs on CUDA (bf16 autocast and channels_last in
training and embedding, GPU-resident images, the CUDA generator's state in checkpoints),
so a GPU session checks them in one command.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pretrain import config
from pretrain.embed import embed_images
from pretrain.models.backbone import load_encoder
from pretrain.space import SAME_SOURCE_COSINE_TOL
from pretrain.train import CHECKPOINT_FILE, METRICS_FILE, Trainer
from pretrain.vectors import l2_normalise
from tests.test_train import small_config, write_synthetic_bundle

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture
def bundle(tmp_path):
    return write_synthetic_bundle(tmp_path / "bundle")


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_training_on_the_gpu_with_the_monitor(tmp_path, monkeypatch, precision):
    """Three epochs with the kNN monitor after each: the monitor embeds with the live encoder,
    which must stay trainable (fp32 used to break at the first monitor)."""
    monkeypatch.setattr(config, "MONITOR_K", 5)  # a monitor on 30 labelled sources
    bundle = write_synthetic_bundle(tmp_path / "bundle", n_fri=15, n_frii=15, n_point=0)
    trainer = Trainer(
        small_config(bundle, device="cuda", precision=precision, epochs=3), tmp_path / "run", progress=False
    )
    assert trainer.images.is_cuda  # small enough to live on the GPU
    summary = trainer.fit()
    assert summary["epochs_completed"] == 3 and "cuda" in summary["device"]
    records = [json.loads(line) for line in (tmp_path / "run" / METRICS_FILE).read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) for r in records)
    assert all("knn_accuracy_fr" in r for r in records)
    assert not any(p.is_inference() for p in trainer.model.parameters())
    assert (tmp_path / "run" / "backbone.safetensors").is_file()


def test_resume_on_the_gpu_and_across_devices(bundle, tmp_path, capsys):
    run = tmp_path / "run"
    first = Trainer(small_config(bundle, device="cuda"), run, progress=False)
    first.cfg.epochs = 1
    first.fit()
    on_gpu = Trainer(small_config(bundle, device="cuda"), run, progress=False)
    on_gpu.resume()  # the CUDA generator's state comes back from a CPU-loaded checkpoint
    assert "starts afresh" not in capsys.readouterr().err  # restored, not reseeded
    assert on_gpu.epoch == 1 and on_gpu.global_step == first.global_step
    for (name, a), b in zip(first.model.state_dict().items(), on_gpu.model.state_dict().values()):
        assert torch.equal(a, b), name
    on_cpu = Trainer(small_config(bundle, device="cpu"), run, progress=False)
    on_cpu.resume()  # a GPU checkpoint continued on the CPU
    assert "starts afresh" in capsys.readouterr().err
    on_cpu.fit()
    assert on_cpu.epoch == 2
    assert torch.load(run / CHECKPOINT_FILE, weights_only=True)["epoch"] == 2


def test_gpu_embeddings_match_the_cpu_within_the_same_source_tolerance(bundle):
    """A space embedded on the GPU (bf16) must recognise the same sources looked up on the CPU.
    (Synthetic sources, so that the test needs no data beyond the repository on a GPU machine.)"""
    images = np.load(bundle / "images.npy")
    on_cpu = embed_images(load_encoder(), images, device="cpu")
    on_gpu = embed_images(load_encoder(), images, device="cuda")
    cosine = np.sum(l2_normalise(on_cpu) * l2_normalise(on_gpu), axis=1)
    assert np.all(1.0 - cosine < SAME_SOURCE_COSINE_TOL), float(np.max(1.0 - cosine))


def test_the_d4_network_trains_and_embeds_on_the_gpu(bundle, tmp_path):
    """The D4 group-convolution network in bf16 + channels_last (its filters are stored 4-D for
    that) trains on the GPU, and its one-pass GPU embedding matches the CPU's."""
    trainer = Trainer(
        small_config(bundle, device="cuda", epochs=1, stem="reference", width=4, symmetry="d4"),
        tmp_path / "d4",
        progress=False,
    )
    assert trainer.channels_last
    trainer.fit()
    encoder = load_encoder(tmp_path / "d4" / "backbone.safetensors")
    images = np.load(bundle / "images.npy")
    on_cpu = embed_images(encoder, images, device="cpu")
    on_gpu = embed_images(encoder, images, device="cuda")
    cosine = np.sum(l2_normalise(on_cpu) * l2_normalise(on_gpu), axis=1)
    assert np.all(1.0 - cosine < 1e-3), float(np.max(1.0 - cosine))
