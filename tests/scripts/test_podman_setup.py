"""scripts/podman-setup.sh against the real podman: ready only when the service answers, dead only when it exited.

On a new machine the first `podman system service` start is slow, and right after a background start the
PID is still a copy of the starting shell until its exec. A start-up check that judged the service by its
command line declared a live service dead there, and every container test failed. These tests make a
slow first start on purpose — a stand-in `podman` on PATH that stays alive for a while as something that
is not podman yet, then execs the real one — and a start that fails, and one that never answers.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.procs import state_of
from tests.support.helpers import ROOT, require_programs

SETUP = ROOT / "scripts" / "podman-setup.sh"
pytestmark = [pytest.mark.slow, pytest.mark.infra]

# The stand-in: a `system service` start first lives for $SLOW_START_S seconds under another name (its
# command line shows no "podman ... system service"), then becomes the real podman with the same PID.
SLOW_WRAPPER = """#!/bin/bash
case " $* " in
    *" system service "*)
        printf '%s\\0' "$@" >"$WRAP_ARGS"
        exec -a slow-first-start /bin/bash -c \\
            'sleep "$0"; mapfile -d "" args <"$1"; exec "$2" "${args[@]}"' "$SLOW_START_S" "$WRAP_ARGS" "$REAL_PODMAN"
        ;;
esac
exec "$REAL_PODMAN" "$@"
"""
# A service that fails as a broken installation does: a message on stderr, a non-zero exit.
FAILING_WRAPPER = """#!/bin/bash
case " $* " in
    *" system service "*) echo "Error: storage is broken here (a stand-in failure)" >&2; exit 125 ;;
esac
exec "$REAL_PODMAN" "$@"
"""
# A service that never answers: alive, but no socket.
SILENT_WRAPPER = """#!/bin/bash
case " $* " in
    *" system service "*) exec -a silent-service sleep 600 ;;
esac
exec "$REAL_PODMAN" "$@"
"""


def run_setup(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SETUP), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def podman_env(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """An environment for podman-setup.sh with its own engine directory; stops what it started afterwards."""
    require_programs("podman", "runc")
    directory = tmp_path / "podman"
    env = {
        **os.environ,
        "CHAOS_PODMAN_DIR": str(directory),
        "REAL_PODMAN": str(shutil.which("podman")),
        "WRAP_ARGS": str(tmp_path / "service-args"),
    }
    try:
        yield env, directory
    finally:
        run_setup(env, "stop", timeout=60)


def with_wrapper(env: dict[str, str], tmp_path: Path, script: str, **extra: str) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    wrapper = bin_dir / "podman"
    wrapper.write_text(script)
    wrapper.chmod(0o755)
    return {**env, **extra, "PATH": f"{bin_dir}:{env['PATH']}"}


def gone(pid: int) -> bool:
    """The PID has exited (a zombie waiting for whoever adopted it counts as exited)."""
    return state_of(pid) in (None, "Z", "X")


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_a_slow_first_start_is_waited_for_and_its_service_is_the_pid_recorded(
    podman_env: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    env, directory = podman_env
    env = with_wrapper(env, tmp_path, SLOW_WRAPPER, SLOW_START_S="6")
    started = time.monotonic()
    done = run_setup(env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert time.monotonic() - started >= 6  # it really was slow, and it was waited for
    assert done.stdout.strip().splitlines()[-1] == f"DOCKER_HOST=unix://{directory}/podman.sock"
    assert "waiting for the API service" in done.stderr  # progress while it waits
    pid = int((directory / "service.pid").read_text())
    assert "system service --time=0" in cmdline(pid)  # the recorded PID is the service itself
    assert run_setup(env, "env").returncode == 0

    again = run_setup(env)  # a running service is reused, not replaced
    assert again.returncode == 0 and int((directory / "service.pid").read_text()) == pid

    stopped = run_setup(env, "stop")
    assert f"stopped the API service (pid {pid})" in stopped.stdout
    assert gone(pid) and not (directory / "podman.sock").exists()
    assert run_setup(env, "env").returncode == 1


def test_a_service_that_exits_is_reported_with_its_status_and_log(
    podman_env: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    env, directory = podman_env
    done = run_setup(with_wrapper(env, tmp_path, FAILING_WRAPPER))
    assert done.returncode == 1
    assert "exited with status 125 before it answered" in done.stderr
    assert "storage is broken here" in done.stderr  # the service's own log, in the message
    assert not (directory / "service.pid").exists()


def test_a_service_that_never_answers_times_out_and_is_stopped(
    podman_env: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    env, directory = podman_env
    done = run_setup(with_wrapper(env, tmp_path, SILENT_WRAPPER, CHAOS_PODMAN_START_TIMEOUT_S="3"))
    assert done.returncode == 1
    assert "did not answer" in done.stderr and "within 3 s" in done.stderr
    pid = int(done.stderr.split("(pid ", 1)[1].split(")", 1)[0])
    assert gone(pid), "a service that never answered is not left behind"
    assert not (directory / "service.pid").exists()


def test_a_bad_timeout_is_refused(podman_env: tuple[dict[str, str], Path]) -> None:
    env, _ = podman_env
    done = run_setup({**env, "CHAOS_PODMAN_START_TIMEOUT_S": "5x"})
    assert done.returncode == 1 and "must be whole seconds" in done.stderr


def test_stop_never_signals_a_process_that_is_not_our_service(podman_env: tuple[dict[str, str], Path]) -> None:
    env, directory = podman_env
    directory.mkdir(parents=True, exist_ok=True)
    other = subprocess.Popen(["sleep", "60"])
    try:
        (directory / "service.pid").write_text(f"{other.pid}\n")  # a recycled PID, say
        done = run_setup(env, "stop")
        assert "no API service of ours is running" in done.stdout
        assert other.poll() is None
    finally:
        os.kill(other.pid, signal.SIGKILL)
        other.wait(timeout=10)


def test_two_starts_at_once_share_one_service(podman_env: tuple[dict[str, str], Path], tmp_path: Path) -> None:
    """Parallel test workers start the engine at the same moment: one service, both told its socket."""
    env, directory = podman_env
    env = with_wrapper(env, tmp_path, SLOW_WRAPPER, SLOW_START_S="2")
    starts = [
        subprocess.Popen(
            ["bash", str(SETUP)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=300) for proc in starts]
    assert [proc.returncode for proc in starts] == [0, 0], outputs
    assert {out.strip().splitlines()[-1] for out, _ in outputs} == {f"DOCKER_HOST=unix://{directory}/podman.sock"}
    services = [
        pid
        for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
        if not gone(pid) and f"unix://{directory}/podman.sock" in _safe_cmdline(pid)
    ]
    assert len(services) == 1, services


def _safe_cmdline(pid: int) -> str:
    try:
        return cmdline(pid)
    except OSError:
        return ""
