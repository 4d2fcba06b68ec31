#!/usr/bin/env bash
# Create ./.venv with napari-unet and its dependencies (idempotent, and quick when nothing changed).
# Usage: bash scripts/setup_env.sh [extras] [--pyqt6]
#   extras: e.g. "test" or "test,bioimageio" (installs those optional dependencies too)
#   --pyqt6: also install PyQt6 next to PyQt5 (CI runs the GUI tests once more under it)
# pip runs only when pyproject.toml changed since the last install or something new is asked for,
# so scripts/launch.sh starts at once after the first run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
extras=""
wanted=()
for arg in "$@"; do
    case "$arg" in
        --pyqt6) wanted+=(pyqt6) ;;
        *) extras="$arg"; IFS=, read -ra parts <<<"$arg"; wanted+=("${parts[@]}") ;;
    esac
done
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.napari-unet-installed
hash=$(sha256sum pyproject.toml | cut -d' ' -f1)
have=()
if [ -f "$stamp" ] && [ "$(head -n1 "$stamp")" = "$hash" ] \
    && .venv/bin/python -c "import napari_unet" 2>/dev/null; then
    mapfile -t have < <(tail -n +2 "$stamp")
    missing=0
    for w in "${wanted[@]+"${wanted[@]}"}"; do
        case " ${have[*]+"${have[*]}"} " in *" $w "*) ;; *) missing=1 ;; esac
    done
    if [ "$missing" = 0 ]; then exit 0; fi
else
    have=()
fi
# keep what an earlier run with the same pyproject.toml installed
all=()
for w in "${have[@]+"${have[@]}"}" "${wanted[@]+"${wanted[@]}"}"; do
    case " ${all[*]+"${all[*]}"} " in *" $w "*) ;; *) all+=("$w") ;; esac
done
pip_extras=()
pyqt6=0
for w in "${all[@]+"${all[@]}"}"; do
    if [ "$w" = pyqt6 ]; then pyqt6=1; else pip_extras+=("$w"); fi
done
spec="."
if [ ${#pip_extras[@]} -gt 0 ]; then spec=".[$(IFS=,; echo "${pip_extras[*]}")]"; fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e "$spec"
if [ "$pyqt6" = 1 ]; then
    .venv/bin/python -m pip install --quiet "PyQt6>=6.5"
fi
printf '%s\n' "$hash" "${all[@]+"${all[@]}"}" >"$stamp"
