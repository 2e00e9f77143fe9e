#!/usr/bin/env bash
# The main job: set up, then train an MLP on Fashion-MNIST with Needle and report its test accuracy.
# Extra arguments go to the training program (e.g. --epochs 3, --data DIR for another MNIST-format folder).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
DATA=/usr/share/datasets/fashion-mnist
if [ ! -f "$DATA/train-images-idx3-ubyte.gz" ] && [[ " $* " != *" --data "* ]]; then
  echo "train: installing Debian's dataset-fashion-mnist"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist
fi
.venv/bin/python examples/python/train_mlp.py "$@"
