#!/usr/bin/env bash
# The whole test suite on a fresh machine: install, build, fetch the real assets, run every test;
# run the kernel and reader tests again at each lower ISA level this CPU has; then build with
# AddressSanitizer + UBSan and run the suite once more (the fuzz tests matter most there).
# Ends with one line "tests: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh || exit 1
scripts/build.sh release || exit 1
python3 tools/fetch_assets.py || exit 1
export SHRINK_REQUIRE_ASSETS=1

passed=0; failed=0
run_ctest() {  # run_ctest BUILD_DIR DESCRIPTION [ctest arguments]
  local dir="$1" what="$2"; shift 2
  echo; echo "=== $what"
  local log; log=$(mktemp)
  (cd "$dir" && ctest -j2 --output-on-failure "$@") 2>&1 | tee "$log"
  local line; line=$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1)
  if [ -z "$line" ]; then failed=$((failed + 1)); echo "(no ctest summary: counted as a failure)"; rm -f "$log"; return; fi
  local total bad
  total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line"); bad=$(sed -E 's/.*passed, ([0-9]+) tests? failed.*/\1/' <<<"$line")
  passed=$((passed + total - bad)); failed=$((failed + bad))
  rm -f "$log"
}

run_ctest build/release "all tests, ISA level $(build/release/src/shrink info --levels | tail -1) (detected)"
for level in $(build/release/src/shrink info --levels | head -n -1); do
  SHRINK_ISA=$level run_ctest build/release "kernel and reader tests at SHRINK_ISA=$level" -L 'kernels|io'
done
if scripts/build.sh asan; then
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_ctest build/asan "all tests under AddressSanitizer + UBSan"
else
  echo "ASan build failed"; failed=$((failed + 1))
fi
echo
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
