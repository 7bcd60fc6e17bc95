"""The command lines of the reference stack's processes: Redis nodes and Sentinels, ZooKeeper (standalone or an
ensemble), the embedded Toxiproxy-API server and the trading services, each with its config files written."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from stackspec.targets import HttpHealth, LinkInstance, ProcessInstance, RedisHealth, ZooKeeperHealth

REPO_ROOT = Path(__file__).resolve().parent.parent
ZOOKEEPER_CLASSPATH = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar"
JVM_OPTIONS = ("-Xms16m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")
SENTINEL_MASTER = "trading"
SENTINEL_DOWN_AFTER_MS = 1000
SENTINEL_FAILOVER_TIMEOUT_MS = 5000
ZOOKEEPER_TICK_MS = 500
_REDIS_HINT = "install it with apt-get install redis-server"
_JAVA_HINT = "install a Java runtime (apt-get install default-jre-headless)"


class TopologyError(Exception):
    """The stack cannot be laid out as asked (unknown port names, a missing program)."""

    def __init__(self, component: str, reason: str) -> None:
        super().__init__(f"{component}: {reason}")
        self.component = component
        self.reason = reason


@dataclass(frozen=True)
class Programs:
    """Where the stack's programs are: found on PATH for a start, or only named for a description
    (`python -m tradingstack describe` works on a machine without Redis or Java)."""

    required: bool = True

    def path(self, name: str, hint: str) -> str:
        found = shutil.which(name)
        if found is not None:
            return found
        if not self.required:
            return name
        raise TopologyError(name, f"{name} not found on PATH; {hint}")


ON_PATH = Programs()
NAMED_ONLY = Programs(required=False)


def redis_instance(directory: Path, port: int, *, programs: Programs = ON_PATH) -> ProcessInstance:
    """The basic profile's single Redis server."""
    return redis_node_instance(directory, "redis", port, programs=programs)


def _redis_process(
    directory: Path, name: str, port: int, argv: list[str], programs: Programs, bind: str = "127.0.0.1"
) -> ProcessInstance:
    """A redis-server process (a data node or a Sentinel) answering PING on `bind`:`port`."""
    return ProcessInstance(
        name=name,
        argv=[programs.path("redis-server", _REDIS_HINT), *argv],
        cwd=str(directory),
        log=str(directory / "logs" / f"{name}.log"),
        health=RedisHealth(redis=f"{bind}:{port}"),
        ports={"client": port},
    )


def zookeeper_instance(directory: Path, port: int, *, programs: Programs = ON_PATH) -> ProcessInstance:
    config = directory / "zookeeper" / "zoo.cfg"
    config.parent.mkdir(parents=True, exist_ok=True)
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
    java = programs.path("java", _JAVA_HINT)
    main_class = "org.apache.zookeeper.server.ZooKeeperServerMain"
    return ProcessInstance(
        name="zookeeper",
        argv=[java, *JVM_OPTIONS, "-cp", ZOOKEEPER_CLASSPATH, main_class, str(config)],
        cwd=str(directory),
        log=str(directory / "logs" / "zookeeper.log"),
        health=ZooKeeperHealth(zookeeper=f"127.0.0.1:{port}"),
        ports={"client": port},
    )


def redis_node_instance(
    directory: Path,
    name: str,
    port: int,
    replica_of: int | None = None,
    *,
    programs: Programs = ON_PATH,
    bind: str = "127.0.0.1",
    primary_address: str = "127.0.0.1",
) -> ProcessInstance:
    """One Redis server of a replicated set, bound to `bind`, with its own data directory (kept across restarts);
    a replica follows the primary at `primary_address`:`replica_of`."""
    data = directory / "redis" / name
    data.mkdir(parents=True, exist_ok=True)
    argv = ["--port", str(port), "--bind", bind, "--save", "", "--appendonly", "yes"]
    argv += ["--dir", str(data), "--daemonize", "no"]
    # DEBUG SLEEP (the redis.slow fault) needs DEBUG, which Redis 7 refuses by default; a replica's full sync
    # starts at once instead of after 5 s spent waiting for more replicas that never come.
    argv += ["--enable-debug-command", "local", "--repl-diskless-sync-delay", "0"]
    if bind != "127.0.0.1":  # a namespace host's address: reached only over the stack's own bridge
        argv += ["--protected-mode", "no"]
    if replica_of is not None:
        argv += ["--replicaof", primary_address, str(replica_of)]
    return _redis_process(directory, name, port, argv, programs, bind)


def sentinel_instance(
    directory: Path,
    name: str,
    port: int,
    primary_port: int,
    quorum: int = 2,
    *,
    programs: Programs = ON_PATH,
    bind: str = "127.0.0.1",
    primary_address: str = "127.0.0.1",
) -> ProcessInstance:
    """A Redis Sentinel watching the primary. Sentinels rewrite their config: each start gets a fresh one."""
    config = directory / "redis" / f"{name}.conf"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        f"port {port}\n"
        f"bind {bind}\n"
        f"protected-mode {'yes' if bind == '127.0.0.1' else 'no'}\n"
        "daemonize no\n"
        f"dir {config.parent}\n"
        f"sentinel monitor {SENTINEL_MASTER} {primary_address} {primary_port} {quorum}\n"
        f"sentinel down-after-milliseconds {SENTINEL_MASTER} {SENTINEL_DOWN_AFTER_MS}\n"
        f"sentinel failover-timeout {SENTINEL_MASTER} {SENTINEL_FAILOVER_TIMEOUT_MS}\n"
        f"sentinel parallel-syncs {SENTINEL_MASTER} 1\n"
    )
    return _redis_process(directory, name, port, [str(config), "--sentinel"], programs, bind)


def zookeeper_ensemble(
    directory: Path,
    ports: list[tuple[int, int, int]],
    *,
    programs: Programs = ON_PATH,
    addresses: list[str] | None = None,
) -> list[ProcessInstance]:
    """A ZooKeeper ensemble: one (client, peer, election) port triple per node, own data dirs; every node
    on loopback, or node N on `addresses[N-1]` (a host of its own)."""
    java = programs.path("java", _JAVA_HINT)
    bind = addresses or ["127.0.0.1"] * len(ports)
    servers = "".join(
        f"server.{n}={bind[n - 1]}:{peer}:{election}\n" for n, (_, peer, election) in enumerate(ports, start=1)
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
            f"clientPortAddress={bind[n - 1]}\n"
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
                health=ZooKeeperHealth(zookeeper=f"{bind[n - 1]}:{client}"),
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
    bind: str = "127.0.0.1",
) -> ProcessInstance:
    """A matching engine or the gateway, serving HTTP on `bind`:`port`."""
    argv = [sys.executable, "-m", module, "--name", name, "--port", str(port)]
    argv += ["--host", bind] if bind != "127.0.0.1" else []
    argv += ["--redis", redis, "--zookeeper", zookeeper, "--session-timeout", str(session_timeout_s)]
    argv += extra or []
    for target, address in (routes or {}).items():
        argv += ["--route", f"{target}={address}"]
    url = f"http://{bind}:{port}"
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
