#!/usr/bin/env bash
# Packs what a lent device machine (no build tools or Debian packages of ours there) needs to run
# shrink's tests and benchmarks: the release binaries, their shared libraries (the big ones
# xz-compressed) and scripts/device/run.sh, into .dev/ (git-ignored through .git/info/exclude).
# Then, with the workplace's device tool: run(command="bash .dev/run.sh", carry=[".dev"]),
# TESTS and BENCH choosing what runs (see run.sh). About 50 MB, under the tool's 64 MiB limit;
# run.sh unpacks the libraries in place, so pack again after trying it here.
#   scripts/device/pack.sh [extra files to put in .dev/bin ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=build/release
[ -x "$build/src/shrink" ] || scripts/build.sh release > /dev/null
grep -qx '/.dev/' .git/info/exclude 2> /dev/null || echo '/.dev/' >> .git/info/exclude
rm -rf .dev && mkdir -p .dev/bin .dev/lib
cp "$build/src/shrink" "$build"/tests/test_{kernels,quant,nn,compress,core,io} \
   "$build"/bench/bench_{int8_compare,dynamic_quant,static_quant,llm_synthetic} "$@" .dev/bin/
cp scripts/device/run.sh .dev/
lib=/lib/x86_64-linux-gnu
for so in libfmt.so.9 libgomp.so.1 libOpenCL.so.1 libgfortran.so.5 libquadmath.so.0 libicuuc.so.72 libz.so.1; do
  cp -L "$lib/$so" .dev/lib/
done
for so in libdnnl.so.2 libopenblas.so.0 libicudata.so.72; do xz -T2 -6 -c "$(readlink -f "$lib/$so")" > ".dev/lib/$so.xz"; done
du -sh .dev
