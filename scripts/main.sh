#!/usr/bin/env bash
# The main job on a fresh machine: install, build, fetch the real models and data, then show what
# shrink sees in them (for now: the machine and `shrink inspect` on SmolLM2 and MiniLM).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh release
python3 tools/fetch_assets.py
cache="${SHRINK_CACHE:-$HOME/.cache/shrink}"
shrink=build/release/src/shrink
echo; $shrink info
echo; $shrink inspect --brief "$cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
echo; $shrink inspect --brief "$cache/minilm"
