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
    assert len(re.findall(r"data:image/png;base64", html)) == 2 * K  # every card: its bundle image, enlarged too
    sims = [float(s) for s in re.findall(r"sim (-?\d\.\d+)", html)]
    assert sims == sorted(sims, reverse=True) and len(sims) == K
    # Beside each cosine, its rank among all pairs of the space: best first, near the top.
    tops = [float(t) for t in re.findall(r'nb-share"[^>]*>top (\d+(?:\.\d+)?) %<', html)]
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


def _expected_measured_neighbours(space, row: int, k: int = K, radius: float = 30.0) -> list[str]:
    """Independent reference for neighbours by representation + measurements: standardised
    embeddings, log extent and FR ratio (NaN: the median) appended at 3 sqrt(d)/10, brute force."""
    cat = space.catalogue_map
    emb = np.asarray(space.embeddings, dtype=np.float64)
    columns = [(emb - emb.mean(0)) / (emb.std(0) + 1e-6)]
    for name, log in (("angular_extent_estimated_arcsec", True), ("fr_ratio", False)):
        values = cat[name].to_numpy(np.float64)
        values = np.log(np.where(values > 0, values, np.nan)) if log else values
        values = np.where(np.isfinite(values), values, np.nanmedian(values))
        columns.append(3 * np.sqrt(emb.shape[1]) / 10 * ((values - values.mean()) / (values.std() + 1e-9))[:, None])
    vectors = np.column_stack(columns)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    order = [i for i in np.argsort(-(unit @ unit[row]), kind="stable") if i != row]
    keep = sky_duplicate_mask(
        cat["ra"].to_numpy()[order], cat["dec"].to_numpy()[order], radius, (cat["ra"].iloc[row], cat["dec"].iloc[row])
    )
    return cat["source_id"].to_numpy()[np.asarray(order)[keep]][:k].tolist()


def test_neighbours_by_representation_and_measurements_follow_the_sidebar(app_env, space):
    cat = space.catalogue_map
    assert cat["fr_ratio"].notna().sum() > 10  # the app's space was built with the pixel measurements
    row = int(np.flatnonzero(cat["label"].to_numpy() == "FRII")[0])
    at = app_test()
    at.query_params["source"] = cat["source_id"].iloc[row]
    at.query_params["by"] = "measured"  # a shared link (the sidebar writes it there)
    at.run()
    assert not at.exception, at.exception
    assert at.radio(key="neighbours_by").value == "measured" and at.query_params["by"] == "measured"
    shown = re.findall(r'data-source-id="([^"]+)"', gallery_html(at))
    expected = _expected_measured_neighbours(space, row)
    assert shown == expected and expected != _expected_neighbours(space, row)
    captions = " ".join(c.value for c in at.caption)
    assert "pixel measurements appended (angular extent, FR ratio)" in captions
    # the representation alone (the default)
    at = app_test()
    at.query_params["source"] = cat["source_id"].iloc[row]
    at.run()
    assert at.radio(key="neighbours_by").value == "representation" and "by" not in at.query_params
    assert re.findall(r'data-source-id="([^"]+)"', gallery_html(at)) == _expected_neighbours(space, row)
    assert "pixel measurements appended" not in " ".join(c.value for c in at.caption)


def test_colour_by_label_draws_one_legend_entry_per_class(app_env, space):
    at = app_test()
    at.session_state["colour:default:mirabest"] = "label"
    at.run()
    assert not at.exception, at.exception
    names = [t["name"] for t in plotly_spec(at)["data"] if t["name"] != "map extent"]
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
    assert any("on the 2-D map" in m.value for m in [*at.markdown, *at.caption])  # the method, under the heading
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
        at.button_group(key=f"nb:default:mirabest:continue:{current}").set_value(target)  # the pills
        at.run()
        assert not at.exception, at.exception
        assert f'data-query="{ids.iloc[target]}"' in gallery_html(at)
        current = target


def test_a_shared_link_restores_space_source_colour_and_settings(app_env, rgz_map_path):
    """A reload or a shared link on the RGZ map opens the RGZ map (not MiraBest) with its source."""
    from explorer.space_registry import RGZ_KEY, read_rgz_map

    rgz = read_rgz_map(rgz_map_path)
    wanted = rgz["source_id"].iloc[777]
    at = app_test()
    at.query_params.update({"space": RGZ_KEY, "source": wanted, "k": "6", "radius": "0"})
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["space_key"] == RGZ_KEY
    assert f'data-query="{wanted}"' in gallery_html(at)
    assert len(re.findall(r'data-source-id="', gallery_html(at))) == 6
    assert at.query_params["space"] == RGZ_KEY and at.query_params["source"] == wanted
    assert at.query_params["k"] == "6" and at.query_params["radius"] == "0"


def test_a_plus_typed_in_a_link_reads_as_a_space_and_still_finds_the_source(app_env, space):
    source_id = next(s for s in space.catalogue_map["source_id"] if "+" in s)
    at = app_test()
    at.query_params["source"] = source_id.replace("+", " ")  # what ?source=J0927...+18... arrives as
    at.run()
    assert not at.exception, at.exception
    assert f'data-query="{source_id}"' in gallery_html(at)
    assert at.query_params["source"] == source_id  # written back as it should be (%2B in the address)


def test_the_go_to_box_selects_a_source_by_id_or_position_and_says_when_it_is_not_here(app_env, space):
    cat = space.catalogue_map
    at = app_test()
    at.run()
    box = at.text_input(key="goto:default:mirabest:text")
    box.set_value(f"{cat['ra'].iloc[4]:.4f} {cat['dec'].iloc[4]:+.4f}")
    at.button[[b.label for b in at.button].index("Go")].click()  # the form's submit button
    at.run()
    assert not at.exception, at.exception
    assert f'data-query="{cat["source_id"].iloc[4]}"' in gallery_html(at)
    at.text_input(key="goto:default:mirabest:text").set_value("10.0 -60.0")
    at.button[[b.label for b in at.button].index("Go")].click()
    at.run()
    assert any("No source of this space within" in w.value for w in at.warning)
    assert f'data-query="{cat["source_id"].iloc[4]}"' in gallery_html(at)  # the selection stays


def test_colour_by_similarity_to_the_selected_source(app_env, space):
    from explorer.colour_columns import SIMILARITY_COLUMN

    row = 2
    at = app_test()
    at.query_params["source"] = space.catalogue_map["source_id"].iloc[row]
    at.session_state["colour:default:mirabest"] = SIMILARITY_COLUMN
    at.run()
    assert not at.exception, at.exception
    assert "survey" not in at.selectbox(key="colour:default:mirabest").options
    coloured = next(t for t in plotly_spec(at)["data"] if t["name"] == SIMILARITY_COLUMN)
    unit = space.unit_embeddings
    best = int(np.argmax(_decoded(coloured["marker"]["color"])))
    assert np.isclose(_decoded(coloured["marker"]["color"]).max(), 1.0, atol=1e-4)
    assert np.allclose(unit[best], unit[row], atol=1e-4)  # the brightest point is the source itself


def _decoded(values) -> np.ndarray:
    """A plotly JSON array (a list, or a typed array {dtype, bdata})."""
    import base64

    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return np.asarray(values, dtype=float)
