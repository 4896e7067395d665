"""Map figures, gallery HTML, colour columns and display images (no browser, no Streamlit)."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from explorer import colour_columns as cc
from explorer.figures import (
    colour_columns,
    is_categorical,
    map_figure,
    points_in_view,
    rows_from_selection,
)
from explorer.gallery import Card, display_stretch, gallery_html, rgb_image
from explorer.space_registry import read_rgz_map


@pytest.fixture(scope="module")
def catalogue() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 60
    return pd.DataFrame(
        {
            "source_id": [f"J{i:04d}" for i in range(n)],
            "umap_x": rng.normal(size=n).astype(np.float32),
            "umap_y": rng.normal(size=n).astype(np.float32),
            "ra": rng.uniform(0, 360, n),
            "dec": rng.uniform(-10, 60, n),
            "angular_extent_arcsec": np.r_[rng.uniform(20, 200, n - 2), np.nan, 0.0],
            "label": rng.choice(["FRI", "FRII", "hybrid"], n),
            "confident": pd.array(rng.choice([True, False], n), dtype="boolean"),
            "file": [f"f{i}.fits" for i in range(n)],
        }
    )


def _rows(trace) -> np.ndarray:
    return np.asarray(trace.customdata)[:, 0].astype(int)


def _source_traces(fig) -> list:
    """The traces of sources (not the invisible corners that fix the axes' extent)."""
    return [t for t in fig.data if t.name != "map extent"]


def test_categorical_colour_gives_one_trace_per_label_covering_every_source(catalogue):
    fig = map_figure(catalogue, catalogue["label"], "label")
    rows = np.concatenate([_rows(t) for t in _source_traces(fig)])
    assert sorted(rows) == list(range(len(catalogue)))  # every source exactly once
    for trace in _source_traces(fig):
        label = trace.name.split(" (")[0]
        assert set(catalogue["label"].iloc[_rows(trace)]) == {label}
        assert trace.type == "scattergl"


def test_continuous_log_colour_uses_log10_and_sets_aside_values_it_cannot_show(catalogue):
    values = catalogue["angular_extent_arcsec"]
    fig = map_figure(catalogue, values, "angular_extent_arcsec", log_colour=True)
    missing = [t for t in fig.data if t.name == "no value"][0]
    assert set(_rows(missing)) == {len(catalogue) - 2, len(catalogue) - 1}  # NaN and 0 (no log)
    shown = [t for t in fig.data if t.name == "angular_extent_arcsec"][0]
    np.testing.assert_allclose(np.asarray(shown.marker.color), np.log10(values.iloc[_rows(shown)]), rtol=1e-6)
    ticks = shown.marker.colorbar
    assert ticks.ticktext and all(10**v == pytest.approx(float(t)) for v, t in zip(ticks.tickvals, ticks.ticktext))


def test_a_run_probability_keeps_the_full_0_to_1_colour_scale(catalogue):
    probability = pd.Series(np.linspace(0.49, 0.51, len(catalogue)))  # an unsure model
    name = "run 20261123-131424-3434d4: P(FRII)"
    shown = [t for t in map_figure(catalogue, probability, name).data if t.name == name][0]
    assert (shown.marker.cmin, shown.marker.cmax) == (0.0, 1.0)
    extent = map_figure(catalogue, catalogue["angular_extent_arcsec"], "angular_extent_arcsec").data
    assert all(t.marker.cmin is None for t in extent)  # other columns span their own values


def test_overlays_mark_neighbours_query_and_looked_up_position(catalogue):
    fig = map_figure(catalogue, None, neighbours=[5, 9, 2], query=7, marker=(0.5, -0.5), marker_name="3C 236")
    by_name = {t.name: t for t in fig.data}
    np.testing.assert_array_equal(_rows(by_name["neighbours"]), [5, 9, 2])
    assert list(by_name["neighbours"].texttemplate) == ["1", "2", "3"]  # ranks drawn beside the rings
    np.testing.assert_allclose(by_name["neighbours"].x, catalogue["umap_x"].iloc[[5, 9, 2]])
    assert _rows(by_name["selected source"]).tolist() == [7]
    assert by_name["3C 236"].x == (0.5,) and by_name["3C 236"].customdata is None  # a click on it selects nothing


def test_rows_from_selection_reads_every_shape_plotly_sends():
    points = [
        {"customdata": {"0": 4.0, "1": 10.0}},
        {"customdata": [2, 1.0]},
        {"customdata": 4},
        {"customdata": None},
        {"x": 1},
    ]
    assert rows_from_selection(points) == [4, 2]
    assert rows_from_selection([]) == []


def test_colour_columns_offer_labels_and_numbers_not_identifiers(catalogue):
    options = colour_columns(catalogue, extra={"prob_FRII (run 1)": pd.Series(dtype=float)})
    assert options[0] == "angular_extent_arcsec"
    assert {"label", "confident"} <= set(options)
    assert "source_id" not in options and "file" not in options and "umap_x" not in options
    assert options[-1] == "prob_FRII (run 1)"


def test_colour_columns_leave_out_positions_and_columns_with_one_value(catalogue):
    options = colour_columns(catalogue.assign(survey="FIRST", image_ra=catalogue["ra"]))
    assert not {"ra", "dec", "image_ra", "survey"} & set(options)


def test_overlays_do_not_catch_clicks_meant_for_points_next_to_them(catalogue):
    fig = map_figure(catalogue, neighbours=[1, 2], query=0, selected=[3])
    overlays = [t for t in fig.data if t.name in ("neighbours", "selected source", "selected")]
    assert len(overlays) == 3 and all(t.hoverinfo == "skip" for t in overlays)
    assert fig.layout.hoverdistance <= 10
    assert is_categorical(catalogue["label"]) and is_categorical(catalogue["confident"])
    assert not is_categorical(catalogue["angular_extent_arcsec"])


def test_registered_colour_provider_is_offered_and_aligned(catalogue):
    class FakeSpace:
        pass

    space = FakeSpace()
    space.catalogue = catalogue

    def provider(s):
        return {"score": pd.Series([0.25, 0.75], index=["J0003", "J0001"])}

    def broken(s):
        raise RuntimeError("a broken provider must not break the map")

    cc.register(provider)
    cc.register(broken)
    try:
        extra = cc.extra_colour_columns(space)
    finally:
        cc._PROVIDERS.remove(provider)
        cc._PROVIDERS.remove(broken)
    values = cc.aligned(extra["score"], catalogue["source_id"])
    assert values.iloc[3] == 0.25 and values.iloc[1] == 0.75
    assert values.isna().sum() == len(catalogue) - 2


def _decode_images(html: str) -> list[Image.Image]:
    return [
        Image.open(io.BytesIO(base64.b64decode(b64)))
        for b64 in re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    ]


def test_gallery_html_holds_every_card_in_rank_order_with_inline_images():
    rng = np.random.default_rng(5)
    cards = [
        Card(
            rank=i + 1,
            source_id=f"J{i:03d}",
            image=rng.integers(0, 255, (150, 150), dtype=np.uint8),
            score=1.0 - i / 10,
            label="FRII",
            extent_arcsec=42.0,
            ra=10.0,
            dec=-1.0,
        )
        for i in range(4)
    ]
    cards.append(Card(rank=5, source_id="RGZJ1", image=None, score=0.5, note="FIRST image not fetched yet"))
    html = gallery_html(cards, "cosine similarity", query_id="J999")
    assert 'data-query="J999"' in html and 'data-count="5"' in html
    assert re.findall(r'data-source-id="([^"]+)"', html) == ["J000", "J001", "J002", "J003", "RGZJ1"]
    images = _decode_images(html)
    thumbnails, enlarged = images[0::2], images[1::2]  # each card: its thumbnail, then its enlarged view
    assert len(thumbnails) == 4 and all(im.size == (150, 150) and im.mode == "RGB" for im in thumbnails)
    assert len(enlarged) == 4 and all(im.size == (450, 450) for im in enlarged)
    assert "FIRST image not fetched yet" in html and "sim 0.700" in html
    assert 'class="nb-meta nb-share"' not in html  # no percentile given: the raw cosine alone
    ranked = gallery_html([Card(rank=1, source_id="J1", image=None, score=0.98, percentile=99.6)])
    assert "sim 0.980</span>" in ranked and ">top 0.40 %</div>" in ranked  # the rank on its own line
    assert "only 0.40 % of all pairs" in ranked


def test_gallery_thumbnails_show_the_models_central_field():
    image = np.zeros((150, 150), np.uint8)
    image[40:110, 40:110] = 255  # bright exactly over the central 70 px
    html = gallery_html([Card(rank=1, source_id="J1", image=image, score=0.9)])
    thumbnail, enlarged = _decode_images(html)
    thumb, big = np.asarray(thumbnail), np.asarray(enlarged)
    assert len({tuple(thumb[i, i]) for i in (0, 75, 149)}) == 1  # corner to centre: the bright central field
    assert tuple(big[5, 5]) != tuple(big[225, 225]) and tuple(big[225, 225]) == tuple(thumb[0, 0])
    assert 'tabindex="0"' in html  # a click on the card (focus) shows the enlarged view


def test_display_images_keep_order_of_brightness():
    ramp = np.tile(np.linspace(0, 1, 50, dtype=np.float32), (50, 1))
    ramp[0, 0] = np.nan
    stretched = display_stretch(ramp)
    assert stretched.dtype == np.uint8 and stretched[1, -1] == 255
    assert np.all(np.diff(stretched[1].astype(int)) >= 0)
    assert display_stretch(np.full((4, 4), np.nan)).max() == 0
    big = rgb_image(np.zeros((150, 150), np.uint8), 300, crop_box_px=70)
    pixels = np.asarray(big)
    assert big.size == (300, 300)
    assert pixels[150, 80].tolist() == [0, 229, 255]  # the 70 px box (x 80 = 150 - 70) is outlined
    assert pixels[150, 150].tolist() != [0, 229, 255]


def test_rgz_published_map_is_read_in_app_columns(rgz_map_path):
    frame = read_rgz_map(rgz_map_path)
    assert len(frame) == 50_790
    assert {"source_id", "umap_x", "umap_y", "ra", "dec", "angular_extent_arcsec"} <= set(frame.columns)
    # RGZ DR1 lists ~2000 names twice (one object, two entries): ids are made unique, names kept
    assert frame["source_id"].str.startswith("RGZJ").all() and frame["source_id"].is_unique
    assert frame["rgz_name"].duplicated().sum() > 0
    twins = frame[frame["rgz_name"].duplicated(keep=False)]
    assert (twins["source_id"].str.replace(r"_\d+$", "", regex=True) == twins["rgz_name"]).all()
    assert frame["angular_extent_arcsec"].min() > 25.0  # the published map keeps sources above 25"


def test_a_runs_misclassified_sources_stand_out_from_its_correct_ones(catalogue):
    from explorer.figures import FIXED_CATEGORY_COLOURS

    marks = pd.Series(np.where(np.arange(len(catalogue)) % 4 == 0, "misclassified", "correct"), dtype=object)
    marks.iloc[1] = None  # a source the task has no label for
    traces = {t.name.split(" (")[0]: t for t in map_figure(catalogue, marks, "run x: misclassified").data}
    assert traces["misclassified"].marker.color == FIXED_CATEGORY_COLOURS["misclassified"]
    assert traces["correct"].marker.color == FIXED_CATEGORY_COLOURS["correct"]
    names = list(traces)
    assert names.index("misclassified") > names.index("correct")  # drawn on top


def test_source_facts_give_the_position_in_sexagesimal_too():
    from explorer.facts import facts_html

    entry = pd.Series({"source_id": "x", "label": "FRII", "ra": 139.148, "dec": 4.681, "angular_extent_arcsec": 43.0})
    html = facts_html(entry)
    assert "<td>139.148</td>" in html and "<td>4.681</td>" in html  # as precise as it is, no more
    assert "<td>139.14792</td>" in facts_html(entry.replace(139.148, 139.147917))
    compact = facts_html(entry, compact=True)  # the map panel: the position once, as J2000
    assert "RA (°)" not in compact and "<td>J2000</td>" in compact and "09:16:35" in compact
    # 139.148 deg = 9h16m35.52s; 4.681 deg = 4d40m51.6s: given to 0.001 deg (3.6″), shown to 0.1 s and 1″
    assert "09:16:35.5 +04:40:52" in html and "51.6" not in html


def test_a_source_larger_than_the_models_field_is_flagged():
    from explorer.facts import field_warning

    assert "larger than the 126″" in field_warning(192.0)
    assert field_warning(60.0) is None and field_warning(float("nan")) is None and field_warning(None) is None


def test_selection_table_reads_as_people_write_it_and_hides_empty_columns():
    from explorer.selection_table import selection_display

    frame = pd.DataFrame(
        {
            "source_id": ["a", "b"],
            "ra": [1.0, 2.0],
            "dec": [3.0, 4.0],
            "angular_extent_arcsec": [20.0, 30.0],
            "name": ["", ""],
            "redshift": [np.nan, np.nan],
            "label": ["FRI", "FRII"],
        }
    )
    shown = selection_display(frame)
    assert list(shown.columns) == ["source id", "RA (°)", "Dec (°)", "angular extent (″)", "label"]
    assert shown["angular extent (″)"].tolist() == [20.0, 30.0]


def test_source_facts_show_the_value_the_map_is_coloured_by():
    from explorer.facts import colour_fact, facts_html

    entry = pd.Series({"source_id": "x", "label": "FRII", "ra": 139.148, "dec": 4.681})
    colour = pd.Series([0.25, 0.875])
    fact = colour_fact("run 20261201-1: P(FRII)", colour, 1)
    assert fact == ("run 20261201-1: P(FRII)", 0.875)
    assert "P(FRII)" in facts_html(entry, extra=[fact]) and "0.875" in facts_html(entry, extra=[fact])
    assert colour_fact("label", pd.Series(["FRI", "FRII"]), 1) is None  # already a fact
    assert colour_fact("angular_extent_arcsec", colour, 0) is None
    assert colour_fact("redshift", None, 0) is None


# --- survey-sized maps: a density image, points in view, a sub-pixel pick ------------------


def _density_png(fig) -> np.ndarray:
    source = fig.layout.images[0].source
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))).convert("RGBA"))


