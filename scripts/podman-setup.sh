#!/usr/bin/env bash
# A local container engine for the container faults: podman serving the Docker Engine API on a unix socket.
#   bash scripts/podman-setup.sh [start]   # install podman/runc/busybox-static if missing (root + apt),
#                                          # start `podman system service` and print DOCKER_HOST=unix://...
#   bash scripts/podman-setup.sh stop      # stop that service (only the PID this script started)
#   bash scripts/podman-setup.sh env       # print DOCKER_HOST=... if the service answers, else exit 1
# Idempotent: a running service is reused. Everything lives in $CHAOS_PODMAN_DIR (default runs/podman):
# containers.conf, storage.conf, image/container storage, the socket, the PID file and the service log.
# Exit codes: 0 ok, 1 failed, 2 cannot install here (not root or no apt-get) - tests skip on 2 outside CI.
set -euo pipefail
cd "$(dirname "$0")/.."

action="${1:-start}"
dir="${CHAOS_PODMAN_DIR:-runs/podman}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
sock="$dir/podman.sock"
pidfile="$dir/service.pid"
export CONTAINERS_CONF="$dir/containers.conf"
export CONTAINERS_STORAGE_CONF="$dir/storage.conf"

ping() {
    [ -S "$sock" ] || return 1
    if command -v curl >/dev/null 2>&1; then
        [ "$(curl -s --max-time 2 --unix-socket "$sock" http://d/_ping 2>/dev/null)" = "OK" ]
    else
        "${PYTHON:-python3}" - "$sock" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect(sys.argv[1])
s.sendall(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
sys.exit(0 if s.recv(4096).rstrip().endswith(b"OK") else 1)
EOF
    fi
}

service_pid() {
    # The PID in our PID file, only while it is still a podman system service (PIDs are recycled).
    [ -f "$pidfile" ] || return 1
    local pid
    pid="$(cat "$pidfile")"
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "podman.*system service" || return 1
    echo "$pid"
}

if [ "$action" = "stop" ]; then
    if pid="$(service_pid)"; then
        kill "$pid"
        for _ in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
        echo "podman-setup: stopped the API service (pid $pid)"
    else
        echo "podman-setup: no API service of ours is running"
    fi
    rm -f "$pidfile" "$sock"
    # podman keeps its overlay storage mounted (a private mount of its own); release it so the project
    # directory can be removed. Busy (containers still running from it) means it stays, and says so.
    if command -v mountpoint >/dev/null 2>&1 && mountpoint -q "$dir/storage/overlay"; then
        umount "$dir/storage/overlay" 2>/dev/null \
            && echo "podman-setup: released the storage mount" \
            || echo "podman-setup: the storage mount is busy (containers still running?); it stays" >&2
    fi
    exit 0
fi
if [ "$action" = "env" ]; then
    ping && { echo "DOCKER_HOST=unix://$sock"; exit 0; }
    echo "podman-setup: no engine answers on $sock; run: bash scripts/podman-setup.sh" >&2
    exit 1
fi
if [ "$action" != "start" ]; then
    echo "usage: bash scripts/podman-setup.sh [start|stop|env]" >&2
    exit 1
fi

missing=()
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || missing+=(runc)
[ -x /bin/busybox ] || missing+=(busybox-static)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "podman-setup: missing ${missing[*]}; install as root: apt-get install -y --no-install-recommends" \
            "${missing[*]}" >&2
        exit 2
    fi
    echo "podman-setup: installing ${missing[*]}" >&2
    apt_install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; }
    if ! apt_install >"$dir/apt.log" 2>&1; then
        # Most often a stale or missing package list: refresh it once and try again.
        apt-get update -qq >>"$dir/apt.log" 2>&1 || true
        apt_install >>"$dir/apt.log" 2>&1 || { echo "podman-setup: apt-get failed; see $dir/apt.log" >&2; exit 1; }
    fi
fi

# The defaults do not work on these machines (no CAP_SYS_RESOURCE, hybrid cgroups, crun unsupported).
cat >"$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
netns = "host"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
cat >"$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "overlay"
graphroot = "$dir/storage"
runroot = "$dir/run"
EOF

if service_pid >/dev/null && ping; then
    echo "DOCKER_HOST=unix://$sock"
    exit 0
fi
if pid="$(service_pid)"; then  # ours, but not answering: replace it
    kill "$pid" || true
    sleep 0.5
fi
rm -f "$sock"
mkdir -p "$dir/tmp"
setsid nohup podman --tmpdir "$dir/tmp" system service --time=0 "unix://$sock" \
    </dev/null >>"$dir/service.log" 2>&1 &
echo $! >"$pidfile"
for _ in $(seq 150); do
    if ping; then
        echo "DOCKER_HOST=unix://$sock"
        exit 0
    fi
    if ! service_pid >/dev/null; then
        echo "podman-setup: the API service exited; see $dir/service.log:" >&2
        tail -n 20 "$dir/service.log" >&2
        exit 1
    fi
    sleep 0.1
done
echo "podman-setup: no answer on $sock after 15 s; see $dir/service.log" >&2
exit 1
