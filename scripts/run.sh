#!/usr/bin/env bash
# Installs the Debian packages weir needs, builds it, and starts `weir serve` on its defaults
# (sink on :8080, API on :8081, SQLite in ./data). Arguments are passed to `weir serve`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DWEIR_TESTS=OFF >/dev/null
ninja -C build weir
exec build/src/weir serve "$@"
