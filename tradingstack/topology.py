"""What the reference stack consists of: its processes, their ports, and the proxied links between them."""

from __future__ import annotations

import json
import random
import shutil
import socket
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from stackspec.targets import (
    HttpHealth,
    LinkInstance,
    LinkTarget,
    ProcessInstance,
    RedisHealth,
    StackDescription,
    ToxiproxyEndpoint,
    ZooKeeperHealth,
)
from tradingstack.store import sentinel_address

REPO_ROOT = Path(__file__).resolve().parent.parent
ZOOKEEPER_CLASSPATH = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar"
JVM_OPTIONS = ("-Xms16m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")


class TopologyError(Exception):
    """The stack cannot be laid out as asked (unknown port names, a missing program)."""

    def __init__(self, component: str, reason: str) -> None:
        super().__init__(f"{component}: {reason}")
        self.component = component
        self.reason = reason


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


def _executable(name: str, hint: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise TopologyError(name, f"{name} not found on PATH; {hint}")
    return found


def redis_instance(directory: Path, port: int) -> ProcessInstance:
    """The basic profile's single Redis server."""
    return redis_node_instance(directory, "redis", port)


def _redis_process(directory: Path, name: str, port: int, argv: list[str]) -> ProcessInstance:
    """A redis-server process (a data node or a Sentinel) answering PING on `port`."""
    program = _executable("redis-server", "install it with apt-get install redis-server")
    return ProcessInstance(
        name=name,
        argv=[program, *argv],
        cwd=str(directory),
        log=str(directory / "logs" / f"{name}.log"),
        health=RedisHealth(redis=f"127.0.0.1:{port}"),
        ports={"client": port},
    )


def zookeeper_instance(directory: Path, port: int) -> ProcessInstance:
    config = directory / "zookeeper" / "zoo.cfg"
    config.write_text(
        "tickTime=500\n"
        f"dataDir={directory / 'zookeeper' / 'data'}\n"
        f"clientPort={port}\n"
        "clientPortAddress=127.0.0.1\n"
        "minSessionTimeout=1000\n"
        "maxSessionTimeout=10000\n"
        "4lw.commands.whitelist=*\n"
        "admin.enableServer=false\n"
    )
    java = _executable("java", "install a Java runtime (apt-get install default-jre-headless)")
    main_class = "org.apache.zookeeper.server.ZooKeeperServerMain"
    return ProcessInstance(
        name="zookeeper",
        argv=[java, *JVM_OPTIONS, "-cp", ZOOKEEPER_CLASSPATH, main_class, str(config)],
        cwd=str(directory),
        log=str(directory / "logs" / "zookeeper.log"),
        health=ZooKeeperHealth(zookeeper=f"127.0.0.1:{port}"),
        ports={"client": port},
    )


SENTINEL_MASTER = "trading"
SENTINEL_DOWN_AFTER_MS = 1000
SENTINEL_FAILOVER_TIMEOUT_MS = 5000
ZOOKEEPER_TICK_MS = 500


def redis_node_instance(directory: Path, name: str, port: int, replica_of: int | None = None) -> ProcessInstance:
    """One Redis server of a replicated set, with its own data directory (kept across restarts)."""
    data = directory / "redis" / name
    data.mkdir(parents=True, exist_ok=True)
    argv = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"]
    argv += ["--dir", str(data), "--daemonize", "no"]
    # DEBUG SLEEP (the redis.slow fault) needs DEBUG, which Redis 7 refuses by default; a replica's full sync
    # starts at once instead of after 5 s spent waiting for more replicas that never come.
    argv += ["--enable-debug-command", "local", "--repl-diskless-sync-delay", "0"]
    if replica_of is not None:
        argv += ["--replicaof", "127.0.0.1", str(replica_of)]
    return _redis_process(directory, name, port, argv)


def sentinel_instance(directory: Path, name: str, port: int, primary_port: int, quorum: int = 2) -> ProcessInstance:
    """A Redis Sentinel watching the primary. Sentinels rewrite their config: each start gets a fresh one."""
    config = directory / "redis" / f"{name}.conf"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        f"port {port}\n"
        "bind 127.0.0.1\n"
        "daemonize no\n"
        f"dir {config.parent}\n"
        f"sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {primary_port} {quorum}\n"
        f"sentinel down-after-milliseconds {SENTINEL_MASTER} {SENTINEL_DOWN_AFTER_MS}\n"
        f"sentinel failover-timeout {SENTINEL_MASTER} {SENTINEL_FAILOVER_TIMEOUT_MS}\n"
        f"sentinel parallel-syncs {SENTINEL_MASTER} 1\n"
    )
    return _redis_process(directory, name, port, [str(config), "--sentinel"])


def zookeeper_ensemble(directory: Path, ports: list[tuple[int, int, int]]) -> list[ProcessInstance]:
    """A ZooKeeper ensemble on loopback: one (client, peer, election) port triple per node, own data dirs."""
    java = _executable("java", "install a Java runtime (apt-get install default-jre-headless)")
    servers = "".join(
        f"server.{n}=127.0.0.1:{peer}:{election}\n" for n, (_, peer, election) in enumerate(ports, start=1)
    )
    nodes = []
    for n, (client, _, _) in enumerate(ports, start=1):
        name = f"zookeeper-{n}"
        home = directory / "zookeeper" / name
        (home / "data").mkdir(parents=True, exist_ok=True)
        (home / "data" / "myid").write_text(f"{n}\n")
        config = home / "zoo.cfg"
        config.write_text(
            f"tickTime={ZOOKEEPER_TICK_MS}\n"
            "initLimit=10\n"
            "syncLimit=4\n"
            f"dataDir={home / 'data'}\n"
            f"clientPort={client}\n"
            "clientPortAddress=127.0.0.1\n"
            "minSessionTimeout=1000\n"
            "maxSessionTimeout=10000\n"
            "4lw.commands.whitelist=*\n"
            "admin.enableServer=false\n"
            "quorumListenOnAllIPs=false\n" + servers
        )
        main_class = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
        nodes.append(
            ProcessInstance(
                name=name,
                argv=[java, *JVM_OPTIONS, "-cp", ZOOKEEPER_CLASSPATH, main_class, str(config)],
                cwd=str(home),
                log=str(directory / "logs" / f"{name}.log"),
                health=ZooKeeperHealth(zookeeper=f"127.0.0.1:{client}"),
                ports={"client": client, "peer": ports[n - 1][1], "election": ports[n - 1][2]},
            )
        )
    return nodes


