#!/usr/bin/env bash
# Prepares a fresh machine for building and testing Needle, then builds and installs the Python package
# into .venv. Safe to run again: it only installs what is missing and rebuilds incrementally.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# System tools (Debian). Installed only when missing, so a machine that has them needs no network.
missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v ninja >/dev/null || missing+=(ninja-build)
command -v g++ >/dev/null || missing+=(g++)
command -v clang-format >/dev/null || missing+=(clang-format)
command -v clang-tidy >/dev/null || missing+=(clang-tidy)
[ -f /usr/include/gtest/gtest.h ] || missing+=(libgtest-dev libgmock-dev)
[ -f /usr/include/benchmark/benchmark.h ] || missing+=(libbenchmark-dev)
[ -f /usr/include/zlib.h ] || missing+=(zlib1g-dev)
command -v dot >/dev/null || missing+=(graphviz)  # renders needle.viz graphs; its DOT test uses it
# Multi-process training (needle::dist) runs over OpenMPI; its tests launch ranks with mpirun, and the
# network test joins two network namespaces with `ip`.
command -v mpirun >/dev/null || missing+=(openmpi-bin)
command -v mpicc >/dev/null || missing+=(libopenmpi-dev)  # mpi.h and the libraries
command -v ip >/dev/null || missing+=(iproute2)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# Real PyTorch for the tests that compare needle.torch with it (tests/python/torch_reference.py). It runs
# in Debian's own interpreter, in a process of its own: it is never a dependency of Needle's environment.
if ! /usr/bin/python3 -c "import torch" >/dev/null 2>&1 && [ ! -x .torch-venv/bin/python ]; then
  echo "setup: installing Debian's python3-torch (the reference the needle.torch tests compare with)"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-torch
fi

# Python environment with the pinned build, test and lint tools.
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
if ! cmp -s requirements-dev.txt .venv/.requirements-installed 2>/dev/null; then
  echo "setup: installing Python packages from requirements-dev.txt"
  python -m pip install -q --upgrade pip
  python -m pip install -q -r requirements-dev.txt
  cp requirements-dev.txt .venv/.requirements-installed
fi

# Build and install needle (C++ core + extension) into the venv; the build dir persists between runs.
echo "setup: building and installing the needle package"
CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)} \
  python -m pip install -q --no-build-isolation --no-deps .
