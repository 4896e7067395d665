"""Shared fixtures. Real data comes from ../shared/data (or EXPLORER_SHARED_DATA).

In CI (CI=true) a test that needs the real data fails when it is missing; elsewhere it is
skipped with a message saying where the data was looked for.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pretrain import config

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Test tiers: ``pytest -m "not slow"`` is the inner loop (unit tests and small real-data
# tests, under 2 minutes on 2 cores); CI runs everything. A test is slow when it is marked
# so, drives the browser, or asks for one of these fixtures (each costs a minute or more).
SLOW_FIXTURES = frozenset({"mirabest_bundle", "small_space"})


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("browser") or SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def _require(path: Path) -> Path:
    if not path.exists():
        message = f"real data not found at {path} (set EXPLORER_SHARED_DATA)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _require(config.SHARED_DATA_DIR)


@pytest.fixture(scope="session")
def mirabest_dir(shared_data) -> Path:
    return _require(shared_data / "mirabest")


@pytest.fixture(scope="session")
def skyview_raw_dir(shared_data) -> Path:
    return _require(shared_data / "skyview_raw")


@pytest.fixture(scope="session")
def griese_dir(shared_data) -> Path:
    return _require(shared_data / "griese2023" / "images")


@pytest.fixture(scope="session")
def frdeep_dir(shared_data) -> Path:
    return _require(shared_data / "frdeep2")


@pytest.fixture(scope="session")
def vlass_dir(shared_data) -> Path:
    """207 VLASS Quick-Look cutouts (1" pixels, SIN, NAXIS = 4, BMAJ/BMIN in the header)."""
    return _require(shared_data / "vlass")


@pytest.fixture(scope="session")
def rgz_map_path(shared_data) -> Path:
    return _require(shared_data / "rgz_dr1_published_map.parquet")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own user cache so that no test sees another's downloads."""
    monkeypatch.setenv("EXPLORER_CACHE", str(tmp_path_factory.mktemp("cache")))


# --- Dataset bundles (shared by every test that needs real preprocessed images) ---------
@pytest.fixture(scope="session")
def mirabest_bundle(mirabest_dir, tmp_path_factory):
    """All MiraBest FITS files built into one bundle, once per test session (~1 min)."""
    from pretrain.data.bundle import build_bundle

    out = tmp_path_factory.mktemp("bundles") / "mirabest"
    return build_bundle(fits_dirs=[mirabest_dir], out=out, progress=False)
