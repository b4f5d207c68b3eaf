#!/usr/bin/env bash
# Build nearkit._core with AddressSanitizer + UndefinedBehaviorSanitizer and run
# tests against it. The sanitized module goes to build/asan/pkg/nearkit (a copy
# of src/nearkit), so the normal in-place build is left alone.
#
#   scripts/sanitize.sh                 # fuzz + concurrency + loader + limits tests
#   scripts/sanitize.sh tests/test_x.py # any pytest arguments
#
# Python itself is not instrumented, so the ASan runtime is preloaded; leak
# checking is off (CPython's own allocations at exit are not leaks of ours).
set -euo pipefail
cd "$(dirname "$0")/.."
build=build/asan
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNEARKIT_SANITIZE=ON \
  -DPython_EXECUTABLE="$(command -v python)" >/dev/null
cmake --build "$build"
rm -rf "$build/pkg" && mkdir -p "$build/pkg"
cp -r src/nearkit "$build/pkg/"
rm -f "$build/pkg/nearkit"/_core*.so
cp "$build"/_core*.so "$build/pkg/nearkit/"

cxx=$(grep -m1 '^CMAKE_CXX_COMPILER:' "$build/CMakeCache.txt" | cut -d= -f2)
asan=$("$cxx" -print-file-name=libasan.so)
ubsan=$("$cxx" -print-file-name=libubsan.so)
if [ $# -eq 0 ]; then
  set -- tests/test_fuzz_files.py tests/test_threads_and_signals.py tests/indexes/test_loader_checks.py \
    tests/indexes/test_limits.py
fi
export LD_PRELOAD="$asan $ubsan"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:detect_stack_use_after_return=0:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
PYTHONPATH="$build/pkg" python -m pytest -q -p no:cacheprovider "$@"
