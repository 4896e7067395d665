"""BYOL model, loss and EMA schedule."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from pretrain.losses import byol_loss, symmetric_byol_loss
from pretrain.models.byol import BYOL, cosine_tau

torch.set_num_threads(1)


def test_loss_is_two_minus_two_cosine_and_equals_normalised_mse():
    g = torch.Generator().manual_seed(0)
    p, z = torch.randn(8, 16, generator=g), torch.randn(8, 16, generator=g)
    expected = (2 - 2 * F.cosine_similarity(p, z, dim=-1)).mean()
    assert torch.allclose(byol_loss(p, z), expected, atol=1e-6)
    mse = ((F.normalize(p, dim=-1) - F.normalize(z, dim=-1)) ** 2).sum(dim=-1).mean()
    assert torch.allclose(byol_loss(p, z), mse, atol=1e-6)
    assert float(byol_loss(p, p)) == pytest.approx(0.0, abs=1e-6)
    assert float(byol_loss(p, -p)) == pytest.approx(4.0, abs=1e-5)
    assert float(byol_loss(p, 3 * p)) == pytest.approx(0.0, abs=1e-6)  # scale-free


def test_symmetric_loss_pairs_each_prediction_with_the_other_views_target():
    g = torch.Generator().manual_seed(1)
    p1, p2, z1, z2 = (torch.randn(4, 8, generator=g) for _ in range(4))
    assert torch.allclose(symmetric_byol_loss(p1, p2, z1, z2), byol_loss(p1, z2) + byol_loss(p2, z1))
    assert float(symmetric_byol_loss(p1, p2, p2, p1)) == pytest.approx(0.0, abs=1e-6)


def test_loss_sends_no_gradient_to_the_target():
    p = torch.randn(4, 8, requires_grad=True)
    z = torch.randn(4, 8, requires_grad=True)
    byol_loss(p, z).backward()
    assert p.grad is not None and z.grad is None


def test_tau_rises_from_base_to_one_on_a_cosine():
    assert cosine_tau(0, 100) == pytest.approx(0.996)
    assert cosine_tau(100, 100) == pytest.approx(1.0)
    assert cosine_tau(50, 100) == pytest.approx(0.998)
    values = [cosine_tau(s, 100) for s in range(101)]
    assert all(b >= a for a, b in itertools.pairwise(values))
    assert cosine_tau(25, 100) == pytest.approx(1 - 0.004 * (math.cos(math.pi / 4) + 1) / 2)


@pytest.mark.slow
def test_target_starts_as_a_frozen_copy_and_moves_by_tau():
    torch.manual_seed(0)
    model = BYOL()
    online = dict(model.encoder.named_parameters())
    target = dict(model.target_encoder.named_parameters())
    assert all(torch.equal(online[k], target[k]) for k in online)
    assert not any(p.requires_grad for p in model.target_parameters())
    assert all(p.requires_grad for p in model.online_parameters())

    opt = torch.optim.SGD(model.online_parameters(), lr=0.1, momentum=0.9)
    x1, x2 = torch.rand(6, 1, 70, 70), torch.rand(6, 1, 70, 70)
    loss = model(x1, x2)
    assert math.isfinite(float(loss.detach())) and 0 <= float(loss.detach()) <= 8
    loss.backward()
    assert all(p.grad is None for p in model.target_parameters())
    before_target = {k: v.detach().clone() for k, v in target.items()}
    opt.step()
    tau = 0.9
    model.update_target(tau)
    for k in online:
        expected = tau * before_target[k] + (1 - tau) * online[k].detach()
        assert torch.allclose(target[k], expected, atol=1e-6)
    moved = [k for k in online if not torch.equal(target[k], online[k])]
    assert moved  # the target lags the online network


def test_forward_gives_gradients_to_encoder_projector_and_predictor():
    model = BYOL()
    model(torch.rand(4, 1, 70, 70), torch.rand(4, 1, 70, 70)).backward()
    for module in (model.encoder, model.projector, model.predictor):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
