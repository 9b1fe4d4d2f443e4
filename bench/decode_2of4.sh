#!/usr/bin/env bash
# Decode speed of SmolLM2 pruned 2:4 by magnitude (its Linear layers marked for the 2:4 sparse
# kernel) against the same model pruned 50% unstructured (the same dense f32 layout, dense
# kernels): `shrink generate`, greedy, alternating runs; prints each run's tokens/s and the medians.
#   bench/decode_2of4.sh [RUNS] [TOKENS] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}; tokens=${2:-96}; out=${3:-/tmp/shrink-decode-2of4}
shrink=${SHRINK:-build/release/src/shrink}
model="${SHRINK_CACHE:-$HOME/.cache/shrink}/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
mkdir -p "$out"
"$shrink" prune "$model" --method magnitude --sparsity 0.5 --out "$out/unstructured.shrink" --json > /dev/null
"$shrink" prune "$model" --method magnitude --pattern 2:4 --out "$out/2of4.shrink" --json > /dev/null
rate() { "$shrink" generate "$1" --prompt "It is a truth universally acknowledged, that a single man" \
           --max-tokens "$tokens" --temperature 0 --json 2>/dev/null |
         python3 -c 'import json,sys; print("%.2f" % json.load(sys.stdin)["decode_tokens_per_second"])'; }
dense=(); sparse=()
for i in $(seq "$runs"); do
  dense+=("$(rate "$out/unstructured.shrink")"); sparse+=("$(rate "$out/2of4.shrink")")
  echo "run $i: 50% unstructured (dense kernels) ${dense[-1]} tokens/s, 2:4 (sparse kernel) ${sparse[-1]} tokens/s"
done
python3 -c "
import statistics, sys
d = statistics.median(map(float, '${dense[*]}'.split())); s = statistics.median(map(float, '${sparse[*]}'.split()))
print('median: dense %.2f, 2:4 %.2f tokens/s, %.2fx' % (d, s, s / d))"
