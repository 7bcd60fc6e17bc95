"""What the reference stack consists of, per profile: its processes, their ports, the proxied links between them.

The command lines of the processes are built in `tradingstack.processes`; this module lays them out
(ports, links, endpoints) and says what the description of a started stack holds (`Layout`).
"""

from __future__ import annotations

import random
import socket
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from stackspec.targets import (
    AuditCommand,
    LinkInstance,
    LinkTarget,
    ProcessInstance,
    StackDescription,
    ToxiproxyEndpoint,
)
from tradingstack.processes import (
    JVM_OPTIONS,
    ON_PATH,
    REPO_ROOT,
    SENTINEL_DOWN_AFTER_MS,
    SENTINEL_FAILOVER_TIMEOUT_MS,
    SENTINEL_MASTER,
    ZOOKEEPER_CLASSPATH,
    ZOOKEEPER_TICK_MS,
    Programs,
    TopologyError,
    redis_instance,
    redis_node_instance,
    sentinel_instance,
    service_instance,
    toxiproxy_instance,
    zookeeper_ensemble,
    zookeeper_instance,
)
from tradingstack.store import sentinel_address

__all__ = [
    "JVM_OPTIONS",
    "LOWEST_PORT",
    "PROFILES",
    "REPO_ROOT",
    "SENTINEL_DOWN_AFTER_MS",
    "SENTINEL_FAILOVER_TIMEOUT_MS",
    "SENTINEL_MASTER",
    "ZOOKEEPER_CLASSPATH",
    "ZOOKEEPER_TICK_MS",
    "Layout",
    "TopologyError",
    "assign_ports",
    "ephemeral_range",
    "free_ports",
    "lay_out",
    "link_targets",
    "port_names",
    "proxy_name",
    "redis_node_instance",
    "sentinel_instance",
    "via",
    "zookeeper_ensemble",
]

# How each service target is described (the middleware's summaries are laid out with it, per profile).
TOXIPROXY_SUMMARY = "Embedded Toxiproxy-API server carrying every link"
MATCHER_SUMMARY = "Matching engines, one leader elected through ZooKeeper"
CONTAINER_MATCHER_SUMMARY = "Matching engines as containers (host network), one leader elected through ZooKeeper"
GATEWAY_SUMMARY = "Order gateway: the public HTTP API"
AUDIT_TIMEOUT_S = 120.0


EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_PORT = 20000


def ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(part) for part in EPHEMERAL_RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default
    return low, high


def free_ports(count: int) -> list[int]:
    """Ports free now and outside the kernel's ephemeral range.

    Every outgoing connection (a client to a proxy, a proxy to Redis) takes a local port from the
    ephemeral range; a service port chosen there can be taken by one of them before the service binds
    it. Ports outside that range can only collide with other listeners, which the test bind rules out.
    """
    low, high = ephemeral_range()
    candidates = [p for p in range(LOWEST_PORT, 65536) if not low <= p <= high]
    chooser = random.Random()
    chosen: list[int] = []
    sockets: list[socket.socket] = []
    try:
        # Hold every socket until all are chosen, so the same port is not handed out twice.
        for port in chooser.sample(candidates, min(len(candidates), 50 * count + 100)):
            if len(chosen) == count:
                break
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            sockets.append(sock)
            chosen.append(port)
        while len(chosen) < count:  # crowded machine: let the kernel pick
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
            chosen.append(sock.getsockname()[1])
        return chosen
    finally:
        for sock in sockets:
            sock.close()


def assign_ports(names: list[str], given: Mapping[str, int]) -> dict[str, int]:
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise TopologyError("--port", f"unknown --port name(s) {', '.join(unknown)}; known: {', '.join(names)}")
    free = iter(free_ports(len(names)))
    return {name: given[name] if name in given else next(free) for name in names}


def proxy_name(link: str) -> str:
    # Proxy names travel in API paths: keep them to URL-safe characters.
    return link.replace("->", "_to_")


