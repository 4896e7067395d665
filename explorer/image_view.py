"""A radio image as an astronomer reads it: stretch, limits, flux unit, scale bar, beam, sky axes.

The pure part of the image viewer (:mod:`explorer.widgets.image_viewer` is its widget):

- the survey cutout in its own unit, converted to mJy/beam when the header's ``BUNIT`` says
  Jy/beam (or anything astropy converts to it); "arbitrary units" where a file has none;
- a display stretch (linear, sqrt, asinh, log: astropy's ``visualization`` stretches) between
  limits at two percentiles of the pixels;
- a scale bar of a round number of arcseconds, the restoring beam (the header's
  ``BMAJ``/``BMIN``/``BPA``, else the survey's profile in :mod:`pretrain.surveys`), the
  model's field (the central 70 px of the 1.8″ grid, :mod:`pretrain.config`) and contours
  of the model's input over the raw cutout;
- RA/Dec axes from the FITS WCS, drawn by matplotlib's WCSAxes (``astropy.visualization``)
  into a PNG (measured: ``bench/bench_image_view.py``);
- the cutout as a FITS file to download: the original file's bytes, or a written HDU with
  the cutout's header (and so its WCS).

No Streamlit here; matplotlib is imported when a figure is first drawn (it is slow to import).
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pretrain import config
from pretrain.files import is_fits_name
from pretrain.surveys import image_survey

if TYPE_CHECKING:  # imported when used: the map page imports this module at start-up
    from astropy.io import fits
    from astropy.wcs import WCS

# --- Settings (the viewer's defaults, in one place) ----------------------------------------
STRETCHES = ("linear", "sqrt", "asinh", "log")
DEFAULT_STRETCH = "sqrt"  # faint lobes visible beside a bright core, one compression only
# Limits at two percentiles of the pixels shown. The lower at the 84th, about the sky's median
# + 1 sigma for Gaussian noise: from the 0.5th (-2.6 sigma) a square root lifts the noise and
# FIRST's sidelobe stripes to a third of the colour range and they dominate a noisy field (the
# median still leaves a speckled purple sky); from +1 sigma the sky is dark and 3-sigma emission
# is at a third of the range. The upper at 99.9 rather than 99.5: a compact source covers a few
# hundred of a 300 x 300 cutout's 90,000 pixels, and 99.5 would saturate all of it. Both can
# be changed in the viewer (0.5 shows the negative noise and sidelobes too).
DEFAULT_PERCENTILES = (84.0, 99.9)
ASINH_SOFTENING = 0.1  # astropy AsinhStretch(a): the linear part near the lower limit
LOG_A = 1000.0  # astropy LogStretch(a)
COLOUR_MAP = "inferno"  # perceptually uniform, as the gallery's thumbnails
SCALE_BAR_FRACTION = 0.25  # the scale bar: the longest round length within this share of the field shown
SCALE_BAR_LENGTHS_ARCSEC = (1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 300, 600, 1200, 1800, 3600)
# Contours of the model input (uint8, peak 255): the edge of what survived the clipping
# (config.CLIP_SIGMA x noise), then 10, 30 and 60 % of its peak.
MODEL_CONTOUR_LEVELS = (0.5, 25.5, 76.5, 153.0)
FIELDS = ("cutout", "model image", "model field")  # how much of the cutout the viewer shows
FIGURE_INCHES = (6.0, 5.0)
FIGURE_DPI = 100
AXES_BOX = (0.15, 0.1, 0.66, 0.82)  # (left, bottom, width, height) in figure fractions: room for the tick labels
COLOUR_BAR_BOX = (0.83, 0.1, 0.035, 0.82)
MODEL_FIELD_ARCSEC = config.MODEL_INPUT_PX * config.MODEL_PIXEL_SCALE_ARCSEC  # 126″ (2.1′)
ARBITRARY_UNITS = "arbitrary units"


@dataclass(frozen=True)
class ViewSettings:
    """What the user chose: stretch, percentile limits, contours, how much of the cutout."""

    stretch: str = DEFAULT_STRETCH
    lower_percentile: float = DEFAULT_PERCENTILES[0]
    upper_percentile: float = DEFAULT_PERCENTILES[1]
    contours: bool = False  # the raw image first; the model's input is one toggle away
    field: str = FIELDS[0]

    def checked(self) -> ViewSettings:
        """The same settings, refused when they cannot be drawn (ValueError says what to change)."""
        if self.stretch not in STRETCHES:
            raise ValueError(f"unknown stretch {self.stretch!r}; choose one of {', '.join(STRETCHES)}.")
        if self.field not in FIELDS:
            raise ValueError(f"unknown field {self.field!r}; choose one of {', '.join(FIELDS)}.")
        lo, hi = float(self.lower_percentile), float(self.upper_percentile)
        if not (0.0 <= lo < hi <= 100.0):
            raise ValueError(f"the lower percentile ({lo:g}) must be below the upper one ({hi:g}), both in 0..100.")
        return self


@dataclass(frozen=True)
class FluxUnit:
    """How to show an image's pixel values: multiply by ``scale``, label ``label``."""

    scale: float
    label: str
    known: bool  # False: the file says nothing (or nothing astropy reads) about its unit


