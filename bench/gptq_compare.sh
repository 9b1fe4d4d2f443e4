#!/usr/bin/env bash
# GPTQ on one layer, shrink vs the PyTorch reference (tools/gptq_reference.py, Debian's
# python3-torch at /usr/bin/python3), same weights and Hessian, same thread count: median time
# over REPS runs each, the speed ratio, and how many quantized weights agree.
#   bench/gptq_compare.sh [THREADS] [REPS]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}; reps=${2:-5}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
echo "| layer (out x in) | bits | group | shrink s | PyTorch s | speed-up | equal weights |"
echo "|---|---|---|---|---|---|---|"
for shape in "1536 576" "576 1536" "576 576"; do
  set -- $shape
  ours=$(OMP_NUM_THREADS=$threads build/release/bench/bench_gptq_layer "$1" "$2" 4 128 "$reps" "$work/l")
  theirs=$(/usr/bin/python3 tools/gptq_reference.py time "$work/l.w" "$work/l.h" "$1" "$2" 4 128 "$threads" "$reps")
  /usr/bin/python3 - "$work/l.q" "$work/l.w.torch_q" "$1" "$2" "$ours" "$theirs" <<'PY'
import json, sys
import numpy as np
a = np.fromfile(sys.argv[1], dtype=np.float32); b = np.fromfile(sys.argv[2], dtype=np.float32)
same = np.mean(np.abs(a - b) <= 1e-5 * (1 + np.abs(b)))
s, t = json.loads(sys.argv[5])["median_s"], json.loads(sys.argv[6])["median_s"]
print(f"| {sys.argv[3]} x {sys.argv[4]} | 4 | 128 | {s:.3f} | {t:.3f} | {t / s:.1f}x | {100 * same:.2f}% |")
PY
done
