"""Links out for a source, by position: NED, SIMBAD, the FIRST catalogue, NVSS / VLASS cutouts,
the Legacy Survey and SDSS sky viewers (each opens in a new tab).

Every URL is built from the service's documented (or long-stable, widely linked) query form;
the comment above each builder names it. Positions are J2000 degrees, written with
``POSITION_DECIMALS`` decimals (1e-5 deg = 0.036″, far below FIRST's 1.8″ pixel), and
always through ``urlencode``: a literal "+" of a northern declination would otherwise be
read as a space. No Streamlit here: the panel and the gallery render :func:`links_html`.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from urllib.parse import urlencode

from pretrain import config

POSITION_DECIMALS = 5
NVSS_MIN_FIELD_ARCMIN = 15.0


@dataclass(frozen=True)
class SkyLink:
    key: str  # stable id (tests, CSS)
    name: str  # the link text in the panel
    short: str  # the link text on a gallery card
    url: str
    what: str  # the tooltip


def _deg(value: float, signed: bool = False) -> str:
    return f"{value:+.{POSITION_DECIMALS}f}" if signed else f"{value:.{POSITION_DECIMALS}f}"


def _sexagesimal(ra: float, dec: float) -> tuple[str, str]:
    """('hh mm ss.sss', '+dd mm ss.ss'): the FIRST search form's coordinate syntax."""
    from astropy import units as u
    from astropy.coordinates import Angle

    ra_s = Angle(ra, u.deg).to_string(unit=u.hourangle, sep=" ", precision=3, pad=True)
    dec_s = Angle(dec, u.deg).to_string(unit=u.deg, sep=" ", precision=2, pad=True, alwayssign=True)
    return ra_s, dec_s


def ned_url(ra: float, dec: float, radius_arcsec: float) -> str:
    # NED "Objects near position" (classic form, still served and redirected to the new UI;
    # the same URL the SDSS SkyServer's Explore tool links with): lon/lat in degrees ("d"
    # suffix), radius in arcmin.
    query = {
        "search_type": "Near Position Search",
        "in_csys": "Equatorial",
        "in_equinox": "J2000.0",
        "lon": _deg(ra) + "d",
        "lat": _deg(dec, signed=True) + "d",
        "radius": f"{radius_arcsec / 60.0:.3f}",
        "obj_sort": "Distance to search center",
    }
    return "https://ned.ipac.caltech.edu/cgi-bin/objsearch?" + urlencode(query)


def simbad_url(ra: float, dec: float, radius_arcsec: float) -> str:
    # SIMBAD query by coordinates, https://simbad.cds.unistra.fr/guide/sim-url.htx (sim-coo:
    # Coord "ra dec" in decimal degrees, the default syntax of guide/sim-fcoo.htx; Radius with
    # Radius.unit arcsec|arcmin|deg).
    query = {
        "Coord": f"{_deg(ra)} {_deg(dec, signed=True)}",
        "CooFrame": "ICRS",
        "Radius": f"{radius_arcsec:g}",
        "Radius.unit": "arcsec",
    }
    return "https://simbad.cds.unistra.fr/simbad/sim-coo?" + urlencode(query)


def first_catalogue_url(ra: float, dec: float, radius_arcsec: float) -> str:
    # The FIRST catalogue search form at STScI (sundog.stsci.edu/cgi-bin/searchfirst): field
    # RA holds both coordinates (sexagesimal), Radius in arcsec, Text=0 an HTML table (1: text).
    ra_s, dec_s = _sexagesimal(ra, dec)
    query = {"RA": f"{ra_s} {dec_s}", "Radius": f"{radius_arcsec:g}", "Text": "0", "Equinox": "J2000"}
    return "https://sundog.stsci.edu/cgi-bin/searchfirst?" + urlencode(query)


def nvss_cutout_url(ra: float, dec: float, size_arcmin: float) -> str:
    # NASA SkyView's query URL (current/docs/batchpage.html: Position "ra,dec", Survey, Size
    # in degrees, Pixels). NVSS's beam is 45″: the field is at least NVSS_MIN_FIELD_ARCMIN
    # (20 beams) so that the source has some sky around it; 300 px as a FIRST cutout.
    size = max(size_arcmin, NVSS_MIN_FIELD_ARCMIN)
    query = {
        "Survey": "NVSS",
        "Position": f"{_deg(ra)},{_deg(dec, signed=True)}",
        "Coordinates": "J2000",
        "Size": f"{size / 60.0:.4f}",
        "Pixels": "300",
    }
    return "https://skyview.gsfc.nasa.gov/current/cgi/runquery.pl?" + urlencode(query)


