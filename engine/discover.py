"""`chaos.py stack discover`: the processes listening on TCP ports, here or over SSH, as a draft stack description.

One process target per program (the same program on several hosts is one target with an instance per
host), each instance with `match` rules (a command-line regular expression from the program's name and
its distinctive arguments, and the listening port), a TCP health check on that port, `ports.client`, and
`host` when it was found over SSH. The draft is YAML with comments saying what to edit; it loads as a
stack description as it is (`engine.stack.read_description`), and `chaos.py stack check` checks it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from clients.listeners import HostListeners, Listener, listeners_on
from clients.nft import LocalShell
from clients.procs import ProcessHosts
from stackspec.targets import SshHost

# Programs whose own name says little: the module, script or jar they run is what tells them apart.
INTERPRETERS = re.compile(r"^(python|pypy|java|node|nodejs|ruby|perl|php|bash|sh|dash|dotnet|erl|beam\.smp)[0-9.]*$")
_VALUE_OPTIONS = {"-m", "-jar", "-cp", "-classpath", "-c"}
_NAME = re.compile(r"[^a-z0-9]+")
_SPECIAL = re.compile(r"([.^$*+?{}\[\]\\|()])")


@dataclass(frozen=True)
class Found:
    """One host's listeners, and the SSH host they were found on (None: this host)."""

    ssh: SshHost | None
    listeners: HostListeners


def discover(ssh_hosts: list[SshHost], local: bool) -> list[Found]:
    """Listeners of this host (when `local`) and of each SSH host; SshError/ListenersError when one cannot be read."""
    found = []
    if local:
        found.append(Found(None, listeners_on(LocalShell(), skip=frozenset({os.getpid()}))))
    with ProcessHosts() as hosts:
        for ssh in ssh_hosts:
            found.append(Found(ssh, listeners_on(hosts.remote(ssh).session)))
    return found


def rewritten_title(listener: Listener) -> bool:
    """True for a program that wrote its own title over its argv (nginx, redis-server): one word with spaces."""
    return len(listener.argv) == 1 and " " in listener.argv[0]


def program_of(listener: Listener) -> tuple[str, list[str]]:
    """(program name, distinctive arguments): for an interpreter, the module, script or jar it runs."""
    if rewritten_title(listener):
        words = listener.argv[0].split()
        return PurePosixPath(words[0].rstrip(":")).name or "program", []
    name = PurePosixPath(listener.argv[0]).name if listener.argv and listener.argv[0] else ""
    name = name or (PurePosixPath(listener.exe).name if listener.exe else "program")
    if not INTERPRETERS.match(name):
        return name, []
    args = list(listener.argv[1:])
    for i, arg in enumerate(args):
        if arg in ("-m", "-jar") and i + 1 < len(args):
            return name, [arg, args[i + 1]]
        if not arg.startswith("-") and (i == 0 or args[i - 1] not in _VALUE_OPTIONS):
            return name, [arg]
    return name, []


def cmdline_rule(listener: Listener) -> str:
    """A regular expression over the command line (arguments joined by spaces) naming this program."""
    if rewritten_title(listener):
        words = listener.argv[0].split()
        head = words[:2] if words[0].endswith(":") and len(words) > 1 else words[:1]
        return "^" + _escape(" ".join(head))
    name, distinctive = program_of(listener)
    versioned = _escape(re.sub(r"[0-9.]+$", "", name) or name) + ("[0-9.]*" if INTERPRETERS.match(name) else "")
    rule = rf"(^|/){versioned}( |$)"
    if distinctive:
        rule += ".*" + _escape(" ".join(distinctive)) + "( |$)"
    return rule


def _escape(text: str) -> str:
    """`re.escape` for people: only the characters that mean something in a regular expression."""
    return _SPECIAL.sub(r"\\\1", text)


def target_name(listener: Listener) -> str:
    name, distinctive = program_of(listener)
    if not distinctive:
        base = name
    elif distinctive[0] == "-m":
        base = distinctive[1]  # a Python module: tradingstack.gateway
    elif "/" not in distinctive[-1] and "." in distinctive[-1] and not distinctive[-1].endswith((".py", ".js", ".rb")):
        base = distinctive[-1].rsplit(".", 1)[1]  # a Java main class: org.apache.zookeeper...QuorumPeerMain
    else:
        base = PurePosixPath(distinctive[-1]).stem  # a script or a jar
    return _NAME.sub("-", base.lower()).strip("-") or "program"


def _q(value: object) -> str:
    """A YAML scalar: JSON strings and numbers are YAML too."""
    return json.dumps(value)


