"""Reading real radio-survey cutouts (and damaged ones) with pretrain.data.fits_io."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits

from pretrain.data.fits_io import read_cutout
from pretrain.data.names import parse_mirabest_name
from pretrain.errors import FitsReadError
from tests.damaged_fits import DAMAGED

NAME_ROUNDING_ARCSEC = 0.0005 * 3600 * np.sqrt(2)  # names give RA, Dec to 0.001 deg


def _name_position(path) -> SkyCoord:
    info = parse_mirabest_name(path.name)
    return SkyCoord(info.ra * u.deg, info.dec * u.deg)


def test_every_skyview_raw_file_reads_with_its_centre_and_scale(skyview_raw_dir):
    files = sorted(skyview_raw_dir.glob("*.fits"))
    assert len(files) > 0
    tabs = 0
    for path in files:
        raw = path.read_bytes()
        tabs += b"\t" in raw[: 2880 * 8]
        with fits.open(path) as hdul:  # the warts are really there: big-endian primary HDU
            assert hdul[0].data.dtype.byteorder == ">"
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # and reading them is quiet
            cutout = read_cutout(path)
        assert cutout.shape == (300, 300)
        assert cutout.data.dtype == np.float32 and cutout.data.dtype.isnative
        assert np.isfinite(cutout.data).all()
        assert cutout.pixel_scale_arcsec == pytest.approx(1.8, abs=1e-3)
        assert cutout.centre.separation(_name_position(path)).arcsec <= NAME_ROUNDING_ARCSEC
        assert cutout.source == str(path)
        # big-endian bytes converted, not reinterpreted: values as astropy reads them
        assert np.array_equal(cutout.data, fits.getdata(path).astype(np.float32))
    assert tabs > 0, "expected SkyView's TAB characters in some COMMENT cards"


def test_compressed_mirabest_file_matches_the_raw_skyview_file(skyview_raw_dir, mirabest_dir):
    """.fits.fz (image in HDU 1, quantised) reads as the same image as SkyView's original."""
    compared = 0
    for raw_path in sorted(skyview_raw_dir.glob("*.fits")):
        packed_path = mirabest_dir / (raw_path.name + ".fz")
        if not packed_path.exists():
            continue
        raw, packed = read_cutout(raw_path), read_cutout(packed_path)
        assert packed.shape == raw.shape
        assert packed.centre.separation(raw.centre).arcsec < 0.01
        noise = 1.4826 * np.median(np.abs(raw.data - np.median(raw.data)))
        assert np.std(packed.data - raw.data) < 0.1 * noise  # quantisation: ~3 % of the noise
        compared += 1
    assert compared > 0


def test_bytes_input_reads_like_the_file(skyview_raw_dir):
    path = sorted(skyview_raw_dir.glob("*.fits"))[0]
    from_bytes = read_cutout(path.read_bytes(), source="download")
    assert from_bytes.source == "download"
    assert np.array_equal(from_bytes.data, read_cutout(path).data)


def test_nvss_cutout_has_its_own_pixel_scale(frdeep_dir):
    path = sorted((frdeep_dir / "NVSS").glob("*.fits.fz"))[0]
    cutout = read_cutout(path)
    assert cutout.shape == (150, 150)
    assert cutout.pixel_scale_arcsec == pytest.approx(15.0, rel=1e-3)
    first = read_cutout(frdeep_dir / "FIRST" / path.name)
    assert first.pixel_scale_arcsec == pytest.approx(1.8, rel=1e-3)
    assert cutout.centre.separation(first.centre).arcsec < 1.0  # same source, two surveys


def test_degenerate_frequency_and_stokes_axes(tmp_path, skyview_raw_dir):
    """NAXIS = 4 with length-1 frequency and Stokes axes (as radio imagers write) reads as 2-D."""
    real = read_cutout(sorted(skyview_raw_dir.glob("*.fits"))[0])
    header = real.wcs.to_header()
    header["CTYPE3"], header["CRVAL3"], header["CDELT3"], header["CRPIX3"], header["CUNIT3"] = (
        "FREQ",
        1.4e9,
        1e6,
        1.0,
        "Hz",
    )
    header["CTYPE4"], header["CRVAL4"], header["CDELT4"], header["CRPIX4"] = "STOKES", 1.0, 1.0, 1.0
    cube = real.data[np.newaxis, np.newaxis].astype(">f4")  # (stokes, freq, y, x), big-endian
    path = tmp_path / "cube.fits"
    fits.PrimaryHDU(cube, header=header).writeto(path)
    with fits.open(path) as hdul:
        assert hdul[0].header["NAXIS"] == 4
    cutout = read_cutout(path)
    assert cutout.shape == real.shape
    assert np.array_equal(cutout.data, real.data)
    assert cutout.centre.separation(real.centre).arcsec < 0.01
    assert cutout.pixel_scale_arcsec == pytest.approx(real.pixel_scale_arcsec)


