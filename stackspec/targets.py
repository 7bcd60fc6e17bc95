"""The stack description: where a drill's targets are (processes, links, endpoints), as injectors see it.

A stack description is a JSON or YAML document. The reference trading stack writes one
(`state.json`) when it starts; users describe their own systems in the same format. Injectors read
it through the run context; the process injector records restarts back into it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

# Re-exported: the calendar lived here first, and engine, drills and tests import it from here.
from stackspec.market_hours import WEEKDAYS as WEEKDAYS
from stackspec.market_hours import MarketHours as MarketHours
from stackspec.market_hours import Weekday as Weekday
from stackspec.match import ProcessMatch
from stackspec.restart import Restart
from stackspec.strict import Strict as _Strict


class HttpHealth(_Strict):
    """Healthy when a GET of `http` answers with `status` within `timeout_s`."""

    http: str = Field(description="http(s) URL fetched with GET, e.g. http://127.0.0.1:8080/health.")
    status: int = Field(default=200, description="The HTTP status that means healthy.")
    timeout_s: float = Field(default=1.0, description="The request gives up after this long.")

    @field_validator("http")
    @classmethod
    def _http_url(cls, value: str) -> str:
        scheme, _, rest = value.partition("://")
        if scheme.lower() not in ("http", "https") or not rest.split("/", 1)[0]:
            raise ValueError(f"`http` must be an http(s) URL such as http://127.0.0.1:8080/health, not {value!r}")
        return value


class TcpHealth(_Strict):
    """Healthy when a TCP connection to `tcp` ("host:port") is accepted."""

    tcp: str = Field(description='Address as "host:port", e.g. 127.0.0.1:5432.')
    timeout_s: float = Field(default=1.0, description="Connecting gives up after this long.")


class RedisHealth(_Strict):
    """Healthy when a Redis server at `redis` ("host:port") answers PING with PONG."""

    redis: str = Field(description='Address of the Redis server as "host:port".')
    timeout_s: float = Field(default=1.0, description="Connecting and PING give up after this long.")


class ZooKeeperHealth(_Strict):
    """Healthy when a ZooKeeper server at `zookeeper` ("host:port") reports a serving Mode to `srvr`."""

    zookeeper: str = Field(description='Address of the ZooKeeper client port as "host:port".')
    timeout_s: float = Field(default=1.0, description="Connecting and `srvr` give up after this long.")


HealthCheck = HttpHealth | TcpHealth | RedisHealth | ZooKeeperHealth


class SshHost(_Strict):
    """A host reached over SSH: key-based login only, and its host key must already be in `known_hosts`.

    A key passphrase is never written here (nor to a plan or journal): `key_passphrase_env` names the
    environment variable that holds it.
    """

    address: str = Field(min_length=1, description="Host name or IP address of the SSH server.")
    port: int = Field(default=22, ge=1, le=65535, description="TCP port of the SSH server.")
    user: str = Field(min_length=1, description="Remote user; needs to be allowed to signal the process.")
    key_file: str | None = Field(
        default=None, description="Private key file (OpenSSH format); null: the keys of the running ssh-agent."
    )
    key_passphrase_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Name of the environment variable holding the passphrase of `key_file`, if it has one.",
    )
    known_hosts: str = Field(
        default="~/.ssh/known_hosts", description="known_hosts file holding the host key; unknown hosts are refused."
    )
    connect_timeout_s: float = Field(default=10.0, gt=0, description="Connecting and logging in give up after this.")
    command_timeout_s: float = Field(default=10.0, gt=0, description="Every remote command gives up after this.")

    @model_validator(mode="after")
    def _passphrase_needs_key(self) -> Self:
        if self.key_passphrase_env and not self.key_file:
            raise ValueError("`key_passphrase_env` goes with `key_file` (ssh-agent keys are already unlocked)")
        return self

    @property
    def label(self) -> str:
        """user@address:port, how messages and journals name the host."""
        return f"{self.user}@{self.address}:{self.port}"


class ProcessInstance(_Strict):
    """One supervised OS process of a target group, with what it takes to identify and restart it."""

    name: str = Field(description="Unique instance name, e.g. 'matcher-1'.")
    pid: int | None = Field(
        default=None, description="Current PID; null when known to be down, or to be found by `match` at run time."
    )
    match: ProcessMatch | None = Field(
        default=None, description="Rules that find the process on its host when a fault needs it (see ProcessMatch)."
    )
    start_time: int | None = Field(
        default=None,
        description="Start time of the PID in clock ticks since boot (/proc/PID/stat field 22), "
        "so a recycled PID is never mistaken for this process.",
    )
    argv: list[str] = Field(
        default_factory=list,
        description="Command line used to (re)start the process; may be left out when `restart` is by command "
        "or supervisor and `match` finds the process.",
    )
    cwd: str | None = Field(default=None, description="Working directory when restarting; default: the runner's.")
    env: dict[str, str] = Field(default_factory=dict, description="Environment added when restarting.")
    log: str | None = Field(default=None, description="File that receives stdout and stderr.")
    health: HealthCheck | None = Field(
        default=None, description="How to tell the process is up (http, tcp, redis, zookeeper); checked after rollback."
    )
    role_url: str | None = Field(
        default=None, description='URL answering JSON {"role": ...}; used by `select: {role: ...}`.'
    )
    ports: dict[str, int] = Field(
        default_factory=dict,
        description="Named TCP ports of the process; Redis and ZooKeeper faults need `client` (the client port).",
    )
    host: SshHost | None = Field(
        default=None,
        description="The host the process runs on, reached over SSH (bare metal); null: this host. "
        "`cwd`, `log` and `argv` are then paths on that host.",
    )
    restart: Restart | None = Field(
        default=None, description="How a rollback brings the process back (see Restart); null: from `argv`."
    )

    @model_validator(mode="after")
    def _restartable(self) -> Self:
        by = self.restart.by if self.restart is not None else "argv"
        if not self.argv and (by == "argv" or self.match is None):
            need = "`match` rules that find it" if by != "argv" else "`restart` by command or supervisor and `match`"
            raise ValueError(f"instance {self.name!r} has no `argv`: give its command line, or {need}")
        return self


class ProcessTarget(_Strict):
    """A group of interchangeable processes, on this host or on hosts reached over SSH, e.g. all matching engines."""

    kind: Literal["process"] = Field(default="process", description="Target kind; may be left out for processes.")
    description: str = Field(default="", description="What the target is, for people reading plans and reports.")
    instances: list[ProcessInstance] = Field(min_length=1, description="The processes of the group.")


class ToxiproxyEndpoint(_Strict):
    """Where a Toxiproxy HTTP API answers: the embedded server or a real Toxiproxy."""

    url: str = Field(default="http://127.0.0.1:8474", pattern=r"^https?://", description="Base URL of the API.")
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

    kind: Literal["link"] = Field(default="link", description="Target kind.")
    description: str = Field(default="", description="What the target is, for people reading plans and reports.")
    client_target: str | None = Field(default=None, description="Process target whose instances are the clients.")
    server_target: str | None = Field(default=None, description="Process target whose instances are the servers.")
    role_from: Literal["client", "server"] = Field(
        default="client", description="Which end's live role `select: {role: ...}` refers to."
    )
    toxiproxy: ToxiproxyEndpoint | None = Field(
        default=None, description="Toxiproxy API for these links; default: the stack's `toxiproxy`."
    )
    instances: list[LinkInstance] = Field(min_length=1, description="The links of the group.")


class ContainerInstance(_Strict):
    """One container, known by the name (or id) the engine gives it, with how to tell it is healthy."""

    name: str = Field(description="Instance name used by `select: {name: ...}`, e.g. 'matcher-1'.")
    container: str | None = Field(
        default=None, description="Container name or id on the engine; default: the instance `name`."
    )
    health: HealthCheck | None = Field(
        default=None,
        description="Checked after rollback (e.g. the service's HTTP health URL), besides "
        "the engine's own state and health check.",
    )
    role_url: str | None = Field(
        default=None, description='URL answering JSON {"role": ...}; used by `select: {role: ...}`.'
    )


class ContainerTarget(_Strict):
    """A group of containers on one Docker-API engine: listed by name/id, or found by a label selector.

    With `labels`, every container carrying all of them is a member at resolve time; such a container
    may name its health URL and role URL in the labels `chaos.health_url` and `chaos.role_url`.
    """

    kind: Literal["container"] = Field(default="container", description="Target kind.")
    description: str = Field(default="", description="What the target is, for people reading plans and reports.")
    engine_url: str | None = Field(
        default=None,
        description="Docker Engine API address (unix:///path/to.sock or tcp://host:port); default: $DOCKER_HOST.",
    )
    timeout_s: float = Field(default=10.0, gt=0, description="Every engine API call gives up after this long.")
    containers: list[ContainerInstance] = Field(default_factory=list, description="Containers listed by name or id.")
    labels: dict[str, str] = Field(
        default_factory=dict, description="Label selector: containers carrying every one of these labels."
    )

    @model_validator(mode="after")
    def _some_members(self) -> Self:
        if not self.containers and not self.labels:
            raise ValueError("list `containers` or give a `labels` selector")
        return self


class KubernetesAccess(_Strict):
    """How to reach a Kubernetes API: a kubeconfig (path + context), the in-cluster service account, or a URL.

    A bearer token is never written here (nor to a plan or journal): `token_env` names the environment
    variable that holds it.
    """

    kubeconfig: str | None = Field(
        default=None, description="Kubeconfig file; default: $KUBECONFIG, else ~/.kube/config."
    )
    context: str | None = Field(default=None, description="Kubeconfig context; default: its current-context.")
    in_cluster: bool = Field(default=False, description="Use the service account of the pod the runner runs in.")
    api_url: str | None = Field(
        default=None, pattern=r"^https?://", description="API server URL, used instead of a kubeconfig."
    )
    token_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="With `api_url`: name of the environment variable holding a bearer token.",
    )
    ca_file: str | None = Field(default=None, description="With `api_url`: CA bundle that signs the server's cert.")
    verify_tls: bool = Field(default=True, description="With `api_url`: check the server's TLS certificate.")
    timeout_s: float = Field(default=5.0, gt=0, description="Every API call gives up after this long.")

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if self.in_cluster and (self.api_url or self.kubeconfig or self.context):
            raise ValueError("`in_cluster` excludes `api_url`, `kubeconfig` and `context`")
        if self.api_url and (self.kubeconfig or self.context):
            raise ValueError("give either `api_url` or `kubeconfig`/`context`, not both")
        if (self.token_env or self.ca_file) and not self.api_url:
            raise ValueError("`token_env` and `ca_file` go with `api_url` (a kubeconfig carries its own credentials)")
        return self


class KubernetesTarget(_Strict):
    """Kubernetes objects of one namespace: pods by label selector, one Deployment, or nodes by label selector."""

    kind: Literal["kubernetes"] = Field(default="kubernetes", description="Target kind.")
    description: str = Field(default="", description="What the target is, for people reading plans and reports.")
    api: KubernetesAccess = Field(default_factory=KubernetesAccess, description="How to reach the Kubernetes API.")
    resource: Literal["pods", "deployment", "nodes"] = Field(
        description="What the target's instances are: pods (of `label_selector`), a Deployment, or nodes."
    )
    namespace: str = Field(default="default", description="Namespace of the pods or Deployment (nodes have none).")
    label_selector: str | None = Field(
        default=None, description="Label selector (`app=web,tier!=cache`, `env in (a,b)`) picking pods or nodes."
    )
    deployment: str | None = Field(
        default=None,
        description="Deployment name: the target itself (`resource: deployment`), or the owner of the pods, "
        "whose ready replicas prove that deleted pods were replaced.",
    )

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.resource == "deployment" and not self.deployment:
            raise ValueError("`resource: deployment` needs `deployment` (its name)")
        if self.resource == "pods" and not self.label_selector:
            raise ValueError("`resource: pods` needs a `label_selector`")
        return self


def _target_kind(value: Any) -> str:
    # `kind` may be left out for processes, the common case in hand-written stack files.
    if isinstance(value, dict):
        return str(value.get("kind", "process"))
    return str(getattr(value, "kind", "process"))


Target = Annotated[
    Annotated[ProcessTarget, Tag("process")]
    | Annotated[LinkTarget, Tag("link")]
    | Annotated[ContainerTarget, Tag("container")]
    | Annotated[KubernetesTarget, Tag("kubernetes")],
    Discriminator(_target_kind),
]


class AuditCommand(_Strict):
    """A command that checks the system's own data invariants and prints one JSON report (docs/integrity.md).

    Run without a shell after the run (and after recovery); `${VAR}` in `env` is expanded only then, from
    the runner's environment. Exit 0 with the report on stdout means it audited (violations are in the
    report); any other exit means it could not, and its stderr says why.
    """

    argv: list[str] = Field(
        min_length=1, description="Program and arguments, e.g. the reference stack's `python -m tradingstack audit`."
    )
    cwd: str | None = Field(default=None, description="Working directory; default: the runner's.")
    env: dict[str, str] = Field(default_factory=dict, description="Environment added to the runner's.")
    timeout_s: float = Field(default=120.0, gt=0, description="The audit is killed, and not checked, after this.")


class StackDescription(_Strict):
    """Everything a run needs to find its targets."""

    schema_version: Literal[1] = Field(default=1, description="Format version of the stack description; 1.")
    name: str = Field(description="Name of the system, as plans, journals and reports show it.")
    profile: str | None = Field(default=None, description="Reference stack profile that wrote it; null for yours.")
    production: bool = Field(
        default=False, description="Marks a production system; runs against it need explicit consent."
    )
    trading: bool = Field(
        default=False,
        description="A securities trading system: reports speak of orders and compare outages with the CSRC "
        "thresholds (5 min reportable, 30 min major). Otherwise neutral words: requests, outage.",
    )
    market_hours: MarketHours | None = Field(
        default_factory=MarketHours,
        description="When the system trades; runs are refused then unless overridden. Default: China A-share "
        "continuous trading (09:30-11:30, 13:00-15:00 Asia/Shanghai, weekdays); null: never trades (a lab stack).",
    )
    endpoints: dict[str, str] = Field(
        default_factory=dict,
        description="Named service addresses (http URLs, or host:port for TCP services such as Redis); "
        "an http URL can be the load target and {name} in probe URLs.",
    )
    targets: dict[str, Target] = Field(
        default_factory=dict, description="Named target groups (process, link, container, kubernetes) faults act on."
    )
    toxiproxy: ToxiproxyEndpoint | None = Field(
        default=None, description="The Toxiproxy API through which the stack's links can be degraded."
    )
    audit: AuditCommand | None = Field(
        default=None,
        description="The system's own reconciliation: a command printing, per invariant (no_double_fills, "
        "no_duplicate_order_ids, balances_conserved, book_not_crossed), how many items it checked and which broke "
        "it, as JSON. Without it those integrity checks are not checked.",
    )
