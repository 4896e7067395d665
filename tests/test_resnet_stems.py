"""The encoder's two stems: shapes, and weights files that say which one they hold."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from pretrain.errors import ExplorerError
from pretrain.models.backbone import load_encoder, save_encoder, weights_metadata
from pretrain.models.resnet import parse_architecture, resnet18_encoder


@pytest.mark.parametrize(("stem", "after_stem", "last_stage"), [("imagenet", 18, 3), ("reference", 35, 5)])
def test_stems_keep_the_resolution_the_design_says(stem, after_stem, last_stage):
    encoder = resnet18_encoder(stem=stem).eval()
    x = torch.rand(2, 1, 70, 70)
    with torch.no_grad():
        s = encoder.stem(x)
        last = encoder.layer4(encoder.layer3(encoder.layer2(encoder.layer1(s))))
        assert encoder(x).shape == (2, 512)
    assert s.shape[-1] == after_stem and last.shape[-1] == last_stage


def test_a_weights_file_rebuilds_its_own_stem_and_an_unknown_one_is_refused(tmp_path):
    torch.manual_seed(0)
    encoder = resnet18_encoder(stem="reference").eval()
    path = save_encoder(encoder, tmp_path / "ref.safetensors")
    assert weights_metadata(path)["architecture"] == "resnet18-1ch-stem3x3"
    again = load_encoder(path)
    x = torch.rand(3, 1, 70, 70)
    with torch.no_grad():
        assert torch.equal(encoder(x), again(x))
    assert again.stem_kind == "reference"
    assert load_encoder().stem_kind == "imagenet"  # the shipped file, written before stems had names
    state = {k: v.contiguous() for k, v in encoder.state_dict().items()}
    save_file(state, str(tmp_path / "odd.safetensors"), metadata={"architecture": "vit-b16"})
    with pytest.raises(ExplorerError, match="unknown encoder architecture 'vit-b16'"):
        load_encoder(tmp_path / "odd.safetensors")
    with pytest.raises(ValueError, match="stem must be one of"):
        resnet18_encoder(stem="patchify")


def test_a_narrower_network_is_saved_and_rebuilt_at_its_width(tmp_path):
    encoder = resnet18_encoder(stem="reference", width=32).eval()
    assert encoder.representation_dim == 256
    path = save_encoder(encoder, tmp_path / "narrow.safetensors")
    assert weights_metadata(path)["architecture"] == "resnet18-1ch-stem3x3-w32"
    again = load_encoder(path)
    x = torch.rand(2, 1, 70, 70)
    with torch.no_grad():
        assert again(x).shape == (2, 256) and torch.equal(encoder(x), again(x))
    assert parse_architecture("resnet18-1ch") == ("imagenet", 64, "none")
    assert parse_architecture("resnet18-1ch-w48") == ("imagenet", 48, "none")
    assert parse_architecture("resnet18-1ch-stem3x3-w4-d4") == ("reference", 4, "d4")
    with pytest.raises(ValueError, match="unknown"):
        parse_architecture("resnet18-1ch-wide")
