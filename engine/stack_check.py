"""`chaos.py stack check FILE` and `stack status FILE`: a stack description held against the live system.

Every host is asked first (the SSH login, then nftables, tc and netem), then every target: a process
instance found (by its PID and start time, or its `match` rules: no match or several are problems),
healthy, signallable by the user the framework acts as (`kill -0` on its host), its restart program
there; a link's proxy on its Toxiproxy API; a container engine, a Kubernetes API, each endpoint. Hosts
and targets are checked in parallel, a bounded pool. A problem is anything that would stop a fault on a
target or its rollback; nft, tc and netem are reported per host, not judged: which faults need them
is the experiment's business (its preflight refuses a host without them).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

from clients.errors import ClientError
from clients.health import problem as health_problem
from clients.host_tools import host_tools
from clients.nft import LocalShell, Shell
from clients.procs import LOCAL, MatchError, ProcessHost, ProcessHosts, RemoteHost, found_by_rule, same_process
from engine.stack_probes import container_rows, endpoint_rows, kubernetes_rows, link_rows
from engine.stack_rows import Row
from stackspec.targets import (
    ContainerTarget,
    KubernetesTarget,
    LinkTarget,
    ProcessInstance,
    ProcessTarget,
    SshHost,
    StackDescription,
)

__all__ = ["CheckResult", "HostRow", "Row", "check_stack", "render", "stack_status"]

DEFAULT_PARALLEL = 16
_LOCAL = "this host"


@dataclass
class HostRow:
    """One host the description's processes run on: how it was reached and what it offers."""

    host: str
    ssh: str  # "ok", "not used" (this host) or why the login failed
    nft: str = "not checked"
    tc: str = "not checked"
    netem: str = "not checked"
    problems: list[str] = field(default_factory=list)


@dataclass
class CheckResult:
    """What `check_stack` (or `stack_status`) found, row by row."""

    stack: str
    hosts: list[HostRow]
    rows: list[Row]

    @property
    def problems(self) -> list[str]:
        return [p for h in self.hosts for p in h.problems] + [p for r in self.rows for p in r.problems]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "ok": self.ok,
            "problems": self.problems,
            "hosts": [asdict(h) for h in self.hosts],
            "targets": [asdict(r) for r in self.rows],
        }


def _host_key(ssh: SshHost | None) -> str:
    return _LOCAL if ssh is None else ssh.model_dump_json()


def _check_host(ssh: SshHost | None, hosts: ProcessHosts, tools: bool) -> HostRow:
    shell: Shell
    if ssh is None:
        row, shell = HostRow(_LOCAL, "not used"), LocalShell()
    else:
        remote = hosts.remote(ssh)
        try:
            remote.session.connect()
        except ClientError as exc:
            return HostRow(ssh.label, f"failed: {exc}", problems=[f"{ssh.label}: SSH login failed: {exc}"])
        row, shell = HostRow(ssh.label, "ok"), remote.session
    if tools:
        try:
            found = host_tools(shell)
        except ClientError as exc:
            row.problems.append(f"{row.host}: cannot ask what it offers: {exc}")
            return row
        row.nft, row.tc, row.netem = found.nft.text(), found.tc.text(), found.netem.text()
    return row


def _can_signal(host: ProcessHost, pid: int) -> str | None:
    """None when the framework's user may signal `pid` on `host`, else why not."""
    if isinstance(host, RemoteHost):
        code, _, err = host.session.run(["kill", "-0", str(pid)])
        return None if code == 0 else f"`kill -0 {pid}` on {host.label} failed: {err.strip() or f'exit {code}'}"
    try:
        os.kill(pid, 0)
    except PermissionError:
        return f"user {_user()} may not signal pid {pid} on this host (run as its owner or root)"
    except OSError as exc:
        return f"cannot signal pid {pid}: {exc.strerror}"
    return None


def _user() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


def _found(host: ProcessHost, instance: ProcessInstance, row: Row) -> ProcessInstance | None:
    """The instance with its live PID, or None (with the problem recorded) when it is not running."""
    if instance.match is not None:
        try:
            found = found_by_rule(host, instance)
        except MatchError as exc:
            row.fields["found"] = "no"
            row.problems.append(str(exc))
            return None
        row.fields["found"] = f"pid {found.pid} (by match)"
        return found
    if instance.pid is None:
        row.fields["found"] = "no"
        row.problems.append(f"{instance.name}: no `pid` recorded and no `match` rules to find it by")
        return None
    if not same_process(host, instance):
        row.fields["found"] = "no"
        row.problems.append(
            f"{instance.name}: pid {instance.pid} is not running on {host.label}, or is another process "
            f"(start time is not {instance.start_time}); give `match` rules instead of a pid"
        )
        return None
    row.fields["found"] = f"pid {instance.pid}"
    return instance


def _check_instance(target: str, instance: ProcessInstance, hosts: ProcessHosts, full: bool) -> Row:
    host = LOCAL if instance.host is None else hosts.remote(instance.host)
    row = Row(target, "process", instance.name, host.label)
    try:
        found = _found(host, instance, row)
        if instance.health is not None:
            said = health_problem(instance.health)
            row.fields["health"] = "ok" if said is None else f"failing: {said}"
            if said is not None:
                row.problems.append(f"{instance.name}: health check failing: {said}")
        else:
            row.fields["health"] = "none given"
        if full and found is not None and found.pid is not None:
            said = _can_signal(host, found.pid)
            row.fields["signal"] = "ok" if said is None else "no"
            row.problems += [f"{instance.name}: {said}"] if said is not None else []
        if full and instance.restart is not None and instance.restart.program is not None:
            program = instance.restart.program
            there = host.has_program(program)
            row.fields["restart"] = f"{program}: {'found' if there else 'not found'}"
            if not there:
                row.problems.append(f"{instance.name}: restart program {program!r} not found on {host.label}")
    except (ClientError, OSError) as exc:
        row.problems.append(f"{instance.name}: cannot check on {host.label}: {exc}")
    return row