def vlass_cutout_url(ra: float, dec: float, size_arcmin: float) -> str:
    # The Legacy Survey viewer's cutout service (viewer/cutout.jpg: ra, dec, layer, pixscale
    # in arcsec/px, size in px) with its VLASS epoch 1.2 layer; 1″ pixels as VLASS Quick Look.
    query = {
        "ra": _deg(ra),
        "dec": _deg(dec, signed=True),
        "layer": "vlass1.2",
        "pixscale": "1.0",
        "size": str(max(16, round(size_arcmin * 60.0))),
    }
    return "https://www.legacysurvey.org/viewer/cutout.jpg?" + urlencode(query)


def legacy_viewer_url(ra: float, dec: float) -> str:
    # The Legacy Survey sky viewer (www.legacysurvey.org/viewer: ra, dec, layer, zoom, mark).
    query = {
        "ra": _deg(ra),
        "dec": _deg(dec, signed=True),
        "layer": "ls-dr10",
        "zoom": "15",
        "mark": f"{_deg(ra)},{_deg(dec, signed=True)}",
    }
    return "https://www.legacysurvey.org/viewer?" + urlencode(query)


def sdss_navigate_url(ra: float, dec: float) -> str:
    # SDSS SkyServer Navigate tool (DR18 VisualTools/navi: ra, dec in degrees, scale in ″/px).
    query = {"ra": _deg(ra), "dec": _deg(dec, signed=True), "scale": "0.4"}
    return "https://skyserver.sdss.org/dr18/VisualTools/navi?" + urlencode(query)


def sky_links(
    ra: float,
    dec: float,
    radius_arcsec: float = config.APP_LINK_SEARCH_RADIUS_ARCSEC,
    cutout_arcmin: float = config.APP_LINK_CUTOUT_ARCMIN,
) -> list[SkyLink]:
    """Every link out for a position ([] when the position is unknown)."""
    try:
        ra, dec = float(ra), float(dec)
    except (TypeError, ValueError):  # a missing value (None, pd.NA, '')
        return []
    if not (math.isfinite(ra) and math.isfinite(dec)):
        return []
    ra %= 360.0
    r = f"{radius_arcsec:g}″"
    return [
        SkyLink("ned", "NED", "NED", ned_url(ra, dec, radius_arcsec), f"NED: objects within {r}"),
        SkyLink("simbad", "SIMBAD", "SIMBAD", simbad_url(ra, dec, radius_arcsec), f"SIMBAD: objects within {r}"),
        SkyLink(
            "first",
            "FIRST catalogue",
            "FIRST",
            first_catalogue_url(ra, dec, radius_arcsec),
            f"FIRST catalogue components within {r}",
        ),
        SkyLink("nvss", "NVSS cutout", "NVSS", nvss_cutout_url(ra, dec, cutout_arcmin), "NVSS image (45″ beam)"),
        SkyLink(
            "vlass", "VLASS cutout", "VLASS", vlass_cutout_url(ra, dec, cutout_arcmin), "VLASS 3 GHz image (2.5″ beam)"
        ),
        SkyLink("legacy", "Legacy Survey", "LS", legacy_viewer_url(ra, dec), "Legacy Survey DR10 optical viewer"),
        SkyLink("sdss", "SDSS", "SDSS", sdss_navigate_url(ra, dec), "SDSS SkyServer Navigate"),
    ]


def links_html(ra: float, dec: float, short: bool = False) -> str:
    """The links as one line of anchors opening in a new tab ('' without a position)."""
    anchors = [
        f'<a href="{html.escape(link.url)}" target="_blank" rel="noopener noreferrer" '
        f'data-link="{link.key}" title="{html.escape(link.what)}">{html.escape(link.short if short else link.name)}</a>'
        for link in sky_links(ra, dec)
    ]
    return f'<span class="sky-links">{" · ".join(anchors)}</span>' if anchors else ""
