#!/usr/bin/env bash
# Installs everything the project needs on Debian/Ubuntu: the system packages
# (when run as root), a virtual environment in .venv, and the pinned Python
# dependencies (pyproject.toml + constraints.txt). Safe to run again: it only
# does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(python3-venv gcc swig libpcsclite-dev pcscd vsmartcard-vpcd socat tmux libusb-1.0-0
              fonts-noto-core libfribidi0 libraqm0 postgresql)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing system packages: ${missing[*]}" >&2
    echo "setup: run as root, or: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ "$(cat .venv/.installed 2>/dev/null)" != "$stamp" ]; then
  echo "setup: installing Python dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt -e ".[test]"
  echo "$stamp" > .venv/.installed
fi
# The project is installed editable, so pip compiled none of its own modules; a
# till that may not write next to its sources (or runs with PYTHONDONTWRITEBYTECODE)
# would compile them on every start. Only changed files are compiled again.
.venv/bin/python -m compileall -q -j 0 ledger drivers sync receipts terminal >/dev/null
