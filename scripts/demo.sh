#!/usr/bin/env bash
# From zero to a finished drill report: install what is missing, start a reference trading stack,
# drive trading load, kill the matching-engine leader, measure recovery, write the reports.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python chaos.py run experiments/matcher-leader-kill.yaml --stack-up "$@"
