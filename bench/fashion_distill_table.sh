#!/usr/bin/env bash
# Knowledge distillation on Fashion-MNIST: the same student trained from labels only, from the
# teacher's softened logits (alpha 0.5, T 2), and from the logits plus the hidden-state term at
# each HINT weight, over several seeds with one budget. Prints a markdown table of held-out
# accuracy per seed with the mean. The teacher's outputs are computed once and kept on disk.
#   bench/fashion_distill_table.sh TEACHER [OUT_DIR]
# Environment: ARCH=mlp WIDTH=0 (the architecture's default) EPOCHS=5 SEEDS="0 1 2"
# HINTS="0.1 1" ALPHA=0.5 T=2 choose the runs; SHRINK the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
teacher=${1:?usage: bench/fashion_distill_table.sh TEACHER [OUT_DIR]}
out=${2:-/tmp/shrink-distill-table}
shrink=${SHRINK:-build/release/src/shrink}
arch=${ARCH:-mlp}; width=${WIDTH:-0}; epochs=${EPOCHS:-5}; seeds=${SEEDS:-"0 1 2"}
hints=${HINTS:-"0.1 1"}; alpha=${ALPHA:-0.5}; temperature=${T:-2}
mkdir -p "$out"

accuracy() {  # name command... -> accuracy in percent
  local name=$1; shift
  "$@" --arch "$arch" --width "$width" --epochs "$epochs" --out "$out/$name.safetensors" --json \
    > "$out/$name.json" 2> "$out/$name.err"
  python3 -c "import json; print('%.2f' % (100 * json.load(open('$out/$name.json'))['value']))"
}
row() {  # label name-prefix command...
  local label=$1 prefix=$2; shift 2
  local cells="" values=()
  for seed in $seeds; do
    local a; a=$(accuracy "$prefix-s$seed" "$@" --seed "$seed")
    cells+=" $a% |"; values+=("$a")
  done
  local mean; mean=$(python3 -c "import sys; v=[float(x) for x in sys.argv[1:]]; print('%.2f' % (sum(v)/len(v)))" "${values[@]}")
  echo "| $label |$cells **$mean%** |"
}

header="| student ($arch, width ${width/#0/default}, $epochs epochs) |"; rule="|---|"
for seed in $seeds; do header+=" seed $seed |"; rule+="---:|"; done
echo "$header mean |"; echo "$rule---:|"
row "labels only" labels "$shrink" train
distill=("$shrink" distill --teacher "$teacher" --alpha "$alpha" --temperature "$temperature")
row "logits, alpha $alpha, T $temperature" kd "${distill[@]}" --teacher-cache "$out/teacher-logits.cache"
for hint in $hints; do
  row "logits + hidden state, weight $hint" "hint$hint" "${distill[@]}" --hint-weight "$hint" \
    --teacher-cache "$out/teacher-hidden.cache"
done
