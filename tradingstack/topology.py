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

from injectors.targets import (
    HttpHealth,
    LinkInstance,
    LinkTarget,
    ProcessInstance,
    RedisHealth,
    StackDescription,
    ToxiproxyEndpoint,
    ZooKeeperHealth,
)

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
    argv = [_executable("redis-server", "install it with apt-get install redis-server")]
    argv += ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"]
    argv += ["--dir", str(directory / "redis"), "--daemonize", "no"]
    return ProcessInstance(
        name="redis",
        argv=argv,
        cwd=str(directory),
        log=str(directory / "logs" / "redis.log"),
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
    matchers: list[str], gateways: list[str], port: Mapping[str, int], listen: Iterable[int]
) -> dict[str, LinkTarget]:
    """Every service→Redis, service→ZooKeeper and gateway→matcher link, each through its own proxy."""
    ports = iter(listen)
    upstream = {"redis": f"127.0.0.1:{port['redis']}", "zookeeper": f"127.0.0.1:{port['zookeeper']}"}
    upstream |= {name: f"127.0.0.1:{port[name]}" for name in matchers}

    def link(client: str, server: str) -> LinkInstance:
        name = f"{client}->{server}"
        return LinkInstance(
            name=name,
            proxy=proxy_name(name),
            listen=f"127.0.0.1:{next(ports)}",
            upstream=upstream[server],
            client=client,
            server=server,
        )

    def group(clients: str, server: str, what: str) -> LinkTarget:
        members = matchers if clients == "matcher" else gateways
        return LinkTarget(description=what, client_target=clients, instances=[link(c, server) for c in members])

    return {
        "matcher->redis": group("matcher", "redis", "Each matching engine's connection to Redis"),
        "matcher->zookeeper": group("matcher", "zookeeper", "Each matching engine's ZooKeeper session"),
        "gateway->redis": group("gateway", "redis", "The gateway's connection to Redis (order and account reads)"),
        "gateway->zookeeper": group("gateway", "zookeeper", "The gateway's ZooKeeper session (leader discovery)"),
        "gateway->matcher": LinkTarget(
            description="The gateway's order entry to each matching engine; select by the engine's role",
            client_target="gateway",
            server_target="matcher",
            role_from="server",
            instances=[link(g, m) for g in gateways for m in matchers],
        ),
    }


def via(links: Mapping[str, LinkTarget], group: str, client: str) -> str:
    return next(i.listen for i in links[group].instances if i.client == client)


def service_instance(
    directory: Path,
    module: str,
    name: str,
    port: int,
    redis: str,
    zookeeper: str,
    session_timeout_s: float,
    routes: Mapping[str, str] | None = None,
) -> ProcessInstance:
    argv = [sys.executable, "-m", module, "--name", name, "--port", str(port)]
    argv += ["--redis", redis, "--zookeeper", zookeeper, "--session-timeout", str(session_timeout_s)]
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
    redis: ProcessInstance
    zookeeper: ProcessInstance
    toxiproxy: ProcessInstance
    matchers: list[ProcessInstance]
    gateways: list[ProcessInstance]
    links: list[LinkInstance]


def lay_out(directory: Path, profile: str, matchers: int, ports: Mapping[str, int], session_timeout_s: float) -> Layout:
    """Ports, command lines and links of the whole stack; every service reaches its peers through a proxy."""
    matcher_names = [f"matcher-{n}" for n in range(1, matchers + 1)]
    port = assign_ports(["redis", "zookeeper", "toxiproxy", "gateway", *matcher_names], ports)
    links = link_targets(matcher_names, ["gateway-1"], port, free_ports(4 * matchers + 2))
    every_link = [link for group in links.values() for link in group.instances]
    description = StackDescription(
        name="reference",
        profile=profile,
        endpoints={
            "gateway": f"http://127.0.0.1:{port['gateway']}",
            "redis": f"127.0.0.1:{port['redis']}",
            "zookeeper": f"127.0.0.1:{port['zookeeper']}",
        },
        toxiproxy=ToxiproxyEndpoint(url=f"http://127.0.0.1:{port['toxiproxy']}"),
        targets=dict(links),
    )
    engines = [
        service_instance(
            directory,
            "tradingstack.matcher",
            name,
            port[name],
            via(links, "matcher->redis", name),
            via(links, "matcher->zookeeper", name),
            session_timeout_s,
        )
        for name in matcher_names
    ]
    routes = {link.server or "": link.listen for link in links["gateway->matcher"].instances}
    gateway = service_instance(
        directory,
        "tradingstack.gateway",
        "gateway-1",
        port["gateway"],
        via(links, "gateway->redis", "gateway-1"),
        via(links, "gateway->zookeeper", "gateway-1"),
        session_timeout_s,
        routes,
    )
    return Layout(
        description=description,
        redis=redis_instance(directory, port["redis"]),
        zookeeper=zookeeper_instance(directory, port["zookeeper"]),
        toxiproxy=toxiproxy_instance(directory, port["toxiproxy"], every_link),
        matchers=engines,
        gateways=[gateway],
        links=every_link,
    )
