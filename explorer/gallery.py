"""Images for people: colour maps, display stretches, PNG thumbnails and the neighbour gallery.

The gallery is one HTML block with the thumbnails inlined as PNG data URIs: the browser
gets every image in the same message as the list itself (no request per thumbnail), and a
150 x 150 colour PNG is a few kB.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from explorer.facts import position_decimals
from explorer.links import links_html
from explorer.similarity import format_similarity
from pretrain import config
from pretrain.pair_similarity import describe_percentile

# Perceptually uniform "inferno" (the common choice for radio images), 9 stops.
_INFERNO = ("#000004", "#1b0c41", "#4a0c6b", "#781c6d", "#a52c60", "#cf4446", "#ed6925", "#fb9b06", "#fcffa4")


def _lut(stops: tuple[str, ...]) -> np.ndarray:
    rgb = np.array([[int(s[i : i + 2], 16) for i in (1, 3, 5)] for s in stops], dtype=np.float64)
    positions = np.linspace(0.0, 1.0, len(stops))
    grid = np.linspace(0.0, 1.0, 256)
    return np.stack([np.interp(grid, positions, rgb[:, c]) for c in range(3)], axis=1).round().astype(np.uint8)


INFERNO_LUT = _lut(_INFERNO)
# For display only: a square-root stretch shows faint lobes next to a bright core (the model
# itself sees the linear image).
INFERNO_SQRT_LUT = INFERNO_LUT[np.round(np.sqrt(np.arange(256) / 255.0) * 255.0).astype(np.uint8)]


def colourise(image_uint8: np.ndarray, lut: np.ndarray = INFERNO_LUT) -> np.ndarray:
    """uint8 (H, W) -> RGB uint8 (H, W, 3) through a 256-entry colour look-up table."""
    return lut[np.asarray(image_uint8, dtype=np.uint8)]


def display_stretch(image: np.ndarray, softening: float = 0.1) -> np.ndarray:
    """A raw survey image (flux, NaN allowed) -> uint8 for display (asinh stretch).

    Radio images span a large dynamic range: a linear scale shows only the brightest
    peak. The asinh stretch from the median (the sky) to the peak keeps faint lobes
    visible while the noise stays dark. NaN is shown as black.
    """
    data = np.asarray(image, dtype=np.float64)
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        return np.zeros(data.shape, dtype=np.uint8)
    lo, peak = float(np.median(finite)), float(finite.max())
    if peak <= lo:
        return np.zeros(data.shape, dtype=np.uint8)
    scaled = np.clip((np.nan_to_num(data, nan=lo) - lo) / (peak - lo), 0.0, 1.0)
    stretched = np.arcsinh(scaled / softening) / np.arcsinh(1.0 / softening)
    return np.round(stretched * 255.0).astype(np.uint8)


def rgb_image(
    image_uint8: np.ndarray,
    size_px: int | None = None,
    crop_box_px: int | None = None,
    lut: np.ndarray = INFERNO_SQRT_LUT,
) -> Image.Image:
    """A colourised PIL image (square-root display stretch by default), optionally enlarged and
    with the model's central crop outlined."""
    image = Image.fromarray(colourise(image_uint8, lut))
    scale = 1.0
    if size_px and size_px != image.width:
        scale = size_px / image.width
        image = image.resize((size_px, round(image.height * scale)), Image.Resampling.NEAREST)
    if crop_box_px:
        w, h = image.size
        half = crop_box_px * scale / 2.0
        box = (w / 2 - half, h / 2 - half, w / 2 + half - 1, h / 2 + half - 1)
        ImageDraw.Draw(image).rectangle(box, outline=(0, 229, 255), width=max(1, round(scale)))
    return image


def png_bytes(image: Image.Image | np.ndarray) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(colourise(image) if image.ndim == 2 else image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=1)  # speed over size
    return buffer.getvalue()


