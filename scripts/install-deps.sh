#!/usr/bin/env bash
# Installs every Debian 12 package cgcn needs to build, test and run. Idempotent:
# does nothing (and needs no network) when everything is already installed.
set -euo pipefail
PKGS=(
  build-essential cmake pkg-config
  libboost-iostreams-dev zlib1g-dev libzstd-dev libmetis-dev libeigen3-dev libtbb-dev
  libgtest-dev libcli11-dev nlohmann-json3-dev libxxhash-dev
  libopenmpi-dev openmpi-bin  # Open MPI: data-parallel training over several processes or hosts (cgcn/comm.h, mpirun)
  libdnnl-dev ocl-icd-opencl-dev  # oneDNN (its CMake package needs OpenCL's headers, a recommends that --no-install-recommends skips): the fast backend of the dense products (cgcn/dense.h); cgcn builds without it too
  clang clang-format libclang-rt-14-dev llvm  # scripts/check-format.sh, scripts/sanitize.sh, scripts/fuzz.sh: clang, its sanitizer and libFuzzer runtimes, llvm-symbolizer
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
