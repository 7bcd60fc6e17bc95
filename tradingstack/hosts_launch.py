"""The `hosts` profile: the ha stack with every node on a namespace host of its own, started over SSH.

Eight hosts (`tradingstack.hosts`): redis-1 (the primary), redis-2 (its replica), zookeeper-1..3 (an
ensemble of three, each host also running one Sentinel), matcher-1, matcher-2 and gateway-1. Every node is
started by logging in on its host over SSH (`clients.procs.RemoteHost`), bound to its host's address on
its standard port — no proxies — and described with that `host`, so the framework reaches it only over
SSH and the hosts' network, as on a real deployment.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from clients.health import role_at
from clients.poll import PollTimeout, poll_until
from clients.procs import ProcessHosts, same_process
from stackspec.targets import ProcessInstance, ProcessTarget, SshHost, StackDescription
from tradingstack import hosts
from tradingstack.processes import (
    ON_PATH,
    SENTINEL_MASTER,
    Programs,
    redis_node_instance,
    sentinel_instance,
    service_instance,
    zookeeper_ensemble,
)
from tradingstack.readiness import left, seed_store, single_leader, wait_ready, wait_sentinels
from tradingstack.state import STATE_FILE, LaunchError, StackStartError, write_state
from tradingstack.store import sentinel_address
from tradingstack.topology import GATEWAY_SUMMARY, MATCHER_SUMMARY, audit_command

HOST_NAMES = (
    "redis-1",
    "redis-2",
    "zookeeper-1",
    "zookeeper-2",
    "zookeeper-3",
    "matcher-1",
    "matcher-2",
    "gateway-1",
)
REDIS_PORT = 6379
SENTINEL_PORT = 26379
ZOOKEEPER_PORTS = (2181, 2888, 3888)  # client, peer, election
MATCHER_PORT = 8100
GATEWAY_PORT = 8080
# Stopped in this order: the front first, the data last.
STOP_ORDER = (("gateway-1",), ("matcher-1", "matcher-2"), ("zookeeper-1", "zookeeper-2", "zookeeper-3"), ("redis-2",))
POLL_S = 0.1

Group = tuple[str, str, list[ProcessInstance]]  # (target, summary, instances)


@dataclass
class HostsLayout:
    """The nodes of a hosts stack, not yet started, grouped by target in start order, and their description."""

    description: StackDescription
    middleware: list[Group]
    services: list[Group]


def _on(instance: ProcessInstance, host: SshHost) -> ProcessInstance:
    return instance.model_copy(update={"host": host})


def _middleware(
    directory: Path, address: Mapping[str, str], ssh: Mapping[str, SshHost], programs: Programs
) -> list[Group]:
    primary = address["redis-1"]
    nodes = [
        _on(redis_node_instance(directory, "redis-1", REDIS_PORT, programs=programs, bind=primary), ssh["redis-1"]),
        _on(
            redis_node_instance(
                directory,
                "redis-2",
                REDIS_PORT,
                REDIS_PORT,
                programs=programs,
                bind=address["redis-2"],
                primary_address=primary,
            ),
            ssh["redis-2"],
        ),
    ]
    sentinels = [
        _on(
            sentinel_instance(
                directory,
                f"sentinel-{n}",
                SENTINEL_PORT,
                REDIS_PORT,
                programs=programs,
                bind=address[f"zookeeper-{n}"],
                primary_address=primary,
            ),
            ssh[f"zookeeper-{n}"],
        )
        for n in (1, 2, 3)
    ]
    servers = [f"zookeeper-{n}" for n in (1, 2, 3)]
    ensemble = zookeeper_ensemble(
        directory, [ZOOKEEPER_PORTS] * 3, programs=programs, addresses=[address[s] for s in servers]
    )
    return [
        ("redis", "Redis primary and replica, each on a host of its own (AOF)", nodes),
        ("sentinel", f"Redis Sentinels (quorum 2) watching '{SENTINEL_MASTER}', one on each ZooKeeper host", sentinels),
        (
            "zookeeper",
            "ZooKeeper ensemble of 3 on hosts of their own: matcher election",
            [_on(node, ssh[node.name]) for node in ensemble],
        ),
    ]


def lay_out(
    directory: Path,
    address: Mapping[str, str],
    ssh: Mapping[str, SshHost],
    session_timeout_s: float,
    *,
    programs: Programs = ON_PATH,
) -> HostsLayout:
    """Every node of the hosts profile on its host (`address`/`ssh` by host name), and the description."""
    redis = sentinel_address([f"{address[f'zookeeper-{n}']}:{SENTINEL_PORT}" for n in (1, 2, 3)], SENTINEL_MASTER)
    zookeeper = ",".join(f"{address[f'zookeeper-{n}']}:{ZOOKEEPER_PORTS[0]}" for n in (1, 2, 3))

    def service(module: str, name: str, port: int) -> ProcessInstance:
        made = service_instance(directory, module, name, port, redis, zookeeper, session_timeout_s, bind=address[name])
        return _on(made, ssh[name])

    engines = [service("tradingstack.matcher", f"matcher-{n}", MATCHER_PORT) for n in (1, 2)]
    gateway = service("tradingstack.gateway", "gateway-1", GATEWAY_PORT)
    description = StackDescription(
        name="reference",
        profile="hosts",
        market_hours=None,  # a lab stack in namespaces: it never trades, so drills may run at any time
        trading=True,
        endpoints={"gateway": f"http://{address['gateway-1']}:{GATEWAY_PORT}", "redis": redis, "zookeeper": zookeeper},
        audit=audit_command(directory),
    )
    return HostsLayout(
        description,
        _middleware(directory, address, ssh, programs),
        [("matcher", MATCHER_SUMMARY, engines), ("gateway", GATEWAY_SUMMARY, [gateway])],
    )


def wait_leader(matchers: list[ProcessInstance], deadline: float) -> None:
    """One leader, the other engine following (their role URLs, over the hosts' network)."""

    def look() -> tuple[str | None, None]:
        return single_leader({m.name: role_at(m.role_url) if m.role_url else None for m in matchers}), None

    try:
        poll_until(look, left(deadline), POLL_S, "one leader with the others following")
    except PollTimeout as exc:
        raise StackStartError("matcher", f"no single leader with the others following in time ({exc.last})") from exc


def _launch(directory: Path, layout: HostsLayout, deadline: float) -> None:
    """Start every node over SSH on its host, in dependency order, waiting for each stage."""
    description = layout.description
    with ProcessHosts() as conns:

        def launch(groups: list[Group]) -> list[ProcessInstance]:
            live: list[ProcessInstance] = []
            for target, summary, instances in groups:
                started = []
                for instance in instances:
                    assert instance.host is not None
                    try:
                        started.append(conns.remote(instance.host).spawn(instance))
                    except OSError as exc:
                        raise StackStartError(instance.name, f"could not start it over SSH: {exc}") from exc
                description.targets[target] = ProcessTarget(description=summary, instances=started)
                write_state(directory, description)
                live += started
            return live

        wait_ready(launch(layout.middleware), deadline, alive=lambda i: same_process(conns.of(i), i))
        wait_sentinels(description, deadline)
        seed_store(description.endpoints["redis"])
        services = launch(layout.services)
        wait_ready(services, deadline, alive=lambda i: same_process(conns.of(i), i))
        wait_leader([i for i in services if i.role_url is not None], deadline)


def start_stack(directory: Path, timeout_s: float = 90.0, session_timeout_s: float = 2.0) -> StackDescription:
    """Make the hosts, start every node on its host over SSH, write DIR/state.json; on failure remove it all."""
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    if hosts.Network.load(directory / "hosts") is not None:
        raise LaunchError(
            f"{directory / 'hosts'} already lists hosts; remove them first: chaos.py stack down --dir {directory}"
        )
    deadline = time.monotonic() + timeout_s
    for data in ("redis", "zookeeper"):
        shutil.rmtree(directory / data, ignore_errors=True)
        (directory / data).mkdir(parents=True)
    try:
        network = hosts.create(directory, list(HOST_NAMES), timeout_s=left(deadline))
    except hosts.HostsError as exc:
        raise LaunchError(str(exc)) from exc
    try:
        address = {h.name: h.address for h in network.hosts}
        layout = lay_out(directory, address, {name: network.ssh(name) for name in address}, session_timeout_s)
        _launch(directory, layout, deadline)
        return layout.description
    except BaseException:
        stop_stack(directory)
        raise


def stop_stack(directory: Path, timeout_s: float = 10.0) -> list[str]:
    """Stop every node (front first), every sshd, and remove the namespaces, veths and bridge; drop state.json."""
    directory = Path(directory).resolve()
    network = hosts.Network.load(directory / "hosts")
    report = []
    if network is not None:
        for group in STOP_ORDER:
            names = [h.netns for h in network.hosts if h.name in group]
            count = hosts.stop_processes(names, timeout_s)
            report.append(f"stopped {count} process(es) on {', '.join(group)}")
        report += hosts.destroy(directory, timeout_s)
    (directory / STATE_FILE).unlink(missing_ok=True)
    return report or [f"no hosts recorded in {directory / 'hosts'}: nothing to stop"]
