#!/usr/bin/env bash
# The main job: set up, then show Needle's arrays on both devices (Python and C++).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
.venv/bin/python examples/python/arrays_demo.py
