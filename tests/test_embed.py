"""Embedding images and the `embed` command, end to end on real MiraBest files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pretrain.__main__ import main
from pretrain.data.bundle import load_bundle
from pretrain.embed import embed_images
from pretrain.models.backbone import save_encoder, to_model_input
from pretrain.models.resnet import resnet18_encoder
from pretrain.provenance import weights_sha256
from pretrain.space import is_stale, load_space, place_image


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return resnet18_encoder().eval()


def _images(n, seed=0):
    """Sparse synthetic 'radio' images: a few bright blobs on zero background."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 150, 150), np.uint8)
    yy, xx = np.mgrid[:150, :150]
    for image in images:
        for _ in range(3):
            cy, cx = rng.uniform(45, 105, 2)
            blob = 255 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * rng.uniform(2, 8) ** 2))
            image[:] = np.maximum(image, blob.astype(np.uint8))
    return images


def test_batched_memmap_embedding_equals_per_image_forward(tmp_path, encoder):
    images = _images(11)
    np.save(tmp_path / "images.npy", images)
    memmap = np.load(tmp_path / "images.npy", mmap_mode="r")
    calls = []
    encoder.train()  # embed_images must switch to eval (BatchNorm) and restore the flag
    z = embed_images(
        encoder, memmap, batch_size=4, device="cpu", progress=lambda d, t: calls.append((d, t)), symmetry="none"
    )
    assert encoder.training
    assert z.shape == (11, 512) and z.dtype == np.float32 and np.isfinite(z).all()
    assert calls == [(4, 11), (8, 11), (11, 11)]
    with torch.no_grad():
        one_by_one = np.concatenate([encoder.eval()(to_model_input(img[None])).numpy() for img in images])
    np.testing.assert_allclose(z, one_by_one, rtol=1e-4, atol=1e-5)
    # Different images, different representations.
    assert np.min(np.linalg.norm(z[1:] - z[:-1], axis=1)) > 1e-3


def test_only_the_central_70_pixels_count(encoder):
    images = _images(2, seed=1)
    outside = images.copy()
    outside[:, :30, :] = 200  # rows 0..29 lie outside the central 70 x 70 (rows 40..109)
    inside = images.copy()
    inside[:, 60:70, 60:70] = 200
    z, z_out, z_in = (embed_images(encoder, x, device="cpu") for x in (images, outside, inside))
    np.testing.assert_array_equal(z, z_out)
    assert np.abs(z - z_in).max() > 1e-3


def _d4(image):
    """The 8 symmetries of the square applied to one (H, W) image."""
    turned = [np.rot90(image, k) for k in range(4)]
    return [np.ascontiguousarray(t) for t in turned + [np.fliplr(t) for t in turned]]


def test_the_d4_representation_does_not_depend_on_orientation(encoder):
    images = _images(3, seed=2)  # blobs placed at random: no image is symmetric
    z = embed_images(encoder, images, device="cpu", symmetry="d4")
    for i, image in enumerate(images):
        views = np.stack(_d4(image))
        # Every turned or mirrored copy has the image's representation ...
        np.testing.assert_allclose(
            embed_images(encoder, views, device="cpu", symmetry="d4"),
            np.repeat(z[i : i + 1], 8, axis=0),
            rtol=1e-4,
            atol=1e-5,
        )
        # ... which is the mean of the plain representations of the 8 copies,
        plain = embed_images(encoder, views, device="cpu", symmetry="none")
        np.testing.assert_allclose(z[i], plain.mean(axis=0), rtol=1e-4, atol=1e-5)
        # and those differ from each other: one forward pass is not orientation-free.
        assert np.abs(plain - plain[0]).max() > 1e-3
    assert np.abs(z[0] - z[1]).max() > 1e-3


def _small_space(folder, encoder, embeddings, symmetry):
    """A space (bundle id "b") of these embeddings, mapped, made with ``encoder``'s weights.
    Returns (space, map positions, weights file)."""
    from pretrain.mapping import MapProjector
    from pretrain.space import save_space

    projector = MapProjector(random_state=0, n_neighbors=5)
    xy = projector.fit_transform(embeddings)
    weights = save_encoder(encoder, folder / "w.safetensors")
    space = save_space(
        folder / "space",
        [f"s{i}" for i in range(len(embeddings))],
        embeddings,
        xy,
        None,
        projector,
        {
            "weights": {"sha256": weights_sha256(weights), "file": weights.name},
            "bundle": {"id": "b", "path": None},
            "parameters": {"symmetry": symmetry},
        },
    )
    return space, xy, weights


