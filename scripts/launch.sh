#!/usr/bin/env bash
# Open napari with the napari-unet widgets docked and the sample nuclei image.
# The first run sets up ./.venv; later runs start at once (pip runs again only when
# pyproject.toml changed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m napari_unet.launch "$@"
