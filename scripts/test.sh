#!/usr/bin/env bash
# Set up everything (system packages for a virtual display, .venv) and run the whole suite under
# PyQt5 (the binding napari-unet installs), then the GUI tests once more under PyQt6.
# Arguments go to the PyQt5 run; the PyQt6 pass runs only for the whole suite. The PyQt6 pass
# runs even when the PyQt5 pass failed (one failure must not hide another), and the script
# exits non-zero when either pass failed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system_deps.sh
bash scripts/setup_env.sh test,bioimageio --pyqt6
export TF_CPP_MIN_LOG_LEVEL=2
status=0
QT_API=pyqt5 .venv/bin/python -m pytest "$@" || status=$?
if [ $# -eq 0 ]; then
    echo "--- GUI tests under PyQt6"
    QT_API=pyqt6 .venv/bin/python -m pytest -m gui || status=$((status ? status : $?))
fi
if [ "$status" -ne 0 ]; then
    echo "--- the suite FAILED (exit status $status): see the failures above" >&2
fi
exit "$status"
