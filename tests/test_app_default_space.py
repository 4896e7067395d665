"""First start: the app prepares the MiraBest space with progress, reuses it, rebuilds it when stale."""

from __future__ import annotations

import json

import pytest

from explorer import default_space
from explorer.space_registry import RGZ_KEY
from pretrain.errors import ExplorerError
from pretrain.provenance import weights_sha256
from tests.app_space import app_test, gallery_html, link_subset, random_weights

TINY = {"10": 4, "20": 4, "30": 2}  # ten real files: enough for a map, quick to embed


@pytest.fixture
def fresh_env(mirabest_dir, tmp_path, monkeypatch):
    folder = link_subset(mirabest_dir, tmp_path / "mirabest", TINY)
    weights = random_weights(tmp_path / "weights_a.safetensors", seed=1)
    monkeypatch.setenv("EXPLORER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EXPLORER_MIRABEST_DIR", str(folder))
    monkeypatch.setenv("EXPLORER_WEIGHTS", str(weights))
    monkeypatch.delenv("EXPLORER_SPACES", raising=False)
    return tmp_path


@pytest.mark.slow
def test_first_start_prepares_the_space_then_reuses_it_and_rebuilds_it_when_stale(fresh_env, mirabest_dir, monkeypatch):
    assert default_space.default_space_state().reason == "not prepared yet"
    at = app_test()
    at.run()
    assert not at.exception, at.exception
    # the run prepared the space (progress in an st.status), then reran into the map: a quick
    # one-pass space, whose refinement to the d4 representation the page started
    assert any("10 sources" in c.value for c in at.caption)
    refinement = default_space.current_refinement()
    assert refinement is not None and refinement.refine
    assert refinement.wait(600) and refinement.error is None, refinement.error
    manifest = json.loads((default_space.space_path() / "manifest.json").read_text())
    assert manifest["parameters"]["symmetry"] == "d4"
    assert not default_space.default_space_state().provisional
    assert manifest["weights"]["sha256"] == weights_sha256(fresh_env / "weights_a.safetensors")
    assert default_space.default_space_state().ready
    created = manifest["created"]

    # a second start reuses it: nothing is rewritten
    at = app_test()
    at.run()
    assert json.loads((default_space.space_path() / "manifest.json").read_text())["created"] == created

    # other weights: the cached space is stale and is embedded again with the new ones
    other = random_weights(fresh_env / "weights_b.safetensors", seed=2)
    monkeypatch.setenv("EXPLORER_WEIGHTS", str(other))
    state = default_space.default_space_state()
    assert not state.ready and "other weights" in state.reason
    reports = []
    default_space.prepare_default_space(lambda stage, fraction, message: reports.append((stage, fraction)))
    stages = [stage for stage, _ in reports]
    assert [s for i, s in enumerate(stages) if s not in stages[:i]] == ["data", "bundle", "embeddings", "map"]
    assert ("bundle", 1.0) in reports and reports[-1] == ("map", 1.0)
    assert all(0.0 <= fraction <= 1.0 for _, fraction in reports)
    manifest = json.loads((default_space.space_path() / "manifest.json").read_text())
    assert manifest["weights"]["sha256"] == weights_sha256(other)
    assert default_space.default_space_state().ready

    # a file added to the MiraBest folder: the bundle (and so the space) is rebuilt
    source = next(p for p in sorted(mirabest_dir.iterdir()) if p.name.startswith("21"))  # not in TINY
    (fresh_env / "mirabest" / source.name).symlink_to(source)
    assert "changed" in default_space.default_space_state().reason
    at = app_test()
    at.run()
    assert any("11 sources" in c.value for c in at.caption)


@pytest.mark.slow
def test_a_quick_start_is_provisional_until_refined_in_place(fresh_env):
    """The quick first start embeds one pass per image; the refinement swaps in the d4 space,
    leaving no half-written or hidden folder in the space list."""
    from explorer.space_registry import discover_spaces
    from pretrain.data.bundle import load_bundle
    from pretrain.data.measurements import COLUMNS

    quick = default_space.prepare_default_space(device="cpu", quick=True)
    assert quick.manifest["parameters"]["symmetry"] == "none"
    # its bundle left the pixel measurements out; the catalogued extents (the map's colour) are there
    quick_bundle = load_bundle(default_space.bundle_path())
    assert not quick_bundle.measured and not set(COLUMNS) & set(quick_bundle.catalogue.columns)
    assert quick_bundle.catalogue["angular_extent_estimated_arcsec"].isna().all()
    assert quick_bundle.catalogue["angular_extent_arcsec"].notna().all()
    state = default_space.default_space_state()
    assert state.ready and state.provisional and state.one_pass
    # a later quick start accepts it as it is; a full preparation would not
    reports = []
    default_space.prepare_default_space(lambda *report: reports.append(report), device="cpu", quick=True)
    assert "Reusing" in reports[-1][2]

    refined = default_space.refine_default_space(device="cpu")
    assert refined is not None and refined.manifest["parameters"]["symmetry"] == "d4"
    # the refinement measured the sources: a new bundle (same images), the space made from it
    bundle = load_bundle(default_space.bundle_path())
    assert bundle.measured and set(COLUMNS) <= set(bundle.catalogue.columns)
    assert (bundle.images[:] == quick_bundle.images[:]).all()
    assert refined.manifest["bundle"]["id"] == bundle.bundle_id != quick.manifest["bundle"]["id"]
    assert refined.bundle_path == default_space.bundle_path()
    assert refined.catalogue_map["angular_extent_estimated_arcsec"].notna().all()
    assert refined.catalogue_map["fr_ratio"].notna().any()
    assert len(refined) == len(quick) == 10
    state = default_space.default_space_state()
    assert state.ready and not state.provisional
    assert sorted(p.name for p in default_space.space_path().parent.iterdir()) == ["mirabest"]
    assert sorted(p.name for p in default_space.bundle_path().parent.iterdir()) == ["mirabest"]
    assert [e.kind for e in discover_spaces()].count("embedding") == 0
    assert default_space.refine_default_space(device="cpu") is None  # nothing left to refine


