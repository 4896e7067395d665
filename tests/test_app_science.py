"""The map page's science tools through AppTest, on the small real MiraBest space: links out, the
VOTable / SAMP hand-off, tags (on disk, offered as a colour), the neighbourhood facts, the
unusual-sources gallery and the Help page."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.tags import TagStore
from pretrain.space import load_space
from tests.app_space import app_test, build_small_space, gallery_html, small_space_root


@pytest.fixture(scope="session")
def small_space(mirabest_dir, tmp_path_factory):
    return build_small_space(mirabest_dir, small_space_root(tmp_path_factory))


@pytest.fixture
def app_env(small_space, monkeypatch, tmp_path):
    for key, value in small_space.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("EXPLORER_SPACES", raising=False)
    # The tags go to the cache; start each test from a clean log of the default space.
    TagStore("default:mirabest").path.unlink(missing_ok=True)
    return small_space


def _htmls(at) -> list[str]:
    return [getattr(e.proto, "body", "") for e in at.get("html")]


def test_a_clicked_source_has_links_votable_tags_and_its_neighbourhood(app_env):
    space = load_space(app_env.cache / "spaces" / "mirabest")
    cat = space.catalogue_map
    row = int(np.flatnonzero(cat["label"].to_numpy() == "FRII")[0])
    source = cat["source_id"].iloc[row]
    at = app_test()
    at.query_params["source"] = source
    at.run()
    assert not at.exception, at.exception
    panel_links = [h for h in _htmls(at) if "source-links" in h]
    assert len(panel_links) == 1 and 'data-link="simbad"' in panel_links[0]
    assert f"Coord={cat['ra'].iloc[row]:.5f}" in panel_links[0].replace("&amp;", "&")
    assert gallery_html(at).count('data-link="ned"') == 12  # every neighbour card links out
    assert any(b.label == "VOTable" for b in at.get("download_button"))
    assert any(b.label == "Send to TOPCAT / Aladin" for b in at.button)
    assert any("label purity" in c.value and "map trust" in c.value for c in at.caption)
    assert any(e.label.startswith("The 12 most unusual sources") for e in at.expander)
    assert "outlier score" in at.selectbox(key="colour:default:mirabest").options  # (as people read it)

    # Tag it from its panel: on disk at once, offered as a colour, listed as a tag set.
    next(t for t in at.text_input if t.label == "Tag this source").set_value("bent, check in LoTSS")
    next(b for b in at.button if b.label == "Tag").click()
    at.run()
    assert not at.exception, at.exception
    assert TagStore("default:mirabest").tags_by_source() == {source: {"bent", "check in LoTSS"}}
    options = at.selectbox(key="colour:default:mirabest").options
    assert "tag: bent" in options and "tag: check in LoTSS" in options
    assert any("**bent**" in c.value for c in at.caption)
    assert any(e.label.startswith("Tagged sources (2 tags)") for e in at.expander)


def test_the_help_page_is_linked_and_names_the_field_and_the_credits(app_env):
    at = app_test()
    at.run()
    assert not at.exception, at.exception
    links = at.get("page_link")
    assert any("Help" in getattr(link.proto, "label", "") for link in links)
    at.switch_page("pages/4_Help.py")
    at.run()
    assert not at.exception, at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "2.1′" in text and "5″ beam" in text and "CC BY 4.0" in text and "Slijepcevic" in text
