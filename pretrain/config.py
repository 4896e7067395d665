"""Every tunable default of the project, in one place.

Values follow the reference study (see ``../shared/docs/science.md``) unless a comment says
otherwise. Command-line flags and the app read their defaults from here, so changing a
number here changes it everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

from pretrain import surveys

# --- Images -----------------------------------------------------------------------------
# What differs between surveys (pixel, beam, cutout service, footprint) is in
# pretrain/surveys.py, one profile per survey; FIRST's figures are repeated here by name.
FIRST_PIXEL_SCALE_ARCSEC = surveys.survey("first").pixel_scale_arcsec  # FIRST's native pixel (1.8 arcsec/px)
FIRST_BEAM_ARCSEC = surveys.survey("first").beam_fwhm_arcsec  # FIRST restoring beam FWHM (5 arcsec)
# The model's grid is FIRST's (it was trained on FIRST): every image is resampled onto it.
MODEL_PIXEL_SCALE_ARCSEC = FIRST_PIXEL_SCALE_ARCSEC
IMAGE_SIZE_PX = 150  # side of the stored (preprocessed) image, at the model's pixel scale
IMAGE_FIELD_ARCSEC = IMAGE_SIZE_PX * MODEL_PIXEL_SCALE_ARCSEC  # 270 arcsec
MODEL_INPUT_PX = 70  # the model sees the central 70 x 70 pixels
CLIP_SIGMA = 3.0  # emission below CLIP_SIGMA x robust noise is set to zero (a survey's profile may differ)

# --- Angular extent ---------------------------------------------------------------------
EXTENT_DETECTION_SIGMA = 3.0  # pixels above this x noise count as emission
EXTENT_ISLAND_PEAK_SIGMA = 5.0  # an island counts only if its peak reaches this x noise
EXTENT_MIN_ISLAND_PX = 5  # ... and it has at least this many FIRST pixels (about one beam)
EXTENT_SMOOTHED_RESOLUTION_ARCSEC = 15.0  # faint extended emission is also sought at this resolution (lobe-sized)
EXTENT_SEED_RADIUS_ARCSEC = 45.0  # islands reaching this close to the centre are the source
EXTENT_LINK_ARCSEC = 15.0  # ... with islands linked to them by gaps no wider than this
EXTENT_RELATIVE_PEAK = 0.05  # ... and not fainter than this fraction of its brightest island
# Lobes further out join when they have a counterpart on the opposite side of the host:
EXTENT_PAIR_TOLERANCE_DEG = 30.0  # directions within this of opposite (bent sources)
EXTENT_PAIR_ARM_RATIO = 3.0  # arm lengths within this factor (asymmetric doubles)
EXTENT_MAX_ARM_ARCSEC = 150.0  # ... each lobe within this of the centre (chance pairs beyond)

# --- Bundles ----------------------------------------------------------------------------
DUPLICATE_RADIUS_ARCSEC = 5.0  # the same source seen twice: positions closer than this
NAME_WCS_TOLERANCE_ARCSEC = 300.0  # a file name's position farther than this from its WCS: the WCS wins
BUNDLE_WORKERS = 2  # processes reading + preprocessing files while a bundle builds
BUNDLE_POOL_MIN_FILES = 200  # fewer files than this: one process (starting workers costs seconds)
PROCESSED_IMAGE_PIXEL_SCALE_ARCSEC = MODEL_PIXEL_SCALE_ARCSEC  # --images PNGs (Griese et al.: FIRST grid)

# --- Cutouts through NASA SkyView (the survey's name there and its footprint: pretrain/surveys.py)
SKYVIEW_URL = os.environ.get("EXPLORER_SKYVIEW_URL", "https://skyview.gsfc.nasa.gov/current/cgi/basicform.pl")
FIRST_SURVEY = surveys.survey("first").skyview_survey  # "VLA FIRST (1.4 GHz)"
# No FIRST field lies south of this (its southern strip reaches about -11 deg): positions
# there are refused at once, without a network call. Other positions are asked of SkyView,
# whose blank image is what says "outside the footprint". Each survey has its own limits.
FIRST_DEC_MIN_DEG = surveys.survey("first").dec_min_deg  # -40 deg
CUTOUT_PIXELS = 300  # a FIRST cutout as the MiraBest files are: 300 px = 9 arcmin
CUTOUT_FIELD_ARCSEC = CUTOUT_PIXELS * FIRST_PIXEL_SCALE_ARCSEC  # another survey's cutout covers the same 9 arcmin
CUTOUT_TIMEOUT_S = 30.0  # per network request
CUTOUT_RETRIES = 3
CUTOUT_BACKOFF_S = 1.0  # first wait between retries; doubles each time

# --- FIRST cutout client details (pretrain/data/first_client.py) ------------------------
CUTOUT_TOTAL_TIMEOUT_S = 60.0  # one look-up, all requests and retries, gives up after this
CUTOUT_CENTRE_TOLERANCE_ARCSEC = 5.0  # image centre (WCS) vs the requested position
CUTOUT_MAX_BYTES = 64 * 1024**2  # a FITS answer larger than this is not a cutout
SKYVIEW_PAGE_MAX_BYTES = 4 * 1024**2  # a SkyView HTML page (form, result) larger than this, decoded, is refused
FITS_MAX_PIXELS = 4096 * 4096  # larger images are refused from the header, before decompressing
FITS_MAX_BYTES = FITS_MAX_PIXELS * 8 + 1024**2  # a FITS file (or what its .gz expands to): its largest image in float64
FITS_MAX_RESAMPLED_PIXELS = 10_000**2  # an image resampled onto the model's grid: at most 5 x 5 deg of 1.8" pixels
POSITION_MAX_CHARS = 200  # typed positions / names longer than this are refused (and the Look-up box caps)
CUTOUT_CACHE_POSITION_DECIMALS = 4  # cache key: RA/Dec rounded to 1e-4 deg (0.36 arcsec)

# --- MiraBest, the default data set -----------------------------------------------------
MIRABEST_REPO_URL = os.environ.get("EXPLORER_MIRABEST_URL", "https://raw.githubusercontent.com/fmporter/MiraBest")
MIRABEST_API_URL = os.environ.get("EXPLORER_MIRABEST_API_URL", "https://api.github.com/repos/fmporter/MiraBest")
MIRABEST_COMMIT = "158e6690aa4162ef52792ac9dcf932fe00839838"
MIRABEST_FITS_FOLDER = "FITS"
MIRABEST_FILE_COUNT = 1255

# --- MiraBest download and discovery (pretrain/data/mirabest.py) ------------------------
MIRABEST_DIR_ENV = "EXPLORER_MIRABEST_DIR"  # a local folder of MiraBest FITS files wins
MIRABEST_MANIFEST = "manifest.json"  # written last: marks a complete, verified download
MIRABEST_TIMEOUT_S = 30.0  # per network request (connect and each read)
# wall-clock limit of one attempt at one file (a server dripping bytes resets the read
# time-out with every byte; MiraBest files are ~20 kB) and of the listing's size
MIRABEST_FILE_DEADLINE_S = 120.0
MIRABEST_LISTING_MAX_BYTES = 16 * 1024**2
MIRABEST_RETRIES = 4  # extra attempts per file / listing after the first
MIRABEST_BACKOFF_S = 1.0  # first wait between attempts; doubles each time
MIRABEST_WORKERS = 4  # files fetched at once (small files: latency, not bandwidth, dominates)

# --- Where things live ------------------------------------------------------------------
REPO_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = REPO_ROOT / "assets"
SHARED_DATA_DIR = Path(os.environ.get("EXPLORER_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def cache_dir() -> Path:
    """The user's cache for downloads, cutouts and prepared spaces (``EXPLORER_CACHE``)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "radio-latent-explorer"
    path = Path(os.environ.get("EXPLORER_CACHE", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- Backbone ----------------------------------------------------------------------------
DEFAULT_BACKBONE_FILE = "byol_resnet18_first.safetensors"  # in assets/, with MODEL_CARD.md

# --- Embedding, the map and spaces (pretrain/embed.py, mapping.py, space.py) ------------
EMBED_BATCH_SIZE = 256  # images per forward pass when embedding
# A source's representation is the mean of the encoder's outputs over the 8 symmetries of the
# square ("d4": rotations by 0/90/180/270 degrees, each also mirrored). Position angle on the
# sky carries no morphological meaning; BYOL only pushes the encoder towards rotation
# invariance, and averaging over these pixel-exact transforms (no interpolation) makes the
# representation exactly invariant to them. It lowers the linear-probe error of the shipped
# backbone on MiraBest by about a third (BENCHMARKS.md, representation quality), for 8 forward
# passes per image. "none": one forward pass of the image as it is.
EMBED_SYMMETRY = "d4"
EMBED_SYMMETRIES = ("d4", "none")
# Where `embed` runs (pretrain/engines/): "local" is this process; "dask" a Dask cluster, local
# (EMBED_WORKERS worker processes) or an existing one (--address). Dask, not Ray: its wheels and
# dependencies are 5 MB against Ray's 76 MB wheel alone, and a 2-worker LocalCluster starts in ~2 s here.
EMBED_ENGINES = ("local", "dask")
EMBED_ENGINE = "local"
EMBED_WORKERS = 2  # worker processes of a local cluster, one task each (torch threads: cores / workers)
EMBED_CHUNK_IMAGES = 1024  # images per task and per part file: the unit a killed job resumes from
EMBED_CLUSTER_TIMEOUT_S = 30.0  # connecting to --address (or starting local workers) gives up after this
MAP_PCA_COMPONENTS = 200  # 512-d -> 200-d before UMAP (99.7 % of the variance in the study)
MAP_N_NEIGHBORS = 50  # UMAP, as in the reference code
MAP_MIN_DIST = 0.0005
MAP_METRIC = "cosine"
MAP_SEED = 42  # UMAP random_state: the same embeddings give the same map
MAP_MIN_SOURCES = 5  # fewer images than this cannot make a meaningful map
MAP_PLACE_NEIGHBOURS = 5  # a new point's map position: weighted mean of this many nearest sources
# Survey-sized maps: UMAP on every source does not scale (hours and tens of GB at 1 M). Above
# MAP_FIT_SAMPLE sources the PCA and UMAP are fitted on a random MAP_FIT_SAMPLE of them and the
# rest are placed on that map: "neighbours" = the weighted mean of their MAP_PLACE_NEIGHBOURS
# nearest fitted sources (cosine, PCA space), "umap" = the fitted UMAP's own transform.
# BENCHMARKS.md (bench_map_sample) measures both against a map fitted on everything.
MAP_FIT_SAMPLE = 50_000
MAP_PLACE_METHOD = "neighbours"
MAP_PLACE_METHODS = ("neighbours", "umap")
# Placing by "neighbours": an exact search of the sample while (sources placed x sample) stays
# under this; above it (a survey: 950,000 x 50,000) a FAISS IVF index over the sample scanning
# MAP_PLACE_NPROBE of its cells (~4 sqrt(sample)) finds them, ~5x faster (BENCHMARKS.md, bench_map_place).
MAP_PLACE_EXACT_MAX_PAIRS = 2_000_000_000
MAP_PLACE_NPROBE = 32

# --- Evaluation (pretrain/evaluate.py) ---------------------------------------------------
MIRABEST_TEST_SIZE = 104  # the standard MiraBest Confident test set
EXTENT_ORDERING_K = 15  # neighbours on the map for the extent-ordering Spearman

# --- BYOL pretraining (pretrain/augment.py, pretrain/models/byol.py, pretrain/train.py) ---
# Augmentations (science.md). Crop scale = fraction of the 70 px crop's area kept.
PRETRAIN_CROP_SCALE = (0.8, 1.0)  # not the usual 0.08-1: sparse radio images lose meaning
FINETUNE_CROP_SCALE = (0.9, 1.0)
AUG_CROP_RATIO = (3 / 4, 4 / 3)  # aspect ratios of the random resized crop (torchvision's)
AUG_FLIP_P = 0.5  # horizontal and vertical, each
PRETRAIN_JITTER_P = 0.8
PRETRAIN_JITTER_STRENGTH = 0.5  # s; brightness / contrast factors drawn in 1 +- 0.8 s
PRETRAIN_BLUR_P = 0.1
AUG_BLUR_SIGMA = (0.1, 2.0)  # px (SimCLR / BYOL)
AUG_BLUR_KERNEL_PX = 7  # about 10 % of the 70 px view, odd
# Model and optimiser
BYOL_TAU_BASE = 0.996  # EMA of the target; rises to 1 on a cosine schedule over training
PRETRAIN_EPOCHS = 500
PRETRAIN_BATCH_SIZE = 1024  # on a GPU, as the study
PRETRAIN_BATCH_SIZE_CPU = 128  # on a CPU: memory, and a small data set still gets several steps per epoch
PRETRAIN_BASE_LR = 0.2  # SGD; the lr used is base x batch / 256
PRETRAIN_MOMENTUM = 0.9
PRETRAIN_WEIGHT_DECAY = 1.5e-6
PRETRAIN_WARMUP_EPOCHS = 10  # linear warm-up, then cosine decay to 0
PRETRAIN_WARMUP_MAX_FRACTION = 0.2  # a short run warms up for at most this part of its steps
PRETRAIN_MIN_EXTENT_ARCSEC = 20.0  # drop sources smaller than this (mostly point sources)
PRETRAIN_SEED = 0
ENCODER_STEMS = ("imagenet", "reference")  # pretrain/models/resnet.py
PRETRAIN_STEM = "imagenet"  # the encoder's stem: "imagenet" (7x7 s2) or "reference" (3x3 s1, the study's)
PRETRAIN_WIDTH = 64  # channels after the stem (ResNet-18's 64; the representation is 8 x this)
ENCODER_SYMMETRIES = ("none", "d4")  # pretrain/models/resnet.py and d4.py
PRETRAIN_SYMMETRY = "none"  # "d4": group convolutions, a representation invariant to turns and mirror images
PRETRAIN_EXCLUDE_HELD_OUT = True  # leave the held-out sky (pretrain/holdout.py) out of pretraining
# Representation-quality monitor: kNN accuracy, FRI vs FRII confident sources of the bundles
MONITOR_EVERY_EPOCHS = 5
MONITOR_K = 20
MONITOR_TEST_FRACTION = 0.3  # stratified hold-out, fixed seed
MONITOR_MAX_SOURCES = 2000  # cap on labelled sources embedded per check (cost)
# Training precision: "auto" = bf16 autocast + channels_last on CUDA and on CPUs with native
# bf16 (AVX512-BF16 / AMX; ~2x the fp32 step rate measured on this project's 2-core EPYC),
# else fp32. Embedding stays fp32 on the CPU so a look-up matches the cached space exactly.
TRAIN_PRECISION = "auto"
# Keep the uint8 training images on the GPU when they take less than this (no copies per step)
PRETRAIN_GPU_RESIDENT_MAX_BYTES = 8 * 1024**3

# --- Fine-tuning, linear probes and training jobs (pretrain/finetune.py, tasks.py, explorer/jobs.py)
FINETUNE_TASK = "mirabest-fr"
FINETUNE_DEPTH = 1  # blocks unfrozen from the top: 0 = linear probe, 1 = last block + head
FINETUNE_EPOCHS = 20  # small-run default: last block + head, all labels: ~2.5 min on 2 idle CPU cores (study: 300)
FINETUNE_BATCH_SIZE = 64
FINETUNE_BASE_LR = 1e-3  # AdamW; the lr used is base x batch / 256
FINETUNE_WEIGHT_DECAY = 0.005  # on weights only; not on biases and batch-norm parameters
FINETUNE_LAYER_DECAY = 0.75  # block i from the top gets lr x decay^i (the head: i = 0)
FINETUNE_SPLIT_SEED = 0  # fixed, not the run's seed: every run is scored on the same test sources
GRIESE_TEST_FRACTION = 0.2  # griese-bent: stratified test split
FRDEEP_MATCH_RADIUS_ARCSEC = 60.0  # FRDEEP bundle rows <-> release catalogue (for its train/test split)
FINETUNE_EVAL_BATCH_SIZE = 256
RUNS_DIR_ENV = "EXPLORER_RUNS"  # where the app's training runs go (default: cache_dir() / "runs")
JOB_CANCEL_GRACE_S = 10.0  # after SIGTERM, wait this long before SIGKILL
JOB_REFRESH_S = 2.0  # the Training page re-reads a running job's progress this often
JOB_MAX_RUNNING = 2  # runs training at once from one host (each takes the CPU cores it finds); more are refused
MAX_RUNS_ENV = "EXPLORER_MAX_RUNS"  # overrides JOB_MAX_RUNNING

# --- The explorer app (app.py, pages/, explorer/) ---------------------------------------
APP_NEIGHBOURS_K = 12  # neighbours shown for a click or a look-up
APP_SKY_DUPLICATE_RADIUS_ARCSEC = 30.0  # drop a neighbour this close on the sky to an earlier result
# "Neighbours by the representation + pixel measurements" (pretrain/measured_neighbours.py): the
# measurements appended, and each one's weight (x sqrt(d)/10 of one standardised representation
# column). Extent and FR ratio at weight 3 gave the best held-out purity of the study's
# combinations (BENCHMARKS.md, bench_measurements); fluxes and components added nothing.
NEIGHBOUR_MEASUREMENTS = ("angular_extent_estimated_arcsec", "fr_ratio")
NEIGHBOUR_MEASUREMENT_WEIGHT = 3.0
APP_CUTOUT_TIMEOUT_S = 15.0  # per request when the app fetches images for a catalogue-only space
APP_CATALOGUE_MATCH_ARCSEC = 30.0  # a look-up this close to a catalogue source is that source
# From browsing to science (explorer/links.py, votable.py, samp_send.py, tags.py, neighbourhood.py)
APP_LINK_SEARCH_RADIUS_ARCSEC = 30.0  # NED / SIMBAD / FIRST searches around a source: a few FIRST beams
APP_LINK_CUTOUT_ARCMIN = 4.5  # NVSS / VLASS cutouts: the stored image's 270″ field
APP_SAMP_TIMEOUT_S = 3.0  # "send to TOPCAT / Aladin" gives up after this (a hung hub must not block the app)
APP_OUTLIER_K = 10  # outlier score: cosine distance to the k-th most similar source (k > twins)
APP_OUTLIER_MAX_SOURCES = 20_000  # larger spaces get no outlier ranking (O(n²·512) once per process: ~5 s here)
APP_OUTLIER_SHOWN = 12  # the "most unusual sources" gallery
