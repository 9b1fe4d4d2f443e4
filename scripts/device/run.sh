#!/usr/bin/env bash
# Runs on the device machine from .dev/ (scripts/device/pack.sh): unpacks the libraries, runs the
# test binaries named in TESTS (default test_kernels) side by side, then each benchmark command in
# BENCH (';'-separated, run from .dev/bin; `env VAR=value ./bench ...` to set variables).
# Pin two threads to two cores there (OMP_PROC_BIND=spread OMP_PLACES=cores): unpinned, they often
# shared one core and ran at half speed (docs/results.md).
cd "$(dirname "$0")"
grep -m1 'model name' /proc/cpuinfo; nproc
grep -m1 flags /proc/cpuinfo | tr ' ' '\n' | grep -E 'avx512|amx|vnni' | tr '\n' ' '; echo
for f in lib/*.xz; do
  [ -f "${f%.xz}" ] || python3 -c "import lzma,sys; open(sys.argv[2],'wb').write(lzma.open(sys.argv[1]).read())" "$f" "${f%.xz}"
done
export LD_LIBRARY_PATH=$PWD/lib
mkdir -p /tmp/device-tests
for t in ${TESTS:-test_kernels}; do
  (timeout 400 ./bin/$t > /tmp/device-tests/$t.log 2>&1; echo "$t exit $?" >> /tmp/device-tests/$t.log) &
done
wait
for t in ${TESTS:-test_kernels}; do
  echo "== $t"
  grep -E "FAILED|PASSED|Failure|Expected|Which|actual|Value of|  Actual| exit |SKIPPED \]" /tmp/device-tests/$t.log | head -40
done
cd bin
IFS=';' read -ra benches <<< "${BENCH:-}"
for b in "${benches[@]}"; do echo "== $b"; eval "timeout 300 $b"; done
