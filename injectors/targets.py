"""The stack description: where a drill's targets are (processes, links, endpoints), as injectors see it.

A stack description is a JSON or YAML document. The reference trading stack writes one
(`state.json`) when it starts; users describe their own systems in the same format. Injectors read
it through the run context; the process injector records restarts back into it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag


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


class ToxiproxyEndpoint(_Strict):
    """Where a Toxiproxy HTTP API answers: the embedded server or a real Toxiproxy."""

    url: str = Field(default="http://127.0.0.1:8474", pattern=r"^https?://")
    timeout_s: float = Field(default=2.0, gt=0, description="Every API call gives up after this long.")


class LinkInstance(_Strict):
    """One TCP link routed through a Toxiproxy proxy: the client connects to `listen`, the proxy to `upstream`."""

    name: str = Field(description="Unique link name, e.g. 'matcher-1->redis'.")
    proxy: str = Field(description="Name of the Toxiproxy proxy carrying the link.")
    listen: str = Field(description="host:port the client connects to.")
    upstream: str = Field(description="host:port of the real server.")
    client: str | None = Field(default=None, description="Instance name of the client process, if known.")
    server: str | None = Field(default=None, description="Instance name of the server process, if known.")


class LinkTarget(_Strict):
    """A group of links of the same kind, e.g. every matching engine's connection to Redis.

    `select: {role: leader}` on links picks the links whose client (or, with `role_from: server`, whose
    server) process reports that role: "the matching-engine leader's link to ZooKeeper".
    """

    kind: Literal["link"] = "link"
    description: str = ""
    client_target: str | None = Field(default=None, description="Process target whose instances are the clients.")
    server_target: str | None = Field(default=None, description="Process target whose instances are the servers.")
    role_from: Literal["client", "server"] = Field(
        default="client", description="Which end's live role `select: {role: ...}` refers to."
    )
    toxiproxy: ToxiproxyEndpoint | None = Field(
        default=None, description="Toxiproxy API for these links; default: the stack's `toxiproxy`."
    )
    instances: list[LinkInstance] = Field(min_length=1)


def _target_kind(value: Any) -> str:
    # `kind` may be left out for processes, the common case in hand-written stack files.
    if isinstance(value, dict):
        return str(value.get("kind", "process"))
    return str(getattr(value, "kind", "process"))


Target = Annotated[
    Annotated[ProcessTarget, Tag("process")] | Annotated[LinkTarget, Tag("link")],
    Discriminator(_target_kind),
]


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
        description="Named service addresses (http URLs, or host:port for TCP services such as Redis); "
        "an http URL can be the load target and {name} in probe URLs.",
    )
    targets: dict[str, Target] = Field(default_factory=dict)
    toxiproxy: ToxiproxyEndpoint | None = Field(
        default=None, description="The Toxiproxy API through which the stack's links can be degraded."
    )
