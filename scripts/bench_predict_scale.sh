#!/usr/bin/env bash
# docs/PERFORMANCE.md, "Predict at scale": `vitpose predict` under torchrun with 1 and 2
# processes, one thread each, on the same job: the 4 COCO sample images copied 8 times (32
# images), one fixed box each, a randomly initialised ViT-S simple (the cost of the released
# weights), fp32, flip test, no drawing.  Usage: scripts/bench_predict_scale.sh [DATA_DIR] [WORK]
set -euo pipefail
DATA=${1:-../shared/data}
B=${2:-/tmp/scbench}
export OMP_NUM_THREADS=1
mkdir -p "$B/in"
for i in $(seq 0 7); do for f in "$DATA"/coco/*.jpg; do cp "$f" "$B/in/$(basename "$f" .jpg)_$i.jpg"; done; done
python -c "import vitpose; vitpose.save_checkpoint(vitpose.build_model('vitpose-s-simple'), '$B/vit_s.pth')"
common="$B/in --model $B/vit_s.pth --box 50,50,300,400 --dtype float32 --no-draw --device cpu --overwrite"
for rep in 1 2 3; do
  for n in 1 2; do
    echo "== rep $rep n=$n $(uptime)"
    /usr/bin/time -f "torchrun $n: wall %e s, cpu %U+%S s" python -m torch.distributed.run --nproc_per_node $n --master_addr 127.0.0.1 --master_port $((29700+n+10*rep)) -m vitpose predict $common --out $B/r$n.jsonl 2>&1 | grep -E "image\(s\)|wall"
  done
done
echo "== end $(uptime)"
python -c "import sys; a, b = (sorted(open(f).read().splitlines()) for f in sys.argv[1:]); print('same results:', a == b, len(a))" "$B/r1.jsonl" "$B/r2.jsonl"