def _not_reached(target: str, instance: ProcessInstance, label: str) -> Row:
    return Row(target, "process", instance.name, label, {"found": "not checked"}, [])


def _instance_tasks(
    description: StackDescription, hosts: ProcessHosts, reached: dict[str, HostRow], full: bool
) -> tuple[list[Row], list[Callable[[], Row]]]:
    skipped: list[Row] = []
    tasks: list[Callable[[], Row]] = []
    for name, group in description.targets.items():
        if not isinstance(group, ProcessTarget):
            continue
        for instance in group.instances:
            host_row = reached[_host_key(instance.host)]
            if host_row.ssh.startswith("failed"):
                skipped.append(_not_reached(name, instance, host_row.host))
                continue
            tasks.append(partial(_check_instance, name, instance, hosts, full))
    return skipped, tasks


def _other_tasks(description: StackDescription) -> list[Callable[[], list[Row]]]:
    tasks: list[Callable[[], list[Row]]] = []
    for name, group in description.targets.items():
        if isinstance(group, LinkTarget):
            tasks.append(partial(link_rows, name, group, description.toxiproxy))
        elif isinstance(group, ContainerTarget):
            tasks.append(partial(container_rows, name, group))
        elif isinstance(group, KubernetesTarget):
            tasks.append(partial(kubernetes_rows, name, group))
    if description.endpoints:
        tasks.append(partial(endpoint_rows, description.endpoints))
    return tasks


def _run(description: StackDescription, parallel: int, full: bool) -> CheckResult:
    ssh_hosts: dict[str, SshHost | None] = {}
    for group in description.targets.values():
        if isinstance(group, ProcessTarget):
            for instance in group.instances:
                ssh_hosts.setdefault(_host_key(instance.host), instance.host)
    if full:
        ssh_hosts.setdefault(_LOCAL, None)  # the runner's own host is where local faults act
    with ProcessHosts() as hosts, ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        host_rows = list(pool.map(lambda ssh: _check_host(ssh, hosts, full), ssh_hosts.values()))
        reached = dict(zip(ssh_hosts, host_rows, strict=True))
        skipped, tasks = _instance_tasks(description, hosts, reached, full)
        instance_futures = [pool.submit(task) for task in tasks]
        other_futures = [pool.submit(task) for task in (_other_tasks(description) if full else [])]
        rows = [f.result() for f in instance_futures] + skipped + [r for f in other_futures for r in f.result()]
    order = {name: i for i, name in enumerate(description.targets)}
    rows.sort(key=lambda r: order.get(r.target, len(order)))
    return CheckResult(description.name, host_rows, rows)


def check_stack(description: StackDescription, parallel: int = DEFAULT_PARALLEL) -> CheckResult:
    """Hold every target of `description` against the live system; see the module's docstring."""
    return _run(description, parallel, full=True)


def stack_status(description: StackDescription, parallel: int = DEFAULT_PARALLEL) -> CheckResult:
    """Only whether each process instance runs and is healthy (its hosts logged into, nothing more)."""
    return _run(description, parallel, full=False)


def _table(header: list[str], lines: list[list[str]]) -> list[str]:
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header) - 1)]
    return [
        "  ".join([*(cell.ljust(w) for cell, w in zip(line, widths, strict=False)), line[-1]])
        for line in [header, *lines]
    ]


def _short(tool: str) -> str:
    return tool.partition(" (")[0]


def _host_lines(hosts: list[HostRow]) -> list[str]:
    """The hosts table (login, and each tool's yes/no), then what was found for each tool, one line each."""
    checked = [h for h in hosts if h.nft != "not checked"]
    lines = _table(
        ["HOST", "SSH LOGIN", *(["NFT", "TC", "NETEM"] if checked else []), ""],
        [
            [h.host, "failed (below)" if h.ssh.startswith("failed") else h.ssh]
            + ([_short(h.nft), _short(h.tc), _short(h.netem)] if checked else [])
            + [""]
            for h in hosts
        ],
    )
    for h in checked:
        lines += [f"  {h.host}: {name}: {value}" for name, value in (("nft", h.nft), ("tc", h.tc), ("netem", h.netem))]
    return [line.rstrip() for line in lines]


def render(result: CheckResult, title: str = "stack check") -> str:
    """The result as the terminal shows it: hosts, targets, then every problem (or that there is none)."""
    out = [f"{title}: stack {result.stack!r}", ""]
    if result.hosts:
        out += _host_lines(result.hosts)
        out.append("")
    rows = result.rows
    if rows:
        out += _table(
            ["TARGET", "INSTANCE", "KIND", "WHERE", "STATE"],
            [[r.target, r.name, r.kind, r.where, "; ".join(f"{k}: {v}" for k, v in r.fields.items())] for r in rows],
        )
        out.append("")
    problems = result.problems
    if not problems:
        out.append("ok: every target was found and answers")
    else:
        out.append(f"{len(problems)} problem(s):")
        out += [f"  - {p}" for p in problems]
    return "\n".join(out) + "\n"
