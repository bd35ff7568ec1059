#!/usr/bin/env bash
# The second command of the README (and what CI runs): installs dependencies, builds
# with warnings as errors, and runs the whole GoogleTest suite through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh -DCGCN_WERROR=ON
cd build
ctest --output-on-failure -j"$(nproc)" "$@"
