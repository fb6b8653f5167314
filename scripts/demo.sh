#!/usr/bin/env bash
# Installs what is missing (scripts/setup.sh) and starts the demo on embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/loyalty demo "$@"