def link_targets(
    matchers: list[str], gateways: list[str], servers: Mapping[str, list[tuple[str, str]]], listen: Iterable[int]
) -> dict[str, LinkTarget]:
    """Every service→Redis, service→ZooKeeper and gateway→matcher link, each through its own proxy.

    `servers` maps "redis" and "zookeeper" to their (instance name, address) pairs; a service gets one
    link per server instance (a ZooKeeper ensemble: one per node). With no "redis" entry (Redis found
    through Sentinel), services reach Redis directly and there are no Redis links.
    """
    ports = iter(listen)

    def link(client: str, server: str, upstream: str) -> LinkInstance:
        name = f"{client}->{server}"
        listen = f"127.0.0.1:{next(ports)}"
        return LinkInstance(
            name=name, proxy=proxy_name(name), listen=listen, upstream=upstream, client=client, server=server
        )

    def group(clients: list[str], client_target: str, server: str, what: str) -> LinkTarget:
        members = [link(c, name, address) for c in clients for name, address in servers[server]]
        return LinkTarget(description=what, client_target=client_target, instances=members)

    groups: dict[str, LinkTarget] = {}
    if "redis" in servers:
        groups["matcher->redis"] = group(matchers, "matcher", "redis", "Each matching engine's connection to Redis")
    groups["matcher->zookeeper"] = group(
        matchers, "matcher", "zookeeper", "Each matching engine's ZooKeeper session (one link per ZooKeeper node)"
    )
    if "redis" in servers:
        groups["gateway->redis"] = group(
            gateways, "gateway", "redis", "The gateway's connection to Redis (order and account reads)"
        )
    groups["gateway->zookeeper"] = group(
        gateways, "gateway", "zookeeper", "The gateway's ZooKeeper session (leader discovery)"
    )
    engines = [(name, servers["matcher"][i][1]) for i, name in enumerate(matchers)]
    groups["gateway->matcher"] = LinkTarget(
        description="The gateway's order entry to each matching engine; select by the engine's role",
        client_target="gateway",
        server_target="matcher",
        role_from="server",
        instances=[link(g, name, address) for g in gateways for name, address in engines],
    )
    return groups


def via(links: Mapping[str, LinkTarget], group: str, client: str) -> str:
    """The address(es) a client dials for a link group: comma-separated when it has several links."""
    return ",".join(i.listen for i in links[group].instances if i.client == client)


@dataclass
class Layout:
    """Every process of the stack, not yet started, and the description they will fill in."""

    description: StackDescription
    middleware: list[tuple[str, str, list[ProcessInstance]]]  # (target, summary, instances), started in order
    toxiproxy: ProcessInstance
    matchers: list[ProcessInstance]
    gateways: list[ProcessInstance]
    links: list[LinkInstance]


def audit_command(directory: Path) -> AuditCommand:
    """The stack's own audit (`python -m tradingstack audit`), declared in its description for the engine to run."""
    return AuditCommand(
        argv=[sys.executable, "-m", "tradingstack", "audit", "--dir", str(directory)],
        cwd=str(REPO_ROOT),
        env={"PYTHONPATH": str(REPO_ROOT)},
        timeout_s=AUDIT_TIMEOUT_S,
    )


PROFILES = {
    "basic": "one Redis, one ZooKeeper server, every link proxied",
    "ha": "Redis primary + replica + 3 Sentinels, a 3-node ZooKeeper ensemble; ZooKeeper and order links proxied",
    "lossy": "basic, but the matching engines acknowledge orders before persisting them (write-behind): "
    "deliberately unsafe, to prove that the integrity checks catch lost orders",
    "containers": "basic, but the matching engines run as containers on the Docker-API engine at $DOCKER_HOST "
    "(host network; see scripts/podman-setup.sh)",
    "hosts": "ha without proxies, every node on a host of its own: 8 network namespaces on a bridge, each with its "
    "own address and sshd; nodes started and reached over SSH (needs root)",
}
# Profiles with basic's middleware: one Redis and one ZooKeeper server.
SINGLE_SERVER_PROFILES = ("basic", "lossy", "containers")


def _middleware(
    directory: Path, profile: str, port: Mapping[str, int], programs: Programs
) -> tuple[list[tuple[str, str, list[ProcessInstance]]], dict[str, list[tuple[str, str]]], str, str]:
    """Redis and ZooKeeper for a profile: (targets to start, servers to link to, redis endpoint, zk endpoint)."""
    if profile in SINGLE_SERVER_PROFILES:
        redis = redis_instance(directory, port["redis"], programs=programs)
        zookeeper = zookeeper_instance(directory, port["zookeeper"], programs=programs)
        redis_address, zk_address = f"127.0.0.1:{port['redis']}", f"127.0.0.1:{port['zookeeper']}"
        targets = [
            ("redis", "Redis: orders, fills, accounts (AOF)", [redis]),
            ("zookeeper", "ZooKeeper standalone: matcher election", [zookeeper]),
        ]
        return (
            targets,
            {"redis": [("redis", redis_address)], "zookeeper": [("zookeeper", zk_address)]},
            redis_address,
            zk_address,
        )
    primary = port["redis-1"]
    nodes = [
        redis_node_instance(directory, "redis-1", primary, programs=programs),
        redis_node_instance(directory, "redis-2", port["redis-2"], primary, programs=programs),
    ]
    sentinels = [
        sentinel_instance(directory, f"sentinel-{n}", port[f"sentinel-{n}"], primary, programs=programs)
        for n in (1, 2, 3)
    ]
    quorum_ports = iter(free_ports(6))
    ensemble = zookeeper_ensemble(
        directory,
        [(port[f"zookeeper-{n}"], next(quorum_ports), next(quorum_ports)) for n in (1, 2, 3)],
        programs=programs,
    )
    targets = [
        ("redis", "Redis primary and replica: orders, fills, accounts (AOF)", nodes),
        ("sentinel", f"Redis Sentinels (quorum 2) watching master '{SENTINEL_MASTER}'", sentinels),
        ("zookeeper", "ZooKeeper ensemble of 3: matcher election", ensemble),
    ]
    zk_nodes = [(n.name, f"127.0.0.1:{n.ports['client']}") for n in ensemble]
    redis_address = sentinel_address([f"127.0.0.1:{s.ports['client']}" for s in sentinels], SENTINEL_MASTER)
    return targets, {"zookeeper": zk_nodes}, redis_address, ",".join(address for _, address in zk_nodes)


