"""Find the MiraBest FITS files, or download them (verified, resumable) into the cache.

Without --dest, a local copy is used when there is one (EXPLORER_MIRABEST_DIR, then
../shared/data/mirabest, then a complete download in the cache); otherwise the FITS folder
of github.com/fmporter/MiraBest at the pinned commit is downloaded into the user's cache.
With --dest, the files are downloaded into DIR. Prints the folder that holds the data.
Run it again after an interruption: only the missing files are fetched.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from pretrain import config
from pretrain.data.mirabest import download_mirabest, find_local_mirabest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dest",
        type=Path,
        metavar="DIR",
        help="download into DIR (default: the user's cache, unless a local copy exists)",
    )
    parser.add_argument("--base-url", default=config.MIRABEST_REPO_URL, help="raw file server (default: %(default)s)")
    parser.add_argument(
        "--api-url", default=config.MIRABEST_API_URL, help="GitHub API of the repository (default: %(default)s)"
    )


def run(args: argparse.Namespace) -> int:
    if args.dest is None:
        local = find_local_mirabest()
        if local is not None:
            folder, where = local
            print(f"MiraBest FITS files are already here ({where}):")
            print(folder)
            return 0
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, initial=done, unit="file", desc="MiraBest FITS")
        bar.update(done - bar.n)

    try:
        folder = download_mirabest(args.dest, base_url=args.base_url, api_url=args.api_url, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    print("MiraBest FITS files, downloaded and verified:")
    print(folder)
    return 0
