#!/usr/bin/env bash
# Decode speed of SmolLM2-135M against the length of the context already in the KV cache: for
# each prompt length, `shrink generate` prefills a prompt cut from Persuasion (held out) and
# decodes TOKENS more tokens greedily; the CSV keeps every run's decode tokens/s and the
# attention's ms per decoded token (`--profile`), the table the medians. Models: f32 (the GGUF
# dequantized) and int4 g128 with the int8 head. Runs alternate between the binaries given, so
# that two builds compare side by side in one run on this noisy host:
#   bench/llm_context_sweep.sh [RUNS] [TOKENS] [OUT_DIR]
#   SHRINK_BINARIES="now=build/release/src/shrink before=/tmp/old/build/release/src/shrink" \
#   CONTEXTS="64 512 1024 2048" MODELS="int4" bench/llm_context_sweep.sh 3
# Writes OUT_DIR/context_sweep.csv (binary,model,prompt_tokens,run,decode_tokens_per_second,
# attention_ms_per_token) and prints the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}; tokens=${2:-32}; out=${3:-/tmp/shrink-context-sweep}
source bench/austen_setup.sh
binaries=${SHRINK_BINARIES:-"now=$shrink"}
contexts=${CONTEXTS:-"64 512 1024 2048 4096"}
models=${MODELS:-"f32 int4"}
smol="$cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
[[ -f "$out/rtn4-int8-head.shrink" ]] ||
  "$shrink" quantize "$smol" --method rtn --bits 4 --group-size 128 --int8-head --out "$out/rtn4-int8-head.shrink" > /dev/null

csv="$out/context_sweep.csv"
echo "binary,model,prompt_tokens,run,decode_tokens_per_second,attention_ms_per_token" > "$csv"
for context in $contexts; do
  # About 4 characters per SmolLM2 token in Austen's prose; the CSV records the exact count.
  prompt=$(head -c $((context * 4)) "$held")
  for model in $models; do
    path=$([[ $model == f32 ]] && echo "$smol" || echo "$out/rtn4-int8-head.shrink")
    for ((r = 0; r < runs; ++r)); do
      for entry in $binaries; do
        label=${entry%%=*}; binary=${entry#*=}
        "$binary" generate "$path" --prompt "$prompt" --max-tokens "$tokens" --no-stop --profile --json \
          > "$out/run.json" 2> "$out/profile.txt"
        attention=$(awk '$1 == "Attention" { print $3 }' "$out/profile.txt")
        python3 - "$out/run.json" "$label,$model" "$r" "${attention:-0}" >> "$csv" <<'EOF'
import json, sys
run = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]},{run['prompt_tokens']},{sys.argv[3]},{run['decode_tokens_per_second']:.2f},{sys.argv[4]}")
EOF
      done
    done
    echo "  context ~$context, $model: done" >&2
  done
done

python3 - "$csv" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
groups = {}
for r in rows:
    groups.setdefault((r["binary"], r["model"], r["prompt_tokens"]), []).append(r)
print(f"{'binary':10} {'model':6} {'prompt tokens':>13} {'decode tok/s':>13} {'attention ms/token':>19}")
for (binary, model, prompt), rs in groups.items():
    tps = statistics.median(float(r["decode_tokens_per_second"]) for r in rs)
    attention = statistics.median(float(r["attention_ms_per_token"]) for r in rs)
    print(f"{binary:10} {model:6} {prompt:>13} {tps:13.1f} {attention:19.3f}")
EOF
