#!/usr/bin/env bash
# Set up everything (system packages for a virtual display, .venv) and run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system_deps.sh
bash scripts/setup_env.sh test
export QT_API=pyqt5 TF_CPP_MIN_LOG_LEVEL=2
.venv/bin/python -m pytest "$@"
