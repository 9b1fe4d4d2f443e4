#!/usr/bin/env bash
# Decode and prefill speed of SmolLM2-135M, f32 vs packed int4 (RTN g128; the same kernels run
# GPTQ and AWQ files), against the read bandwidth measured in the same run (before each model and
# after the last, by `shrink bench kernels --quick`; each model's limit is the higher of the two
# probes around its runs, since this shared host's bandwidth moves by ±30% minute to minute). Each
# model generates TOKENS tokens greedily after a 26-token prompt, RUNS times; the table shows medians. "bytes/token" is what `generate --json`
# reports as weight_bytes_per_token: every parameter a decoded token reads (the embedding lookup
# excepted, a tied output layer counted once as the head).
#   bench/llm_decode_table.sh [RUNS] [TOKENS] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}; tokens=${2:-64}; out=${3:-/tmp/shrink-decode-table}
source bench/austen_setup.sh
smol="$cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
prompt="It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife."

"$shrink" quantize "$smol" --method rtn --bits 4 --group-size 128 --out "$out/rtn4.shrink" > /dev/null
"$shrink" quantize "$smol" --method rtn --bits 4 --group-size 128 --int8-head --out "$out/rtn4-int8-head.shrink" > /dev/null

bandwidth() { "$shrink" bench kernels --quick --json --quiet |
                python3 -c 'import json,sys; print(json.load(sys.stdin)["read_bandwidth_bytes_per_second"])'; }
probes=()
rows=()
for entry in "f32 (the GGUF dequantized)|$smol" "int4 g128, f32 tied head|$out/rtn4.shrink" \
             "int4 g128, int8 head|$out/rtn4-int8-head.shrink"; do
  name=${entry%%|*}; model=${entry#*|}
  probes+=("$(bandwidth)")
  for ((r = 0; r < runs; ++r)); do
    "$shrink" generate "$model" --prompt "$prompt" --max-tokens "$tokens" --no-stop --json > "$out/run-$r.json"
  done
  rows+=("$name|$(python3 - "$out" "$runs" <<'EOF'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
r = [json.load(open(f"{out}/run-{i}.json")) for i in range(runs)]
print("%s|%s|%s" % (statistics.median(x["prefill_tokens_per_second"] for x in r),
                    statistics.median(x["decode_tokens_per_second"] for x in r), r[0]["weight_bytes_per_token"]))
EOF
)")
done
probes+=("$(bandwidth)")
python3 - "${probes[*]}" "${rows[@]}" <<'EOF'
import sys
probes = [float(p) for p in sys.argv[1].split()]
print("read bandwidth (2 threads, measured before each model and after the last): "
      + ", ".join(f"{p / 1e9:.1f}" for p in probes) + " GB/s; each model's limit is the higher of the two around its runs\n")
print("| model | prefill tokens/s | decode tokens/s | weight bytes/token | effective GB/s | limit GB/s | of the limit |")
print("|---|---:|---:|---:|---:|---:|---:|")
for i, row in enumerate(sys.argv[2:]):
    name, prefill, decode, nbytes = row.split("|")
    rate = float(decode) * float(nbytes)
    limit = max(probes[i], probes[i + 1])
    print(f"| {name} | {float(prefill):.0f} | {float(decode):.1f} | {float(nbytes) / 1e6:.1f} MB | {rate / 1e9:.1f} "
          f"| {limit / 1e9:.1f} | {100 * rate / limit:.0f}% |")
EOF