def test_a_space_keeps_its_symmetry_for_new_images(tmp_path, encoder):
    images = _images(12, seed=3)
    plain = embed_images(encoder, images, device="cpu", symmetry="none")
    space, xy, weights = _small_space(tmp_path, encoder, plain, "none")
    assert load_space(tmp_path / "space").symmetry == "none"
    assert "symmetry 'none', not 'd4'" in is_stale(tmp_path / "space", weights, "b")
    assert is_stale(tmp_path / "space", weights, "b", symmetry="none") is False
    # A source looked up again is embedded as the space was (one pass) and found on its point.
    embedding, position = place_image(space, encoder, images[4], device="cpu")
    np.testing.assert_allclose(embedding, plain[4], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(position, xy[4], atol=1e-6)


def test_embedding_leaves_the_encoder_trainable(monkeypatch):
    """The encoder is converted (device, channels_last on CUDA) outside inference mode:
    weights re-created inside it would be inference tensors, and the training monitor,
    which embeds with the live encoder, would break training. Forced here on the CPU."""
    import pretrain.embed as embed_module

    monkeypatch.setattr(embed_module, "_use_channels_last", lambda device, encoder, was_training: True)
    torch.manual_seed(0)
    encoder = resnet18_encoder()
    embed_images(encoder.eval(), _images(2), device="cpu", symmetry="none")
    assert encoder.layer1[0].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert not any(p.is_inference() for p in encoder.parameters())
    encoder.train()
    encoder(to_model_input(_images(2))).sum().backward()  # would raise on inference tensors
    assert encoder.layer1[0].conv1.weight.grad is not None


def test_a_source_embedded_in_bf16_is_found_again_in_fp32(tmp_path, encoder):
    """A space embedded on a GPU (bf16 autocast) and a look-up on the CPU (fp32) differ by
    float noise only: the source looked up again is placed on its own point."""
    images = _images(12, seed=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = embed_images(encoder, images, device="cpu")
    space, xy, _ = _small_space(tmp_path, encoder, bf16, "d4")
    embeddings, positions = place_image(space, encoder, images, device="cpu")
    assert np.abs(embeddings - bf16).max() > 0  # really two precisions
    np.testing.assert_allclose(positions, xy, atol=1e-6)


def test_bad_input_is_refused(encoder):
    with pytest.raises(ValueError, match="uint8"):
        embed_images(encoder, np.zeros((2, 150, 150), np.float32), device="cpu")
    with pytest.raises(ValueError, match="shape"):
        embed_images(encoder, np.zeros((2, 1, 150, 150), np.uint8), device="cpu")
    with pytest.raises(ValueError, match="smaller than"):
        embed_images(encoder, np.zeros((2, 150, 60), np.uint8), device="cpu")
    with pytest.raises(ValueError, match="symmetry"):
        embed_images(encoder, np.zeros((2, 150, 150), np.uint8), device="cpu", symmetry="c4")


@pytest.fixture
def few_mirabest(mirabest_dir, tmp_path):
    """A folder of links to 12 real MiraBest files (6 FRI, 6 FRII; the data stays in place)."""
    folder = tmp_path / "fits"
    folder.mkdir()
    for prefix in ("100_", "200_"):
        for path in sorted(mirabest_dir.glob(f"{prefix}*.fits.fz"))[:6]:
            (folder / path.name).symlink_to(path)
    return folder


def test_embed_cli_on_real_mirabest_files(few_mirabest, tmp_path, encoder, capsys):
    weights = save_encoder(encoder, tmp_path / "random.safetensors")
    out = tmp_path / "space"
    rc = main(
        [
            "embed",
            "--weights",
            str(weights),
            "--fits",
            str(few_mirabest),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--batch-size",
            "5",
        ]
    )
    assert rc == 0
    for name in ("embeddings.parquet", "map.parquet", "projector.npz", "projector.json", "manifest.json"):
        assert (out / name).is_file(), name
    bundle = load_bundle(out / "bundle")
    assert len(bundle) == 12

    space = load_space(out)
    assert space.embeddings.shape == (12, 512)
    assert list(space.source_ids) == list(bundle.catalogue["source_id"])
    # The stored embeddings are those of the bundle's images under these weights.
    np.testing.assert_allclose(
        space.embeddings, embed_images(encoder, bundle.images, device="cpu"), rtol=1e-4, atol=1e-5
    )
    cmap = space.catalogue_map
    assert {"umap_x", "umap_y", "ra", "dec", "label", "confident", "angular_extent_arcsec"} <= set(cmap.columns)
    assert sorted(cmap["label"].unique()) == ["FRI", "FRII"]
    assert np.isfinite(space.map_xy).all()

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["weights"] == {
        "sha256": weights_sha256(weights),
        "file": "random.safetensors",
        "held_out": "unknown",
    }
    assert manifest["bundle"]["id"] == bundle.bundle_id and manifest["bundle"]["path"] == "bundle"
    assert space.bundle_path.resolve() == (out / "bundle").resolve()
    assert manifest["counts"]["sources"] == 12
    assert manifest["parameters"]["projector"]["fitted"]["pca_components"] == 11  # n - 1
    assert is_stale(out, weights, bundle.bundle_id) is False

    # A source already in the space is placed on its own map point; another image is
    # placed by the projector, somewhere within the map's range.
    embedding, xy = place_image(space, encoder, np.asarray(bundle.images[3]), device="cpu")
    np.testing.assert_allclose(embedding, space.embeddings[3], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(xy, space.map_xy[3], atol=1e-6)
    new_images = np.asarray(bundle.images[[3, 5, 7]])
    new_images[1] = np.rot90(new_images[1])  # the same source turned by 90 degrees: the same source
    new_images[2] = np.roll(new_images[2], 2, axis=1)  # shifted by 2 pixels: a new image
    embeddings, xys = place_image(space, encoder, new_images, device="cpu")
    assert embeddings.shape == (3, 512) and xys.shape == (3, 2)
    np.testing.assert_allclose(xys[0], space.map_xy[3], atol=1e-6)
    np.testing.assert_allclose(xys[1], space.map_xy[5], atol=1e-6)
    assert np.abs(embeddings[2] - space.embeddings[7]).max() > 1e-3
    # Placed by the projector (not snapped onto a source), near the map (12 points are a
    # sparse map for UMAP's transform, so "near" is within one map width).
    assert np.min(np.linalg.norm(space.map_xy - xys[2], axis=1)) > 1e-6
    low, high = space.map_xy.min(0), space.map_xy.max(0)
    margin = high - low
    assert np.all((xys[2] > low - margin) & (xys[2] < high + margin))

    # Running it again with the same inputs keeps the space.
    before = (out / "embeddings.parquet").stat().st_mtime_ns
    assert (
        main(["embed", "--weights", str(weights), "--fits", str(few_mirabest), "--out", str(out), "--device", "cpu"])
        == 0
    )
    assert "up to date" in capsys.readouterr().out
    assert (out / "embeddings.parquet").stat().st_mtime_ns == before
    # Asked for one pass instead of the default d4, the space is re-embedded and says so.
    assert (
        main(
            [
                "embed",
                "--weights",
                str(weights),
                "--bundle",
                str(out / "bundle"),
                "--out",
                str(out),
                "--device",
                "cpu",
                "--symmetry",
                "none",
            ]
        )
        == 0
    )
    assert "up to date" not in capsys.readouterr().out
    one_pass = load_space(out)
    assert one_pass.symmetry == "none" and one_pass.manifest["parameters"]["symmetry"] == "none"
    np.testing.assert_allclose(
        one_pass.embeddings, embed_images(encoder, bundle.images, device="cpu", symmetry="none"), rtol=1e-4, atol=1e-5
    )


def test_embed_cli_errors(tmp_path, capsys):
    rc = main(
        [
            "embed",
            "--weights",
            str(tmp_path / "missing.safetensors"),
            "--bundle",
            str(tmp_path),
            "--out",
            str(tmp_path / "s"),
        ]
    )
    assert rc == 2 and "weights not found" in capsys.readouterr().err
    torch.manual_seed(0)
    weights = save_encoder(resnet18_encoder(), tmp_path / "w.safetensors")
    rc = main(
        ["embed", "--weights", str(weights), "--bundle", str(tmp_path / "no-bundle"), "--out", str(tmp_path / "s")]
    )
    assert rc == 2 and "no such bundle" in capsys.readouterr().err
