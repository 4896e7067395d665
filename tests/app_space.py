"""A small real space for the app's tests: a few dozen MiraBest files, a random-weights encoder.

The default backbone may not exist yet, and embedding all of MiraBest takes too long for
a test, so the tests point the app at a folder of links to a subset of the real MiraBest
files (``EXPLORER_MIRABEST_DIR``) and at random encoder weights (``EXPLORER_WEIGHTS``).
The space is prepared once per test session through the app's own preparation code
(:func:`explorer.default_space.prepare_default_space`) into a session cache, which every
app test then uses as its ``EXPLORER_CACHE``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

# Per class code prefix (first two digits: class and confidence), how many files to link.
SUBSET = {"10": 14, "11": 4, "20": 14, "21": 4, "30": 8, "31": 4}
# Enough Confident FRI / FRII for the standard 104-source test split of the fine-tuning task
# (46 training sources left): for tests that also train from the app.
TRAINABLE_SUBSET = {"10": 75, "11": 10, "20": 75, "21": 10, "30": 8, "31": 4}


@dataclass(frozen=True)
class SmallSpace:
    cache: Path  # EXPLORER_CACHE holding the prepared default space
    mirabest_dir: Path  # EXPLORER_MIRABEST_DIR (links to real files)
    weights: Path  # EXPLORER_WEIGHTS (random encoder)

    def env(self) -> dict[str, str]:
        return {
            "EXPLORER_CACHE": str(self.cache),
            "EXPLORER_MIRABEST_DIR": str(self.mirabest_dir),
            "EXPLORER_WEIGHTS": str(self.weights),
        }


_BUILT: dict[Path, SmallSpace] = {}


def link_subset(mirabest_dir: Path, out: Path, subset: dict[str, int] = SUBSET) -> Path:
    """Symbolic links to the first files of each class code prefix (sorted names: deterministic)."""
    out.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in mirabest_dir.iterdir() if p.name.endswith((".fits", ".fits.fz")))
    for prefix, count in subset.items():
        for path in [p for p in files if p.name.startswith(prefix)][:count]:
            link = out / path.name
            if not link.exists():
                link.symlink_to(path)
    return out


def random_weights(path: Path, seed: int = 0) -> Path:
    from pretrain.models.backbone import save_encoder
    from pretrain.models.resnet import resnet18_encoder

    torch.manual_seed(seed)
    return save_encoder(resnet18_encoder(), path, metadata={"note": "random weights for tests"})


def build_small_space(mirabest_dir: Path, root: Path, subset: dict[str, int] = SUBSET) -> SmallSpace:
    """Prepare the default space from a MiraBest subset under ``root`` (once per root)."""
    root = Path(root)
    if root in _BUILT:
        return _BUILT[root]
    from explorer.default_space import prepare_default_space

    small = SmallSpace(
        cache=root / "cache",
        mirabest_dir=link_subset(mirabest_dir, root / "mirabest", subset),
        weights=random_weights(root / "random_encoder.safetensors"),
    )
    saved = {k: os.environ.get(k) for k in small.env()}
    os.environ.update(small.env())
    torch.set_num_threads(1)
    try:
        prepare_default_space(device="cpu")
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    _BUILT[root] = small
    return small


APP = Path(__file__).resolve().parent.parent / "app.py"


def wait_until(predicate, timeout_s: float = 240, what: str = "the run") -> None:
    """Poll ``predicate`` every half second; fail the test after ``timeout_s``."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def small_space_root(tmp_path_factory) -> Path:
    """One folder per test session, shared by every test module that needs the small space."""
    return tmp_path_factory.getbasetemp() / "small_space"


def app_test(timeout: float = 180.0):
    """An AppTest of the whole app (app.py with its navigation and sidebar)."""
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(APP), default_timeout=timeout)


def gallery_html(at) -> str:
    """The neighbour gallery's HTML on the current page ('' if none)."""
    for element in at.get("html"):
        body = getattr(element.proto, "body", "")
        if "nb-gallery" in body:
            return body
    return ""


def plotly_spec(at, index: int = 0) -> dict:
    import json

    charts = at.get("plotly_chart")
    return json.loads(charts[index].proto.spec)
