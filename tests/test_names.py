"""What file names say: MiraBest, FRDEEP, Griese et al. and VLASS names, on the real file names."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from pretrain.data.names import (
    parse_fits_name,
    parse_frdeep_name,
    parse_mirabest_name,
    parse_position_prefix,
    parse_vlass_name,
    source_id,
    unique_source_ids,
)

IAU = re.compile(r"^J(\d\d)(\d\d)(\d\d\.\d\d)([+-])(\d\d)(\d\d)(\d\d\.\d)$")


def _id_position(sid: str) -> SkyCoord:
    h, m, s, sign, d, dm, ds = IAU.match(sid).groups()
    return SkyCoord(f"{h}h{m}m{s}s {sign}{d}d{dm}m{ds}s", frame="icrs")


def test_every_mirabest_name_parses_like_the_readme_says(mirabest_dir):
    files = sorted(p.name for p in mirabest_dir.glob("*.fits.fz"))
    assert files
    for name in files:
        info = parse_mirabest_name(name)
        assert info is not None, name
        code, ra, rest = name[:3], name[4:11], name[11:]
        assert info.label == {"1": "FRI", "2": "FRII", "3": "hybrid"}[code[0]]
        assert info.confident is (code[1] == "0")
        assert info.subtype == ["standard", "double-double", "wide-angle tail", "diffuse", "head-tail"][int(code[2])]
        dec, z, las = rest.removesuffix(".fits.fz").split("_")
        assert (info.ra, info.dec, info.redshift, info.las_arcsec) == (float(ra), float(dec), float(z), float(las))
        assert info.scheme == "mirabest"
        assert parse_fits_name(f"/some/folder/{name}") == info  # the folder does not matter


def test_mirabest_names_with_other_extensions_and_non_mirabest_names():
    assert parse_mirabest_name("210_232.543+029.008_0.0842_0192.47.fits").label == "FRII"
    assert parse_mirabest_name("310_001.000-001.000_0.1_10.fit").label == "hybrid"
    for name in (
        "400_001.000+001.000_0.1_10.fits",
        "100_010.451-009.284_0.0529.fits",
        "cutout.fits",
        "100_010.451-009.284_0.0529_0080.60.png",
    ):
        assert parse_mirabest_name(name) is None, name
    assert parse_fits_name("cutout.fits").label == ""
    assert parse_fits_name("cutout.fits").scheme == ""


def test_every_frdeep_name_gives_the_label_of_the_frdeep_catalogue(frdeep_dir):
    with open(frdeep_dir / "catalogue.csv", newline="") as f:
        catalogue = {row["Object_ID"]: "FR" + row["FR_label"] for row in csv.DictReader(f)}
    for survey in ("FIRST", "NVSS"):
        files = sorted(p.name for p in (frdeep_dir / survey).glob("*.fits.fz"))
        assert len(files) == len(catalogue)
        for name in files:
            info = parse_fits_name(name)
            assert info.scheme == "frdeep"
            assert catalogue[info.name] == info.label, name
    assert parse_frdeep_name("3C 192_II.fits.fz").name == "3C 192"
    assert parse_frdeep_name("1408+0281_I.fits").label == "FRI"
    assert parse_frdeep_name("1408+0281_III.fits") is None


def test_every_griese_png_name_gives_a_position(griese_dir):
    files = sorted(griese_dir.rglob("*.png"))
    assert files
    for path in files:
        ra, dec = parse_position_prefix(path.name)
        assert (ra, dec) == tuple(float(x) for x in path.name.split("_")[:2])
    assert parse_position_prefix("10.451_-9.284_0_MiraBest.png") == (10.451, -9.284)
    assert parse_position_prefix("image_10.451_-9.284.png") is None
    assert parse_position_prefix("400.0_10.0_x.png") is None  # RA out of range


@pytest.mark.parametrize(
    "ra, dec, expected",
    [
        (0.0, 0.0, "J000000.00+000000.0"),
        (359.99999999, -0.00001, "J235959.99-000000.0"),  # truncated, never rounded up to 24h
        (10.4509, -9.28422, "J004148.21-091703.1"),
        (15.0, 89.9999999, "J010000.00+895959.9"),
    ],
)
def test_source_id_is_the_truncated_iau_name(ra, dec, expected):
    assert source_id(ra, dec) == expected


def test_source_id_agrees_with_sdss_names_of_real_sources(frdeep_dir):
    """SDSS names are IAU names of (more precise) positions: ours lie within their last digit."""
    with open(frdeep_dir / "catalogue.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["Object_ID"].startswith("SDSS J")]
    assert rows
    positions = SkyCoord([r["RA(J2000)"] for r in rows], [r["DEC(J2000)"] for r in rows], unit=(u.hourangle, u.deg))
    for row, position in zip(rows, positions):
        sid = source_id(position.ra.deg, position.dec.deg)
        assert IAU.match(sid), sid
        # Truncation: the name's position is at most one last digit below the true one.
        named = _id_position(sid)
        assert named.separation(position).arcsec < 0.2
        assert named.separation(_id_position(row["Object_ID"][5:])).arcsec < 0.3


def test_unique_source_ids_suffixes_repeats_in_order():
    ids = unique_source_ids(["J1", "J2", "J1", "J1_2", "J1"])
    assert len(set(ids)) == 5
    assert ids[:2] == ["J1", "J2"] and ids[3] == "J1_2"
    assert all(i.startswith("J1_") for i in (ids[2], ids[4]))
    rng = np.random.default_rng(0)
    many = [f"J{n}" for n in rng.integers(0, 20, 200)]
    assert len(set(unique_source_ids(many))) == 200


def test_every_vlass_name_gives_its_epoch_and_image_centre(vlass_dir):
    files = sorted(p.name for p in vlass_dir.glob("*.fits.fz"))
    assert len(files) == 207
    for name in files:
        info = parse_fits_name(f"/some/folder/{name}")
        assert info.scheme == "vlass" and info.survey == "vlass" and info == parse_vlass_name(name)
        _, epoch, position = name.removesuffix(".fits.fz").split("_")
        split = max(position.rfind("+"), position.rfind("-"))
        assert (info.epoch, info.ra, info.dec) == (epoch, float(position[:split]), float(position[split:]))
        assert info.label == "" and not info.position_is_catalogued  # the image centre, not a catalogue's
    assert {parse_vlass_name(n).epoch for n in files} >= {"1.1", "2.2", "3.1"}


def test_vlass_like_names_that_are_not_vlass_names():
    assert parse_vlass_name("VLASS_2.2_133.067+06.316.fits").dec == pytest.approx(6.316)
    assert parse_vlass_name("VLASS_2.2_133.067-06.316.fits.fz").dec == pytest.approx(-6.316)
    for name in ("VLASS_2.2_133.067.fits.fz", "VLASS_2_133.067+06.316.fits", "FIRST_2.2_133.067+06.316.fits"):
        assert parse_vlass_name(name) is None, name
    assert parse_vlass_name("VLASS_2.2_400.000+06.316.fits") is None  # RA out of range
    assert parse_mirabest_name("100_010.451-009.284_0.0529_0080.60.fits").position_is_catalogued
