"""The experiment file format, version 1, as pydantic models (unknown keys are refused everywhere).

File keys are the field names. Durations are strings with units ("30s", "2m", "500ms"). Cross-field
rules (faults inside the load window, known fault kinds and their params, known targets) are checked
by engine.plan so that each problem can point at its own line.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, model_validator
from pydantic_core import PydanticCustomError

from engine.durations import Duration
from engine.integrity_spec import IntegrityEntry, check_entries
from engine.prom_probe_model import PrometheusQuery
from injectors.selection import Selection

REFERENCE_PROFILES = ("basic", "ha", "lossy", "containers", "hosts")

MetricName = Literal[
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_max_ms",
    "error_rate",
    "throughput_rps",
]
# What objectives.rto measures (docs/recovery.md): from the fault's start, or from its end.
RtoFrom = Literal["fault_start", "fault_end"]


class _Strict(BaseModel):
    # NaN and infinity are refused everywhere: a NaN threshold can never fail, an infinite rate never ends.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)


class StackRef(_Strict):
    """Where the targets are: the built-in reference trading stack, or a stack description file."""

    reference: str | None = Field(
        default=None,
        description=f"Profile of the built-in reference trading stack: {', '.join(REFERENCE_PROFILES)}.",
    )
    file: str | None = Field(
        default=None, description="Stack description (JSON or YAML), relative to the experiment file."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.reference is None) == (self.file is None):
            raise ValueError("give exactly one of 'reference' (a reference-stack profile) or 'file'")
        if self.reference is not None and self.reference not in REFERENCE_PROFILES:
            raise ValueError(f"unknown reference profile {self.reference!r}; known: {', '.join(REFERENCE_PROFILES)}")
        return self


class LoadSpec(_Strict):
    """The trading load Locust drives for the whole experiment."""

    locustfile: str = Field(description="Locust file with the user personas, relative to the experiment file.")
    users: int = Field(ge=1, le=100_000, description="Concurrent simulated users.")
    spawn_rate: float = Field(gt=0, description="Users started per second until `users` run.")
    duration: Duration = Field(gt=0, description="How long the load runs; the faults happen inside it.")
    warmup: Duration = Field(
        default=5.0, ge=0, description="Start of the load left out of the baseline (ramp-up, cold caches)."
    )
    host: str = Field(
        default="gateway",
        pattern=r"^([A-Za-z_][A-Za-z0-9_.-]*|https?://[^\s/?#]+[^\s]*)$",
        description="Stack endpoint name (e.g. 'gateway') or an http(s) URL on loopback the load is sent to.",
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Local Locust worker processes. 1: one Locust process (no master) unless `remote_workers` "
        "are expected; more: a Locust master on 127.0.0.1 and this many workers, their per-second latency "
        "histograms merged exactly (docs/distributed-load.md).",
    )
    remote_workers: int = Field(
        default=0,
        ge=0,
        le=1000,
        description="Workers started on other machines with `locust --worker --master-host <master_host>`; the "
        "load starts once they and the local workers have joined. Needs `master_host`.",
    )
    master_host: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$",
        description="Host name or IPv4 address of this machine that remote workers connect to; the master then "
        "listens on it (or on `master_bind`) instead of 127.0.0.1. Only on a trusted network: Locust's worker "
        "protocol has no authentication.",
    )
    master_bind: str | None = Field(
        default=None,
        description="IPv4 address the master listens on when it is not `master_host` (e.g. '0.0.0.0' behind "
        "NAT). Only with `master_host`.",
    )
    master_port: int | None = Field(
        default=None,
        ge=1024,
        le=65535,
        description="Port the master listens on for workers. Default: a free port, or 5557 (Locust's) with "
        "`master_host`.",
    )
    join_timeout: Duration = Field(
        default=60.0, gt=0, description="How long the master waits for every worker to join before the run fails."
    )

    @model_validator(mode="after")
    def _distribution(self) -> Self:
        if self.remote_workers and self.master_host is None:
            raise ValueError("'remote_workers' needs 'master_host', the address remote workers connect to")
        if self.master_host is not None and not self.remote_workers:
            raise ValueError("'master_host' is for remote workers: give 'remote_workers' (how many will join)")
        if self.master_bind is not None:
            if self.master_host is None:
                raise ValueError("'master_bind' is only for 'master_host' mode; without it the master binds 127.0.0.1")
            try:
                ipaddress.IPv4Address(self.master_bind)
            except ValueError:
                raise ValueError(f"'master_bind' must be an IPv4 address, got {self.master_bind!r}") from None
        if self.users < self.workers + self.remote_workers:
            raise ValueError(
                f"{self.users} user(s) cannot keep {self.workers + self.remote_workers} workers busy; "
                "give at least one user per worker"
            )
        return self


class Bounds(_Strict):
    """Tolerance while a fault is in effect: the entry is also judged over each fault window with it, and it is
    what the entry must hold, second by second, for recovery to be declared while a fault is still in place.
    Omitted: no window check (the window is only observed) and the entry's own thresholds stay its tolerance."""

    min: float | None = Field(default=None, description="Lowest tolerated value.")
    max: float | None = Field(default=None, description="Highest tolerated value.")

    @model_validator(mode="after")
    def _some_bound(self) -> Self:
        if self.min is None and self.max is None:
            raise ValueError("give 'min', 'max' or both")
        return self