@dataclass(frozen=True)
class Beam:
    """The restoring beam: FWHM axes (arcsec), position angle (deg, north through east) and its origin."""

    major_arcsec: float
    minor_arcsec: float
    pa_deg: float
    origin: str  # "header" or the survey profile it came from


@dataclass(frozen=True)
class ScaleBar:
    arcsec: float
    pixels: float
    label: str


@dataclass
class ViewImage:
    """An image for the viewer: pixels in the file's unit, its celestial WCS and header."""

    data: np.ndarray  # (ny, nx) float, FITS orientation (row 0 is the bottom: drawn with origin="lower")
    wcs: WCS
    header: fits.Header
    title: str
    origin: str  # one line for people: where the pixels come from
    path: Path | None = None  # the FITS file it was read from (downloaded as it is)
    model_image: np.ndarray | None = None  # the model's input (uint8, 150 x 150, centred on the cutout)
    extent_arcsec: float = float("nan")
    notes: list[str] = field(default_factory=list)

    @property
    def pixel_scale_arcsec(self) -> float:
        """The pixel along the Dec axis (the scale bar's axis), in arcsec."""
        from astropy.wcs.utils import proj_plane_pixel_scales

        return float(abs(proj_plane_pixel_scales(self.wcs)[1]) * 3600.0)

    @property
    def unit(self) -> FluxUnit:
        return flux_unit(self.header)

    @property
    def beam(self) -> Beam:
        return beam_of(self.header, self.pixel_scale_arcsec)


# --- Building a view ---------------------------------------------------------------------


def view_of_cutout(
    cutout,
    title: str,
    model_image: np.ndarray | None = None,
    extent_arcsec: float = float("nan"),
    path: Path | str | None = None,
) -> ViewImage:
    """A read cutout (:class:`pretrain.data.fits_io.Cutout`) as a :class:`ViewImage`; ``path``: the
    FITS file it was read from, offered for download as it is (else a file is written from it)."""
    path = Path(path) if path else None
    survey = image_survey(cutout.header, cutout.pixel_scale_arcsec).name
    return ViewImage(
        data=np.asarray(cutout.data, dtype=np.float32),
        wcs=cutout.wcs,
        header=cutout.header,
        title=title,
        origin=f"{survey} cutout, {cutout.shape[1]} × {cutout.shape[0]} px at {cutout.pixel_scale_arcsec:.2f}″",
        path=path if path is not None and is_fits_name(path.name) else None,
        model_image=model_image,
        extent_arcsec=float(extent_arcsec),
    )


