#!/usr/bin/env bash
# Install the Debian packages a virtual X display (Xvfb) and Qt/OpenGL need on a headless
# Linux machine, but only when something is missing.
set -euo pipefail
PKGS="xvfb xauth libgl1 libgl1-mesa-dri libegl1 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 \
libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 \
libxcb-cursor0 libdbus-1-3 libfontconfig1 libglib2.0-0"
command -v dpkg-query >/dev/null 2>&1 || { echo "not a Debian/Ubuntu system: install Xvfb and Qt's xcb libraries yourself"; exit 0; }
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "installing system packages:$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