class MetricProbe(_Strict):
    """A threshold on the live load metrics, judged per phase and second by second for recovery.

    Latency is measured on successful requests; error_rate is a share (0-1); throughput in req/s.
    """

    name: str = Field(min_length=1, description="Unique name, used in reports.")
    metric: MetricName
    request: str | None = Field(
        default=None, description="Locust request name, e.g. 'POST /orders'; omitted = all requests."
    )
    min: float | None = Field(default=None, description="Lowest healthy value.")
    max: float | None = Field(default=None, description="Highest healthy value.")
    during: Bounds | None = Field(
        default=None,
        description="Tolerance while a fault is in effect (judged over each fault window). Omitted: the window is "
        "only observed, and `min`/`max` stay the tolerance second by second (docs/recovery.md).",
    )

    @model_validator(mode="after")
    def _some_bound(self) -> Self:
        _check_min_max(self.min, self.max)
        return self


def _check_min_max(low: float | None, high: float | None) -> None:
    if low is None and high is None:
        raise ValueError("give 'min', 'max' or both")
    if low is not None and high is not None and low > high:
        raise ValueError(f"'min' ({low}) is above 'max' ({high})")


class PrometheusProbe(_Strict):
    """A PromQL instant query on an interval, each sample judged against min/max (docs/monitoring.md); a sample
    that gives no single number (no series, several, an error, a timeout) is "not checked", never 0."""

    name: str = Field(min_length=1, description="Unique name, used in reports.")
    prometheus: PrometheusQuery = Field(description="The query, the Prometheus it is sent to, and how often.")
    min: float | None = Field(default=None, description="Lowest healthy value.")
    max: float | None = Field(default=None, description="Highest healthy value.")
    during: Bounds | None = Field(
        default=None,
        description="Tolerance while a fault is in effect (judged over each fault window). Omitted: the window is "
        "only observed, and `min`/`max` stay the tolerance second by second.",
    )

    @model_validator(mode="after")
    def _some_bound(self) -> Self:
        _check_min_max(self.min, self.max)
        return self


