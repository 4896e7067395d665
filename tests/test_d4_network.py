"""The D4 group-convolution network: a turned or mirrored image gets the same representation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pretrain.embed import embed_images
from pretrain.models import d4
from pretrain.models.backbone import load_encoder, save_encoder, weights_metadata
from pretrain.models.resnet import resnet18_encoder


def _with_nontrivial_norms(encoder):
    """Scales and shifts away from 1 and 0, and running statistics away from 0 and 1, so
    that a norm that treated the 8 planes of a channel differently would show."""
    generator = torch.Generator().manual_seed(1)
    for module in encoder.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            for tensor, low, high in ((module.weight, 0.5, 1.5), (module.bias, -0.2, 0.2),
                                      (module.running_mean, -0.1, 0.1), (module.running_var, 0.5, 2.0)):  # fmt: skip
                tensor.data.copy_(torch.empty_like(tensor).uniform_(low, high, generator=generator))
    return encoder.eval()


def test_the_group_table_is_a_group():
    product, inverse = d4._tables()
    assert sorted(map(sorted, product)) == [list(range(8))] * 8  # a Latin square: each product once
    assert all(product[g][inverse[g]] == 0 == product[inverse[g]][g] for g in range(8))
    x = torch.rand(5, 7)
    for g in range(8):
        for h in range(8):
            assert torch.equal(d4.transform(d4.transform(x, h), g), d4.transform(x, product[g][h]))


@pytest.mark.parametrize("stem", ["reference", "imagenet"])
@pytest.mark.parametrize("size", [70, 65, 64])
def test_a_d4_network_gives_a_turned_or_mirrored_source_the_same_representation(stem, size):
    torch.manual_seed(0)
    encoder = _with_nontrivial_norms(resnet18_encoder(stem=stem, width=4, symmetry="d4"))
    plain = resnet18_encoder(stem=stem, width=32).eval()
    x = torch.rand(3, 1, size, size)
    with torch.no_grad():
        z, z_plain = encoder(x), plain(x)
        assert z.shape == (3, 32) and z.abs().mean() > 1e-3
        for g in range(1, 8):
            turned = d4.transform(x, g)
            assert torch.allclose(encoder(turned), z, atol=1e-5 * z.abs().max().item())
            assert not torch.allclose(plain(turned), z_plain, atol=1e-3)  # the plain one is not invariant
        # channels_last (bf16 training, CUDA embedding) changes the memory layout, not the result.
        fast = _with_nontrivial_norms(resnet18_encoder(stem=stem, width=4, symmetry="d4"))
        fast.load_state_dict(encoder.state_dict())
        fast = fast.to(memory_format=torch.channels_last)
        assert torch.allclose(fast(x.contiguous(memory_format=torch.channels_last)), z, atol=1e-5)
        # Feature maps are equivariant: turning the input turns each plane and permutes them.
        layer = encoder.stem[0]
        maps, maps_turned = layer(x), layer(d4.transform(x, 1))
        planes = maps.reshape(3, -1, 8, *maps.shape[-2:])
        expected = d4.transform(planes[:, :, d4.plane_permutation(1)], 1).reshape(maps_turned.shape)
        assert torch.allclose(maps_turned, expected, atol=1e-5)


def test_a_d4_network_is_saved_rebuilt_and_embedded_in_one_pass(tmp_path, monkeypatch):
    torch.manual_seed(0)
    encoder = _with_nontrivial_norms(resnet18_encoder(stem="reference", width=4, symmetry="d4"))
    path = save_encoder(encoder, tmp_path / "d4.safetensors")
    assert weights_metadata(path)["architecture"] == "resnet18-1ch-stem3x3-w4-d4"
    again = load_encoder(path)
    assert again.invariant and again.representation_dim == 32
    images = np.random.default_rng(0).integers(0, 255, (6, 80, 80), dtype=np.uint8)
    calls = []
    forward = type(again).forward
    monkeypatch.setattr(type(again), "forward", lambda self, x: calls.append(len(x)) or forward(self, x))
    d4_average = embed_images(again, images, device="cpu", symmetry="d4")
    assert calls == [6]  # one pass, not 8: the views would all give the same vector
    with torch.no_grad():
        direct = encoder(torch.from_numpy(images[:, 5:75, 5:75]).float()[:, None] / 255)
    np.testing.assert_allclose(d4_average, direct.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(embed_images(again, np.rot90(images, 1, axes=(1, 2)).copy(), device="cpu"),
                               d4_average, rtol=1e-4, atol=1e-5)  # fmt: skip


def test_turned_filters_are_kept_at_inference_and_rebuilt_when_the_weights_change():
    torch.manual_seed(0)
    layer = d4.D4Conv2d(2, 3, 3).eval()
    x = torch.rand(1, 16, 9, 9)
    with torch.inference_mode():
        first = layer.full_weight()
        assert layer.full_weight() is first  # kept: a look-up does not rebuild the filters
        before = layer(x)
    with torch.no_grad():
        layer.weight.mul_(2.0)  # what load_state_dict or an optimiser step does: in place
    with torch.inference_mode():
        assert layer.full_weight() is not first
        torch.testing.assert_close(layer(x), 2 * before)
    # Training gets freshly built filters that carry gradients to the learned weights.
    layer.train()
    layer(x).sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
