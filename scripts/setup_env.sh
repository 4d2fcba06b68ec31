#!/usr/bin/env bash
# Create ./.venv with napari-unet and its dependencies (idempotent).
# Usage: bash scripts/setup_env.sh [extra]   e.g. "test" installs the test extra too.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
spec="."
if [ "${1:-}" != "" ]; then spec=".[$1]"; fi
.venv/bin/python -m pip install --quiet -e "$spec"
