"""`engine.discover` on real listeners here and over a real sshd on loopback; the draft loads and finds them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from clients.listeners import listeners_on
from clients.nft import LocalShell
from clients.procs import LOCAL, found_by_rule
from engine.discover import discover, draft, listing
from engine.stack import read_description
from engine.stack_check import check_stack
from stackspec.targets import ProcessTarget, StackDescription
from tests.injectors.sshd_server import Sshd
from tests.support.helpers import free_port, popen_alive, require_programs, wait_ready
from tests.support.own_processes import Started


def instance_listening_on(description: StackDescription, port: int) -> tuple[str, ProcessTarget, int]:
    for name, group in description.targets.items():
        if isinstance(group, ProcessTarget):
            for i, instance in enumerate(group.instances):
                if instance.ports.get("client") == port:
                    return name, group, i
    raise AssertionError(f"no instance for port {port} in the draft")


def test_a_listener_is_found_with_its_command_line_and_the_draft_loads_and_finds_it(
    started: Started, tmp_path: Path
) -> None:
    proc, port = started.http_server()
    found = discover([], local=True)
    [mine] = [listener for listener in found[0].listeners.listeners if listener.pid == proc.pid]
    assert mine.argv == (sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1")
    assert [(s.address, s.port) for s in mine.sockets] == [("127.0.0.1", port)]
    assert f"pid {proc.pid}  127.0.0.1:{port}  {sys.executable} -m http.server {port}" in listing(found)

    text = draft(found, "lab")
    assert text.startswith("# A draft stack description written by `chaos.py stack discover`: EDIT it")
    (tmp_path / "draft.yaml").write_text(text)
    description = read_description(tmp_path / "draft.yaml")
    assert description.name == "lab"
    name, group, index = instance_listening_on(description, port)
    instance = group.instances[index]
    assert name == "http-server" and instance.host is None
    assert instance.match is not None and instance.match.listen_port == port
    assert instance.health is not None and instance.health.model_dump() == {
        "tcp": f"127.0.0.1:{port}",
        "timeout_s": 1.0,
    }
    assert instance.argv == list(mine.argv)
    # Its match rule finds exactly this process, and `stack check` passes it.
    assert found_by_rule(LOCAL, instance).pid == proc.pid
    only = description.model_copy(update={"targets": {name: group.model_copy(update={"instances": [instance]})}})
    assert check_stack(only).problems == []


_PREFORK = """
import os, socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
if os.fork() == 0:
    time.sleep(120); os._exit(0)
print(s.getsockname()[1], flush=True)
time.sleep(120)
"""


def test_a_socket_shared_with_a_forked_worker_belongs_to_the_parent_alone() -> None:
    parent = subprocess.Popen([sys.executable, "-c", _PREFORK, "prefork-marker"], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        port = int(parent.stdout.readline())
        children = Path(f"/proc/{parent.pid}/task/{parent.pid}/children").read_text().split()
        assert len(children) == 1
        found = listeners_on(LocalShell())
        owners = [listener.pid for listener in found.listeners if port in listener.ports]
        assert owners == [parent.pid]
    finally:
        for pid in [*map(int, Path(f"/proc/{parent.pid}/task/{parent.pid}/children").read_text().split()), parent.pid]:
            os.kill(pid, 9)
        parent.wait(timeout=10)


def test_the_runners_own_listeners_are_left_out() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        found = discover([], local=True)
        assert not [listener for listener in found[0].listeners.listeners if port in listener.ports]
        assert os.getpid() not in [listener.pid for listener in found[0].listeners.listeners]
        # ... and what owns it is not listed as unreadable either: it is skipped, not unknown
        assert port not in found[0].listeners.unowned_ports


def test_over_ssh_the_same_listener_is_found_and_the_draft_names_its_host(
    started: Started, sshd: Sshd, tmp_path: Path
) -> None:
    proc, port = started.http_server()
    found = discover([sshd.host()], local=False)
    assert [f.listeners.host for f in found] == [sshd.host().label]
    assert proc.pid in [listener.pid for listener in found[0].listeners.listeners]
    (tmp_path / "draft.yaml").write_text(draft(found))
    name, group, index = instance_listening_on(read_description(tmp_path / "draft.yaml"), port)
    instance = group.instances[index]
    assert instance.host is not None and instance.host.label == sshd.host().label
    assert instance.host.key_file == sshd.host().key_file and instance.host.known_hosts == sshd.host().known_hosts
    only = StackDescription(
        name="x", market_hours=None, targets={name: group.model_copy(update={"instances": [instance]})}
    )
    result = check_stack(only)
    assert result.problems == [] and result.rows[0].fields["found"] == f"pid {proc.pid} (by match)"


def _pong(port: int) -> str | None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return None if sock.recv(16).startswith(b"+PONG") else "no PONG"
    except OSError as exc:
        return str(exc)


def test_a_program_that_rewrote_its_title_gets_a_supervisor_restart_to_edit(tmp_path: Path) -> None:
    require_programs("redis-server")
    port = free_port()
    # redis-server writes its own title over its argv ("/usr/bin/redis-server 127.0.0.1:PORT"), as nginx does.
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen([*argv, "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready("redis-server", lambda: _pong(port), alive=popen_alive(proc))
        found = discover([], local=True)
        [mine] = [listener for listener in found[0].listeners.listeners if listener.pid == proc.pid]
        assert len(mine.argv) == 1 and " " in mine.argv[0]  # the title it wrote, not the argv it was given
        (tmp_path / "draft.yaml").write_text(draft(found))
        text = (tmp_path / "draft.yaml").read_text()
        name, group, index = instance_listening_on(read_description(tmp_path / "draft.yaml"), port)
        instance = group.instances[index]
        assert name == "redis-server"
        assert instance.restart is not None and instance.restart.by == "supervisor" and instance.argv == []
        assert instance.match is not None and instance.match.cmdline is not None
        assert instance.match.cmdline.startswith("^") and "redis-server" in instance.match.cmdline
        assert "EDIT: it rewrote its command line" in text
        assert found_by_rule(LOCAL, instance).pid == proc.pid
    finally:
        proc.kill()
        proc.wait(timeout=10)
