#!/usr/bin/env bash
# Set up everything (system packages for a virtual display, .venv) and run the whole suite under
# PyQt5 (the binding napari-unet installs), then the GUI tests once more under PyQt6.
# Arguments go to the PyQt5 run; the PyQt6 pass runs only for the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system_deps.sh
bash scripts/setup_env.sh test,bioimageio --pyqt6
export TF_CPP_MIN_LOG_LEVEL=2
QT_API=pyqt5 .venv/bin/python -m pytest "$@"
if [ $# -eq 0 ]; then
    echo "--- GUI tests under PyQt6"
    QT_API=pyqt6 .venv/bin/python -m pytest -m gui
fi