class AbortCondition(_Strict):
    """Stop the run at once, rolling every fault back, when a load metric or a PromQL query stays beyond a limit —
    or a steady-state probe keeps failing — for `for` whole seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False, strict=True)

    name: str | None = Field(default=None, description="Label for the journal and report.")
    metric: MetricName | None = Field(default=None, description="A load metric (give `above` or `below`).")
    probe: str | None = Field(
        default=None,
        description="Or: the name of a steady-state probe (metric, HTTP or Prometheus); abort while it fails its "
        "own thresholds (not its `during` tolerance).",
    )
    prometheus: PrometheusQuery | None = Field(default=None, description="Or: a PromQL query (give above/below).")
    request: str | None = Field(default=None, description="Locust request name; omitted = all requests.")
    above: float | None = Field(default=None, description="Abort when the metric stays above this.")
    below: float | None = Field(default=None, description="Abort when the metric stays below this.")
    for_s: Duration = Field(
        default=5.0,
        gt=0,
        alias="for",
        description="How long (whole seconds, second by second) the breach must last; default 5s.",
    )

    @model_validator(mode="after")
    def _one_limit(self) -> Self:
        if [self.metric, self.probe, self.prometheus].count(None) != 2:
            raise ValueError("give exactly one of 'metric' or 'prometheus' (with 'above' or 'below') or 'probe'")
        if self.probe is not None:
            if self.above is not None or self.below is not None or self.request is not None:
                raise ValueError("a 'probe' condition uses the probe's own thresholds: remove above/below/request")
        elif (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of 'above' or 'below'")
        elif self.prometheus is not None and self.request is not None:
            raise ValueError("'request' names a Locust request: a 'prometheus' condition has none")
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.probe is not None:
            return f"probe '{self.probe}' failing for {self.for_s:g}s"
        limit = f"above {self.above:g}" if self.above is not None else f"below {self.below:g}"
        what = f"{self.metric} of {self.request}" if self.request else self.metric
        what = f"PromQL {self.prometheus.query!r}" if self.prometheus is not None else what
        return f"{what} {limit} for {self.for_s:g}s"


class HttpCheck(_Strict):
    """What an HTTP probe requests and expects."""

    url: str = Field(
        pattern=r"^(https?://[^\s/?#]+|\{[A-Za-z_][A-Za-z0-9_-]*\})[^\s]*$",
        description="http(s) URL; a leading {name} is replaced by the stack endpoint of that name.",
    )
    method: Literal["GET", "HEAD"] = Field(default="GET", description="HTTP method.")
    status: int = Field(default=200, ge=100, le=599, description="Expected status code.")
    timeout: Duration = Field(default=1.0, gt=0, description="A slower answer counts as a failed sample.")
    interval: Duration = Field(default=1.0, gt=0, description="Time between samples.")


class HttpProbe(_Strict):
    """An HTTP endpoint sampled on an interval; judged by the share of failed samples."""

    name: str = Field(min_length=1, description="Unique name, used in reports.")
    http: HttpCheck
    max_failure_rate: float = Field(default=0.0, ge=0, le=1, description="Share of samples allowed to fail.")
    during: Bounds | None = Field(
        default=None,
        description="Bounds on the failure rate while a fault is in effect (judged over each fault window). "
        "Omitted: the window is only observed, and a failed sample stays a failed second (docs/recovery.md).",
    )


def _probe_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        return next((key for key in ("http", "prometheus") if key in value), "metric")
    return "http" if isinstance(value, HttpProbe) else "prometheus" if isinstance(value, PrometheusProbe) else "metric"


Probe = Annotated[
    Annotated[MetricProbe, Tag("metric")]
    | Annotated[HttpProbe, Tag("http")]
    | Annotated[PrometheusProbe, Tag("prometheus")],
    Discriminator(_probe_tag),
]


class FaultStep(_Strict):
    """One fault on the timeline: injected `at` after the load starts, rolled back `duration` later."""

    at: Duration = Field(ge=0, description="Offset from the start of the load.")
    duration: Duration = Field(gt=0, description="How long the fault stays in place before its rollback.")
    kind: str = Field(description="Fault kind, e.g. 'process.kill' (see docs/injectors.md).")
    target: str = Field(description="Target name in the stack description, e.g. 'matcher'.")
    select: Selection | None = Field(default=None, description="Which instances; default: one at random.")
    params: dict[str, Any] = Field(default_factory=dict, description="Parameters of the fault kind.")
    name: str | None = Field(default=None, description="Label used in reports.")


class Objectives(_Strict):
    """Objectives the run is judged against; a missed one makes the run deviate (exit 1)."""

    rto: Duration | None = Field(
        default=None,
        gt=0,
        description="Recovery time objective per fault, measured as `rto_from` says (docs/recovery.md).",
    )
    rto_from: RtoFrom = Field(
        default="fault_start",
        description="What `rto` measures. 'fault_start': from the injection until the steady state holds again "
        "for recovery.stable_for seconds (while the fault is still in place only if every in-window tolerance "
        "held). 'fault_end': from the fault's end (its rollback verified) until the steady state holds for "
        "stable_for seconds. Both figures are journaled and reported; this chooses the one judged.",
    )
    rpo_orders: int = Field(
        default=0,
        ge=0,
        description="Recovery point objective per fault: how many acknowledged orders may be lost "
        "(judged by the acknowledged_orders_persisted integrity check).",
    )


class RecoverySpec(_Strict):
    """When the steady state counts as recovered after a fault."""

    stable_for: Duration = Field(
        default=3.0,
        gt=0,
        description="Steady state must hold this long, second by second, to count as recovered.",
    )


class Guards(_Strict):
    """Blast-radius limits, checked before anything starts and again before each injection.

    Raise them deliberately for a wide drill (e.g. `percent: 30` of 1,000 pods); the defaults keep a
    typo from taking down a whole tier.
    """

    max_concurrent_faults: int = Field(
        default=1, ge=1, le=1000, description="Faults in effect at the same time, at most (overlapping windows)."
    )
    max_targets_per_fault: int = Field(
        default=10,
        ge=1,
        le=100_000,
        description="Instances one fault may hit, at most: a larger `count`, or more resolved targets "
        "(`all`, a percentage of a big group), refuse the run.",
    )
    max_percent: float = Field(
        default=50, gt=0, le=100, description="Largest `select.percent` of a target group allowed."
    )


def exact_version(value: Any) -> Any:
    """A file's `version` exactly as written: Literal[1] alone takes True and 1.0 (they compare equal to 1)."""
    if type(value) is not int:
        raise PydanticCustomError("literal_error", "Input should be 1", {"expected": "1"})
    return value


