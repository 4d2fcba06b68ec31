#!/usr/bin/env bash
# Set up everything and open napari with the napari-unet widgets and the sample nuclei image.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m napari_unet.launch "$@"
