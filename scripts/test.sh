#!/usr/bin/env bash
# Install what the tests need, then lint, type-check and run the whole test suite (real servers included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
echo "== ruff";   .venv/bin/ruff check .
echo "== mypy";   .venv/bin/mypy
echo "== pytest"; .venv/bin/pytest "$@"