@pytest.mark.slow
def test_an_invariant_backbone_gets_its_final_representation_at_the_quick_start(fresh_env, monkeypatch):
    """A D4 network needs one pass for the d4 representation: the quick start makes that one,
    and only the pixel measurements are left to the background."""
    import torch

    from pretrain.models.backbone import save_encoder
    from pretrain.models.resnet import resnet18_encoder

    torch.manual_seed(0)
    weights = save_encoder(resnet18_encoder(stem="reference", width=4, symmetry="d4"), fresh_env / "d4.safetensors")
    monkeypatch.setenv("EXPLORER_WEIGHTS", str(weights))
    assert default_space.quick_symmetry(weights) == "d4"
    assert default_space.quick_symmetry(fresh_env / "weights_a.safetensors") == "none"
    reports = []
    quick = default_space.prepare_default_space(lambda *report: reports.append(report), device="cpu", quick=True)
    assert quick.manifest["parameters"]["symmetry"] == "d4"
    assert not any("one pass per image" in message for _, _, message in reports)
    state = default_space.default_space_state()
    assert state.ready and state.provisional and not state.one_pass
    assert state.reason == "ready (pixel measurements to come)"
    at = app_test()
    at.run()
    assert not at.exception, at.exception
    notice = " ".join(c.value for c in at.caption if "⏳" in c.value)
    assert "pixel measurements" in notice and "one pass per image" not in notice
    refinement = default_space.current_refinement()
    assert refinement is not None and refinement.wait(600) and refinement.error is None, refinement.error
    state = default_space.default_space_state()
    assert state.ready and not state.provisional


def test_missing_weights_say_what_to_do_and_the_rgz_map_still_works(fresh_env, monkeypatch):
    monkeypatch.setenv("EXPLORER_WEIGHTS", str(fresh_env / "no_such_weights.safetensors"))
    at = app_test()
    at.run()
    assert not at.exception, at.exception
    errors = " ".join(e.value for e in at.error)
    assert "EXPLORER_WEIGHTS" in errors and "no_such_weights" in errors
    assert any("RGZ DR1" in i.value for i in at.info)

    at = app_test()
    at.session_state["space_key"] = RGZ_KEY
    at.query_params["source"] = "RGZJ134541.2+232253"
    at.run()
    assert not at.exception, at.exception
    assert 'data-query="RGZJ134541.2+232253"' in gallery_html(at)


def test_a_spawned_worker_importing_app_py_does_not_run_the_app(monkeypatch):
    """The bundle build's process pool uses "spawn": each worker re-imports Streamlit's main
    script (app.py) as ``__mp_main__``. That import must not run the app (page, sidebar,
    preparing the default space), which it did before: seconds of wasted start-up per worker."""
    import runpy

    from explorer.widgets import frame, sidebar
    from tests.app_space import APP

    def must_not_run(*args, **kwargs):
        raise AssertionError("app.py ran the app in a worker process")

    for module, name in ((frame, "page_config"), (frame, "mark_app_run"), (sidebar, "sidebar")):
        monkeypatch.setattr(module, name, must_not_run)
    runpy.run_path(str(APP), run_name="__mp_main__")


@pytest.mark.slow
def test_the_preparation_runs_in_the_background_and_is_shared(fresh_env):
    """Started by one page run, it goes on without it (a page change used to start it over),
    and every caller meanwhile gets the same preparation and its progress."""
    job = default_space.start_preparation(device="cpu")
    assert default_space.start_preparation(device="cpu") is job  # a second tab: the same one
    assert job.wait(600), "the preparation did not finish"
    assert job.error is None, job.error
    progress = job.progress()
    assert list(progress) == ["data", "bundle", "embeddings", "map"]
    assert all(fraction == 1.0 and message for fraction, message in progress.values())
    assert default_space.default_space_state().ready
    # finished: the next call is a new preparation, which reuses the work done
    again = default_space.start_preparation(device="cpu")
    assert again is not job and again.wait(600) and again.error is None
    assert "Reusing" in again.progress()["map"][1]


def test_a_failed_preparation_keeps_its_error_and_the_next_call_retries(fresh_env, monkeypatch):
    monkeypatch.setenv("EXPLORER_WEIGHTS", str(fresh_env / "missing.safetensors"))
    job = default_space.start_preparation(device="cpu")
    assert job.wait(60)
    assert isinstance(job.error, ExplorerError) and "does not exist" in str(job.error)
    assert default_space.start_preparation(device="cpu") is not job
