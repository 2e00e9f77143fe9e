#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang++ (build/fuzz: libneedle instrumented, ASan +
# UBSan) and runs each on a copy of its seed corpus for a bounded time. Any finding (crash, sanitizer
# report, leak, exception other than needle::Error, timeout, out-of-memory) fails the script; the input
# that caused it is kept under build/fuzz/artifacts/<target>/ and can be replayed with
#   build/fuzz/tests/fuzz/<target> build/fuzz/artifacts/<target>/crash-...
# The corpus copies live under build/fuzz/corpus, so new inputs never land in the checkout.
#
# Seeds: tests/fuzz/corpus/<target>/ (hand-made, reproduced by tests/fuzz/make_corpus.py) and
# tests/fuzz/found/<target>/ (inputs earlier long runs found, each reaching code the seeds do not).
# With FUZZ_KEEP_FOUND=1 a clean run merges what it found into tests/fuzz/found/<target>/: libFuzzer's
# -merge=1 keeps the smallest set of inputs with the same coverage as seeds + found + new, less the seeds.
#
# Usage: [FUZZ_KEEP_FOUND=1] scripts/fuzz.sh [SECONDS_PER_TARGET (default 20)] [TARGET ...]
#        (default: every fuzz_*.cpp)
# Skipped, with the reason printed, when clang++ is not installed (g++ has no libFuzzer).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECONDS_PER_TARGET=${1:-20}
shift || true
JOBS=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}

if ! command -v clang++ >/dev/null; then
  echo "fuzz: skipped: clang++ is not installed (the fuzz targets need clang's libFuzzer)"
  exit 0
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for source in tests/fuzz/fuzz_*.cpp; do targets+=("$(basename "$source" .cpp)"); done
fi

# Per-target libFuzzer options (none at present; e.g. [fuzz_x]="-max_len=65536").
declare -A extra=()

# -O1 with line tables: quick to compile, fast enough to run, and reports with file:line.
cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
  -DCMAKE_CXX_COMPILER=clang++ -DNEEDLE_BUILD_FUZZERS=ON -DNEEDLE_BUILD_TESTS=OFF >/dev/null
cmake --build build/fuzz -j "$JOBS" --target "${targets[@]}"

# Replaces tests/fuzz/found/<target>/ with the inputs of seeds + found + the run's corpus that add
# coverage, named by their SHA-1 as libFuzzer names them, leaving out the seeds themselves.
keep_found() {
  local target=$1 corpus=$2 found=tests/fuzz/found/$1 merged=build/fuzz/merged/$1
  rm -rf "$merged"
  mkdir -p "$merged" "$found"
  "build/fuzz/tests/fuzz/$target" -merge=1 "$merged" tests/fuzz/corpus/"$target" "$found" "$corpus" \
    >"build/fuzz/$target.merge.log" 2>&1
  for seed in tests/fuzz/corpus/"$target"/*; do
    rm -f "$merged/$(sha1sum "$seed" | cut -d' ' -f1)"
  done
  rm -rf "$found"
  mv "$merged" "$found"
  echo "fuzz: $target: kept $(find "$found" -type f | wc -l) inputs in $found"
}

status=0
for target in "${targets[@]}"; do
  corpus=build/fuzz/corpus/$target
  artifacts=build/fuzz/artifacts/$target
  log=build/fuzz/$target.log
  rm -rf "$corpus"
  mkdir -p "$corpus" "$artifacts"
  cp tests/fuzz/corpus/"$target"/* "$corpus"/
  found=tests/fuzz/found/$target
  if [ -n "$(ls -A "$found" 2>/dev/null)" ]; then cp "$found"/* "$corpus"/; fi
  # -timeout: one input running this long is a finding (a hang); -rss_limit_mb: so is using this much.
  # shellcheck disable=SC2086
  if UBSAN_OPTIONS=print_stacktrace=1 "build/fuzz/tests/fuzz/$target" -max_total_time="$SECONDS_PER_TARGET" \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/" ${extra[$target]:-} \
    "$corpus" >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    echo "fuzz: $target: $runs inputs in ${SECONDS_PER_TARGET}s, no findings"
    if [ "${FUZZ_KEEP_FOUND:-0}" = 1 ]; then keep_found "$target" "$corpus"; fi
  else
    echo "fuzz: $target: FOUND A PROBLEM (input kept in $artifacts/):" >&2
    grep -v -E '^#[0-9]+' "$log" | tail -n 60 >&2
    status=1
  fi
  # Earlier findings (tests/fuzz/crashes/<target>/, each since fixed) are replayed once: each must pass.
  if [ -d "tests/fuzz/crashes/$target" ]; then
    if "build/fuzz/tests/fuzz/$target" tests/fuzz/crashes/"$target"/* >"$log.replay" 2>&1; then
      echo "fuzz: $target: the earlier findings in tests/fuzz/crashes/$target pass"
    else
      echo "fuzz: $target: an earlier finding fails again:" >&2
      tail -n 40 "$log.replay" >&2
      status=1
    fi
  fi
done
exit $status
