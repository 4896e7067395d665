"""The map page through Streamlit's AppTest, on a small real MiraBest space and the RGZ DR1 map."""

from __future__ import annotations

import re

import numpy as np
import pytest

from explorer.sky import sky_duplicate_mask
from pretrain.space import load_space
from tests.app_space import app_test, build_small_space, gallery_html, plotly_spec, small_space_root

K = 12


@pytest.fixture(scope="session")
def small_space(mirabest_dir, tmp_path_factory):
    return build_small_space(mirabest_dir, small_space_root(tmp_path_factory))


@pytest.fixture
def app_env(small_space, monkeypatch):
    for key, value in small_space.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("EXPLORER_SPACES", raising=False)
    return small_space


@pytest.fixture(scope="module")
def space(small_space):
    return load_space(small_space.cache / "spaces" / "mirabest")


def _expected_neighbours(space, row: int, k: int = K, radius: float = 30.0) -> list[str]:
    """Independent reference: brute-force cosine ranking of the stored embeddings + the sky filter."""
    unit = space.embeddings / np.linalg.norm(space.embeddings, axis=1, keepdims=True)
    order = [i for i in np.argsort(-(unit @ unit[row]), kind="stable") if i != row]
    cat = space.catalogue_map
    keep = sky_duplicate_mask(
        cat["ra"].to_numpy()[order], cat["dec"].to_numpy()[order], radius, (cat["ra"].iloc[row], cat["dec"].iloc[row])
    )
    return cat["source_id"].to_numpy()[np.asarray(order)[keep]][:k].tolist()


def test_map_page_opens_on_mirabest_coloured_by_extent(app_env, space):
    at = app_test()
    at.run()
    assert not at.exception, at.exception
    assert any("Map · MiraBest" in m.value for m in at.markdown)
    assert any(f"{len(space)} sources" in c.value for c in at.caption)
    colour = at.selectbox(key="colour:default:mirabest")
    assert colour.value == "angular_extent_arcsec" and "label" in colour.options
    spec = plotly_spec(at)
    assert all(trace["type"] == "scattergl" for trace in spec["data"])
    assert spec["data"][-1]["marker"]["colorbar"]["title"]["text"].startswith("angular extent")
    assert any("Click a source" in i.value for i in at.info)
    assert gallery_html(at) == ""  # nothing clicked yet


def test_a_clicked_hybrid_shows_its_exact_cosine_neighbours(app_env, space):
    cat = space.catalogue_map
    row = int(np.flatnonzero(cat["label"].to_numpy() == "hybrid")[0])
    hybrid = cat["source_id"].iloc[row]
    at = app_test()
    at.query_params["source"] = hybrid  # what a click stores (and a shared link carries)
    at.run()
    assert not at.exception, at.exception
    html = gallery_html(at)
    assert f'data-query="{hybrid}"' in html
    shown = re.findall(r'data-source-id="([^"]+)"', html)
    assert shown == _expected_neighbours(space, row)
    assert len(re.findall(r"data:image/png;base64", html)) == K  # every card has its bundle image
    sims = [float(s) for s in re.findall(r"sim (-?\d\.\d+)", html)]
    assert sims == sorted(sims, reverse=True) and len(sims) == K
    # Beside each cosine, its rank among all pairs of the space: best first, near the top.
    tops = [float(t) for t in re.findall(r"sim -?\d\.\d+ · top (\d+(?:\.\d+)?) %", html)]
    assert len(tops) == K and tops == sorted(tops) and tops[-1] < 25
    # the map marks the query and rings exactly the listed neighbours, in rank order
    traces = {t["name"]: t for t in plotly_spec(at)["data"]}
    assert traces["neighbours"]["texttemplate"] == [str(i) for i in range(1, K + 1)]
    assert "selected source" in traces
    assert any(hybrid in m.value for m in at.markdown)  # the source panel's heading
    assert any(b.label.startswith("Download the list") for b in at.get("download_button"))


