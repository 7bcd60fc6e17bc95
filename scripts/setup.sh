#!/usr/bin/env bash
# Install everything the project needs on Debian/Ubuntu: the system packages (when run as root;
# otherwise it prints the exact command) and a Python virtualenv in .venv.
#   bash scripts/setup.sh          # to run experiments and drills
#   bash scripts/setup.sh test     # plus the test tools (pytest, ruff, mypy)
set -euo pipefail
cd "$(dirname "$0")/.."

extras="${1:-}"
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ -f /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)
[ -f /usr/share/java/slf4j-simple.jar ] || missing+=(libslf4j-java)
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
if [ "$extras" = "test" ]; then
    # Tests open the HTML reports in a real browser and print the management report to PDF.
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    # Container faults are tested against podman's Docker API (tests start it: scripts/podman-setup.sh).
    { command -v podman && command -v runc && [ -x /bin/busybox ]; } >/dev/null 2>&1 || missing+=(podman runc busybox-static)
    # Process faults over SSH are tested against a real sshd the tests start on a loopback port.
    [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
fi

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing Debian packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "setup: these Debian packages are missing: ${missing[*]}" >&2
        echo "setup: install them with:  sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
        exit 1
    fi
fi

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