def png_data_uri(image: Image.Image | np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


def north_up(image: np.ndarray) -> np.ndarray:
    """An image in FITS order (row 0 is the southern edge) turned for a screen (row 0 at the top):
    north up and east left, as the viewer's sky axes show it. The model's images keep the FITS
    order of their cutouts; a PNG draws row 0 at the top, which showed them mirrored."""
    return np.flipud(image)


def _central(image: np.ndarray, px: int | None) -> np.ndarray:
    """The central ``px`` x ``px`` pixels of an image (all of it when ``px`` is None or larger)."""
    if not px or px >= min(image.shape[:2]):
        return image
    top, left = (image.shape[0] - px) // 2, (image.shape[1] - px) // 2
    return image[top : top + px, left : left + px]


@dataclass
class Card:
    """One tile of the gallery."""

    rank: int
    source_id: str
    image: np.ndarray | None  # uint8 (H, W) model image, or None when not available
    score: float  # cosine similarity, or map distance
    label: str = ""
    extent_arcsec: float = float("nan")
    ra: float = float("nan")
    dec: float = float("nan")
    note: str = ""  # shown instead of the image when there is none
    percentile: float = float("nan")  # the score's rank among all pairs of the space (0..100)


GALLERY_CSS = """
<style>
.nb-gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(86px,1fr));gap:10px;margin:4px 0 8px 0}
.nb-card{background:rgba(127,127,127,0.10);border:1px solid rgba(127,127,127,0.25);border-radius:8px;
 padding:6px;font-size:12px;line-height:1.35}
.nb-card img,.nb-card .nb-missing{width:100%;aspect-ratio:1/1;border-radius:4px;display:block;image-rendering:pixelated}
.nb-card .nb-missing{display:flex;align-items:center;justify-content:center;text-align:center;
 background:#000004;color:#999;font-size:11px;padding:6px;box-sizing:border-box}
.nb-head{display:flex;flex-wrap:wrap;justify-content:space-between;column-gap:6px;margin-top:4px;font-weight:600}
.nb-rank{color:#00E5FF}.nb-score{font-variant-numeric:tabular-nums;font-size:10.5px;white-space:nowrap}
.nb-share{font-size:10.5px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.nb-id{font-family:monospace;font-size:11px;opacity:.9;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.nb-meta{opacity:.8;font-variant-numeric:tabular-nums}
.nb-label{display:inline-block;border-radius:3px;padding:0 4px;background:rgba(230,159,0,.25)}
.nb-links{font-size:10.5px;opacity:.85;line-height:1.5}.nb-links a{text-decoration:none}
.nb-links summary{cursor:pointer;opacity:.8}
.nb-card{cursor:zoom-in}.nb-card:focus{outline:2px solid #00E5FF}
.nb-card .nb-big{display:none}
.nb-card:focus .nb-big{display:block;position:fixed;z-index:100000;top:50%;left:50%;transform:translate(-50%,-50%);
 width:min(86vh,86vw,560px);padding:8px;background:#0e1117;border:1px solid #00E5FF;border-radius:8px;cursor:default}
.nb-big img{aspect-ratio:1/1}
</style>
"""


def _rank_line(card: Card, score_name: str) -> str:
    """The score's rank among all pairs, on its own line (beside the score it wrapped mid-phrase)."""
    if not np.isfinite(card.percentile):
        return ""
    title = html.escape(_score_title(card, score_name))
    return f'<div class="nb-meta nb-share" title="{title}">{describe_percentile(card.percentile)}</div>'


def _score_text(score: float, score_name: str) -> str:
    """A cosine with enough decimals not to read as 1 (``format_similarity``), a distance to 3."""
    return format_similarity(score) if score_name.startswith("cosine") else f"{score:.3f}"


def _score_title(card: Card, score_name: str) -> str:
    if not np.isfinite(card.percentile):
        return score_name
    share = describe_percentile(card.percentile).removeprefix("top ")
    return f"{score_name} {card.score:.4f}: only {share} of all pairs of sources in this space are as similar"


def gallery_html(
    cards: list[Card],
    score_name: str = "cosine similarity",
    query_id: str = "",
    thumbnail_px: int = config.IMAGE_SIZE_PX,
    view_px: int | None = config.MODEL_INPUT_PX,
    score_short: str | None = None,
) -> str:
    """The neighbour gallery as HTML (thumbnails inlined). ``query_id`` tags the block for tests.
    ``score_short``: the word before each card's score (default "sim" for a cosine, else "dist").

    A thumbnail shows the central ``view_px`` pixels (the model's field: a 30″ source is then
    a sixth of the tile, not a sixteenth); a click on a card shows the whole image enlarged,
    with that field outlined (CSS only: the card takes the focus).
    """
    tiles = []
    score_short = score_short or ("sim" if score_name.startswith("cosine") else "dist")
    for card in cards:
        if card.image is not None:
            image = north_up(card.image)
            thumbnail = rgb_image(_central(image, view_px), thumbnail_px)
            img = f'<img alt="{html.escape(card.source_id)}" src="{png_data_uri(thumbnail)}">'
            if view_px:
                big = png_data_uri(rgb_image(image, 3 * image.shape[1], crop_box_px=view_px))
                img += (
                    f'<div class="nb-big"><img alt="{html.escape(card.source_id)}, whole image" src="{big}">'
                    f"<div>{html.escape(card.source_id)}: the whole {card.image.shape[1]} px image; the box: "
                    f"the {view_px} px the model sees (the thumbnail). Click elsewhere to close.</div></div>"
                )
        else:
            img = f'<div class="nb-missing">{html.escape(card.note or "no image")}</div>'
        label = f'<span class="nb-label">{html.escape(card.label)}</span> ' if card.label else ""
        extent = f"{card.extent_arcsec:.0f}″" if np.isfinite(card.extent_arcsec) else "–"
        position = ""
        if np.isfinite(card.ra) and np.isfinite(card.dec):  # to the precision the position has (0.001° from a name)
            position = f"{card.ra:.{position_decimals(card.ra, 4)}f}, {card.dec:+.{position_decimals(card.dec, 4)}f}"
        tiles.append(
            f'<div class="nb-card" tabindex="0" data-source-id="{html.escape(card.source_id)}">{img}'
            # A space between the two: copied or read aloud, the header is "#1 sim 0.987", not "#1sim".
            f'<div class="nb-head"><span class="nb-rank">#{card.rank}</span> '
            f'<span class="nb-score" title="{html.escape(_score_title(card, score_name))}">'
            f"{score_short} {_score_text(card.score, score_name)}</span></div>{_rank_line(card, score_name)}"
            f'<div class="nb-id" title="{html.escape(card.source_id)}">{html.escape(card.source_id)}</div>'
            f'<div class="nb-meta">{label}{extent}</div><div class="nb-meta">{position}</div>'
            # Folded to one line: open, the links would make every card several lines taller.
            f'<details class="nb-links"><summary>links</summary>{links_html(card.ra, card.dec, short=True)}</details>'
            "</div>"
        )
    return (
        GALLERY_CSS + f'<div class="nb-gallery" data-query="{html.escape(query_id)}" '
        f'data-count="{len(cards)}">' + "".join(tiles) + "</div>"
    )
