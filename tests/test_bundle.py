"""Dataset bundles built from the real data: MiraBest, Griese et al. PNGs, FRDEEP, catalogues."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from pretrain import config
from pretrain.__main__ import main as cli
from pretrain.data.bundle import build_bundle, load_bundle, read_position_catalogue
from pretrain.data.names import parse_position_prefix, source_id
from pretrain.errors import BundleError, NoNetworkError
from tests.damaged_fits import DAMAGED

SIZE = config.IMAGE_SIZE_PX
RADIUS = config.DUPLICATE_RADIUS_ARCSEC
LABELS = {"1": "FRI", "2": "FRII", "3": "hybrid"}
# The README of ../shared/data gives these counts for the 1155 MiraBest files there.
PUBLISHED = {"FRI": (548, 371), "FRII": (581, 398), "hybrid": (26, 15)}


def _mirabest_expectations(folder: Path) -> pd.DataFrame:
    """What each MiraBest file name says, parsed here independently of pretrain.data.names."""
    rows = []
    for path in sorted(folder.glob("*.fits.fz")):
        code, position, z, las = path.name.removesuffix(".fits.fz").split("_")
        split = max(position.rfind("+"), position.rfind("-"))
        rows.append(
            {
                "file": str(path),
                "label": LABELS[code[0]],
                "confident": code[1] == "0",
                "subtype_digit": int(code[2]),
                "ra_name": float(position[:split]),
                "dec_name": float(position[split:]),
                "redshift": float(z),
                "las": float(las),
            }
        )
    return pd.DataFrame(rows)


def _link_files(files, folder: Path) -> Path:
    """A folder of symbolic links to real files (the real data is never copied)."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        (folder / Path(f).name).symlink_to(f)
    return folder


# --- The full MiraBest bundle (built once per session in conftest.py) --------------------


def test_mirabest_bundle_has_every_file_with_its_label(mirabest_bundle, mirabest_dir):
    expected = _mirabest_expectations(mirabest_dir)
    catalogue = mirabest_bundle.catalogue
    assert len(mirabest_bundle) == len(expected) == mirabest_bundle.images.shape[0]
    assert mirabest_bundle.manifest["n_failed"] == 0 and mirabest_bundle.manifest["n_duplicates"] == 0

    merged = expected.merge(catalogue, on="file", how="left", validate="one_to_one", suffixes=("", "_bundle"))
    assert merged["source_id"].notna().all()
    assert (merged["label"] == merged["label_bundle"]).all()
    assert (merged["confident"] == merged["confident_bundle"].astype(bool)).all()
    subtypes = ["standard", "double-double", "wide-angle tail", "diffuse", "head-tail"]
    assert (merged["subtype_digit"].map(lambda d: subtypes[d]) == merged["subtype"]).all()
    assert np.allclose(merged["redshift"], merged["redshift_bundle"])
    # the catalogued LAS is carried, and the pixel estimate is there beside it
    assert np.allclose(merged["las"], merged["angular_extent_arcsec"])
    assert np.allclose(merged["las"], merged["angular_extent_catalogued_arcsec"])
    assert np.isfinite(catalogue["angular_extent_estimated_arcsec"]).mean() > 0.95
    assert (catalogue["survey"] == "FIRST").all()
    assert np.allclose(catalogue["pixel_scale_arcsec"], 1.8, atol=1e-3)

    # the position is the catalogued one of the name; the image centre (WCS) agrees with it
    # within the names' rounding (0.001 deg) for almost all files; a few cutouts are off-centre
    assert np.allclose(merged["ra"], merged["ra_name"]) and np.allclose(merged["dec"], merged["dec_name"])
    centre = SkyCoord(merged["image_ra"].to_numpy() * u.deg, merged["image_dec"].to_numpy() * u.deg)
    from_name = SkyCoord(merged["ra_name"].to_numpy() * u.deg, merged["dec_name"].to_numpy() * u.deg)
    offset = centre.separation(from_name).arcsec
    assert np.median(offset) < 1.8 and offset.max() < 120.0

    counts = Counter(expected["label"])
    confident = Counter(expected.loc[expected["confident"], "label"])
    assert mirabest_bundle.manifest["counts_by_label"] == dict(counts)
    assert mirabest_bundle.manifest["confident_by_label"] == dict(confident)
    assert {k: (counts[k], confident[k]) for k in counts} == PUBLISHED