def view_of_model_image(image: np.ndarray, ra_deg: float, dec_deg: float, title: str, extent_arcsec=float("nan")):
    """A model image (uint8, on the model's grid) without its survey file: a TAN WCS from the
    catalogue position and the model's pixel (preprocessing centres the image on the cutout's
    centre and keeps the survey's north-up, east-left orientation); no flux unit."""
    from astropy.io import fits
    from astropy.wcs import WCS

    n_y, n_x = image.shape
    scale_deg = config.MODEL_PIXEL_SCALE_ARCSEC / 3600.0
    header = fits.Header()
    header.update(
        {
            "CTYPE1": "RA---TAN",
            "CTYPE2": "DEC--TAN",
            "CRVAL1": float(ra_deg),
            "CRVAL2": float(dec_deg),
            "CRPIX1": (n_x + 1) / 2.0,  # FITS pixels count from 1: the image's centre
            "CRPIX2": (n_y + 1) / 2.0,
            "CDELT1": -scale_deg,
            "CDELT2": scale_deg,
            "RADESYS": "ICRS",
        }
    )
    return ViewImage(
        data=np.asarray(image, dtype=np.float32),
        wcs=WCS(header),
        header=header,
        title=title,
        origin=(
            f"the model image ({n_x} px at {config.MODEL_PIXEL_SCALE_ARCSEC}″, clipped at {config.CLIP_SIGMA:g}σ and "
            "scaled to 0–255): the survey file is not here; axes from the catalogue position"
        ),
        model_image=np.asarray(image),
        extent_arcsec=float(extent_arcsec),
    )


def raw_cutout_path(entry) -> Path | None:
    """The survey FITS file a catalogue row was made from (a bundle's ``file`` column), if it is here."""
    name = str(entry.get("file", "") or "")
    if not name or not is_fits_name(name):
        return None
    path = Path(name).expanduser()
    return path if path.is_file() else None


def _position(entry, prefix: str) -> tuple[float, float] | None:
    try:
        ra, dec = float(entry.get(f"{prefix}ra")), float(entry.get(f"{prefix}dec"))
    except (TypeError, ValueError):
        return None
    return (ra, dec) if math.isfinite(ra) and math.isfinite(dec) else None


def view_of_entry(entry, model_image: np.ndarray | None, cutout_path: Path | None = None) -> ViewImage | None:
    """The viewer's image of a catalogue row: its survey cutout (``cutout_path``, else its bundle
    file), else its model image on the model's grid; ``None`` when there is neither.

    Raises :class:`pretrain.errors.FitsReadError` when the file is there but unreadable.
    """
    from pretrain.data.fits_io import read_cutout

    title = str(entry.get("source_id", "") or "")
    try:
        extent = float(entry.get("angular_extent_arcsec"))
    except (TypeError, ValueError):
        extent = float("nan")
    path = cutout_path or raw_cutout_path(entry)
    if path is not None:
        return view_of_cutout(read_cutout(path), title, model_image, extent, path=path)
    position = _position(entry, "image_") or _position(entry, "")
    if model_image is None or position is None:
        return None
    return view_of_model_image(model_image, position[0], position[1], title, extent)


# --- Units, limits, stretch ----------------------------------------------------------------


def flux_unit(header) -> FluxUnit:
    """The unit to show pixels in: mJy/beam when ``BUNIT`` converts to it (FIRST's 'JY/BEAM',
    VLASS's 'Jy/beam'), the header's own unit otherwise, "arbitrary units" without one."""
    from astropy import units as u

    raw = str(header.get("BUNIT", "") or "").strip()
    if not raw:
        return FluxUnit(1.0, ARBITRARY_UNITS, known=False)
    # FITS writers spell units in any case ('JY/BEAM', 'MJY/BEAM' for mJy); astropy reads 'Jy/beam'.
    spelled = raw.lower() if raw.isupper() and "JY" in raw else raw
    spelled = re.sub("jy", "Jy", spelled, flags=re.I)
    try:
        unit = u.Unit(spelled, parse_strict="raise")
    except ValueError:
        return FluxUnit(1.0, f"{raw} (as the file says)", known=True)
    try:
        return FluxUnit(float(unit.to(u.mJy / u.beam)), "mJy/beam", known=True)
    except u.UnitConversionError:
        return FluxUnit(1.0, unit.to_string(), known=True)


