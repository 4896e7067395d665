"""Links out by position: the URLs' form (host, path, query values), parsed back with urllib."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest

from explorer.gallery import Card, gallery_html
from explorer.links import links_html, sky_links

RA, DEC = 187.70593, 12.39112  # M87-ish, north
RA_S, DEC_S = 3.3614, -7.25043  # south of the equator


def _links(ra, dec):
    return {link.key: urlparse(link.url) for link in sky_links(ra, dec, radius_arcsec=30, cutout_arcmin=4.5)}


def _q(url) -> dict[str, str]:
    query = parse_qs(url.query, strict_parsing=True)
    assert all(len(v) == 1 for v in query.values()), query
    return {k: v[0] for k, v in query.items()}


def test_every_service_is_linked_over_https():
    links = _links(RA, DEC)
    assert set(links) == {"ned", "simbad", "first", "nvss", "vlass", "legacy", "sdss"}
    hosts = {key: (u.scheme, u.netloc, u.path) for key, u in links.items()}
    assert hosts["ned"] == ("https", "ned.ipac.caltech.edu", "/cgi-bin/objsearch")
    assert hosts["simbad"] == ("https", "simbad.cds.unistra.fr", "/simbad/sim-coo")
    assert hosts["first"] == ("https", "sundog.stsci.edu", "/cgi-bin/searchfirst")
    assert hosts["nvss"] == ("https", "skyview.gsfc.nasa.gov", "/current/cgi/runquery.pl")
    assert hosts["vlass"] == ("https", "www.legacysurvey.org", "/viewer/cutout.jpg")
    assert hosts["legacy"] == ("https", "www.legacysurvey.org", "/viewer")
    assert hosts["sdss"] == ("https", "skyserver.sdss.org", "/dr18/VisualTools/navi")


@pytest.mark.parametrize(("ra", "dec"), [(RA, DEC), (RA_S, DEC_S)])
def test_positions_keep_five_decimals_and_their_sign(ra, dec):
    links = _links(ra, dec)
    ra_s, dec_s = f"{ra:.5f}", f"{dec:+.5f}"
    assert _q(links["simbad"])["Coord"] == f"{ra_s} {dec_s}"  # a "+" survives (not read as a space)
    assert _q(links["simbad"])["Radius"] == "30" and _q(links["simbad"])["Radius.unit"] == "arcsec"
    ned = _q(links["ned"])
    assert (ned["lon"], ned["lat"]) == (ra_s + "d", dec_s + "d")
    assert ned["search_type"] == "Near Position Search" and float(ned["radius"]) == pytest.approx(0.5)  # arcmin
    for key in ("legacy", "sdss", "vlass"):
        q = _q(links[key])
        assert float(q["ra"]) == pytest.approx(ra, abs=5e-6) and q["dec"] == dec_s
    assert _q(links["legacy"])["mark"] == f"{ra_s},{dec_s}"
    assert _q(links["nvss"])["Position"] == f"{ra_s},{dec_s}" and _q(links["nvss"])["Survey"] == "NVSS"
    assert float(_q(links["nvss"])["Size"]) >= 0.25  # at least 15′: 20 NVSS beams
    assert _q(links["vlass"])["layer"] == "vlass1.2" and _q(links["vlass"])["size"] == "270"  # 4.5′ at 1″/px


def test_first_search_gets_sexagesimal_coordinates():
    first = _q(_links(RA_S, DEC_S)["first"])
    assert first["RA"] == "00 13 26.736 -07 15 01.55"  # 3.3614° = 0h13m26.736s; -7.25043° = -7°15′01.55″
    assert first["Radius"] == "30" and first["Text"] == "0"


def test_ra_wraps_and_unknown_positions_get_no_links():
    assert _q(_links(360.5, 1.0)["simbad"])["Coord"].startswith("0.50000 ")
    assert sky_links(float("nan"), 1.0) == [] and sky_links(None, 1.0) == []  # type: ignore[arg-type]
    assert links_html(np.nan, 3.0) == ""


def test_link_html_opens_in_a_new_tab_and_gallery_cards_carry_it():
    block = links_html(RA_S, DEC_S, short=True)
    assert block.count('target="_blank"') == 7 and "&amp;" in block  # query separators escaped in HTML
    card = Card(rank=1, source_id="s1", image=None, score=0.9, ra=RA_S, dec=DEC_S)
    gallery = gallery_html([card, Card(rank=2, source_id="s2", image=None, score=0.8)])
    assert len(re.findall(r'data-link="ned"', gallery)) == 1  # the card without a position has none
    assert "sim-coo?Coord=3.36140+-7.25043" in gallery
