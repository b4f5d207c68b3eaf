#!/usr/bin/env bash
# Fast in-place build for development: compiles nearkit._core into src/nearkit/
# so that `PYTHONPATH=src python -m pytest` runs against the working tree without
# a pip install. Usage: scripts/dev-build.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/dev}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE="$(command -v python)" >/dev/null
cmake --build "$build"
cp "$build"/_core*.so src/nearkit/
