"""bench/device_kit.py: bundles packed for the GPU machine come back bit for bit."""

from __future__ import annotations

import numpy as np

from bench.device_kit import main
from pretrain.data.bundle import load_bundle


def test_a_packed_bundle_unpacks_to_the_same_bundle(mirabest_bundle, tmp_path):
    kit = tmp_path / "kit"
    assert main(["pack", "--bundle", f"mirabest={mirabest_bundle.path}", "--out", str(kit), "--no-wheels"]) == 0
    packed = sum(f.stat().st_size for f in (kit / "bundles" / "mirabest").iterdir())
    assert packed < mirabest_bundle.images.nbytes / 10  # small enough to travel with the repository
    assert main(["unpack", "--kit", str(kit), "--out", str(tmp_path / "runs")]) == 0
    copy = load_bundle(tmp_path / "runs" / "mirabest", verify=True)  # recomputes the id from the content
    assert copy.bundle_id == mirabest_bundle.bundle_id
    np.testing.assert_array_equal(np.asarray(copy.images), np.asarray(mirabest_bundle.images))
    assert copy.catalogue.equals(mirabest_bundle.catalogue)
