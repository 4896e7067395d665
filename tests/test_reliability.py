"""Issue #17: nothing lost, nothing run that should not run, no input that freezes the server."""

from __future__ import annotations

from pathlib import Path

import pytest

from pretrain.__main__ import main as cli
from pretrain.data.bundle import build_bundle, load_bundle


def _fits_folder(skyview_raw_dir: Path, folder: Path, n: int = 3) -> Path:
    """A folder of links to a few real FITS files (the real data is never copied)."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in sorted(skyview_raw_dir.glob("*.fits"))[:n]:
        (folder / f.name).symlink_to(f)
    return folder


# --- A. nothing outside a folder the project wrote is deleted ----------------------------


def test_bundle_out_equal_to_the_input_is_refused_and_kept(skyview_raw_dir, tmp_path, capsys):
    data = _fits_folder(skyview_raw_dir, tmp_path / "data")
    before = sorted(p.name for p in data.iterdir())
    assert cli(["bundle", "--fits", str(data), "--out", str(data), "--overwrite"]) == 2
    assert "input" in capsys.readouterr().err
    assert sorted(p.name for p in data.iterdir()) == before
    # an --out holding the input folder is refused as well
    assert cli(["bundle", "--fits", str(data), "--out", str(tmp_path), "--overwrite"]) == 2
    assert sorted(p.name for p in data.iterdir()) == before


def test_overwrite_replaces_only_a_bundle(skyview_raw_dir, tmp_path, capsys):
    data = _fits_folder(skyview_raw_dir, tmp_path / "data")
    thesis = tmp_path / "work"
    thesis.mkdir()
    (thesis / "thesis.tex").write_text("years of work")
    assert cli(["bundle", "--fits", str(data), "--out", str(thesis), "--overwrite"]) == 2
    assert "not one; nothing was deleted" in capsys.readouterr().err
    assert (thesis / "thesis.tex").read_text() == "years of work"
    # a bundle the tool wrote is still replaced
    first = build_bundle(fits_dirs=[data], out=tmp_path / "b", progress=False)
    again = build_bundle(fits_dirs=[data], out=tmp_path / "b", progress=False, overwrite=True)
    assert load_bundle(again.path).bundle_id == first.bundle_id


@pytest.mark.parametrize("out", [".", "/proc/x/bundle"])
def test_bundle_out_dot_or_unwritable_is_a_clear_error(skyview_raw_dir, tmp_path, monkeypatch, capsys, out):
    data = _fits_folder(skyview_raw_dir, tmp_path / "data")
    work = tmp_path / "cwd"
    work.mkdir()
    (work / "notes.txt").write_text("keep")
    monkeypatch.chdir(work)
    assert cli(["bundle", "--fits", str(data), "--out", out, "--overwrite"]) == 2
    assert "error:" in capsys.readouterr().err
    assert (work / "notes.txt").read_text() == "keep"


def test_bundle_out_dot_in_an_empty_folder_is_refused_clearly(skyview_raw_dir, tmp_path, monkeypatch, capsys):
    data = _fits_folder(skyview_raw_dir, tmp_path / "data")
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    assert cli(["bundle", "--fits", str(data), "--out", "."]) == 2
    assert "current folder" in capsys.readouterr().err
