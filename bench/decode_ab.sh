#!/usr/bin/env bash
# Two shrink builds side by side on decode speed: generation runs alternating A, B / B, A (the
# order swapped every pair), PAIRS pairs of TOKENS greedy tokens after a 26-token prompt, and the
# median of the pairs' own B/A ratios with its range. On a shared host whose bandwidth and cache
# share swing 1.5x within minutes, only such alternating pairs show a change of a few percent
# (single pairs ranged 0.44-1.55x there, 0.90-1.55x between identical builds); use 16 pairs or more.
#   bench/decode_ab.sh SHRINK_A SHRINK_B MODEL [PAIRS] [TOKENS]
# Example: copy build/release/src/shrink to /tmp/shrink-before, rebuild with the change, then
#   bench/decode_ab.sh /tmp/shrink-before build/release/src/shrink model.shrink 16 64
set -euo pipefail
if (($# < 3)); then
  sed -n '2,9p' "$0" >&2
  exit 2
fi
a=$1; b=$2; model=$3; pairs=${4:-16}; tokens=${5:-64}
for binary in "$a" "$b"; do
  [[ -x $binary ]] || { echo "decode_ab.sh: $binary is not an executable" >&2; exit 2; }
done
[[ -r $model ]] || { echo "decode_ab.sh: cannot read the model $model" >&2; exit 2; }
prompt="It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife."
rate() {
  "$1" generate "$model" --prompt "$prompt" --max-tokens "$tokens" --no-stop --json |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["decode_tokens_per_second"])'
}
rates_a=(); rates_b=()
for ((i = 0; i < pairs; ++i)); do
  if ((i % 2)); then y=$(rate "$b"); x=$(rate "$a"); else x=$(rate "$a"); y=$(rate "$b"); fi
  rates_a+=("$x"); rates_b+=("$y")
  printf 'pair %d/%d: A %.1f, B %.1f tokens/s\n' $((i + 1)) "$pairs" "$x" "$y" >&2
done
python3 - "${rates_a[*]}" "${rates_b[*]}" <<'EOF'
import statistics, sys
a, b = ([float(v) for v in s.split()] for s in sys.argv[1:3])
r = [y / x for x, y in zip(a, b)]
print(f"A: median {statistics.median(a):.1f} tokens/s   B: median {statistics.median(b):.1f} tokens/s")
print(f"B/A, median of {len(r)} pairs: {statistics.median(r):.3f} (range {min(r):.3f}-{max(r):.3f})")
EOF