def test_fewer_neighbours_and_no_duplicate_filter_follow_the_sidebar(app_env, space):
    row = 3
    at = app_test()
    at.query_params["source"] = space.catalogue_map["source_id"].iloc[row]
    # (Settings go in through session state, before the first run creates the sidebar's widgets.)
    at.session_state["n_neighbours"] = 5
    at.session_state["sky_radius_arcsec"] = 0
    at.run()
    assert not at.exception, at.exception
    assert at.slider(key="n_neighbours").value == 5
    shown = re.findall(r'data-source-id="([^"]+)"', gallery_html(at))
    assert shown == _expected_neighbours(space, row, k=5, radius=0.0)


def test_colour_by_label_draws_one_legend_entry_per_class(app_env, space):
    at = app_test()
    at.session_state["colour:default:mirabest"] = "label"
    at.run()
    assert not at.exception, at.exception
    names = [t["name"] for t in plotly_spec(at)["data"]]
    counts = space.catalogue_map["label"].value_counts()
    assert sorted(names) == sorted(f"{label} ({n})" for label, n in counts.items())


def test_box_selection_lists_the_selected_sources(app_env, space):
    at = app_test()
    at.session_state["map_state"] = {"default:mirabest": {"query": None, "selected": [0, 5, 7]}}
    at.run()
    assert not at.exception, at.exception
    assert any("3 sources selected" in m.value for m in at.markdown)
    table = at.dataframe[0].value
    assert table["source id"].tolist() == space.catalogue_map["source_id"].iloc[[0, 5, 7]].tolist()
    assert any(b.label.startswith("Download the selection") for b in at.get("download_button"))


def test_rgz_catalogue_space_finds_neighbours_on_its_published_map(app_env, rgz_map_path):
    from explorer.space_registry import RGZ_KEY, read_rgz_map

    rgz = read_rgz_map(rgz_map_path)
    query = 1234
    at = app_test()
    at.session_state["space_key"] = RGZ_KEY
    at.query_params["source"] = rgz["source_id"].iloc[query]
    at.run()
    assert not at.exception, at.exception
    assert any("50,790 sources" in c.value for c in at.caption)
    html = gallery_html(at)
    shown = re.findall(r'data-source-id="([^"]+)"', html)
    xy = rgz[["umap_x", "umap_y"]].to_numpy(np.float64)
    distance = np.hypot(*(xy - xy[query]).T)
    order = [i for i in np.argsort(distance, kind="stable")[:200] if i != query]
    keep = sky_duplicate_mask(
        rgz["ra"].to_numpy()[order], rgz["dec"].to_numpy()[order], 30.0, (rgz["ra"].iloc[query], rgz["dec"].iloc[query])
    )
    assert shown == rgz["source_id"].to_numpy()[np.asarray(order)[keep]][:K].tolist()
    assert "distance on the map" in html and "FIRST image not fetched yet" in html
    assert any("on the 2-D map" in m.value for m in at.markdown)
    assert any(b.label.startswith("Fetch") for b in at.button)  # images come from FIRST on request


def test_continue_from_a_neighbour_moves_on_each_time(app_env, space):
    """The page keeps ?source= in step with the source shown; that link must not pull the
    page back to an earlier source when the user continues from a neighbour (twice here)."""
    ids = space.catalogue_map["source_id"]
    row_of = {source_id: i for i, source_id in enumerate(ids)}
    at = app_test()
    at.query_params["source"] = ids.iloc[0]
    at.run()
    assert not at.exception, at.exception
    current = 0
    for _ in range(2):
        target = next(row_of[s] for s in _expected_neighbours(space, current) if row_of[s] != 0)
        at.selectbox(key=f"nb:default:mirabest:continue:{current}").set_value(target)
        at.run()
        assert not at.exception, at.exception
        assert f'data-query="{ids.iloc[target]}"' in gallery_html(at)
        current = target
