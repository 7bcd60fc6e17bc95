"""The stack description: where a drill's targets are (processes, links, endpoints), as injectors see it.

A stack description is a JSON or YAML document. The reference trading stack writes one
(`state.json`) when it starts; users describe their own systems in the same format. Injectors read
it through the run context; the process injector records restarts back into it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HttpHealth(_Strict):
    """Healthy when a GET of `http` answers with `status` within `timeout_s`."""

    http: str
    status: int = 200
    timeout_s: float = 1.0


class TcpHealth(_Strict):
    """Healthy when a TCP connection to `tcp` ("host:port") is accepted."""

    tcp: str
    timeout_s: float = 1.0


class RedisHealth(_Strict):
    """Healthy when a Redis server at `redis` ("host:port") answers PING with PONG."""

    redis: str
    timeout_s: float = 1.0


class ZooKeeperHealth(_Strict):
    """Healthy when a ZooKeeper server at `zookeeper` ("host:port") reports a serving Mode to `srvr`."""

    zookeeper: str
    timeout_s: float = 1.0


HealthCheck = HttpHealth | TcpHealth | RedisHealth | ZooKeeperHealth


class ProcessInstance(_Strict):
    """One supervised OS process of a target group, with what it takes to identify and restart it."""

    name: str = Field(description="Unique instance name, e.g. 'matcher-1'.")
    pid: int | None = Field(default=None, description="Current PID; null when known to be down.")
    start_time: int | None = Field(
        default=None,
        description="Start time of the PID in clock ticks since boot (/proc/PID/stat field 22), "
        "so a recycled PID is never mistaken for this process.",
    )
    argv: list[str] = Field(min_length=1, description="Command line used to (re)start the process.")
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict, description="Environment added when restarting.")
    log: str | None = Field(default=None, description="File that receives stdout and stderr.")
    health: HealthCheck | None = None
    role_url: str | None = Field(
        default=None, description='URL answering JSON {"role": ...}; used by `select: {role: ...}`.'
    )
    ports: dict[str, int] = Field(default_factory=dict)


class ProcessTarget(_Strict):
    """A group of interchangeable processes on this host, e.g. all matching engines."""

    kind: Literal["process"] = "process"
    description: str = ""
    instances: list[ProcessInstance] = Field(min_length=1)


Target = Annotated[ProcessTarget, Field(discriminator="kind")]


class ToxiproxyEndpoint(_Strict):
    """Where the Toxiproxy HTTP API for this stack's links answers."""

    url: str = "http://127.0.0.1:8474"
    timeout_s: float = 2.0


class Link(_Strict):
    """A network link between two services, routed through a Toxiproxy proxy."""

    proxy: str = Field(description="Toxiproxy proxy name.")
    listen: str = Field(description="host:port the client side connects to.")
    upstream: str = Field(description="host:port of the real server.")


class StackDescription(_Strict):
    """Everything a run needs to find its targets."""

    schema_version: Literal[1] = 1
    name: str
    profile: str | None = None
    production: bool = Field(
        default=False, description="Marks a production system; runs against it need explicit consent."
    )
    endpoints: dict[str, str] = Field(
        default_factory=dict,
        description="Named service URLs, usable as {name} in probe URLs and as the load target.",
    )
    targets: dict[str, Target] = Field(default_factory=dict)
    links: dict[str, Link] = Field(default_factory=dict)
    toxiproxy: ToxiproxyEndpoint | None = None
