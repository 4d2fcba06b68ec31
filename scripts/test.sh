#!/usr/bin/env bash
# Set up everything (system packages for a virtual display, .venv) and run the whole suite under
# PyQt5 (the binding napari-unet installs), then the GUI tests once more under PyQt6.
# Arguments go to the PyQt5 run; the PyQt6 pass runs only for the whole suite. The PyQt6 pass
# runs even when the PyQt5 pass failed (one failure must not hide another), and the script
# exits non-zero when either pass failed.
# Both passes run in two pytest processes (pytest-xdist), a test file to a process so that its
# module fixtures are made once: most of a test's time is single-threaded (starting a Python
# with TensorFlow for a CLI test, building a viewer, tracing a model), so two processes on two
# cores take about half the time of one. NAPARI_UNET_TEST_WORKERS=0 runs in one process.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system_deps.sh
bash scripts/setup_env.sh test,bioimageio --pyqt6
export TF_CPP_MIN_LOG_LEVEL=2
workers=${NAPARI_UNET_TEST_WORKERS:-2}
parallel=()
if [ "$workers" != 0 ]; then parallel=(-n "$workers" --dist loadfile); fi
status=0
QT_API=pyqt5 .venv/bin/python -m pytest "${parallel[@]+"${parallel[@]}"}" "$@" || status=$?
if [ $# -eq 0 ]; then
    echo "--- GUI tests under PyQt6"
    QT_API=pyqt6 .venv/bin/python -m pytest "${parallel[@]+"${parallel[@]}"}" -m gui || status=$((status ? status : $?))
fi
if [ "$status" -ne 0 ]; then
    echo "--- the suite FAILED (exit status $status): see the failures above" >&2
fi
exit "$status"
