"""Survey profiles (pretrain/surveys.py): the table, the look-up, recognising a survey's files."""

from __future__ import annotations

import dataclasses
import math

import pytest
from astropy.io import fits

from pretrain import config
from pretrain.data.fits_io import read_cutout
from pretrain.errors import CutoutServiceError, ExplorerError, OutsideFootprintError
from pretrain.surveys import (
    DEFAULT_SURVEY,
    SURVEYS,
    Survey,
    UnknownSurveyError,
    header_beam_arcsec,
    image_survey,
    infer_survey,
    survey,
)


def test_every_profile_is_complete_and_consistent():
    assert DEFAULT_SURVEY == "first" and DEFAULT_SURVEY in SURVEYS
    assert {"first", "nvss", "vlass", "emu"} <= set(SURVEYS)
    for key, profile in SURVEYS.items():
        assert isinstance(profile, Survey) and profile.key == key == key.lower()
        assert profile.name and profile.title and profile.reference and profile.footprint
        assert profile.frequency_ghz > 0 and profile.pixel_scale_arcsec > 0 and profile.clip_sigma > 0
        # a survey's images sample its beam with at least ~2 pixels
        assert profile.beam_fwhm_arcsec >= 2 * profile.pixel_scale_arcsec
        assert -90 <= profile.dec_min_deg < profile.dec_max_deg <= 90
        assert math.isfinite(profile.noise_jy_per_beam) and 0 < profile.noise_jy_per_beam < 1e-2
        assert profile.header_names and profile.has_cutout_service == (profile.skyview_survey is not None)
    assert len({p.name for p in SURVEYS.values()}) == len(SURVEYS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        survey("first").beam_fwhm_arcsec = 1.0  # type: ignore[misc]


def test_first_profile_is_what_the_rest_of_the_code_always_used():
    first = survey("first")
    assert (first.pixel_scale_arcsec, first.beam_fwhm_arcsec) == (1.8, 5.0)
    assert first.pixel_scale_arcsec == config.FIRST_PIXEL_SCALE_ARCSEC == config.MODEL_PIXEL_SCALE_ARCSEC
    assert first.beam_fwhm_arcsec == config.FIRST_BEAM_ARCSEC
    assert first.skyview_survey == config.FIRST_SURVEY == "VLA FIRST (1.4 GHz)"
    assert first.dec_min_deg == config.FIRST_DEC_MIN_DEG == -40.0
    assert first.clip_sigma == config.CLIP_SIGMA
    assert config.IMAGE_FIELD_ARCSEC == 270.0 and config.IMAGE_SIZE_PX == 150 and config.MODEL_INPUT_PX == 70
    nvss, vlass, emu = survey("nvss"), survey("vlass"), survey("emu")
    assert (nvss.pixel_scale_arcsec, nvss.beam_fwhm_arcsec, nvss.skyview_survey) == (15.0, 45.0, "NVSS")
    assert (vlass.pixel_scale_arcsec, vlass.beam_fwhm_arcsec, vlass.skyview_survey) == (1.0, 2.5, None)
    assert (emu.pixel_scale_arcsec, emu.beam_fwhm_arcsec, emu.skyview_survey) == (2.0, 15.0, None)


def test_survey_lookup_by_key_and_a_clear_error_for_an_unknown_one():
    assert survey() is survey(None) is survey("first") is survey(" FIRST ")
    assert survey(survey("vlass")) is survey("vlass")
    with pytest.raises(UnknownSurveyError) as caught:
        survey("lotss")
    message = str(caught.value)
    assert "'lotss'" in message and all(key in message for key in SURVEYS)
    assert isinstance(caught.value, ExplorerError)  # the command line prints it as an error


def test_header_beam_is_the_circle_of_the_same_area():
    assert header_beam_arcsec(fits.Header()) is None
    header = fits.Header({"BMAJ": 3.0 / 3600, "BMIN": 2.0 / 3600})
    assert header_beam_arcsec(header) == pytest.approx(math.sqrt(6.0))
    assert header_beam_arcsec({"BMAJ": 5.0 / 3600}) == pytest.approx(5.0)
    assert header_beam_arcsec({"BMAJ": 0.0, "BMIN": -1.0}) is None  # not a beam
    assert header_beam_arcsec({"BMAJ": "n/a"}) is None
    assert survey("vlass").beam_arcsec(header) == pytest.approx(math.sqrt(6.0))  # the header wins
    assert survey("vlass").beam_arcsec(fits.Header()) == 2.5 and survey("first").beam_arcsec() == 5.0


def test_surveys_are_recognised_in_real_headers(mirabest_dir, skyview_raw_dir, frdeep_dir, vlass_dir):
    cases = {
        "first": [sorted(mirabest_dir.glob("*.fits.fz"))[0], sorted(skyview_raw_dir.glob("*.fits"))[0]],
        "nvss": [sorted((frdeep_dir / "NVSS").glob("*.fits.fz"))[0]],
        "vlass": sorted(vlass_dir.glob("*.fits.fz"))[:3],
    }
    cases["first"].append(sorted((frdeep_dir / "FIRST").glob("*.fits.fz"))[0])
    for key, paths in cases.items():
        for path in paths:
            cutout = read_cutout(path)
            assert infer_survey(cutout.header, cutout.pixel_scale_arcsec) is survey(key), path.name
            assert infer_survey(cutout.header) is survey(key), path.name  # by name alone
            assert image_survey(cutout.header, cutout.pixel_scale_arcsec) is survey(key)
            assert image_survey(cutout.header, cutout.pixel_scale_arcsec, "emu") is survey("emu")  # a key wins


def test_pixel_scale_decides_when_the_header_names_no_survey():
    assert infer_survey({}, 1.8) is survey("first")
    assert infer_survey({"TELESCOP": "EVLA"}, 1.0) is survey("vlass")
    assert infer_survey({}, 15.2) is survey("nvss")
    assert infer_survey({}, 2.0) is survey("emu")
    assert infer_survey({"TELESCOP": "LOFAR"}, 6.0) is None
    assert infer_survey(None, None) is None
    assert image_survey({"TELESCOP": "LOFAR"}, 6.0) is survey(DEFAULT_SURVEY)  # unknown: processed as FIRST
    assert infer_survey({"SURVEY": "NVSS"}, 1.8) is survey("nvss")  # the header's name wins over the pixel


def test_a_survey_without_a_cutout_service_is_refused_at_once(capsys):
    from pretrain.data.first_client import cutout_client

    for key in ("vlass", "emu"):
        with pytest.raises(CutoutServiceError) as caught:
            cutout_client(key)
        assert "no cutout service" in str(caught.value) and survey(key).name in str(caught.value)
    with pytest.raises(UnknownSurveyError, match="known surveys: first, nvss"):
        cutout_client("lotss")
    from pretrain.__main__ import main as cli

    assert cli(["lookup", "--survey", "vlass", "--ra", "133.067", "--dec", "6.316"]) == 2
    assert "VLASS has no cutout service" in capsys.readouterr().err


def test_the_client_factory_reads_the_skyview_url_now_and_refuses_outside_the_declination_limits(monkeypatch):
    from pretrain.data.first_client import cutout_client

    monkeypatch.setenv("EXPLORER_SKYVIEW_URL", "http://127.0.0.1:9/current/cgi/basicform.pl")  # nothing listens
    client = cutout_client("nvss", retries=0)
    assert client.host == "127.0.0.1:9" and client.survey is survey("nvss")
    assert cutout_client(base_url="http://example.invalid/x").host == "example.invalid"
    with pytest.raises(OutsideFootprintError) as caught:  # no request made: it would fail with no network
        client.fetch("10.0 -60.0")
    assert "outside the NVSS survey footprint" in str(caught.value) and "-40 deg" in str(caught.value)