class Experiment(_Strict):
    """An experiment file."""

    version: Annotated[Literal[1], BeforeValidator(exact_version)] = Field(
        description="File format version; this tool reads 1."
    )
    title: str = Field(min_length=1, description="One line; the report's heading.")
    description: str = Field(default="", description="What is tested and why; shown in the report.")
    tags: list[str] = Field(default_factory=list, description="Free labels for grouping experiments.")
    stack: StackRef = Field(
        default_factory=lambda: StackRef(reference="basic"),
        description="Where the targets are; default: the reference stack, profile basic.",
    )
    load: LoadSpec = Field(description="The Locust load that runs for the whole experiment.")
    steady_state: list[Probe] = Field(min_length=1, description="The hypothesis: what 'healthy' means.")
    method: list[FaultStep] = Field(min_length=1, description="The faults, in any order; run by `at`.")
    objectives: Objectives = Field(default_factory=Objectives, description="Targets the run is judged against.")
    recovery: RecoverySpec = Field(default_factory=RecoverySpec, description="How recovery is recognised.")
    guards: Guards = Field(default_factory=Guards, description="Blast-radius limits (see Guards).")
    abort_when: list[AbortCondition] = Field(
        default_factory=list,
        description="Abort conditions, checked every second from the start of the load: a breach rolls "
        "every fault back at once and ends the run as aborted (exit 1). `chaos.py abort` does the same by hand.",
    )
    integrity: Annotated[list[IntegrityEntry], AfterValidator(check_entries)] | None = Field(
        default=None,
        description="Data-integrity checks after the run, by name (or `package.module:attribute` for your own), "
        "or a configured check: {check: acknowledged_found_by_url, url: ...} (see LookupCheck; at most one). "
        "Default: all built-in checks on the reference stack (acknowledged_orders_persisted, "
        "no_duplicate_order_ids, no_double_fills, balances_conserved, book_not_crossed), the first two "
        "elsewhere; [] runs none.",
    )
