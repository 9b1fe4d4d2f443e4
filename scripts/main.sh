#!/usr/bin/env bash
# The main job on a fresh machine: install, build, fetch the real models and data, then quantize
# SmolLM2-135M to 4 bits with GPTQ (and RTN for contrast) and print one table: file size,
# held-out perplexity (Austen's Persuasion, GPTQ/AWQ protocol) and decode speed, for the
# baseline and each result. About five minutes on a 2-core machine once built.
#   MAIN_SAMPLES (GPTQ calibration windows of 512 tokens, default 128 as in the GPTQ paper; about
#   3 minutes of the run on a 2-core machine) and MAIN_WINDOWS
#   (perplexity windows of 512 tokens, default 24; 0 = the whole novel) trade time for precision.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh release
python3 tools/fetch_assets.py
cache="${SHRINK_CACHE:-$HOME/.cache/shrink}"
shrink=build/release/src/shrink
samples=${MAIN_SAMPLES:-128}; windows=${MAIN_WINDOWS:-24}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
model="$cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
held="$cache/austen/persuasion.txt"
calib="$work/calibration.txt"
cat "$cache"/austen/{emma,mansfieldpark,northangerabbey,prideprejudice,sensesensibility}.txt > "$calib"

echo; $shrink info | head -5
echo; $shrink inspect --brief "$model"
echo; echo "== RTN 4-bit, group 128 (output layer and the embedding it is tied to: int8 per row)"
$shrink quantize "$model" --method rtn --bits 4 --group-size 128 --int8-head --out "$work/rtn4.shrink"
echo; echo "== GPTQ 4-bit, group 128, act-order, static groups ($samples x 512 calibration tokens)"
$shrink quantize "$model" --method gptq --bits 4 --group-size 128 --act-order --static-groups --int8-head \
  --calib "$calib" --samples "$samples" --seq-len 512 --out "$work/gptq4.shrink"

measure() {  # model -> "size|perplexity|decode tokens/s"
  local ppl tps size
  ppl=$($shrink eval "$1" --perplexity "$held" --ctx 512 --max-windows "$windows" --json 2>/dev/null |
        python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["perplexity"])')
  tps=$($shrink generate "$1" --prompt "It is a truth universally acknowledged, that" --max-tokens 48 --no-stop --json |
        python3 -c 'import json,sys; print("%.1f" % json.load(sys.stdin)["decode_tokens_per_second"])')
  size=$(du -b "$1" | cut -f1)
  echo "$size|$ppl|$tps"
}
echo; echo "== measuring (perplexity over $windows windows of 512 tokens of Persuasion; decode of 48 tokens)"
printf '\n%-44s %12s %12s %14s\n' "model" "file" "perplexity" "decode tok/s"
for entry in "baseline: SmolLM2 Q4_1 GGUF, run in f32|$model" "RTN int4 g128|$work/rtn4.shrink" \
             "GPTQ int4 g128 (act-order, static groups)|$work/gptq4.shrink"; do
  name=${entry%%|*}; path=${entry#*|}
  IFS='|' read -r size ppl tps <<<"$(measure "$path")"
  printf '%-44s %9s MB %12s %14s\n' "$name" "$(awk "BEGIN { printf \"%.1f\", $size / 1e6 }")" "$ppl" "$tps"
done
echo
echo "(the baseline file is the authors' Q4_1 GGUF; shrink runs it dequantized to f32. The shrink files hold"
echo " the Linear layers as packed int4 with f16 scales and mins, and the output layer with the embedding"
echo " tied to it as one int8 table with a scale per row.)"