def test_mirabest_bundle_images_are_model_images(mirabest_bundle):
    images = mirabest_bundle.images
    assert isinstance(images, np.memmap) and images.dtype == np.uint8 and images.shape[1:] == (SIZE, SIZE)
    assert not images.flags.writeable
    assert (images.max(axis=(1, 2)) == 255).all()
    assert ((images == 0).mean(axis=(1, 2)) > 0.5).all()  # background clipped to zero
    assert len({images[i].tobytes() for i in range(0, len(images), 7)}) == len(range(0, len(images), 7))


def test_mirabest_bundle_images_are_the_preprocessed_files(mirabest_bundle):
    from pretrain.data.fits_io import read_cutout
    from pretrain.data.preprocess import preprocess_image

    catalogue = mirabest_bundle.catalogue
    for row in [0, len(catalogue) // 2, len(catalogue) - 1]:
        cutout = read_cutout(catalogue["file"].iloc[row])
        assert np.array_equal(mirabest_bundle.images[row], preprocess_image(cutout.data, cutout.pixel_scale_arcsec))


def test_source_ids_are_unique_iau_names_of_the_positions(mirabest_bundle):
    catalogue = mirabest_bundle.catalogue
    assert catalogue["source_id"].is_unique
    assert catalogue["source_id"].str.fullmatch(r"J\d{6}\.\d\d[+-]\d{6}\.\d(_\d+)?").all()
    for _, row in catalogue.iloc[::50].iterrows():
        assert row["source_id"].split("_")[0] == source_id(row["ra"], row["dec"])


def test_manifest_records_provenance(mirabest_bundle, mirabest_dir):
    manifest = json.loads((mirabest_bundle.path / "manifest.json").read_text())
    assert manifest == mirabest_bundle.manifest
    assert manifest["n_images"] == len(mirabest_bundle)
    assert manifest["inputs"] == [
        {
            "type": "fits",
            "path": str(mirabest_dir),
            "n_items": len(mirabest_bundle),
            "n_images": len(mirabest_bundle),
            "n_failed": 0,
            "n_duplicates": 0,
        }
    ]
    assert manifest["preprocessing"]["clip_sigma"] == config.CLIP_SIGMA
    assert manifest["preprocessing"]["image_size_px"] == SIZE
    assert manifest["duplicate_radius_arcsec"] == RADIUS
    assert manifest["created"] and manifest["tool_version"]


def test_load_bundle_round_trip_and_verification(mirabest_bundle):
    loaded = load_bundle(mirabest_bundle.path, verify=True)  # recomputes the content hash
    assert loaded.bundle_id == mirabest_bundle.bundle_id
    assert isinstance(loaded.images, np.memmap) and loaded.images.mode == "r"
    assert np.array_equal(loaded.images[::97], mirabest_bundle.images[::97])
    pd.testing.assert_frame_equal(loaded.catalogue, mirabest_bundle.catalogue)
    assert loaded.report().empty


# --- Damaged inputs, errors, small bundles -------------------------------------------------


@pytest.fixture(scope="module")
def raw_bundle(skyview_raw_dir, tmp_path_factory):
    """The 16 skyview_raw files: a small real bundle to damage and rebuild."""
    return build_bundle(fits_dirs=[skyview_raw_dir], out=tmp_path_factory.mktemp("raw") / "b", progress=False)


def test_damaged_files_are_reported_and_the_rest_builds(tmp_path, mirabest_dir, skyview_raw_dir):
    real = sorted(mirabest_dir.glob("*.fits.fz"))[::200]  # a handful of real files, all classes
    folder = _link_files(real, tmp_path / "mixed")
    damaged = {}
    for kind, (make, words) in DAMAGED.items():
        damaged[make(sorted(skyview_raw_dir.glob("*.fits"))[0], folder)] = words
    (folder / "README.txt").write_text("not an input: ignored")

    seen = []
    bundle = build_bundle(fits_dirs=[folder], out=tmp_path / "b", progress=lambda d, t, m: seen.append((d, t)))
    assert len(bundle) == len(real)
    assert sorted(Path(f).name for f in bundle.catalogue["file"]) == sorted(p.name for p in real)
    expected = _mirabest_expectations(mirabest_dir).set_index(
        _mirabest_expectations(mirabest_dir)["file"].map(lambda f: Path(f).name)
    )
    for _, row in bundle.catalogue.iterrows():
        assert row["label"] == expected.loc[Path(row["file"]).name, "label"]

    report = bundle.report()
    failed = report[report["status"] == "failed"].set_index("file")
    assert sorted(failed.index) == sorted(str(p) for p in damaged)
    for path, words in damaged.items():
        reason = failed.loc[str(path), "reason"].lower()
        assert any(w in reason for w in words), reason
    assert bundle.manifest["n_failed"] == len(damaged)
    # progress went through every file, in order
    assert seen[-1] == (len(real) + len(damaged), len(real) + len(damaged))
    assert [d for d, _ in seen] == list(range(1, len(seen) + 1))


def test_only_damaged_files_is_an_error_with_reasons(tmp_path, skyview_raw_dir):
    folder = tmp_path / "bad"
    folder.mkdir()
    for make, _ in DAMAGED.values():
        make(sorted(skyview_raw_dir.glob("*.fits"))[0], folder)
    with pytest.raises(BundleError, match=r"none of the .* inputs gave an image"):
        build_bundle(fits_dirs=[folder], out=tmp_path / "b", progress=False)
    assert not (tmp_path / "b").exists()
    assert not list(tmp_path.glob(".b.partial*"))  # no half-built bundle left behind


def test_load_bundle_rejects_broken_bundles(raw_bundle, tmp_path):
    def broken(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(raw_bundle.path, target)
        return target

    with pytest.raises(BundleError, match="no such bundle"):
        load_bundle(tmp_path / "absent")
    path = broken("no_images")
    (path / "images.npy").unlink()
    with pytest.raises(BundleError, match=r"missing images\.npy"):
        load_bundle(path)
    path = broken("garbage_images")
    (path / "images.npy").write_bytes(b"\x00" * 1000)
    with pytest.raises(BundleError, match="unreadable image array"):
        load_bundle(path)
    path = broken("short_catalogue")
    raw_bundle.catalogue.iloc[:-1].to_parquet(path / "catalogue.parquet")
    with pytest.raises(BundleError, match="inconsistent"):
        load_bundle(path)
    path = broken("bad_manifest")
    (path / "manifest.json").write_text("{ not json")
    with pytest.raises(BundleError, match="unreadable manifest"):
        load_bundle(path)
    path = broken("wrong_shape")
    np.save(path / "images.npy", np.zeros((len(raw_bundle), 70, 70), np.uint8))
    with pytest.raises(BundleError, match="expected uint8 images"):
        load_bundle(path)
    path = broken("edited")
    images = np.load(path / "images.npy", mmap_mode="r+")
    images[0, 0, 0] ^= 1
    images.flush()
    del images
    load_bundle(path)  # looks fine ...
    with pytest.raises(BundleError, match="does not match the manifest"):
        load_bundle(path, verify=True)  # ... but the content changed


def test_the_same_file_twice_is_kept_once(tmp_path, skyview_raw_dir):
    first = sorted(skyview_raw_dir.glob("*.fits"))[0]
    folder = tmp_path / "a"
    folder.mkdir()
    for name in ("a_cutout.fits", "b_cutout.fits"):  # no MiraBest name: positions from the WCS
        (folder / name).symlink_to(first)
    bundle = build_bundle(fits_dirs=[folder], out=tmp_path / "b", progress=False)
    assert len(bundle) == 1 and Path(bundle.catalogue["file"].iloc[0]).name == "a_cutout.fits"
    duplicate = bundle.report().query("status == 'duplicate'")
    assert list(duplicate["file"]) == [str(folder / "b_cutout.fits")]
    assert duplicate["duplicate_of"].iloc[0] == bundle.catalogue["source_id"].iloc[0]
    assert duplicate["separation_arcsec"].iloc[0] == pytest.approx(0.0, abs=1e-6)
    # with no radius both are kept, under distinct ids
    both = build_bundle(fits_dirs=[folder], out=tmp_path / "c", progress=False, duplicate_radius_arcsec=0)
    assert len(both) == 2 and both.catalogue["source_id"].is_unique
    assert both.catalogue["source_id"].iloc[1] == both.catalogue["source_id"].iloc[0] + "_2"


def test_frdeep_nvss_cutouts_keep_their_survey_and_field(tmp_path, frdeep_dir):
    files = sorted((frdeep_dir / "NVSS").glob("*.fits.fz"))[:6]
    bundle = build_bundle(fits_dirs=[_link_files(files, tmp_path / "nvss")], out=tmp_path / "b", progress=False)
    assert len(bundle) == len(files)
    assert (bundle.catalogue["survey"] == "NVSS").all()
    assert np.allclose(bundle.catalogue["pixel_scale_arcsec"], 15.0, rtol=1e-3)
    labels = {p.name: "FRII" if p.name.endswith("_II.fits.fz") else "FRI" for p in files}
    assert (bundle.catalogue["file"].map(lambda f: labels[Path(f).name]) == bundle.catalogue["label"]).all()
    assert (bundle.catalogue["name"] != "").all()
    # no catalogued extent for FRDEEP: the estimate is the extent
    assert bundle.catalogue["angular_extent_catalogued_arcsec"].isna().all()
    same = bundle.catalogue["angular_extent_arcsec"].equals(bundle.catalogue["angular_extent_estimated_arcsec"])
    assert same


def test_out_folder_is_never_clobbered_by_accident(raw_bundle, skyview_raw_dir, tmp_path):
    with pytest.raises(BundleError, match="not empty"):
        build_bundle(fits_dirs=[skyview_raw_dir], out=raw_bundle.path, progress=False)
    assert load_bundle(raw_bundle.path).bundle_id == raw_bundle.bundle_id
    with pytest.raises(BundleError, match="no such folder"):
        build_bundle(fits_dirs=[tmp_path / "nowhere"], out=tmp_path / "b", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="no FITS files"):
        build_bundle(fits_dirs=[tmp_path / "empty"], out=tmp_path / "b", progress=False)
    with pytest.raises(BundleError, match="no inputs"):
        build_bundle(out=tmp_path / "b", progress=False)


# --- Pooling several inputs ----------------------------------------------------------------


def _frdeep_positions(frdeep_dir: Path) -> dict[str, SkyCoord]:
    with open(frdeep_dir / "catalogue.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    coords = SkyCoord([r["RA(J2000)"] for r in rows], [r["DEC(J2000)"] for r in rows], unit=(u.hourangle, u.deg))
    return {r["Object_ID"]: c for r, c in zip(rows, coords)}


def _check_pooled(bundle, n_inputs_files: int, input_order: list[str]) -> pd.DataFrame:
    """Invariants of de-duplication, checked from the bundle's own files; returns the duplicates."""
    catalogue, report = bundle.catalogue, bundle.report()
    duplicates = report[report["status"] == "duplicate"]
    assert len(catalogue) + len(report) == n_inputs_files
    kept = SkyCoord(catalogue["ra"].to_numpy() * u.deg, catalogue["dec"].to_numpy() * u.deg)
    # no two kept sources are the same source
    _, separation, _ = kept.match_to_catalog_sky(kept, nthneighbor=2)
    assert separation.arcsec.min() >= RADIUS
    # every dropped duplicate really lies within the radius of the kept source it names,
    # and that source came from the same or an earlier input
    by_id = catalogue.set_index("source_id")
    assert duplicates["duplicate_of"].isin(by_id.index).all()
    target = by_id.loc[duplicates["duplicate_of"]]
    dropped = SkyCoord(duplicates["ra"].to_numpy() * u.deg, duplicates["dec"].to_numpy() * u.deg)
    there = SkyCoord(target["ra"].to_numpy() * u.deg, target["dec"].to_numpy() * u.deg)
    assert np.allclose(dropped.separation(there).arcsec, duplicates["separation_arcsec"], atol=1e-3)
    assert (duplicates["separation_arcsec"] < RADIUS).all()
    rank = {name: i for i, name in enumerate(input_order)}
    assert (target["input"].map(rank).to_numpy() <= duplicates["input"].map(rank).to_numpy()).all()
    # counts in the manifest agree with the files
    manifest = bundle.manifest
    assert manifest["n_duplicates"] == len(duplicates)
    assert manifest["counts_by_label"] == dict(sorted(Counter(catalogue["label"]).items()))
    for record in manifest["inputs"]:
        key = f"{record['type']}:{record['path']}"
        assert record["n_images"] + record["n_failed"] + record["n_duplicates"] == record["n_items"]
        assert record["n_duplicates"] == (duplicates["input"] == key).sum()
    return duplicates


def _griese_oracle(bundle, mirabest_files, griese_files):
    """Griese images within 3" of a MiraBest file (both positions from the names) must be dropped
    as duplicates of that very file; those over 8" from every other source must be kept."""
    mira = _mirabest_expectations_from(mirabest_files)
    mira_coords = SkyCoord(mira["ra_name"].to_numpy() * u.deg, mira["dec_name"].to_numpy() * u.deg)
    positions = [parse_position_prefix(p.name) for p in griese_files]
    griese = SkyCoord([p[0] for p in positions] * u.deg, [p[1] for p in positions] * u.deg)
    index, separation, _ = griese.match_to_catalog_sky(mira_coords)
    _, nearest_griese, _ = griese.match_to_catalog_sky(griese, nthneighbor=2)
    report = bundle.report().set_index("file")
    catalogue = bundle.catalogue.set_index("file")
    id_of_mirabest = catalogue.loc[mira["file"], "source_id"].to_numpy()
    n_same = 0
    for path, i, sep, sep_g in zip(griese_files, index, separation.arcsec, nearest_griese.arcsec):
        if sep < 3.0:
            assert report.loc[str(path), "status"] == "duplicate"
            assert report.loc[str(path), "duplicate_of"] == id_of_mirabest[i]
            n_same += 1
        elif sep > 8.0 and sep_g > 8.0:
            assert str(path) in catalogue.index or report.loc[str(path), "status"] == "failed"
    return n_same


def _mirabest_expectations_from(files) -> pd.DataFrame:
    folder_rows = []
    for path in files:
        code, position, z, las = path.name.removesuffix(".fits.fz").split("_")
        split = max(position.rfind("+"), position.rfind("-"))
        folder_rows.append({"file": str(path), "ra_name": float(position[:split]), "dec_name": float(position[split:])})
    return pd.DataFrame(folder_rows)


def _pooled_inputs(shared_data: Path, tmp_path: Path, ra_range: tuple[float, float] | None):
    """MiraBest, Griese et al. and FRDEEP/FIRST files (optionally only those in an RA range)."""

    def wanted(ra):
        return ra_range is None or ra_range[0] <= ra < ra_range[1]

    mirabest = [p for p in sorted((shared_data / "mirabest").glob("*.fits.fz")) if wanted(float(p.name[4:11]))]
    griese = [
        p
        for p in sorted((shared_data / "griese2023" / "images").rglob("*.png"))
        if wanted(parse_position_prefix(p.name)[0])
    ]
    frdeep_positions = _frdeep_positions(shared_data / "frdeep2")
    frdeep = [
        p
        for p in sorted((shared_data / "frdeep2" / "FIRST").glob("*.fits.fz"))
        if wanted(frdeep_positions[p.name.rsplit("_", 1)[0]].ra.deg)
    ]
    if ra_range is None:
        return (
            shared_data / "mirabest",
            shared_data / "griese2023" / "images",
            shared_data / "frdeep2" / "FIRST",
            mirabest,
            griese,
            frdeep,
        )
    griese_dir = tmp_path / "griese"
    for p in griese:  # keep the label sub-folders
        _link_files([p], griese_dir / p.parent.name)
    griese = [griese_dir / p.parent.name / p.name for p in griese]
    mirabest_dir = _link_files(mirabest, tmp_path / "mirabest")
    frdeep_dir = _link_files(frdeep, tmp_path / "frdeep")
    return (
        mirabest_dir,
        griese_dir,
        frdeep_dir,
        [mirabest_dir / p.name for p in mirabest],
        griese,
        [frdeep_dir / p.name for p in frdeep],
    )


def _build_and_check_pooled(shared_data, tmp_path, ra_range, measure=True):
    mirabest_dir, griese_dir, frdeep_dir, mirabest, griese, frdeep = _pooled_inputs(shared_data, tmp_path, ra_range)
    assert mirabest and griese and frdeep
    inputs = [("fits", mirabest_dir), ("images", griese_dir), ("fits", frdeep_dir)]
    bundle = build_bundle(inputs=inputs, out=tmp_path / "pooled", progress=False, measure=measure)
    order = [f"{kind}:{path}" for kind, path in inputs]
    duplicates = _check_pooled(bundle, len(mirabest) + len(griese) + len(frdeep), order)

    catalogue = bundle.catalogue
    # the first input wins: every MiraBest file is kept, with its label
    assert (catalogue["input"] == order[0]).sum() == len(mirabest)
    # Griese labels come from the sub-folders
    from_griese = catalogue[catalogue["input"] == order[1]]
    assert (from_griese["file"].map(lambda f: Path(f).parent.name) == from_griese["label"]).all()
    assert set(from_griese["label"]) <= {"FRI", "FRII", "Bent", "Compact"}
    n_same = _griese_oracle(bundle, mirabest, griese)
    assert n_same > 0
    griese_dropped = (duplicates["input"] == order[1]).sum()
    assert griese_dropped >= n_same
    return bundle, griese_dropped / len(griese)


@pytest.mark.slow
def test_pooled_inputs_in_one_sky_region_are_deduplicated(shared_data, tmp_path):
    """MiraBest + Griese et al. + FRDEEP/FIRST in 140 <= RA < 150 deg (fast: about 250 files)."""
    _build_and_check_pooled(shared_data, tmp_path, (140.0, 150.0))


@pytest.mark.slow
def test_all_pooled_inputs_are_deduplicated(shared_data, tmp_path):
    """All 3905 files of the three sets (about a minute on 2 cores). The pixel measurements,
    which the one-region test above runs on all three sets, are left out: deduplication does
    not use them, and they would double the time."""
    bundle, griese_fraction = _build_and_check_pooled(shared_data, tmp_path, None, measure=False)
    # the data's README: about a third of the Griese et al. images are MiraBest sources again
    assert 0.2 < griese_fraction < 0.5


# --- Catalogue input through the FIRST client (SkyView stand-in on 127.0.0.1) ----------------


@pytest.fixture(scope="module")
def skyview(shared_data):
    from tests.standins.skyview import SkyViewStandIn

    with SkyViewStandIn(shared_data) as server:
        yield server


def _fast_client(url: str, cache: Path):
    from pretrain.data.first_client import FirstCutoutClient

    return FirstCutoutClient(
        base_url=url, cache_dir=cache, timeout_s=2.0, retries=1, backoff_s=0.01, total_timeout_s=5.0
    )


def _frdeep_catalogue_sample(frdeep_dir: Path, path: Path, n: int = 4) -> list[dict]:
    """A few real FRDEEP rows (sexagesimal) + one outside FIRST + one unreadable position."""
    with open(frdeep_dir / "catalogue.csv", newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames
        rows = [r for r in reader if r["Object_ID"].startswith(("3C", "4C"))][:n]
    extra = [
        {**rows[0], "Object_ID": "far south", "RA(J2000)": "00 40 00.0", "DEC(J2000)": "-60 00 00"},
        {**rows[0], "Object_ID": "typo", "RA(J2000)": "25 99 99", "DEC(J2000)": "+12 00 00"},
    ]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows + extra)
    return rows


def test_catalogue_input_fetches_first_cutouts(skyview, frdeep_dir, tmp_path):
    table = tmp_path / "sample.csv"
    rows = _frdeep_catalogue_sample(frdeep_dir, table)
    skyview.reset()
    client = _fast_client(skyview.url, tmp_path / "cutouts")
    bundle = build_bundle(catalogues=[table], out=tmp_path / "b", progress=False, cutout_client=client)

    catalogue = bundle.catalogue
    assert list(catalogue["name"]) == [r["Object_ID"] for r in rows]
    assert list(catalogue["label"]) == ["FR" + r["FR_label"] for r in rows]
    assert list(catalogue["split"]) == [r["split"] for r in rows]  # other columns are kept
    for (_, got), row in zip(catalogue.iterrows(), rows):
        position = SkyCoord(row["RA(J2000)"], row["DEC(J2000)"], unit=(u.hourangle, u.deg))
        assert SkyCoord(got["ra"] * u.deg, got["dec"] * u.deg).separation(position).arcsec < 0.01
        if row["Source_redshift"]:
            assert got["redshift"] == pytest.approx(float(row["Source_redshift"]))
    assert (catalogue["survey"] == "FIRST").all()
    assert (bundle.images.reshape(len(bundle), -1).max(axis=1) == 255).all()
    assert sum(f is not None for f in skyview.served_files) == len(rows)  # real FIRST pixels

    report = bundle.report().set_index("file")
    assert report.loc[f"{table}#row{len(rows) + 1}", "reason"].lower().count("outside the first survey footprint")
    assert "cannot read the position" in report.loc[f"{table}#row{len(rows) + 2}", "reason"]

    # a rebuild takes the cutouts from the cache: no real cutout is downloaded again
    # (only the blank answer outside the footprint, which is not cached, is asked for again)
    again = build_bundle(catalogues=[table], out=tmp_path / "again", progress=False, cutout_client=client)
    assert sum(f is not None for f in skyview.served_files) == len(rows)
    assert again.bundle_id == bundle.bundle_id


def test_cli_pools_fits_and_a_parquet_catalogue(skyview, skyview_raw_dir, tmp_path, capsys):
    """Degrees in columns named RA/Dec, and the flag order decides which input wins."""
    raw = sorted(skyview_raw_dir.glob("*.fits"))
    names = [p.name for p in raw[:3]]
    table = pd.DataFrame(
        {"RA": [float(n[4:11]) for n in names], "Dec": [float(n[11:19]) for n in names], "note": ["a", "b", "c"]}
    )
    table.to_parquet(tmp_path / "positions.parquet")
    out = tmp_path / "b"
    code = cli(
        [
            "bundle",
            "--catalogue",
            str(tmp_path / "positions.parquet"),
            "--fits",
            str(skyview_raw_dir),
            "--out",
            str(out),
            "--skyview-url",
            skyview.url,
            "--quiet",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert f"{len(raw)} images" in printed and "duplicates dropped: 3" in printed
    bundle = load_bundle(out)
    assert [i["type"] for i in bundle.manifest["inputs"]] == ["catalogue", "fits"]
    # the catalogue came first, so its three rows won over the same three FITS files
    from_catalogue = bundle.catalogue[bundle.catalogue["input"].str.startswith("catalogue:")]
    assert list(from_catalogue["note"]) == ["a", "b", "c"]
    assert (from_catalogue["label"] == "").all()
    duplicates = bundle.report().query("status == 'duplicate'")
    assert sorted(Path(f).name for f in duplicates["file"]) == sorted(names)


def test_no_network_stops_the_build_with_a_clear_message(tmp_path, skyview_raw_dir):
    import socket

    with socket.socket() as s:  # a port on 127.0.0.1 with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    table = tmp_path / "positions.csv"
    table.write_text("ra,dec\n139.148,4.681\n")
    client = _fast_client(f"http://127.0.0.1:{port}/current/cgi/basicform.pl", tmp_path / "cutouts")
    with pytest.raises(NoNetworkError, match="running the same command again resumes"):
        build_bundle(
            fits_dirs=[skyview_raw_dir], catalogues=[table], out=tmp_path / "b", progress=False, cutout_client=client
        )
    assert not (tmp_path / "b").exists()
    assert not list(tmp_path.glob(".b.partial*"))


def test_catalogue_columns_and_positions_are_understood(tmp_path):
    table = tmp_path / "mixed.csv"
    table.write_text(
        "Name,RA_deg,DEC_deg,z,Class,flux\n"
        "a,139.148,4.681,0.1,II,1.5\n"
        "b,09:16:35.52,+04:40:51.6,,I,2.0\n"
        "c,9h16m35.52s,+4d40m51.6s,0.3,hybrid,\n"
        "d,,4.681,,,\n"
        "e,400,4.681,,,\n"
    )
    rows, bad = read_position_catalogue(table)
    assert [n for n, _ in rows] == [1, 2, 3] and [n for n, _ in bad] == [4, 5]
    first, second, third = (r for _, r in rows)
    assert first["label"] == "FRII" and second["label"] == "FRI" and third["label"] == "hybrid"
    assert first["name"] == "a" and first["redshift"] == 0.1 and first["flux"] == 1.5
    assert second["ra"] == pytest.approx(139.148, abs=1e-4) and second["dec"] == pytest.approx(4.681, abs=1e-4)
    assert third["ra"] == pytest.approx(second["ra"]) and third["dec"] == pytest.approx(second["dec"])
    (tmp_path / "nopos.csv").write_text("name,flux\na,1\n")
    with pytest.raises(BundleError, match="needs RA and Dec columns"):
        read_position_catalogue(tmp_path / "nopos.csv")


# --- Another survey: VLASS Quick-Look cutouts through the VLASS profile -------------------
def test_vlass_fits_bundle_through_the_vlass_profile(tmp_path, vlass_dir, capsys):
    from pretrain.data.extent import cutout_extent_arcsec
    from pretrain.data.fits_io import read_cutout
    from pretrain.data.names import parse_vlass_name
    from pretrain.data.preprocess import preprocess_cutout

    files = sorted(vlass_dir.glob("*.fits.fz"))[::40]  # 6 files, epochs 1.1 to 3.1
    folder = _link_files(files, tmp_path / "vlass")
    out = tmp_path / "b"
    assert cli(["bundle", "--fits", str(folder), "--survey", "vlass", "--out", str(out), "--quiet"]) == 0
    assert f"{len(files)} images" in capsys.readouterr().out
    bundle = load_bundle(out, verify=True)
    assert bundle.images.shape == (len(files), SIZE, SIZE) and bundle.images.dtype == np.uint8
    assert (bundle.images.reshape(len(files), -1).max(axis=1) == 255).all()
    catalogue = bundle.catalogue
    assert (catalogue["survey"] == "VLASS").all()
    assert np.allclose(catalogue["pixel_scale_arcsec"], 1.0, rtol=1e-3)
    assert bundle.manifest["surveys"]["option"] == "vlass" and set(bundle.manifest["surveys"]["profiles"]) == {"vlass"}
    for row, path in zip(catalogue.itertuples(), files):
        info = parse_vlass_name(path.name)
        assert Path(row.file).name == path.name and row.epoch == info.epoch
        cutout = read_cutout(path)
        # the position is the image centre from the WCS (the name rounds it to 0.001 deg)
        assert (row.ra, row.dec) == (row.image_ra, row.image_dec)
        assert SkyCoord(row.ra * u.deg, row.dec * u.deg).separation(cutout.centre).arcsec < 1e-6
        assert abs(row.dec - info.dec) <= 0.0005 + 1e-9
        assert np.array_equal(bundle.images[row.Index], preprocess_cutout(cutout, "vlass"))
        extent = cutout_extent_arcsec(cutout, "vlass")  # the header's beam
        assert row.angular_extent_estimated_arcsec == pytest.approx(extent, nan_ok=True)
    assert np.isfinite(catalogue["angular_extent_arcsec"]).sum() >= len(files) - 1
    # without --survey the headers say VLASS: the same images and catalogue
    inferred = build_bundle(fits_dirs=[folder], out=tmp_path / "inferred", progress=False)
    assert inferred.bundle_id == bundle.bundle_id and inferred.manifest["surveys"]["option"] is None


def test_a_survey_without_cutouts_refuses_catalogue_inputs_at_once(tmp_path, capsys):
    table = tmp_path / "positions.csv"
    table.write_text("ra,dec\n139.148,4.681\n")
    with pytest.raises(BundleError, match="VLASS has no cutout service"):
        build_bundle(catalogues=[table], out=tmp_path / "b", progress=False, survey="vlass")
    assert not (tmp_path / "b").exists()
    assert cli(["bundle", "--catalogue", str(table), "--survey", "lotss", "--out", str(tmp_path / "c")]) == 2
    assert "unknown survey 'lotss'; known surveys: first, nvss, vlass, emu" in capsys.readouterr().err
