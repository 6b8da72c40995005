#!/usr/bin/env bash
# Configures and builds smart-imaging into build/ (the binary is build/smart-imaging).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
