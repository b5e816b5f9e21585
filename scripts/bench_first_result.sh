#!/usr/bin/env bash
# Time to the first result as a new user meets it: `vitpose predict` on the example image with
# the default engine choice (fresh cache, then warm) against `--backend torch` (fresh cache),
# in one run, on this machine. Prints wall seconds and peak memory (max RSS) of each command.
#
#   bash scripts/bench_first_result.sh [WEIGHTS.pth] [ROUNDS]
#
# WEIGHTS: a ViTPose checkpoint (default: a random ViTPose-B simple saved by
# vitpose.save_checkpoint, which costs the same as the released weights).
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then sed -n 2,8p "$0"; exit 0; fi
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
weights=${1:-$tmp/B.pth}
rounds=${2:-2}
if [[ ! -f "$weights" ]]; then
  python -c "import vitpose, sys; vitpose.save_checkpoint(vitpose.build_model('vitpose-b-simple'), sys.argv[1])" "$weights"
fi
grep -m1 "model name" /proc/cpuinfo || true
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
run() {  # label, cache folder, extra options
  local label=$1 cache=$2; shift 2
  /usr/bin/time -f "%e %M" -o "$tmp/time" env VITPOSE_CACHE="$cache" vitpose predict \
    examples/000000000785.jpg --weights "$weights" --detector hog --fallback whole-image \
    --out-dir "$tmp/out" --overwrite "$@" >/dev/null 2>&1
  read -r wall rss < "$tmp/time"
  printf "%-28s %6.2f s  %7.0f MB\n" "$label" "$wall" "$((rss / 1024))"
}
for r in $(seq "$rounds"); do
  echo "round $r"
  run "defaults, fresh cache" "$tmp/cache-auto-$r"
  run "defaults, warm cache" "$tmp/cache-auto-$r"
  run "--backend torch, fresh cache" "$tmp/cache-torch-$r" --backend torch
done
