#!/usr/bin/env bash
# Installs everything shrink builds, tests and fetches with, from Debian's packages (DESIGN.md §5).
# Quick when all is already there; needs root (or sudo) otherwise.
set -euo pipefail
packages=(
  cmake ninja-build g++ pkg-config python3 python3-pip
  libgtest-dev libgmock-dev libbenchmark-dev
  libopenblas-dev liblapacke-dev libdnnl-dev ocl-icd-opencl-dev
  nlohmann-json3-dev libcli11-dev libfmt-dev zlib1g-dev libicu-dev
)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "[deps] all ${#packages[@]} packages present"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "[deps] installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "[deps] done"
