#!/usr/bin/env bash
# SmolLM2-135M weight-only quantization table: RTN vs GPTQ at 4 and 3 bits (group 128), held-out
# perplexity on Austen's Persuasion (the GPTQ/AWQ protocol, ctx 512), quantization time and the
# int4 storage size. Calibration: random 512-token windows of the other five novels.
#   bench/llm_quant_table.sh [SAMPLES] [WINDOWS] [OUT_DIR]
# WINDOWS limits the perplexity to the first N windows of 512 tokens (0: the whole novel).
set -euo pipefail
cd "$(dirname "$0")/.."
samples=${1:-128}; windows=${2:-0}; out=${3:-/tmp/shrink-llm-table}
cache="${SHRINK_CACHE:-$HOME/.cache/shrink}"
model="$cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
held="$cache/austen/persuasion.txt"
shrink=${SHRINK:-build/release/src/shrink}
mkdir -p "$out"
calib="$out/austen_calibration.txt"
cat "$cache"/austen/{emma,mansfieldpark,northangerabbey,prideprejudice,sensesensibility}.txt > "$calib"

rows=()
ppl() { "$shrink" eval "$1" --perplexity "$held" --ctx 512 --max-windows "$windows" --json 2>/dev/null |
          python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["perplexity"])'; }
quantize() {  # name method bits extra...
  local name=$1 method=$2 bits=$3; shift 3
  local start=$(date +%s.%N)
  "$shrink" quantize "$model" --method "$method" --bits "$bits" --group-size 128 --calib "$calib" \
    --samples "$samples" --seq-len 512 --out "$out/$name.shrink" "$@" --json > "$out/$name.json"
  local secs=$(python3 -c "import json; print('%.0f' % json.load(open('$out/$name.json'))['seconds'])")
  local bpw=$(python3 -c "import json; print('%.2f' % json.load(open('$out/$name.json'))['bits_per_weight'])")
  rows+=("| $name | $method | $bits | $bpw | $secs | $(ppl "$out/$name.shrink") |")
}
base=$(ppl "$model")
quantize rtn-w4g128 rtn 4
quantize gptq-w4g128 gptq 4 --act-order --static-groups
quantize rtn-w3g128 rtn 3
quantize gptq-w3g128 gptq 3 --act-order --static-groups
echo "SmolLM2-135M-Instruct, Persuasion perplexity (ctx 512, windows: ${windows:-all} (0 = all)), calibration $samples x 512 tokens"
echo "| model | method | bits | bits/weight stored | quantize s | perplexity |"
echo "|---|---|---|---|---|---|"
echo "| baseline (Q4_1 dequantized to f32) | - | 32 | 32 | - | $base |"
printf '%s\n' "${rows[@]}"
