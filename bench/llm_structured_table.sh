#!/usr/bin/env bash
# Structured pruning of SmolLM2-135M, one-shot, no fine-tuning: MLP neurons (--channels) and
# attention key/value head groups (--heads) removed, ranked by weight norms or by their
# contribution on calibration text (||X_c|| ||W[:, c]|| at the down / o projections, from SAMPLES
# random 512-token windows of the other five novels). Persuasion perplexity, ctx 512, first
# WINDOWS windows.
#   bench/llm_structured_table.sh [SAMPLES] [WINDOWS] [OUT_DIR]
# Environment: CHANNELS="0.1 0.25" HEADS="0.34" choose the rows.
set -euo pipefail
cd "$(dirname "$0")/.."
samples=${1:-32}; windows=${2:-40}; out=${3:-/tmp/shrink-structured-table}
source bench/austen_setup.sh
smol="$cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
channels=${CHANNELS:-0.1 0.25}; heads=${HEADS:-0.34}

ppl() { "$shrink" eval "$1" --perplexity "$held" --ctx 512 --max-windows "$windows" --json 2>/dev/null |
          python3 -c 'import json,sys; print("%.2f" % json.load(sys.stdin)["perplexity"])'; }
row() {  # what fraction ranking
  local what=$1 fraction=$2 ranking=$3 name="$1-$2-$3" extra=()
  [ "$ranking" = activations ] && extra=(--calib "$calib" --samples "$samples" --seq-len 512)
  "$shrink" prune "$smol" "--$what" "$fraction" "${extra[@]}" --out "$out/$name.shrink" --json > "$out/$name.json"
  local params; params=$(python3 -c "import json; r=json.load(open('$out/$name.json')); print('%.1fM' % (r['params_after'] / 1e6))")
  echo "| --$what $fraction | $ranking | $params | $(ppl "$out/$name.shrink") |"
}

echo "SmolLM2-135M-Instruct, Persuasion perplexity (ctx 512, first $windows windows); calibration $samples x 512"
echo "| removed | ranked by | parameters | perplexity |"
echo "|---|---|---:|---:|"
for f in $channels; do for r in weights activations; do row channels "$f" "$r"; done; done
for f in $heads; do for r in weights activations; do row heads "$f" "$r"; done; done
