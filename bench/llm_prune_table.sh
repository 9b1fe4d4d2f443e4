#!/usr/bin/env bash
# SmolLM2-135M one-shot pruning table: magnitude vs Wanda vs SparseGPT at 50% unstructured and
# 2:4, every Linear layer of the transformer blocks (lm_head/embedding dense); held-out
# perplexity on Austen's Persuasion (ctx 512, first WINDOWS windows), calibration random
# 512-token windows of the other five novels.
#   bench/llm_prune_table.sh [SAMPLES] [WINDOWS] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
samples=${1:-128}; windows=${2:-40}; out=${3:-/tmp/shrink-prune-table}
source bench/austen_setup.sh
model="$cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

ppl() { "$shrink" eval "$1" --perplexity "$held" --ctx 512 --max-windows "$windows" --json 2>/dev/null |
          python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["perplexity"])'; }
rows=()
for target in "--sparsity 0.5" "--pattern 2:4"; do
  for method in magnitude wanda sparsegpt; do
    name="$method-$(echo "$target" | tr -d ' -' | tr ':' '_')"
    "$shrink" prune "$model" --method "$method" $target --calib "$calib" --samples "$samples" --seq-len 512 \
      --out "$out/$name.shrink" --json > "$out/$name.json"
    read -r secs sparsity < <(python3 -c "import json; r=json.load(open('$out/$name.json')); print('%.0f %.3f' % (r['seconds'], r['sparsity']))")
    rows+=("| $method | ${target#--} | $sparsity | $(du -b "$out/$name.shrink" | awk '{printf "%.1f MB", $1/1e6}') | $secs | $(ppl "$out/$name.shrink") |")
  done
done
echo "SmolLM2-135M-Instruct one-shot pruning, Persuasion perplexity (ctx 512, first $windows windows), calibration $samples x 512"
echo "| method | target | sparsity of block Linears | file | prune s | perplexity |"
echo "|---|---|---|---|---|---|"
echo "| dense baseline | - | 0 | - | - | $(ppl "$model") |"
printf '%s\n' "${rows[@]}"
