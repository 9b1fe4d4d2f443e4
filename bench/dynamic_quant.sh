#!/usr/bin/env bash
# Dynamic int8 quantization, shrink vs PyTorch (Debian's python3-torch, quantize_dynamic under each
# quantized engine it has, the faster one per case), same threads: 24 x Linear(4096, 4096) at
# batch 1 and 64, LSTM(512, 512) over 100 steps at batch 1 and 32. Runs alternate (shrink,
# PyTorch, shrink, ...) so that machine noise hits both; each run reports medians of its repeats,
# the table shows the median run.
# Usage: bench/dynamic_quant.sh [threads] [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-2}"
runs="${2:-3}"
bench=build/release/bench/bench_dynamic_quant
[ -x "$bench" ] || scripts/build.sh release --target bench_dynamic_quant > /dev/null
/usr/bin/python3 -c "import torch" 2> /dev/null || { echo "needs Debian's python3-torch (apt-get install python3-torch)" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for run in $(seq "$runs"); do
  "$bench" "$threads" 7 2> /dev/null > "$out/shrink-$run.json"
  GLOG_minloglevel=2 /usr/bin/python3 bench/dynamic_quant_pytorch.py --threads "$threads" --repeats 7 2> /dev/null > "$out/torch-$run.json"
done
python3 - "$out" "$runs" "$threads" <<'PY'
import json, statistics, sys
folder, runs, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ours = [json.load(open(f"{folder}/shrink-{r}.json")) for r in range(1, runs + 1)]
theirs = [json.load(open(f"{folder}/torch-{r}.json")) for r in range(1, runs + 1)]
engines = theirs[0]["engines"]
med = lambda runs, case, key: statistics.median(r[case][key] for r in runs)
print(f"Dynamic int8 quantization, {threads} threads, milliseconds (medians of {runs} alternating runs x 7 repeats)")
print(f"PyTorch {theirs[0]['torch']}, engines {', '.join(engines)}\n")
print("| case | shrink f32 | shrink int8 | int8 vs f32 | PyTorch f32 | " + " | ".join(f"PyTorch {e}" for e in engines)
      + " | shrink vs best PyTorch |")
print("|---|---:|---:|---:|---:|" + "---:|" * len(engines) + "---:|")
for case in [k for k in ours[0] if k not in ("threads", "repeats")]:
    f32, int8 = med(ours, case, "f32_ms"), med(ours, case, "int8_ms")
    torch = {e: med(theirs, case, f"{e}_ms") for e in engines if f"{e}_ms" in theirs[0][case]}
    best = min(torch.values())
    cells = " | ".join(f"{torch[e]:.1f}" if e in torch else "failed" for e in engines)
    print(f"| {case} | {f32:.1f} | {int8:.1f} | {f32 / int8:.2f}x | {med(theirs, case, 'f32_ms'):.1f} | {cells} | "
          f"{best / int8:.2f}x |")
PY