def test_a_map_over_the_point_limit_draws_every_source_as_density_and_the_views_points(rgz_map_path):
    catalogue = read_rgz_map(rgz_map_path)  # the real 50,790-source map, with a lower limit
    limit = 5_000
    extent = catalogue["angular_extent_arcsec"]
    fig = map_figure(catalogue, extent, "angular_extent_arcsec", log_colour=True, points_max=limit)
    image = _density_png(fig)
    assert image.shape[2] == 4 and (image[..., 3] > 0).sum() > 10_000  # every source is shaded somewhere
    drawn = np.concatenate([_rows(t) for t in fig.data if t.customdata is not None and t.hoverinfo != "skip"])
    assert len(drawn) == limit and len(set(drawn)) == limit
    # The colour scale spans every source, not only those drawn (the same colours at every zoom).
    trace = [t for t in fig.data if t.name == "angular_extent_arcsec"][0]
    assert trace.marker.cmax == pytest.approx(np.log10(extent[extent > 0].max()), rel=1e-6)
    # Zoomed in: the sources in view only; once few enough, all of them; a zoom only adds points.
    x, y = catalogue["umap_x"].to_numpy(), catalogue["umap_y"].to_numpy()
    cx, cy = np.median(x), np.median(y)
    wide, narrow = (cx - 3, cx + 3, cy - 3, cy + 3), (cx - 0.3, cx + 0.3, cy - 0.3, cy + 0.3)
    shown_wide, shown_narrow = points_in_view(x, y, wide, limit), points_in_view(x, y, narrow, limit)
    in_narrow = (np.abs(x - cx) <= 0.33) & (np.abs(y - cy) <= 0.33)
    assert 0 < in_narrow.sum() <= limit and np.array_equal(shown_narrow, in_narrow)
    assert shown_wide.sum() == limit and np.all(shown_narrow[shown_wide & in_narrow])
    zoomed = map_figure(catalogue, extent, "angular_extent_arcsec", True, points_max=limit, view=narrow)
    drawn = np.concatenate([_rows(t) for t in zoomed.data if t.customdata is not None and t.hoverinfo != "skip"])
    assert set(drawn) == set(np.flatnonzero(in_narrow))
    # The source shown and its neighbours are points wherever they are (a ring can be clicked).
    far = np.flatnonzero(~in_narrow)[:4]
    with_query = map_figure(
        catalogue,
        extent,
        "angular_extent_arcsec",
        True,
        points_max=limit,
        view=narrow,
        neighbours=far[1:],
        query=far[0],
    )
    drawn = np.concatenate([_rows(t) for t in with_query.data if t.customdata is not None and t.hoverinfo != "skip"])
    assert set(drawn) == set(np.flatnonzero(in_narrow)) | set(far)
    # A double-click returns to the whole map: invisible corners span every source.
    corners = [t for t in zoomed.data if t.name == "map extent"][0]
    assert min(corners.x) == pytest.approx(x.min()) and max(corners.y) == pytest.approx(y.max())


def test_maps_under_the_limit_draw_every_source_as_a_point_without_density(catalogue):
    fig = map_figure(catalogue, catalogue["label"], "label", view=(0, 0.1, 0, 0.1))  # the view is ignored
    assert len(fig.layout.images) == 0
    assert sorted(np.concatenate([_rows(t) for t in _source_traces(fig)])) == list(range(len(catalogue)))


def test_every_pixel_measurement_has_a_name_for_people():
    from explorer.figures import PRETTY_NAMES, pretty_name
    from pretrain.data.measurements import COLUMNS

    colour_columns = [c for c in COLUMNS if c != "measurements_note"]  # the note is text, not a colour
    assert set(colour_columns) <= set(PRETTY_NAMES)
    assert pretty_name("integrated_flux_mjy") == "integrated flux (mJy)" and pretty_name("fr_ratio") == "FR ratio"
