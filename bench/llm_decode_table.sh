#!/usr/bin/env bash
# Decode and prefill speed of SmolLM2-135M, f32 vs packed int4 (RTN g128; the same kernels run
# GPTQ and AWQ files), against the read bandwidth measured beside every run: `shrink bench
# bandwidth` (2 threads, 1 GiB) before each generation and once after the last, each run's limit
# the higher of the two probes around it — this shared host's bandwidth moves by ±30% from minute
# to minute, so a run is only compared with the machine as it was during that run. Each model
# generates TOKENS tokens greedily after a 26-token prompt, RUNS times; the table shows medians
# (of tokens/s, of the limits, and of the per-run fractions). "bytes/token" is what
# `generate --json` reports as weight_bytes_per_token: every parameter a decoded token reads (the
# embedding lookup excepted, a tied output layer counted once as the head).
#   bench/llm_decode_table.sh [RUNS] [TOKENS] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}; tokens=${2:-64}; out=${3:-/tmp/shrink-decode-table}
source bench/austen_setup.sh
smol="$cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
prompt="It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife."

"$shrink" quantize "$smol" --method rtn --bits 4 --group-size 128 --out "$out/rtn4.shrink" > /dev/null
"$shrink" quantize "$smol" --method rtn --bits 4 --group-size 128 --int8-head --out "$out/rtn4-int8-head.shrink" > /dev/null

bandwidth() { "$shrink" bench bandwidth --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["read_bandwidth_bytes_per_second"])'; }
rows=()
for entry in "f32 (the GGUF dequantized)|$smol" "int4 g128, f32 tied head|$out/rtn4.shrink" \
             "int4 g128, int8 head|$out/rtn4-int8-head.shrink"; do
  name=${entry%%|*}; model=${entry#*|}
  probes=()
  for ((r = 0; r < runs; ++r)); do
    probes+=("$(bandwidth)")
    "$shrink" generate "$model" --prompt "$prompt" --max-tokens "$tokens" --no-stop --json > "$out/run-$r.json"
  done
  probes+=("$(bandwidth)")
  rows+=("$name|$(python3 - "$out" "$runs" "${probes[*]}" <<'EOF2'
import json, statistics, sys
out, runs, probes = sys.argv[1], int(sys.argv[2]), [float(p) for p in sys.argv[3].split()]
r = [json.load(open(f"{out}/run-{i}.json")) for i in range(runs)]
nbytes = r[0]["weight_bytes_per_token"]
limits = [max(probes[i], probes[i + 1]) for i in range(runs)]
fractions = [x["decode_tokens_per_second"] * nbytes / limit for x, limit in zip(r, limits)]
print("%s|%s|%s|%s|%s|%s|%s" % (statistics.median(x["prefill_tokens_per_second"] for x in r),
                                statistics.median(x["decode_tokens_per_second"] for x in r), nbytes,
                                statistics.median(limits), statistics.median(fractions), min(fractions), max(fractions)))
EOF2
)")
done
python3 - "${rows[@]}" <<'EOF2'
import sys
print("read bandwidth: `shrink bench bandwidth` (2 threads, 1 GiB) before every run and after the last; each run's")
print("limit is the higher of the two probes around it; the fraction is the median of the runs' own fractions\n")
print("| model | prefill tokens/s | decode tokens/s | weight bytes/token | effective GB/s | limit GB/s (median) | of the limit (median; min-max) |")
print("|---|---:|---:|---:|---:|---:|---:|")
for row in sys.argv[1:]:
    name, prefill, decode, nbytes, limit, fraction, low, high = row.split("|")
    rate = float(decode) * float(nbytes)
    print(f"| {name} | {float(prefill):.0f} | {float(decode):.1f} | {float(nbytes) / 1e6:.1f} MB | {rate / 1e9:.1f} "
          f"| {float(limit) / 1e9:.1f} | {100 * float(fraction):.0f}% ({100 * float(low):.0f}-{100 * float(high):.0f}%) |")
EOF2