def percentile_limits(data: np.ndarray, lower: float, upper: float) -> tuple[float, float]:
    """The display limits: the ``lower`` and ``upper`` percentiles of the finite pixels."""
    finite = np.asarray(data, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return 0.0, 1.0
    vmin, vmax = (float(v) for v in np.percentile(finite, [lower, upper]))
    if not vmax > vmin:  # a flat image (or percentiles inside a flat part): a non-empty range
        vmax = vmin + (abs(vmin) * 1e-6 or 1e-12)
    return vmin, vmax


def normalisation(vmin: float, vmax: float, stretch: str):
    """astropy's ImageNormalize for the limits and stretch (values outside the limits are clipped)."""
    from astropy.visualization import AsinhStretch, ImageNormalize, LinearStretch, LogStretch, SqrtStretch

    stretches = {
        "linear": LinearStretch(),
        "sqrt": SqrtStretch(),
        "asinh": AsinhStretch(a=ASINH_SOFTENING),
        "log": LogStretch(a=LOG_A),
    }
    if stretch not in stretches:
        raise ValueError(f"unknown stretch {stretch!r}; choose one of {', '.join(STRETCHES)}.")
    return ImageNormalize(vmin=vmin, vmax=vmax, stretch=stretches[stretch], clip=True)


def stretched(data: np.ndarray, settings: ViewSettings) -> np.ndarray:
    """Pixels -> 0..1 for display, with the settings' percentile limits and stretch (NaN stays NaN)."""
    settings = settings.checked()
    vmin, vmax = percentile_limits(data, settings.lower_percentile, settings.upper_percentile)
    values = np.asarray(normalisation(vmin, vmax, settings.stretch)(np.asarray(data, dtype=np.float64)))
    values = np.ma.filled(values, np.nan) if np.ma.isMaskedArray(values) else values
    return np.where(np.isfinite(data), values, np.nan)


def noise_rms(data: np.ndarray) -> float:
    """Robust rms of the image (MAD; NaN and exact zeros, i.e. padding, ignored), in the file's unit."""
    from astropy.stats import mad_std

    pixels = np.asarray(data, dtype=np.float64)
    pixels = pixels[np.isfinite(pixels) & (pixels != 0)]
    return float(mad_std(pixels)) if pixels.size >= 16 else float("nan")


# --- What is drawn over the image -----------------------------------------------------------


def scale_bar(pixel_scale_arcsec: float, field_px: float, fraction: float = SCALE_BAR_FRACTION) -> ScaleBar:
    """The longest round length within ``fraction`` of the field shown (``field_px`` pixels wide)."""
    room = fraction * field_px * pixel_scale_arcsec
    arcsec = max([length for length in SCALE_BAR_LENGTHS_ARCSEC if length <= room], default=SCALE_BAR_LENGTHS_ARCSEC[0])
    label = f"{arcsec // 60:g}′" if arcsec >= 60 and arcsec % 60 == 0 else f"{arcsec:g}″"
    return ScaleBar(float(arcsec), arcsec / pixel_scale_arcsec, label)


def beam_of(header, pixel_scale_arcsec: float | None = None) -> Beam:
    """The header's beam (``BMAJ``/``BMIN``/``BPA``, degrees) if it has one, else its survey's (a circle)."""
    major = _degrees_card(header, "BMAJ")
    minor = _degrees_card(header, "BMIN")
    if major is not None:
        minor = major if minor is None else minor
        try:
            pa = float(header.get("BPA", 0.0))
        except (TypeError, ValueError):
            pa = 0.0
        return Beam(major * 3600.0, minor * 3600.0, pa if math.isfinite(pa) else 0.0, "header")
    survey = image_survey(header, pixel_scale_arcsec)
    fwhm = survey.beam_fwhm_arcsec
    return Beam(fwhm, fwhm, 0.0, f"{survey.name} survey profile")


def _degrees_card(header, keyword: str) -> float | None:
    try:
        value = float(header.get(keyword))
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and 0.0 < value < 1.0 else None


def beam_ellipse_px(beam: Beam, pixel_scale_arcsec: float) -> tuple[float, float, float]:
    """(width, height, angle) of matplotlib's ``Ellipse`` for the beam, in pixels and degrees.

    North up and east left (the survey cutouts' orientation): the major axis starts along +y
    (north) and turns by the position angle towards east, which is counter-clockwise on the
    screen, matplotlib's sense of ``angle``.
    """
    return beam.minor_arcsec / pixel_scale_arcsec, beam.major_arcsec / pixel_scale_arcsec, beam.pa_deg


def beam_text(beam: Beam) -> str:
    """'beam 5.0″ (FIRST survey profile)', 'beam 2.5″ × 2.1″, PA -17° (from the header)'."""
    origin = "from the header" if beam.origin == "header" else beam.origin
    if abs(beam.major_arcsec - beam.minor_arcsec) < 0.05:
        return f"beam {beam.major_arcsec:.1f}″ ({origin})"
    return f"beam {beam.major_arcsec:.1f}″ × {beam.minor_arcsec:.1f}″, PA {beam.pa_deg:.0f}° ({origin})"


def image_centre_px(shape: tuple[int, int]) -> tuple[float, float]:
    """(x, y) of the image centre in 0-based pixels: where preprocessing centres the model's field."""
    return (shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0


def model_field_px(pixel_scale_arcsec: float) -> float:
    """Side (pixels of this image) of the model's field: its central 70 px of 1.8″."""
    return MODEL_FIELD_ARCSEC / pixel_scale_arcsec


def model_field_box(shape: tuple[int, int], pixel_scale_arcsec: float) -> tuple[float, float, float]:
    """(x0, y0, side) of the model's field in this image's pixels (edges, as matplotlib draws pixels)."""
    cx, cy = image_centre_px(shape)
    side = model_field_px(pixel_scale_arcsec)
    return cx - side / 2.0, cy - side / 2.0, side


def exceeds_model_field(extent_arcsec: float) -> bool:
    """Whether a source is larger than the model's field (its lobes lie outside what the model sees)."""
    return bool(np.isfinite(extent_arcsec) and extent_arcsec > MODEL_FIELD_ARCSEC)


def model_image_extent(shape: tuple[int, int], pixel_scale_arcsec: float, model_shape: tuple[int, int]):
    """(left, right, bottom, top) in this image's pixels of the model image (its own grid, centred)."""
    cx, cy = image_centre_px(shape)
    half_x = model_shape[1] * config.MODEL_PIXEL_SCALE_ARCSEC / pixel_scale_arcsec / 2.0
    half_y = model_shape[0] * config.MODEL_PIXEL_SCALE_ARCSEC / pixel_scale_arcsec / 2.0
    return cx - half_x, cx + half_x, cy - half_y, cy + half_y


def shown_window(shape: tuple[int, int], pixel_scale_arcsec: float, field_name: str) -> tuple[float, ...]:
    """(x0, x1, y0, y1) pixel limits of the part of the image shown."""
    if field_name == "cutout":
        return -0.5, shape[1] - 0.5, -0.5, shape[0] - 0.5
    arcsec = config.IMAGE_FIELD_ARCSEC if field_name == "model image" else MODEL_FIELD_ARCSEC
    cx, cy = image_centre_px(shape)
    half = min(arcsec / pixel_scale_arcsec, max(shape)) / 2.0
    return cx - half, cx + half, cy - half, cy + half


def window_pixels(data: np.ndarray, window: tuple[float, ...]) -> np.ndarray:
    """The pixels inside a window (the limits' percentiles are of what is shown)."""
    x0, x1, y0, y1 = window
    ys = slice(max(math.ceil(y0), 0), min(math.floor(y1) + 1, data.shape[0]))
    xs = slice(max(math.ceil(x0), 0), min(math.floor(x1) + 1, data.shape[1]))
    return data[ys, xs]


# --- The figure ---------------------------------------------------------------------------


def render_png(view: ViewImage, settings: ViewSettings = ViewSettings()) -> bytes:
    """The viewer's figure as PNG bytes: the image on RA/Dec axes, colour bar in the flux unit,
    scale bar, beam, the model's field, contours of the model input (when asked and known)."""
    import matplotlib

    matplotlib.use("Agg", force=False)  # no display; a Figure without pyplot is thread-safe
    from matplotlib.figure import Figure
    from matplotlib.patches import Ellipse, Rectangle

    settings = settings.checked()
    unit = view.unit
    data = np.asarray(view.data, dtype=np.float64) * unit.scale
    scale = view.pixel_scale_arcsec
    window = shown_window(data.shape, scale, settings.field)
    vmin, vmax = percentile_limits(window_pixels(data, window), settings.lower_percentile, settings.upper_percentile)

    # Fixed axes positions: a layout engine would draw the figure twice (half the time).
    figure = Figure(figsize=FIGURE_INCHES, dpi=FIGURE_DPI)
    axes = figure.add_axes(AXES_BOX, projection=view.wcs)
    shown = axes.imshow(
        data, origin="lower", cmap=COLOUR_MAP, norm=normalisation(vmin, vmax, settings.stretch), interpolation="nearest"
    )
    axes.set_xlim(window[0], window[1])
    axes.set_ylim(window[2], window[3])
    ra, dec = axes.coords[0], axes.coords[1]  # type: ignore[attr-defined]
    ra.set_axislabel("RA (J2000)")
    dec.set_axislabel("Dec (J2000)")
    ra.set_major_formatter("hh:mm:ss")
    dec.set_major_formatter("dd:mm:ss")
    ra.set_ticks(number=4)
    dec.set_ticks(number=5)
    for coord in (ra, dec):
        coord.set_ticklabel(size=8)
        coord.set_ticks(color="white")
    colour_bar = figure.colorbar(shown, cax=figure.add_axes(COLOUR_BAR_BOX))
    colour_bar.set_label(unit.label if unit.known else f"{ARBITRARY_UNITS} (the file has no BUNIT)")
    colour_bar.ax.tick_params(labelsize=8)

    if settings.contours and view.model_image is not None:
        left, right, bottom, top = model_image_extent(data.shape, scale, view.model_image.shape)
        axes.contour(
            np.asarray(view.model_image, dtype=np.float32),
            levels=list(MODEL_CONTOUR_LEVELS),
            extent=(left, right, bottom, top),
            origin="lower",
            colors="#00E5FF",
            linewidths=0.7,
        )
    x0, y0, side = model_field_box(data.shape, scale)
    too_large = exceeds_model_field(view.extent_arcsec)
    axes.add_patch(
        Rectangle(
            (x0, y0),
            side,
            side,
            fill=False,
            edgecolor="#FF5A36" if too_large else "white",
            linewidth=1.3,
            linestyle="--",
            label="the model's field",
        )
    )
    width = window[1] - window[0]
    height = window[3] - window[2]
    bar = scale_bar(scale, width)
    bx, by = window[1] - 0.05 * width - bar.pixels, window[2] + 0.06 * height
    axes.plot([bx, bx + bar.pixels], [by, by], color="white", linewidth=2.5, solid_capstyle="butt")
    axes.text(bx + bar.pixels / 2, by + 0.025 * height, bar.label, color="white", ha="center", va="bottom", size=9)
    beam_w, beam_h, angle = beam_ellipse_px(view.beam, scale)
    margin = max(beam_h, 0.04 * width)
    axes.add_patch(
        Ellipse(
            (window[0] + 0.04 * width + margin / 2, window[2] + 0.04 * height + margin / 2),
            beam_w,
            beam_h,
            angle=angle,
            facecolor="white",
            edgecolor="black",
            linewidth=0.6,
        )
    )
    axes.set_title(view.title, size=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", pil_kwargs={"compress_level": 1})  # speed over size
    return buffer.getvalue()


def caption(view: ViewImage, settings: ViewSettings) -> str:
    """One line under the figure: what the pixels are, the limits, noise, beam, the outlines."""
    unit = view.unit
    data = np.asarray(view.data, dtype=np.float64) * unit.scale
    window = shown_window(data.shape, view.pixel_scale_arcsec, settings.field)
    vmin, vmax = percentile_limits(window_pixels(data, window), settings.lower_percentile, settings.upper_percentile)
    unit_text = unit.label if unit.known else ARBITRARY_UNITS
    rms = noise_rms(data)
    parts = [
        view.origin,
        f"{settings.stretch} stretch from {vmin:.3g} to {vmax:.3g} {unit_text} "
        f"({settings.lower_percentile:g}–{settings.upper_percentile:g} percentiles of the pixels shown)",
        f"rms {rms:.3g} {unit_text}" if np.isfinite(rms) else "",
        beam_text(view.beam) + ", the white ellipse lower left",
        f"dashed box: the model's field ({config.MODEL_INPUT_PX} px of {config.MODEL_PIXEL_SCALE_ARCSEC}″ = "
        f"{MODEL_FIELD_ARCSEC:.0f}″)",
    ]
    if settings.contours and view.model_image is not None:
        parts.append(f"contours: the model input at its {config.CLIP_SIGMA:g}σ clip edge and 10/30/60 % of its peak")
    return " · ".join(part for part in parts if part)


def extent_warning(view: ViewImage) -> str | None:
    """A note when the source is larger than the model's field (its lobes lie outside the box)."""
    if not exceeds_model_field(view.extent_arcsec):
        return None
    return (
        f"{view.extent_arcsec:.0f}″ across: larger than the {MODEL_FIELD_ARCSEC:.0f}″ "
        f"({MODEL_FIELD_ARCSEC / 60:.1f}′) field the model sees (the red box). Its outer parts lie outside "
        "it and play no part in its place on the map or its neighbours."
    )


# --- Download ---------------------------------------------------------------------------

_NOT_FOR_A_PRIMARY_HDU = ("XTENSION", "PCOUNT", "GCOUNT", "EXTNAME", "EXTEND")


def fits_file_name(view: ViewImage) -> str:
    """The downloaded file's name: the original's, else the title made safe for a file name."""
    if view.path is not None:
        return view.path.name
    return (re.sub(r"[^A-Za-z0-9+._-]+", "_", view.title).strip("_") or "cutout") + ".fits"


def fits_bytes(view: ViewImage) -> bytes:
    """The cutout as a FITS file: the original file's bytes when it came from one, else a
    primary HDU written with the cutout's header (its WCS, BUNIT, beam)."""
    from astropy.io import fits

    if view.path is not None and view.path.is_file():
        return view.path.read_bytes()
    header = fits.Header()
    for card in view.header.cards:
        if card.keyword in _NOT_FOR_A_PRIMARY_HDU:
            continue
        if card.keyword in ("COMMENT", "HISTORY", ""):
            # SkyView writes TABs into COMMENT cards, which FITS does not allow in a written file.
            header.append((card.keyword, re.sub(r"[^\x20-\x7e]", " ", str(card.value))))
        else:
            header.append(card)
    hdu = fits.PrimaryHDU(data=np.asarray(view.data, dtype=np.float32), header=header)
    hdu.header.add_history("Written by the radio latent explorer from the cutout's data and header.")
    buffer = io.BytesIO()
    hdu.writeto(buffer, output_verify="silentfix")
    return buffer.getvalue()
