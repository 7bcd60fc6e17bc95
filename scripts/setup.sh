#!/usr/bin/env bash
# Install everything the project needs on Debian/Ubuntu: the system packages listed in
# scripts/debian-packages.txt (+ debian-packages-test.txt for `test`) when run as root — otherwise it
# prints the exact apt-get command and stops — and a Python virtualenv in .venv.
#   bash scripts/setup.sh          # to run experiments and drills
#   bash scripts/setup.sh test     # plus the test tools (pytest, ruff, mypy)
set -euo pipefail
cd "$(dirname "$0")/.."

extras="${1:-}"
# The Debian packages come from one list each (one name a line): what drills need, and what only tests need.
. scripts/packages.sh
lists=(scripts/debian-packages.txt)
[ "$extras" = "test" ] && lists+=(scripts/debian-packages-test.txt)
# shellcheck disable=SC2046
ensure_packages setup $(for list in "${lists[@]}"; do package_names "$list"; done) || exit 1
command -v java >/dev/null 2>&1 || { echo "setup: no java on PATH after installing zookeeper" >&2; exit 1; }

python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "setup: Python 3.11 or newer is needed ($python is $("$python" --version 2>&1)); set PYTHON=..." >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating the virtualenv .venv"
    "$python" -m venv .venv
fi

# Reinstall only when the dependency list changed.
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)-${extras:-run}"
if [ ! -f "$stamp" ]; then
    echo "setup: installing Python dependencies into .venv"
    spec="."
    [ -n "$extras" ] && spec=".[$extras]"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec" 2>&1 \
        | grep -v "^WARNING: Location" || true
    .venv/bin/python -c "import locust, hdrh, aiohttp, kazoo, redis, pydantic, jinja2" \
        || { echo "setup: Python dependencies failed to install" >&2; exit 1; }
    rm -f .venv/.installed-*
    touch "$stamp"
fi
echo "setup: ready"
