#!/usr/bin/env bash
# Install the Debian packages the tests drive for real: Xvfb (the agent's display), xterm and
# xdotool (a program to type into, and a way to check the pointer), Chromium (browser tests).
# Does nothing when everything is present; never downloads a browser of Playwright's own.
set -euo pipefail

need=()
command -v Xvfb >/dev/null      || need+=(xvfb xauth)
command -v xterm >/dev/null     || need+=(xterm)
command -v xdotool >/dev/null   || need+=(xdotool)
command -v xsetroot >/dev/null  || need+=(x11-xserver-utils)
command -v xwininfo >/dev/null  || need+=(x11-utils)
command -v chromium >/dev/null  || need+=(chromium)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf ] || need+=(fonts-dejavu-core)
# The single-file agent (make agent-dist, built by the tests) freezes the interpreter's tkinter
# and needs its shared libpython: Debian's python3 ships both as separate packages.
py="${PYTHON:-python3}"
"$py" -c "import tkinter" 2>/dev/null || need+=(python3-tk)
if [ "$(command -v "$py")" = /usr/bin/python3 ]; then
    v="$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    ls /usr/lib/*-linux-gnu/libpython"$v".so.1* >/dev/null 2>&1 || need+=("libpython$v")
fi

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
echo "Installing Debian packages: ${need[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "need root or sudo to install: ${need[*]}" >&2; exit 1; }
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
