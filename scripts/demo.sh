#!/usr/bin/env bash
# From zero to a finished drill report: install what is missing, then run the weekly matching-engine
# drill twice on a fresh production-shaped reference stack (Sentinel-managed Redis, a ZooKeeper
# ensemble): trading load, the matching-engine leader killed, recovery measured, every acknowledged
# order checked. The second run's management report shows the trend across both.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The reference stack is a lab stack that never trades; the drill file keeps the real market-hours guard,
# so the demo states why it may run inside trading hours (journaled, shown only when it mattered).
drill=(.venv/bin/python chaos.py drill run drills/matcher-node-loss.yaml --stack-up --non-interactive
       --ignore-market-hours --reason "demo drill on the local lab stack")
echo "== drill run 1 of 2"
"${drill[@]}" "$@"
echo "== drill run 2 of 2"
exec "${drill[@]}" "$@"
