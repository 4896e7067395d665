#!/usr/bin/env bash
# The GPU checks of issue #3 in one device call, for a session that is lent a GPU machine.
# Not yet run on a GPU (none has been lent to this project so far): read its output.
#
# Here, first:   python bench/device_kit.py pack --bundle pooled=runs/pooled \
#                    --bundle mirabest=runs/mirabest --out .device
# Then, with the device tool:  run(command="bash bench/device_session.sh", carry=[".device"],
#                                  timeout_s=600)
# It writes to $OUT (at most 8 files come back): the CUDA tests' log, the GPU throughput
# sections (printed, not written: merge them into BENCHMARKS.md here, beside the CPU rows),
# the training log and metrics, and the trained encoder in 15 MB parts (one file may be 16 MB
# at most): `cat backbone.part.* > backbone.safetensors` here.
#
# EPOCHS and BATCH size the training run: ~2,000 images at batch 1024 make 1 step an epoch,
# so a smaller batch with more epochs trains more. The stages' time limits add up to ~8.5 min
# with the install, inside the 10-minute call; a training run stopped by its limit saves its
# checkpoint and encoder (as Ctrl-C does), which still come back, and `--resume` continues it.
set -uo pipefail
OUT=${OUT:-/tmp/device_out}
EPOCHS=${EPOCHS:-1000}
BATCH=${BATCH:-256}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .device/wheels/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
python3 bench/device_kit.py unpack --kit .device --out runs || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv

timeout 90 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$OUT/test_cuda.log"
{
  timeout 100 python3 bench/bench_training.py --bundle runs/pooled --images 2048 --devices cuda --no-write
  timeout 60 python3 bench/bench_embedding.py --bundle runs/pooled --devices cuda --no-write
} 2>&1 | tee "$OUT/bench_gpu.log"
timeout 250 python3 -m pretrain train --bundle runs/pooled --out runs/byol_gpu --device cuda \
    --epochs "$EPOCHS" --batch-size "$BATCH" --no-progress 2>&1 | tee "$OUT/train.log"
cp runs/byol_gpu/metrics.jsonl runs/byol_gpu/config.json "$OUT/" 2>/dev/null
[ -f runs/byol_gpu/backbone.safetensors ] && split -b 15M runs/byol_gpu/backbone.safetensors "$OUT/backbone.part."
ls -la "$OUT"
