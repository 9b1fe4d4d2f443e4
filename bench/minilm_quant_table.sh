#!/usr/bin/env bash
# MiniLM (all-MiniLM-L6-v2) quantization table: dynamic int8 and weight-only RTN / GPTQ / AWQ at
# 4 and 3 bits (group 128), each scored by the cosine similarity of its sentence embeddings to
# the fp32 model's on 200 sentences evenly spaced through Austen's Persuasion (held out).
# Calibration for GPTQ/AWQ: random 128-token windows of the other five novels.
#   bench/minilm_quant_table.sh [SAMPLES] [SENTENCES] [OUT_DIR]
# ROWS="gptq-w4g128 awq-w3g128" runs only the named rows (default: all).
set -euo pipefail
cd "$(dirname "$0")/.."
samples=${1:-128}; sentences=${2:-200}; out=${3:-/tmp/shrink-minilm-table}
source bench/austen_setup.sh
model="$cache/minilm"

rows=()
cosine() { "$shrink" eval "$1" --embeddings "$held" --reference "$model" --sentences "$sentences" --json 2>/dev/null |
             python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.5f | %.5f" % (r["mean_cosine"], r["min_cosine"]))'; }
size() { python3 -c "import os; print('%.1f MB' % (os.path.getsize('$1') / 1e6))"; }
wanted() { [ -z "${ROWS:-}" ] || [[ " $ROWS " == *" $1 "* ]]; }
row() {  # name method bits extra...
  local name=$1 method=$2 bits=$3; shift 3
  wanted "$name" || return 0
  local start=$(date +%s.%N)
  "$shrink" quantize "$model" --method "$method" "$@" --out "$out/$name.shrink" > "$out/$name.log" 2>&1
  local secs=$(python3 -c "print('%.1f' % ($(date +%s.%N) - $start))")
  rows+=("| $name | $method | $bits | $(size "$out/$name.shrink") | $secs | $(cosine "$out/$name.shrink") |")
}
weight_only() {  # name method bits extra...
  local name=$1 method=$2 bits=$3; shift 3
  row "$name" "$method" "$bits" --bits "$bits" --group-size 128 --calib "$calib" --samples "$samples" --seq-len 128 "$@"
}
row dynamic-int8 dynamic 8
weight_only rtn-w4g128 rtn 4
weight_only gptq-w4g128 gptq 4 --act-order --static-groups
weight_only awq-w4g128 awq 4
weight_only rtn-w3g128 rtn 3
weight_only gptq-w3g128 gptq 3 --act-order --static-groups
weight_only awq-w3g128 awq 3
echo "all-MiniLM-L6-v2, embedding cosine to fp32 on $sentences Persuasion sentences; calibration $samples x 128 tokens"
echo "| model | method | bits | file | quantize s (wall, with loading) | mean cosine | min cosine |"
echo "|---|---|---|---|---|---|---|"
echo "| fp32 (model.safetensors) | - | 32 | $(size "$model/model.safetensors") | - | 1 | 1 |"
printf '%s\n' "${rows[@]}"
