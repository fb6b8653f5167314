#!/usr/bin/env bash
# The whole test suite on a fresh Debian/Ubuntu machine: installs what it
# needs (scripts/setup.sh), then lint, types and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff";  ruff check .
echo "== mypy";  mypy
echo "== pytest"
pytest "$@"