def toxiproxy_instance(directory: Path, port: int, links: list[LinkInstance]) -> ProcessInstance:
    """The embedded Toxiproxy-API server, started with every link as a proxy, so a restart restores them."""
    config = directory / "toxiproxy" / "proxies.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    proxies = [
        {"name": link.proxy, "listen": link.listen, "upstream": link.upstream, "enabled": True} for link in links
    ]
    config.write_text(json.dumps(proxies, indent=1) + "\n")
    argv = [sys.executable, "-m", "chaosproxy", "serve", "--host", "127.0.0.1", "--port", str(port)]
    return ProcessInstance(
        name="toxiproxy",
        argv=[*argv, "--config", str(config)],
        cwd=str(directory),
        env={"PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"},
        log=str(directory / "logs" / "toxiproxy.log"),
        health=HttpHealth(http=f"http://127.0.0.1:{port}/version"),
        ports={"api": port},
    )


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


def service_instance(
    directory: Path,
    module: str,
    name: str,
    port: int,
    redis: str,
    zookeeper: str,
    session_timeout_s: float,
    routes: Mapping[str, str] | None = None,
    extra: list[str] | None = None,
) -> ProcessInstance:
    argv = [sys.executable, "-m", module, "--name", name, "--port", str(port)]
    argv += ["--redis", redis, "--zookeeper", zookeeper, "--session-timeout", str(session_timeout_s)]
    argv += extra or []
    for target, address in (routes or {}).items():
        argv += ["--route", f"{target}={address}"]
    url = f"http://127.0.0.1:{port}"
    return ProcessInstance(
        name=name,
        argv=argv,
        cwd=str(directory),
        env={"PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"},
        log=str(directory / "logs" / f"{name}.log"),
        health=HttpHealth(http=f"{url}/health"),
        role_url=f"{url}/status" if module.endswith("matcher") else None,
        ports={"http": port},
    )


@dataclass
class Layout:
    """Every process of the stack, not yet started, and the description they will fill in."""

    description: StackDescription
    middleware: list[tuple[str, str, list[ProcessInstance]]]  # (target, summary, instances), started in order
    toxiproxy: ProcessInstance
    matchers: list[ProcessInstance]
    gateways: list[ProcessInstance]
    links: list[LinkInstance]


PROFILES = {
    "basic": "one Redis, one ZooKeeper server, every link proxied",
    "ha": "Redis primary + replica + 3 Sentinels, a 3-node ZooKeeper ensemble; ZooKeeper and order links proxied",
    "lossy": "basic, but the matching engines acknowledge orders before persisting them (write-behind): "
    "deliberately unsafe, to prove that the integrity checks catch lost orders",
    "containers": "basic, but the matching engines run as containers on the Docker-API engine at $DOCKER_HOST "
    "(host network; see scripts/podman-setup.sh)",
}
# Profiles with basic's middleware: one Redis and one ZooKeeper server.
SINGLE_SERVER_PROFILES = ("basic", "lossy", "containers")


def _middleware(
    directory: Path, profile: str, port: Mapping[str, int]
) -> tuple[list[tuple[str, str, list[ProcessInstance]]], dict[str, list[tuple[str, str]]], str, str]:
    """Redis and ZooKeeper for a profile: (targets to start, servers to link to, redis endpoint, zk endpoint)."""
    if profile in SINGLE_SERVER_PROFILES:
        redis, zookeeper = redis_instance(directory, port["redis"]), zookeeper_instance(directory, port["zookeeper"])
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
        redis_node_instance(directory, "redis-1", primary),
        redis_node_instance(directory, "redis-2", port["redis-2"], primary),
    ]
    sentinels = [sentinel_instance(directory, f"sentinel-{n}", port[f"sentinel-{n}"], primary) for n in (1, 2, 3)]
    quorum_ports = iter(free_ports(6))
    ensemble = zookeeper_ensemble(
        directory, [(port[f"zookeeper-{n}"], next(quorum_ports), next(quorum_ports)) for n in (1, 2, 3)]
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
    """The names `--port NAME=PORT` accepts for a profile."""
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


def lay_out(directory: Path, profile: str, matchers: int, ports: Mapping[str, int], session_timeout_s: float) -> Layout:
    """Ports, command lines and links of the whole stack; services reach their peers through proxies."""
    if profile not in PROFILES:
        raise TopologyError("--profile", f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    matcher_names = [f"matcher-{n}" for n in range(1, matchers + 1)]
    port = assign_ports(port_names(profile, matcher_names), ports)
    middleware, servers, redis_address, zk_address = _middleware(directory, profile, port)
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
    )

    def redis_for(client: str) -> str:
        return via(links, f"{client.split('-')[0]}->redis", client) if "redis" in servers else redis_address

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
    return Layout(
        description=description,
        middleware=middleware,
        toxiproxy=toxiproxy_instance(directory, port["toxiproxy"], every_link),
        matchers=engines,
        gateways=[gateway],
        links=every_link,
    )