def test_image_in_an_extension_after_an_empty_primary(tmp_path, skyview_raw_dir):
    real = read_cutout(sorted(skyview_raw_dir.glob("*.fits"))[0])
    path = tmp_path / "extension.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(real.data, header=real.wcs.to_header())]).writeto(path)
    assert np.array_equal(read_cutout(path).data, real.data)


def test_nan_padding_is_kept_for_preprocessing(tmp_path, skyview_raw_dir):
    """A cutout at a survey edge: NaN outside the coverage, real pixels inside."""
    source = sorted(skyview_raw_dir.glob("*.fits"))[0]
    with fits.open(source) as hdul:
        data = hdul[0].data.astype(np.float32)
        header = hdul[0].header.copy()
    data[:, :80] = np.nan
    path = tmp_path / "edge.fits"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SkyView's TABs
        fits.PrimaryHDU(data, header=header).writeto(path, output_verify="ignore")
    cutout = read_cutout(path)
    assert np.isnan(cutout.data[:, :80]).all() and np.isfinite(cutout.data[:, 80:]).all()
    assert cutout.centre.separation(read_cutout(source).centre).arcsec < 0.01


@pytest.mark.parametrize("kind", sorted(DAMAGED))
@pytest.mark.parametrize("real_kind", ["skyview_raw", "mirabest"])
def test_damaged_files_give_a_clear_error(kind, real_kind, tmp_path, skyview_raw_dir, mirabest_dir):
    real = (
        sorted(skyview_raw_dir.glob("*.fits"))[0]
        if real_kind == "skyview_raw"
        else sorted(mirabest_dir.glob("*.fits.fz"))[0]
    )
    make, words = DAMAGED[kind]
    path = make(real, tmp_path)
    with pytest.raises(FitsReadError) as caught:
        read_cutout(path)
    message = str(caught.value)
    assert path.name in message  # says which file
    assert any(w in message.lower() for w in words), message


def test_not_fits_and_missing_files(tmp_path):
    junk = tmp_path / "notes.fits"
    junk.write_bytes(b"this is a text file, not an image\n" * 200)
    with pytest.raises(FitsReadError, match="not a FITS file"):
        read_cutout(junk)
    with pytest.raises(FitsReadError, match="no such file"):
        read_cutout(tmp_path / "absent.fits")


# --- VLASS Quick-Look cutouts: another survey's header ------------------------------------
VLASS_NAME_ROUNDING_ARCSEC = 0.0005 * 3600 * np.sqrt(2)  # VLASS names give RA, Dec to 0.001 deg


@pytest.mark.slow
def test_vlass_image_centre_comes_from_the_wcs_not_crval(vlass_dir):
    """The centre read from the WCS is the file name's position; CRVAL is the parent tile's centre."""
    from pretrain.data.names import parse_vlass_name

    files = sorted(vlass_dir.glob("*.fits.fz"))
    assert len(files) == 207
    far_crval = 0
    for path in files:
        cutout = read_cutout(path)
        info = parse_vlass_name(path.name)
        named = SkyCoord(info.ra * u.deg, info.dec * u.deg)
        assert cutout.centre.separation(named).arcsec <= VLASS_NAME_ROUNDING_ARCSEC, path.name
        assert cutout.data.ndim == 2 and cutout.wcs.naxis == 2  # celestial axes only
        assert cutout.header["NAXIS"] == 4 and cutout.header["CTYPE1"] == "RA---SIN"
        crval = SkyCoord(cutout.header["CRVAL1"] * u.deg, cutout.header["CRVAL2"] * u.deg)
        far_crval += crval.separation(named).arcmin > 5
    assert far_crval > len(files) // 2  # reading CRVAL as the centre would be wrong for most files


def test_vlass_pixel_scale_and_beam_match_the_vlass_profile(vlass_dir):
    from pretrain.surveys import header_beam_arcsec, infer_survey, survey

    vlass = survey("vlass")
    beams = []
    for path in sorted(vlass_dir.glob("*.fits.fz"))[::10]:
        cutout = read_cutout(path)
        assert cutout.pixel_scale_arcsec == pytest.approx(vlass.pixel_scale_arcsec, rel=1e-3)
        assert infer_survey(cutout.header, cutout.pixel_scale_arcsec) is vlass
        beam = header_beam_arcsec(cutout.header)
        assert beam is not None and vlass.beam_arcsec(cutout.header) == beam
        assert cutout.header["BMIN"] * 3600 <= beam <= cutout.header["BMAJ"] * 3600
        beams.append(beam)
    # Quick-Look beams: ~2.5" at the design resolution, elongated at low declination
    assert 2.0 < np.median(beams) < 3.5 and max(beams) < 4.0 * vlass.beam_fwhm_arcsec
    assert abs(np.median(beams) / vlass.beam_fwhm_arcsec - 1) < 0.3
