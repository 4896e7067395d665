"""Small real data for the fine-tuning tests: a MiraBest bundle of a few hundred sources.

The bundle is built from real MiraBest FITS files (linked, not copied, into a temporary
folder) once per test session and shared by the test modules that need it; a random
encoder saved with ``save_encoder`` stands in for the backbone.
"""

from __future__ import annotations

from pathlib import Path

import torch

# Per class code (MiraBest file names: FRI/FRII/hybrid x confident/uncertain), how many.
# 75 + 75 confident leave 46 training sources after the standard 104-source test split.
SUBSET = {"100": 75, "200": 75, "110": 15, "210": 15, "300": 4}


def mirabest_subset_dir(mirabest_dir: Path, dest: Path) -> Path:
    """A folder of symbolic links to a fixed subset of the MiraBest files."""
    dest.mkdir(parents=True, exist_ok=True)
    files = sorted(mirabest_dir.glob("*.fits*"))
    for code, count in SUBSET.items():
        chosen = [f for f in files if f.name.startswith(code + "_")][:count]
        assert len(chosen) == count, f"expected {count} MiraBest files of class {code}"
        for f in chosen:
            link = dest / f.name
            if not link.exists():
                link.symlink_to(f)
    return dest


def small_mirabest_bundle(tmp_path_factory, mirabest_dir: Path) -> Path:
    """Build (once per session: the folder is reused by later callers) the subset bundle."""
    from pretrain.data.bundle import build_bundle, load_bundle
    from pretrain.errors import BundleError

    base = tmp_path_factory.getbasetemp() / "finetune-data"
    out = base / "mirabest-small-bundle"
    try:
        load_bundle(out)
        return out
    except BundleError:
        pass
    folder = mirabest_subset_dir(mirabest_dir, base / "mirabest-subset")
    build_bundle(fits_dirs=[folder], out=out, progress=False, overwrite=True, workers=1)
    return out


def random_encoder_weights(tmp_path_factory, seed: int = 0) -> Path:
    """A randomly initialised encoder saved as a backbone file (stands in for the trained one).

    The last batch norm of each residual block starts at zero in a fresh ResNet (so that
    blocks start as identities), which blocks every gradient inside the block on the first
    steps; a trained backbone has non-zero ones, so this stand-in gets them too.
    """
    from pretrain.models.backbone import save_encoder
    from pretrain.models.resnet import resnet18_encoder

    path = tmp_path_factory.getbasetemp() / "finetune-data" / f"random-encoder-{seed}.safetensors"
    if not path.is_file():
        torch.manual_seed(seed)
        encoder = resnet18_encoder()
        for name, param in encoder.named_parameters():
            if name.endswith("bn2.weight"):
                torch.nn.init.uniform_(param, 0.5, 1.0)
        save_encoder(encoder, path)
    return path