def _health_address(found: Found, listener: Listener) -> str:
    socket = listener.sockets[0]
    if socket.address in ("0.0.0.0", "::"):
        address = (
            found.ssh.address if found.ssh is not None else ("127.0.0.1" if socket.address == "0.0.0.0" else "::1")
        )
    else:
        address = socket.address
    return f"{address}:{socket.port}"


def _host_lines(ssh: SshHost) -> list[str]:
    lines = [f"        host: {{address: {_q(ssh.address)}, port: {ssh.port}, user: {_q(ssh.user)},"]
    key = f"key_file: {_q(ssh.key_file)}, " if ssh.key_file else ""
    lines.append(f"               {key}known_hosts: {_q(ssh.known_hosts)}}}")
    return lines


def _instance_lines(found: Found, listener: Listener, name: str) -> list[str]:
    where = found.ssh.label if found.ssh is not None else "this host"
    ports = ", ".join(map(str, listener.ports))
    lines = [
        f"      # pid {listener.pid} on {where}, listening on {ports}: {' '.join(listener.argv)[:150]}",
        f"      - name: {_q(name)}",
        f"        match: {{cmdline: {_q(cmdline_rule(listener))}, listen_port: {listener.ports[0]}}}",
        f"        health: {{tcp: {_q(_health_address(found, listener))}}}",
        f"        ports: {{client: {listener.ports[0]}}}",
    ]
    if found.ssh is not None:
        lines += _host_lines(found.ssh)
    if rewritten_title(listener):
        lines += [
            "        # EDIT: it rewrote its command line, so how to start it again is not known here: say how,",
            "        # e.g. restart: {by: command, command: [systemctl, restart, SERVICE]}",
            "        restart: {by: supervisor}",
        ]
    else:
        lines += [
            "        # a rollback restarts it from this argv; under a service manager use instead",
            "        # restart: {by: command, command: [systemctl, restart, SERVICE]} or {by: supervisor}",
            f"        argv: [{', '.join(_q(a) for a in listener.argv)}]",
        ]
    return lines


def draft(found: list[Found], name: str = "my-system") -> str:
    """The draft stack description (YAML with comments) of everything found."""
    groups: dict[str, list[tuple[Found, Listener]]] = {}
    for host in found:
        for listener in host.listeners.listeners:
            groups.setdefault(target_name(listener), []).append((host, listener))
    lines = [
        "# A draft stack description written by `chaos.py stack discover`: EDIT it, then check it against",
        "# the live system with `chaos.py stack check FILE` (reference: docs/stack-reference.md).",
        "# Delete the targets you do not mean to drill; rename targets and instances as your team names them;",
        "# give each process the health check that says it serves (http, redis, zookeeper), not just that",
        "# its port accepts. A `match` rule must find exactly one process: if several match (a pre-forking",
        "# server's workers), add `pidfile` or `exe`.",
        f"name: {_q(name)}",
        "production: false        # EDIT: true for a production system (runs then need explicit consent)",
        "# market_hours: null     # uncomment for a lab system that never trades; by default runs are refused",
        "#                        # during China A-share trading sessions (09:30-11:30, 13:00-15:00 Shanghai)",
    ]
    for host in found:
        if host.listeners.unowned_ports:
            ports = ", ".join(map(str, host.listeners.unowned_ports))
            lines.append(
                f"# {host.listeners.host}: ports {ports} listen, but their process could not be read "
                "(another user's: run discover as root or as that user)"
            )
    lines.append("targets:" if groups else "targets: {}   # no listening process was found")
    for target, members in groups.items():
        program, _ = program_of(members[0][1])
        lines += ["", f"  {target}:", f"    description: {_q(f'{program}, found listening')}", "    instances:"]
        for n, (host, listener) in enumerate(members, 1):
            lines += _instance_lines(host, listener, f"{target}-{n}")
    return "\n".join(lines) + "\n"


def listing(found: list[Found]) -> str:
    """What was found, one line a listener: where, pid, ports, command line."""
    lines = []
    for host in found:
        for listener in host.listeners.listeners:
            ports = ",".join(f"{s.address}:{s.port}" for s in listener.sockets)
            lines.append(f"{host.listeners.host}  pid {listener.pid}  {ports}  {' '.join(listener.argv)[:200]}")
        if host.listeners.unowned_ports:
            ports = ", ".join(map(str, host.listeners.unowned_ports))
            lines.append(f"{host.listeners.host}  ports {ports}: their process could not be read (another user's)")
        if not host.listeners.listeners and not host.listeners.unowned_ports:
            lines.append(f"{host.listeners.host}  nothing listens on TCP")
    return "\n".join(lines) + "\n"
