#!/usr/bin/env bash
# Sets everything up and runs every check: formatting and lint (C++ and Python), type checks, the C++
# tests (also under AddressSanitizer + UndefinedBehaviorSanitizer), a short run of the fuzz targets and the
# Python tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
JOBS=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}

# Each step's header says how long the run has taken so far, so that a slow step shows in CI's log.
started=$SECONDS
step() { printf '\n==== %s (at %d s) ====\n' "$*" $((SECONDS - started)); }

step "setup: system packages, .venv, the needle package"
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate

# The CUDA backend is compiled whenever nvcc is around, so that it always builds; its tests skip
# without a GPU. The sanitizer build and the Python wheel stay without it.
cuda_flags=(-DNEEDLE_ENABLE_CUDA=OFF)
nvcc=$(command -v nvcc || true)
if [ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ]; then nvcc=/usr/local/cuda/bin/nvcc; fi
if [ -n "$nvcc" ]; then cuda_flags=(-DNEEDLE_ENABLE_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc"); fi

step "C++ build (Release, warnings are errors, ${cuda_flags[0]})"
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DNEEDLE_WARNINGS_AS_ERRORS=ON \
  -DNEEDLE_BUILD_TESTS=ON -DNEEDLE_BUILD_EXAMPLES=ON -DNEEDLE_BUILD_BENCHMARKS=ON "${cuda_flags[@]}" >/dev/null
cmake --build build/release -j "$JOBS"

step "lint and type checks"
bash scripts/lint.sh build/release

step "C++ tests"
ctest --test-dir build/release --output-on-failure -j "$JOBS"

step "find_package(needle) from an installed copy"
cmake --install build/release --prefix build/install >/dev/null
cmake -S tests/cmake_consumer -B build/consumer -G Ninja -DCMAKE_PREFIX_PATH="$PWD/build/install" >/dev/null
cmake --build build/consumer -j "$JOBS" >/dev/null
./build/consumer/consumer

step "C++ tests under AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S . -B build/sanitize -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNEEDLE_SANITIZE=ON \
  -DNEEDLE_WARNINGS_AS_ERRORS=ON -DNEEDLE_BUILD_TESTS=ON >/dev/null
cmake --build build/sanitize -j "$JOBS"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build/sanitize --output-on-failure -j "$JOBS"

step "fuzzing: each libFuzzer target of tests/fuzz for 20 s (clang++, ASan + UBSan)"
bash scripts/fuzz.sh 20

step "Python tests"
# pytest exits 5 when it collected no tests: that means something broke, so it fails here too.
python -m pytest tests/python -q
step "done"
