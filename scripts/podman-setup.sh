#!/usr/bin/env bash
# A local container engine for the container faults: podman serving the Docker Engine API on a unix socket.
#   bash scripts/podman-setup.sh [start]   # install podman/runc/busybox-static if missing (root + apt),
#                                          # start `podman system service` and print DOCKER_HOST=unix://...
#   bash scripts/podman-setup.sh stop      # stop that service (only the PID this script started)
#   bash scripts/podman-setup.sh env       # print DOCKER_HOST=... if the service answers, else exit 1
# Idempotent: a running service is reused. Everything lives in $CHAOS_PODMAN_DIR (default runs/podman):
# containers.conf, storage.conf, image/container storage, the socket, the PID file and the service log.
# The service is ready when it answers GET /_ping on its socket; a first start on a new machine can take
# many seconds, so start waits up to $CHAOS_PODMAN_START_TIMEOUT_S (default 120) and says it is waiting.
# It is declared dead only when the process it started has exited (with its exit status and log); one
# still silent at the bound is stopped, with its log.
# Exit codes: 0 ok, 1 failed, 2 cannot install here (not root or no apt-get) - tests skip on 2 outside CI.
set -euo pipefail
set +m  # no job control: a background start stays in our process group, so setsid never forks away
cd "$(dirname "$0")/.."

action="${1:-start}"
dir="${CHAOS_PODMAN_DIR:-runs/podman}"
timeout_s="${CHAOS_PODMAN_START_TIMEOUT_S:-120}"
case "$timeout_s" in
    '' | *[!0-9]*) echo "podman-setup: CHAOS_PODMAN_START_TIMEOUT_S must be whole seconds, got '$timeout_s'" >&2; exit 1 ;;
esac
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
sock="$dir/podman.sock"
pidfile="$dir/service.pid"
log="$dir/service.log"
export CONTAINERS_CONF="$dir/containers.conf"
export CONTAINERS_STORAGE_CONF="$dir/storage.conf"

ping() {
    # The service's own answer: GET /_ping on its socket says OK.
    [ -S "$sock" ] || return 1
    if command -v curl >/dev/null 2>&1; then
        [ "$(curl -s --max-time 2 --unix-socket "$sock" http://d/_ping 2>/dev/null)" = "OK" ]
    else
        "${PYTHON:-python3}" - "$sock" <<'PY' 2>/dev/null
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect(sys.argv[1])
s.sendall(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
sys.exit(0 if s.recv(4096).rstrip().endswith(b"OK") else 1)
PY
    fi
}

alive() {
    # True while PID $1 exists and is not a zombie (its state is the field after the last ')' of stat).
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    [ "${stat%% *}" != Z ] && [ "${stat%% *}" != X ]
}

service_pid() {
    # The PID in our PID file, only while it is alive and still our service: a podman `system service` on
    # our socket (PIDs are recycled). Used to stop or reuse a service long started, never during start-up.
    [ -f "$pidfile" ] || return 1
    local pid
    pid="$(cat "$pidfile")"
    [ -n "$pid" ] && alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "system service --time=0 unix://$sock" || return 1
    echo "$pid"
}

# One start or stop at a time per directory (parallel test workers share one engine): the second
# caller waits, then finds the service the first one started and reuses it.
if [ "$action" = "start" ] || [ "$action" = "stop" ]; then
    exec 9>"$dir/.setup.lock"
    flock -w 300 9 || { echo "podman-setup: another podman-setup.sh holds $dir/.setup.lock" >&2; exit 1; }
fi

if [ "$action" = "stop" ]; then
    if pid="$(service_pid)"; then
        kill "$pid"
        for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
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

# The packages come from the project's one list: the "[containers]" group of debian-packages-test.txt.
. scripts/packages.sh
# shellcheck disable=SC2046
ensure_packages podman-setup $(package_names scripts/debian-packages-test.txt containers) || exit $?

# The defaults do not work on these machines (no CAP_SYS_RESOURCE, hybrid cgroups, crun unsupported).
cat >"$CONTAINERS_CONF" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
netns = "host"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
cat >"$CONTAINERS_STORAGE_CONF" <<CONF
[storage]
driver = "overlay"
graphroot = "$dir/storage"
runroot = "$dir/run"
CONF

if service_pid >/dev/null && ping; then
    echo "DOCKER_HOST=unix://$sock"
    exit 0
fi
if pid="$(service_pid)"; then  # ours, but not answering: replace it
    kill "$pid" || true
    for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
fi
rm -f "$sock"
mkdir -p "$dir/tmp"
echo "=== $(date '+%Y-%m-%d %H:%M:%S') podman-setup: starting the API service" >>"$log"
started_line="$(wc -l <"$log")"
setsid nohup podman --tmpdir "$dir/tmp" system service --time=0 "unix://$sock" </dev/null >>"$log" 2>&1 9>&- &
pid=$!
echo "$pid" >"$pidfile"

# Ready means the service answers. $pid is our own child: it is the service from its exec on, and it has
# exited only when it is gone or a zombie — never judged by what its command line says (before the exec
# it is still a copy of this shell, and on a new machine the first start is slow).
start=$SECONDS
said_waiting=0
while [ $((SECONDS - start)) -lt "$timeout_s" ]; do
    if ping; then
        echo "DOCKER_HOST=unix://$sock"
        exit 0
    fi
    if ! alive "$pid"; then
        status=0
        wait "$pid" || status=$?
        rm -f "$pidfile"
        echo "podman-setup: the API service (pid $pid) exited with status $status before it answered;" \
            "its log ($log):" >&2
        tail -n "+$((started_line + 1))" "$log" | tail -n 20 >&2
        exit 1
    fi
    if [ "$said_waiting" -eq 0 ] && [ $((SECONDS - start)) -ge 5 ]; then
        echo "podman-setup: waiting for the API service (pid $pid) to answer on $sock" \
            "(a first start can take a minute; up to ${timeout_s} s)" >&2
        said_waiting=1
    fi
    sleep 0.2
done
# Alive but silent for the whole bound: stop it (it is our own child) rather than leave it half-started.
kill "$pid" 2>/dev/null || true
for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
alive "$pid" && kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null || true  # reap our child
rm -f "$pidfile" "$sock"
echo "podman-setup: the API service (pid $pid) did not answer on $sock within ${timeout_s} s, so it was" \
    "stopped; raise CHAOS_PODMAN_START_TIMEOUT_S if this machine is that slow. Its log ($log):" >&2
tail -n "+$((started_line + 1))" "$log" | tail -n 20 >&2
exit 1
