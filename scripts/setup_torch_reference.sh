#!/usr/bin/env bash
# Sets up the PyTorch the benchmarks compare against: PyPI's current build (MKL, oneDNN) in a virtual
# environment of its own, .torch-venv/ at the repository root, which benchmarks/*.py use by default. It is
# large (several GB with the CUDA libraries PyPI's wheel depends on) and never a dependency of Needle: not in
# requirements-dev.txt, never installed by setup.sh or CI. Without it the benchmarks fall back on Debian's
# python3-torch, if installed. Run it again to upgrade.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv=.torch-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet --upgrade torch numpy
"$venv/bin/python" - <<'PY'
import torch

print(f"PyTorch {torch.__version__} in .torch-venv: {torch.__config__.show().splitlines()[0].strip()}")
print("BLAS:", "MKL" if torch.backends.mkl.is_available() else "not MKL", "| oneDNN:", torch.backends.mkldnn.is_available())
PY
