#!/usr/bin/env bash
# One command for every test: install, build, fetch the test peers (npm ci), run
# unit and black-box tests through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
(cd tests/blackbox && npm ci --no-audit --no-fund --loglevel=error)
cd build
ctest --output-on-failure --timeout 900 -j1
