#!/usr/bin/env bash
# Configures and builds cgcn (Release) into build/; tools land in build/bin/.
# Extra arguments are passed to cmake's configure step (e.g. -DCGCN_WERROR=ON).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j"$(nproc)"
