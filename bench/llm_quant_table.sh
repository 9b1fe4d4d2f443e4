#!/usr/bin/env bash
# SmolLM2-135M weight-only quantization table: RTN, GPTQ, AWQ and RTN with 1% salient channels
# in f16, at 4 and 3 bits (group 128), and group 32 exported to GGUF as Q4_0/Q4_1 and read back;
# held-out perplexity on Austen's Persuasion (the GPTQ/AWQ protocol, ctx 512), quantization time
# and the storage size. Calibration: random 512-token windows of the other five novels.
#   bench/llm_quant_table.sh [SAMPLES] [WINDOWS] [OUT_DIR]
# WINDOWS limits the perplexity to the first N windows of 512 tokens (0: the whole novel).
# ROWS="awq-w4g128 rtn-g32-q4_0" runs only the named rows (default: all). AWQ_SAMPLES sets
# AWQ's calibration windows (default: SAMPLES); its attention/MLP search runs on 8 of them.
set -euo pipefail
cd "$(dirname "$0")/.."
samples=${1:-128}; windows=${2:-0}; out=${3:-/tmp/shrink-llm-table}
source bench/austen_setup.sh
model="$cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

rows=()
ppl() { "$shrink" eval "$1" --perplexity "$held" --ctx 512 --max-windows "$windows" --json 2>/dev/null |
          python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["perplexity"])'; }
wanted() { [ -z "${ROWS:-}" ] || [[ " $ROWS " == *" $1 "* ]]; }
quantize() {  # name method bits group samples extra...
  local name=$1 method=$2 bits=$3 group=$4 n=$5; shift 5
  wanted "$name" || return 0
  local start=$(date +%s.%N)
  "$shrink" quantize "$model" --method "$method" --bits "$bits" --group-size "$group" --calib "$calib" \
    --samples "$n" --seq-len 512 --out "$out/$name.shrink" "$@" --json > "$out/$name.json"
  local secs=$(python3 -c "import json; print('%.0f' % json.load(open('$out/$name.json'))['seconds'])")
  local bpw=$(python3 -c "import json; print('%.2f' % json.load(open('$out/$name.json'))['bits_per_weight'])")
  rows+=("| $name | $method | $bits | $bpw | $secs | $(ppl "$out/$name.shrink") |")
}
# A group-32 result exported as GGUF (Q4_0 when symmetric, else Q4_1), perplexity of the GGUF.
exported() {  # name format
  local name=$1 format=$2
  wanted "$name" || return 0
  "$shrink" export "$out/$name.shrink" --out "$out/$name.gguf" $([ "$format" = q4_0 ] && echo --q4-0) > /dev/null
  local bpw=$([ "$format" = q4_0 ] && echo "4.50 (18 B / 32)" || echo "5.00 (20 B / 32)")
  rows+=("| $name.gguf | export $format | 4 | $bpw | - | $(ppl "$out/$name.gguf") |")
}
awq_samples=${AWQ_SAMPLES:-$samples}
base=$(wanted baseline && ppl "$model" || echo "-")
quantize rtn-w4g128 rtn 4 128 "$samples"
quantize gptq-w4g128 gptq 4 128 "$samples" --act-order --static-groups
quantize awq-w4g128 awq 4 128 "$awq_samples"
quantize rtn-salient1-w4g128 rtn 4 128 "$samples" --keep-salient 0.01
quantize rtn-w3g128 rtn 3 128 "$samples"
quantize gptq-w3g128 gptq 3 128 "$samples" --act-order --static-groups
quantize awq-w3g128 awq 3 128 "$awq_samples"
quantize rtn-salient1-w3g128 rtn 3 128 "$samples" --keep-salient 0.01
quantize rtn-g32-q4_0 rtn 4 32 "$samples" --sym
exported rtn-g32-q4_0 q4_0
quantize rtn-g32-q4_1 rtn 4 32 "$samples"
exported rtn-g32-q4_1 q4_1
quantize gptq-g32-q4_1 gptq 4 32 "$samples" --act-order --static-groups
exported gptq-g32-q4_1 q4_1
quantize awq-g32-q4_1 awq 4 32 "$awq_samples"
exported awq-g32-q4_1 q4_1
echo "SmolLM2-135M-Instruct, Persuasion perplexity (ctx 512, windows: ${windows:-all} (0 = all)), calibration $samples x 512 tokens"
echo "| model | method | bits | bits/weight stored | quantize s | perplexity |"
echo "|---|---|---|---|---|---|"
echo "| baseline (Q4_1 dequantized to f32) | - | 32 | 32 | - | $base |"
printf '%s\n' "${rows[@]}"
