#!/usr/bin/env bash
# Install what the tests need, then lint, type-check and run the whole test suite (real servers included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
echo "== ruff";   .venv/bin/ruff check .
echo "== mypy";   .venv/bin/mypy
# Three workers on two cores (the tests mostly wait on real servers and fault timelines), each test file
# on one worker so that a module's shared servers and its ordered checks stay together.
# CHAOS_TEST_WORKERS=0 runs everything in this one process.
echo "== pytest"; .venv/bin/pytest -n "${CHAOS_TEST_WORKERS:-3}" --dist loadfile "$@"
