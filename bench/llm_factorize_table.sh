#!/usr/bin/env bash
# Low-rank factorization of the transformer blocks' Linear layers: plain SVD vs ASVD vs SVD-LLM at
# the same parameter fractions, on SmolLM2-135M (Persuasion perplexity, ctx 512, first WINDOWS
# windows) and on MiniLM (embedding cosine to fp32 on 200 Persuasion sentences). Calibration:
# random windows of the other five novels (SAMPLES x 512 tokens for SmolLM2, x 128 for MiniLM).
#   bench/llm_factorize_table.sh [SAMPLES] [WINDOWS] [OUT_DIR]
# Environment: ROWS="smol minilm", RATIOS="0.9 0.8 0.6", METHODS="svd asvd svd-llm" choose the
# rows; BASELINE=0 skips the dense SmolLM2 row.
set -euo pipefail
cd "$(dirname "$0")/.."
samples=${1:-32}; windows=${2:-40}; out=${3:-/tmp/shrink-factorize-table}
source bench/austen_setup.sh
smol="$cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
minilm="$cache/minilm"
rows=${ROWS:-"smol minilm"}; ratios=${RATIOS:-"0.9 0.8 0.6"}; methods=${METHODS:-"svd asvd svd-llm"}

ppl() { "$shrink" eval "$1" --perplexity "$held" --ctx 512 --max-windows "$windows" --json 2>/dev/null |
          python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["perplexity"])'; }
cosine() { "$shrink" eval "$1" --embeddings "$held" --reference "$minilm" --sentences 200 --json 2>/dev/null |
             python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.5f | %.5f" % (r["mean_cosine"], r["min_cosine"]))'; }
factorize() {  # model name method ratio seq_len -> "fraction | seconds"
  local model=$1 name=$2 method=$3 ratio=$4 seq=$5
  local extra=()
  [ "$method" != svd ] && extra=(--calib "$calib" --samples "$samples" --seq-len "$seq")
  "$shrink" factorize "$model" --method "$method" --ratio "$ratio" "${extra[@]}" --out "$out/$name.shrink" --json \
    > "$out/$name.json"
  python3 -c "import json; r=json.load(open('$out/$name.json')); print('%.3f | %.0f' % (r['block_linear_params_after'] / r['block_linear_params_before'], r['seconds']))"
}
sweep() {  # prefix model seq_len score-function: one row per ratio and method
  for ratio in $ratios; do
    for method in $methods; do
      local name="$1-$method-$ratio"
      echo "| $method | $ratio | $(factorize "$2" "$name" "$method" "$ratio" "$3") | $("$4" "$out/$name.shrink") |"
    done
  done
}

if [[ $rows == *smol* ]]; then
  echo "SmolLM2-135M-Instruct, Persuasion perplexity (ctx 512, first $windows windows); calibration $samples x 512"
  echo "| method | --ratio | block Linear parameters kept | factorize s | perplexity |"
  echo "|---|---|---|---|---|"
  [ "${BASELINE:-1}" = 1 ] && echo "| dense | - | 1 | - | $(ppl "$smol") |"
  sweep smol "$smol" 512 ppl
fi
if [[ $rows == *minilm* ]]; then
  echo
  echo "all-MiniLM-L6-v2, embedding cosine to fp32 on 200 Persuasion sentences; calibration $samples x 128"
  echo "| method | --ratio | block Linear parameters kept | factorize s | mean cosine | min cosine |"
  echo "|---|---|---|---|---|---|"
  sweep minilm "$minilm" 128 cosine
fi
