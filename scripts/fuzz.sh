#!/usr/bin/env bash
# Coverage-guided fuzzing of shrink's readers with libFuzzer (clang, ASan + UBSan): builds the
# `fuzz` preset, writes seed inputs (fuzz/make_seeds.cpp), and runs each target for SECONDS,
# keeping its corpus in build/fuzz/corpus/TARGET and anything it finds (crash-*, leak-*,
# timeout-*, oom-*) in build/fuzz/findings/TARGET. A finding is a bug: every reader must either
# succeed or throw shrink::Error. Reproduce one with: build/fuzz/fuzz/fuzz_TARGET FILE
#   scripts/fuzz.sh [SECONDS=300] [TARGET ...]   (targets: gguf safetensors native_model graph
#                                                 inspect hf_config hf_tokenizer tokenizer_json
#                                                 encode idx onnx wav; default all)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(gguf safetensors native_model graph inspect hf_config hf_tokenizer tokenizer_json encode idx onnx wav)
scripts/build.sh fuzz > /dev/null
seeds=build/fuzz/seeds
ASAN_OPTIONS=detect_leaks=0 build/fuzz/fuzz/fuzz_make_seeds "$seeds" tests/fixtures > /dev/null
export SHRINK_FUZZ_TOKENIZERS="$PWD/$seeds/tokenizers"
export SHRINK_FUZZ_GRAPH_SEED="$PWD/$seeds/native_model/tiny_rtn4.shrink"
export SHRINK_FUZZ_HF_SEED="$PWD/$seeds/hf_folder"
export OMP_NUM_THREADS=1
status=0
for target in "${targets[@]}"; do
  corpus=build/fuzz/corpus/$target findings=build/fuzz/findings/$target
  mkdir -p "$corpus" "$findings"
  echo "== $target: ${seconds}s"
  extra=()
  [ -f "$seeds/$target.dict" ] && extra=(-dict="$seeds/$target.dict")
  if ! build/fuzz/fuzz/fuzz_"$target" "$corpus" "$seeds/$target" "${extra[@]}" -max_total_time="$seconds" -timeout=20 \
         -rss_limit_mb=4096 -artifact_prefix="$findings/" -print_final_stats=1 2> "build/fuzz/$target.log"; then
    status=1
  fi
  grep -E "^stat::number_of_executed_units|^stat::new_units_added" "build/fuzz/$target.log" || true
  ls "$findings" | sed 's/^/   finding: /'
done
exit $status
