#!/usr/bin/env bash
# Formatting, lint and type checks. Usage: scripts/lint.sh [BUILD_DIR with compile_commands.json]
# The same checks run from .pre-commit-config.yaml; any finding fails the script.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${1:-build/release}

mapfile -t cpp_files < <(git ls-files '*.h' '*.cpp' '*.cu' '*.cuh')
mapfile -t tidy_files < <(git ls-files 'src/*.cpp')

echo "clang-format (${#cpp_files[@]} files)"
clang-format --dry-run --Werror "${cpp_files[@]}"

echo "ruff"
ruff check .
ruff format --check .

echo "layer rules (docs/architecture.md)"
python scripts/check_layers.py

echo "mypy (strict)"
mypy

if [ -f "$BUILD_DIR/compile_commands.json" ]; then
  # Only the files this build compiles: which of src/backend/cuda's sources it has depends on NEEDLE_ENABLE_CUDA.
  mapfile -t tidy_files < <(for f in "${tidy_files[@]}"; do
    if grep -qF "/$f\"" "$BUILD_DIR/compile_commands.json"; then echo "$f"; fi
  done)
  echo "clang-tidy (${#tidy_files[@]} files)"
  log=$(mktemp)
  status=0
  printf '%s\n' "${tidy_files[@]}" | xargs -P "$(nproc)" -n 4 clang-tidy -p "$BUILD_DIR" --quiet \
    --warnings-as-errors='*' >"$log" 2>&1 || status=$?
  # Drop clang-tidy's progress chatter; keep the findings.
  grep -v -E '^[0-9]+ warnings? generated\.$|^Suppressed [0-9]+ warnings|^Use -header-filter|^Use -system-headers' \
    "$log" || true
  rm -f "$log"
  if [ "$status" -ne 0 ]; then
    echo "clang-tidy found problems" >&2
    exit 1
  fi
else
  echo "clang-tidy skipped: no $BUILD_DIR/compile_commands.json (configure a build first)"
fi
