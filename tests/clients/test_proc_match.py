"""`match` rules: the pure judge, the rule model, and real processes found on this host and by the remote script."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from clients.proc_match import (
    Seen,
    exe_path,
    listening_inodes,
    local_matches,
    matching,
    parse_pidfile,
    remote_matches,
    remote_script,
)
from stackspec.match import ProcessMatch
from tests.support.helpers import free_port

TABLE = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4711 1 0
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 4712 1 0
   2: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 815 1 0
"""


def test_the_tcp_tables_give_the_listening_sockets_by_port() -> None:
    # Port 0x1F90 = 8080 listens once (the established connection on it is no listener), 0x16 = 22.
    assert listening_inodes([TABLE, "garbage\n"]) == {8080: {4711}, 22: {815}}


SEEN = [
    Seen(10, ("nginx: master process /usr/sbin/nginx",), "/usr/sbin/nginx", frozenset({4711})),
    Seen(11, ("nginx: worker process",), "/usr/sbin/nginx", frozenset({4711})),
    Seen(12, ("/usr/bin/redis-server", "*:6379"), "/usr/bin/redis-server", frozenset({815})),
]


@pytest.mark.parametrize(
    ("rule", "pids"),
    [
        (ProcessMatch(cmdline="nginx"), [10, 11]),
        (ProcessMatch(cmdline=r"^nginx: master"), [10]),
        (ProcessMatch(exe="/usr/sbin/nginx"), [10, 11]),
        (ProcessMatch(exe="/usr/sbin/nginx", pidfile="/run/nginx.pid"), [10]),
        (ProcessMatch(listen_port=8080), [10, 11]),  # a forked worker shares the listening socket
        (ProcessMatch(listen_port=22), [12]),
        (ProcessMatch(listen_port=9999), []),
        (ProcessMatch(cmdline="redis", exe="/usr/sbin/nginx"), []),  # every rule must hold
    ],
)
def test_every_rule_given_must_hold(rule: ProcessMatch, pids: list[int]) -> None:
    assert matching(rule, SEEN, {8080: {4711}, 22: {815}}, pidfile_pid=10) == pids


def test_pid_files_and_deleted_executables() -> None:
    assert parse_pidfile("4242\n") == 4242 and parse_pidfile("  77 extra") == 77
    assert parse_pidfile("") is None and parse_pidfile("abc") is None and parse_pidfile(None) is None
    assert exe_path("/usr/sbin/nginx (deleted)") == "/usr/sbin/nginx" and exe_path("") is None


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ({}, "at least one of cmdline, exe, pidfile, listen_port"),
        ({"cmdline": "nginx ("}, "not a regular expression"),
        ({"exe": "nginx"}, "must be an absolute path"),
        ({"listen_port": 70000}, "less than or equal to 65535"),
        ({"pid": 3}, "Extra inputs are not permitted"),
    ],
)
def test_a_rule_that_cannot_work_is_refused(given: dict[str, object], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        ProcessMatch.model_validate(given)


LISTENER = textwrap.dedent(
    """
    import socket, sys, time
    s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
    open(sys.argv[2], "w").write(f"{__import__('os').getpid()}\\n")
    time.sleep(60)
    """
)


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[int, int, Path]]:
    """A real process listening on a free port, with a pid file: (pid, port, pidfile)."""
    port, pidfile = free_port(), tmp_path / "svc.pid"
    proc = subprocess.Popen([sys.executable, "-c", LISTENER, str(port), str(pidfile), f"match-me-{port}"])
    try:
        deadline = time.monotonic() + 10
        while not (pidfile.exists() and pidfile.read_text().endswith("\n")):
            assert time.monotonic() < deadline and proc.poll() is None, "the listener did not start"
            time.sleep(0.02)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        yield proc.pid, port, pidfile
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def _rules(pid_port_file: tuple[int, int, Path]) -> list[ProcessMatch]:
    _, port, pidfile = pid_port_file
    return [
        ProcessMatch(cmdline=rf"match-me-{port}$"),  # the port makes the word this test's own
        ProcessMatch(listen_port=port),
        ProcessMatch(pidfile=str(pidfile)),
        ProcessMatch(exe=os.path.realpath(sys.executable), cmdline=f"match-me-{port}"),
    ]


def test_each_rule_finds_the_real_process_on_this_host(listener: tuple[int, int, Path]) -> None:
    pid = listener[0]
    for rule in _rules(listener):
        assert local_matches(rule) == [pid], rule.label
    assert local_matches(ProcessMatch(listen_port=listener[1], cmdline="not-this-one")) == []


def test_the_remote_script_sees_what_this_host_sees(listener: tuple[int, int, Path]) -> None:
    """The script RemoteHost sends over SSH, run by sh here: the same PIDs as the local lookup."""
    for rule in [*_rules(listener), ProcessMatch(pidfile="/nonexistent/it's.pid")]:
        result = subprocess.run(["sh", "-s"], input=remote_script(rule), capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert remote_matches(rule, result.stdout) == local_matches(rule), rule.label
