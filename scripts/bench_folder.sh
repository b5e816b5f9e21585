#!/usr/bin/env bash
# docs/PERFORMANCE.md, "A folder of 100 images": `vitpose predict` with its defaults on 100
# one-person images (the 4 COCO sample images copied 25 times, one whole-image box each, flip
# test, no drawing), on a fresh cache (`--backend auto` calibrates during the job), again warm
# (the remembered choice), and with `--backend torch`; then `vitpose bench` times the model call
# of what such a job runs after its calibration against the peers (the exported graph in
# OpenVINO and ONNX Runtime with their defaults), float32 and the `auto` dtype policy.
# Usage: scripts/bench_folder.sh WEIGHTS [DATA_DIR] [WORK]
set -euo pipefail
W=${1:?usage: scripts/bench_folder.sh WEIGHTS [DATA_DIR] [WORK]}
DATA=${2:-../shared/data}
B=${3:-/tmp/folderbench}
mkdir -p "$B/in"
for i in $(seq -w 1 25); do for f in "$DATA"/coco/*.jpg; do cp "$f" "$B/in/${i}_$(basename "$f")"; done; done
export VITPOSE_CACHE="$B/cache"
rm -rf "$VITPOSE_CACHE"
echo "== $(grep -m1 'model name' /proc/cpuinfo) ($(nproc) CPUs)"
run() {
  local name=$1; shift
  echo "== $name: $(uptime)"
  /usr/bin/time -f "$name: wall %e s, peak memory %M kB" vitpose predict "$B/in" --weights "$W" \
    --detector whole-image --no-draw --overwrite --out-dir "$B/out-$name" "$@" 2>&1 \
    | grep -E "engine|wall" || true
}
run fresh-defaults
run warm-defaults
run torch --backend torch
run torch-float32 --backend torch --dtype float32
[[ -n "${NO_BENCH:-}" ]] && exit 0
echo "== bench: $(uptime)"
vitpose bench --model vitpose-b-simple --weights "$W" --backend auto --dtype auto float32 \
  --auto-crops 200 --peers openvino onnxruntime --images "$B/in" --batch-size 1 \
  --no-transformers --no-first-result --no-memory --no-peak --out-dir "$B/bench" 2>&1 \
  | grep -E "auto|crops/s|CPU|load"
echo "== end: $(uptime)"