def port_names(profile: str, matchers: list[str]) -> list[str]:
    """The names `--port NAME=PORT` accepts for a profile (none for hosts: its nodes use the standard ports)."""
    if profile == "hosts":
        return []
    middleware = (
        ["redis", "zookeeper"]
        if profile in SINGLE_SERVER_PROFILES
        else [
            "redis-1",
            "redis-2",
            "sentinel-1",
            "sentinel-2",
            "sentinel-3",
            "zookeeper-1",
            "zookeeper-2",
            "zookeeper-3",
        ]
    )
    return [*middleware, "toxiproxy", "gateway", *matchers]


def _services(
    directory: Path,
    profile: str,
    port: Mapping[str, int],
    matcher_names: list[str],
    links: Mapping[str, LinkTarget],
    redis_address: str,
    session_timeout_s: float,
) -> tuple[list[ProcessInstance], ProcessInstance]:
    """The matching engines and the gateway, each dialling its peers through its links' proxies."""

    def redis_for(client: str) -> str:
        group = f"{client.split('-')[0]}->redis"
        return via(links, group, client) if group in links else redis_address

    engines = [
        service_instance(
            directory,
            "tradingstack.matcher",
            name,
            port[name],
            redis_for(name),
            via(links, "matcher->zookeeper", name),
            session_timeout_s,
            extra=["--unsafe-ack"] if profile == "lossy" else None,
        )
        for name in matcher_names
    ]
    routes = {link.server or "": link.listen for link in links["gateway->matcher"].instances}
    gateway = service_instance(
        directory,
        "tradingstack.gateway",
        "gateway-1",
        port["gateway"],
        redis_for("gateway-1"),
        via(links, "gateway->zookeeper", "gateway-1"),
        session_timeout_s,
        routes,
    )
    return engines, gateway


def lay_out(
    directory: Path,
    profile: str,
    matchers: int,
    ports: Mapping[str, int],
    session_timeout_s: float,
    *,
    programs: Programs = ON_PATH,
) -> Layout:
    """Ports, command lines and links of the whole stack; services reach their peers through proxies.

    Writes the config files of the middleware under `directory`; `programs` says whether the programs
    must be on PATH (a start) or are only named (a description: `tradingstack.describe`).
    """
    if profile not in PROFILES:
        raise TopologyError("--profile", f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    matcher_names = [f"matcher-{n}" for n in range(1, matchers + 1)]
    port = assign_ports(port_names(profile, matcher_names), ports)
    middleware, servers, redis_address, zk_address = _middleware(directory, profile, port, programs)
    servers = {**servers, "matcher": [(name, f"127.0.0.1:{port[name]}") for name in matcher_names]}
    link_count = (len(servers.get("redis", [])) + len(servers["zookeeper"])) * (matchers + 1) + matchers
    links = link_targets(matcher_names, ["gateway-1"], servers, free_ports(link_count))
    every_link = [link for group in links.values() for link in group.instances]
    description = StackDescription(
        name="reference",
        profile=profile,
        market_hours=None,  # a lab stack on loopback: it never trades, so drills may run at any time
        trading=True,  # but it is a trading system: reports use trading wording and the CSRC thresholds
        endpoints={"gateway": f"http://127.0.0.1:{port['gateway']}", "redis": redis_address, "zookeeper": zk_address},
        toxiproxy=ToxiproxyEndpoint(url=f"http://127.0.0.1:{port['toxiproxy']}"),
        targets=dict(links),
        audit=audit_command(directory),
    )
    engines, gateway = _services(directory, profile, port, matcher_names, links, redis_address, session_timeout_s)
    return Layout(
        description=description,
        middleware=middleware,
        toxiproxy=toxiproxy_instance(directory, port["toxiproxy"], every_link),
        matchers=engines,
        gateways=[gateway],
        links=every_link,
    )
