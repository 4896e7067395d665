"""Embed a bundle (or a folder of FITS files) with a backbone and make its map: a "space".

Writes SPACE/embeddings.parquet (source_id, 512-float embedding), SPACE/map.parquet
(source_id, umap_x, umap_y + the catalogue), SPACE/projector.npz (the fitted
PCA -> UMAP, to place new images on the same map) and SPACE/manifest.json (provenance:
weights SHA-256, bundle id, parameters). With --fits the images are first preprocessed
into a bundle in SPACE/bundle/. A space that is already up to date (same weights, same
bundle, same parameters) is kept unless --force is given.

--engine dask embeds the bundle as a distributed job, one task per chunk of --chunk-size
images: on a local cluster of --workers processes, or on the Dask cluster at --address (its
workers must see the bundle and the weights at the same paths). Each chunk's representations
are written to SPACE/.embed-parts/ as soon as they come back; a killed job run again with the
same command continues from the chunks it has (none is embedded twice), and the parts are
removed once the space is written. The vectors equal those of --engine local (the default,
this process).

Examples:
  python -m pretrain embed --bundle bundles/mirabest --out spaces/mirabest
  python -m pretrain embed --fits ../shared/data/frdeep2/FIRST --out spaces/frdeep --device cpu
  python -m pretrain embed --bundle bundles/big --out spaces/big --engine dask --workers 2
  python -m pretrain embed --bundle /shared/big --out /shared/spaces/big --engine dask --address tcp://head:8786
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pretrain import config
from pretrain.devices import DEVICE_CHOICES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--weights",
        type=Path,
        default=None,
        help=f"backbone .safetensors (default: the shipped assets/{config.DEFAULT_BACKBONE_FILE})",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--bundle", type=Path, help="a dataset bundle folder (python -m pretrain bundle)")
    source.add_argument(
        "--fits",
        type=Path,
        action="append",
        help="a folder of FITS cutouts (repeatable); bundled into SPACE/bundle first",
    )
    parser.add_argument("--out", type=Path, required=True, help="the space folder to write")
    parser.add_argument(
        "--device",
        default="auto",
        choices=DEVICE_CHOICES,
        help="where the encoder runs (auto: CUDA when there is a GPU)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=config.EMBED_BATCH_SIZE, help="images per forward pass (default %(default)s)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=config.MAP_SEED,
        help="UMAP random state: the same inputs give the same map (default %(default)s)",
    )
    parser.add_argument(
        "--symmetry",
        choices=config.EMBED_SYMMETRIES,
        default=config.EMBED_SYMMETRY,
        help="d4: average the representation over the 8 rotations by 90 degrees and "
        "mirror images of each image (orientation-free); none: one forward pass "
        "(default %(default)s)",
    )
    parser.add_argument("--force", action="store_true", help="re-embed even if the space is up to date")
    engine = parser.add_argument_group("distributed embedding")
    engine.add_argument(
        "--engine",
        choices=config.EMBED_ENGINES,
        default=config.EMBED_ENGINE,
        help="local: this process; dask: a Dask job over chunks of the bundle, resumable (default %(default)s)",
    )
    engine.add_argument(
        "--workers",
        type=int,
        default=config.EMBED_WORKERS,
        help="--engine dask without --address: worker processes of the local cluster (default %(default)s)",
    )
    engine.add_argument(
        "--address",
        help="--engine dask: the scheduler of an existing Dask cluster (tcp://host:8786) instead of a local one",
    )
    engine.add_argument(
        "--chunk-size",
        type=int,
        default=config.EMBED_CHUNK_IMAGES,
        help="--engine dask: images per task and per part file, best a multiple of --batch-size (default %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    from pretrain.data.bundle import build_bundle, load_bundle, summary
    from pretrain.errors import ExplorerError
    from pretrain.provenance import default_backbone_path
    from pretrain.space import check_space_out, describe, embed_bundle_to_space, is_stale, read_manifest

    if args.batch_size < 1:
        raise ExplorerError("--batch-size must be at least 1.")
    if args.engine == "local" and args.address:
        raise ExplorerError("--address names a Dask cluster: add --engine dask (or leave out --address).")
    if args.workers < 1 or args.chunk_size < 1:
        raise ExplorerError(f"--{'workers' if args.workers < 1 else 'chunk-size'} must be at least 1.")
    weights = args.weights if args.weights is not None else default_backbone_path()
    if not weights.is_file():
        raise ExplorerError(
            f"backbone weights not found at {weights}. Pass --weights FILE.safetensors "
            "or train one with `python -m pretrain train`."
        )
    out: Path = args.out
    check_space_out(out)  # before --fits writes out/bundle

    if args.fits:
        bundle_dir = out / "bundle"
        print(f"preprocessing {len(args.fits)} FITS folder(s) into {bundle_dir}", file=sys.stderr)
        bundle = build_bundle(fits_dirs=args.fits, out=bundle_dir, progress=True, overwrite=True)
        print(summary(bundle), file=sys.stderr)
    else:
        bundle = load_bundle(args.bundle)

    reason = is_stale(out, weights, bundle.bundle_id, symmetry=args.symmetry)
    if not reason and not args.force and _same_parameters(read_manifest(out), args):
        print(f"{out} is up to date (same weights, bundle and parameters); --force re-embeds.")
        return 0

    engine = None
    if args.engine == "dask":
        from pretrain.data.bundle import IMAGES_FILE
        from pretrain.engines.dask_engine import DaskEmbedder, parts_folder_of

        engine = DaskEmbedder(
            Path(bundle.path) / IMAGES_FILE,
            bundle.bundle_id,
            weights,
            parts_folder_of(out),
            workers=args.workers,
            address=args.address,
            chunk_images=args.chunk_size,
        )
        if args.force:
            engine.remove_parts()  # --force: embed every chunk again
    space = embed_bundle_to_space(
        bundle,
        weights,
        out=out,
        device=args.device,
        progress=True,
        batch_size=args.batch_size,
        seed=args.seed,
        symmetry=args.symmetry,
        embed=engine,
    )
    if engine is not None:
        engine.remove_parts()  # the space holds them now
        print(
            f"{engine.name}: {len(engine.computed)} chunks embedded, {len(engine.reused)} taken from an earlier run",
            file=sys.stderr,
        )
    info = describe(space)
    print(
        f"space written: {info['sources']} sources -> {out} "
        f"(weights {info['weights']} {info['weights_sha256']}..., bundle {info['bundle_id']})"
    )
    return 0


def _same_parameters(manifest: dict, args: argparse.Namespace) -> bool:
    parameters = manifest.get("parameters") or {}
    return parameters.get("seed") == args.seed
