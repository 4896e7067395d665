"""Pack what a GPU run needs into one folder that the workplace's device tool can carry.

The GPU machine gets a copy of the repository but not ``../shared`` (the real data). It has
no network, and its Python (3.12, with torch) lacks astropy and umap-learn. So the FIRST
images go as dataset bundles, and the missing packages go as wheels. The preprocessed
images are mostly zero background and compress about 40 times (MiraBest: 26 MB -> 0.6 MB),
so a kit of the pooled and the MiraBest bundles is a few MB.

Here, with the package registry reachable (``.device/`` is git-ignored)::

    python bench/device_kit.py pack --bundle pooled=runs/pooled --bundle mirabest=runs/mirabest --out .device

There, in a command that carries ``.device``::

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .device/wheels/*.whl
    export PYTHONPATH=/tmp/site:$PWD
    python3 bench/device_kit.py unpack --kit .device --out runs     # runs/pooled, runs/mirabest
    python3 -m pytest -q tests/test_cuda.py

The data stay out of the repository: the kit is a git-ignored folder made from bundles
built from ``../shared/data``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

BUNDLE_FILES = ("catalogue.parquet", "manifest.json", "report.csv")  # copied as they are
IMAGES_FILE = "images.npy"
PACKED_IMAGES_FILE = "images.npz"
# What the pretraining package and the benches import that the GPU machine's image lacks,
# at the versions installed here.
MISSING_THERE = ("astropy", "pyerfa", "astropy-iers-data", "umap-learn", "pynndescent")
WHEEL_PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)
DEVICE_PYTHON = "3.12"


def pack_bundle(bundle: Path, out: Path) -> int:
    """Copy a bundle into ``out`` with its images compressed; returns the packed size in bytes."""
    out.mkdir(parents=True, exist_ok=True)
    for name in BUNDLE_FILES:
        if (bundle / name).is_file():
            shutil.copy2(bundle / name, out / name)
    np.savez_compressed(out / PACKED_IMAGES_FILE, images=np.load(bundle / IMAGES_FILE, mmap_mode="r"))
    return sum(f.stat().st_size for f in out.iterdir())


def unpack_bundle(packed: Path, out: Path) -> None:
    """The inverse of :func:`pack_bundle`: a bundle folder ``pretrain`` can load."""
    out.mkdir(parents=True, exist_ok=True)
    for name in BUNDLE_FILES:
        if (packed / name).is_file():
            shutil.copy2(packed / name, out / name)
    with np.load(packed / PACKED_IMAGES_FILE) as archive:
        np.save(out / IMAGES_FILE, archive["images"])


def download_wheels(folder: Path) -> list[Path]:
    """Wheels of :data:`MISSING_THERE` for the GPU machine's Python, at the versions here."""
    folder.mkdir(parents=True, exist_ok=True)
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in MISSING_THERE]
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        DEVICE_PYTHON,
        "--implementation",
        "cp",
        "-d",
        str(folder),
    ]
    for platform in WHEEL_PLATFORMS:
        command += ["--platform", platform]
    subprocess.run(command + pins, check=True)
    return sorted(folder.glob("*.whl"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True)
    pack = verbs.add_parser("pack", help="bundles (+ wheels) -> a kit folder")
    pack.add_argument(
        "--bundle",
        action="append",
        required=True,
        metavar="NAME=PATH",
        help="a bundle to take along under NAME (repeatable)",
    )
    pack.add_argument("--out", type=Path, required=True, help="the kit folder (git-ignored)")
    pack.add_argument("--no-wheels", action="store_true", help="bundles only")
    unpack = verbs.add_parser("unpack", help="a kit folder -> bundle folders")
    unpack.add_argument("--kit", type=Path, required=True)
    unpack.add_argument("--out", type=Path, required=True, help="bundles go to OUT/NAME")
    args = parser.parse_args(argv)

    if args.verb == "pack":
        names = []
        for spec in args.bundle:
            name, sep, path = spec.partition("=")
            if not sep or not name or not Path(path, IMAGES_FILE).is_file():
                parser.error(f"--bundle {spec!r}: expected NAME=PATH to a bundle folder")
            size = pack_bundle(Path(path), args.out / "bundles" / name)
            names.append(name)
            print(f"{name}: {path} -> {args.out / 'bundles' / name} ({size / 1e6:.1f} MB)")
        if not args.no_wheels:
            for wheel in download_wheels(args.out / "wheels"):
                print(f"wheel: {wheel.name}")
        (args.out / "kit.json").write_text(json.dumps({"bundles": names}, indent=2) + "\n")
        return 0

    names = json.loads((args.kit / "kit.json").read_text())["bundles"]
    for name in names:
        unpack_bundle(args.kit / "bundles" / name, args.out / name)
        print(f"{name}: -> {args.out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
