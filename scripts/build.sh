#!/usr/bin/env bash
# Configures and builds one preset (release by default; debug and asan also exist).
# Usage: scripts/build.sh [release|debug|asan] [cmake --build arguments, e.g. --target test_io]
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"
shift || true
cmake --preset "$preset" > /dev/null
cmake --build --preset "$preset" "$@"
