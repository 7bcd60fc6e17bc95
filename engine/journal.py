"""The run journal: the one record of a run that every report is rendered from, written atomically.

Times are Unix epoch seconds (float). The journal is rewritten whole (temp file, fsync, rename) at the
run's boundaries, so a reader never sees a torn file; the events in between are appended to its event
log (engine.eventlog), which `load_journal` merges: a crashed run still leaves everything it knew.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine.atomic import write_atomic as write_atomic  # re-exported: reports, drills and the CLI write with it
from engine.eventlog import merge
from engine.files import LIMITS, read_json
from engine.model import RtoFrom
from engine.prom_probe_model import ProbePoint as ProbePoint  # re-exported: the journal schema includes it
from engine.redact import redact
from injectors.base import FaultPlan
from injectors.base import TargetResult as TargetResult  # re-exported: the journal schema includes it

# 2: three outcomes (held, failed, not checked) and the recovery figures of docs/recovery.md. Schema-1
# journals are still read: engine.journal_v1 upgrades them, marking what they did not record.
JOURNAL_SCHEMA_VERSION = 2

Verdict = Literal["running", "passed", "deviated", "aborted", "rollback_failed", "interrupted", "error"]
PhaseName = Literal["preflight", "baseline", "faults", "rollback", "recovery", "integrity", "verdict"]
PhaseStatus = Literal["running", "ok", "deviated", "failed", "skipped", "interrupted", "aborted"]
JudgedPhase = Literal["baseline", "during", "recovery"]
# Every check, objective and invariant has three outcomes: a judgement that did not run is never "held".
Status = Literal["held", "failed", "not_checked"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _outcome(data: Any, flag: str, not_checked_when: str | None = None) -> Any:
    """Fill `status` from the boolean `flag` (or `flag` from `status`) so that the two always agree.

    Schema-1 journals and older callers give only the boolean; `not_checked_when` names a field whose
    presence (an error) means the judgement could not be made at all.
    """
    if not isinstance(data, dict):
        return data
    status, value = data.get("status"), data.get(flag)
    if status is None and value is not None:
        blocked = not_checked_when is not None and data.get(not_checked_when)
        status = "held" if value else ("not_checked" if blocked else "failed")
        data = {**data, "status": status}
    elif status is not None and value is None:
        data = {**data, flag: status == "held"}
    elif status is not None and bool(value) != (status == "held"):
        raise ValueError(f"{flag}={value!r} contradicts status {status!r}")
    return data


class EventRecord(_Record):
    """One timestamped thing that happened (see engine.events for the catalogue)."""

    t: float
    type: str
    message: str = ""
    data: dict[str, Any] = Field(default_factory=dict)


class PhaseRecord(_Record):
    name: PhaseName
    started_at: float
    finished_at: float | None = None
    status: PhaseStatus = "running"
    detail: str = ""


class CheckRecord(_Record):
    """One steady-state probe judged over one window (baseline, a fault window, recovery).

    For `error_rate` and an HTTP probe's `failure_rate`, `observed`, `min` and `max` are shares (0-1).
    """

    probe: str
    phase: JudgedPhase
    fault_index: int | None = None
    kind: Literal["metric", "http", "prometheus"]
    metric: str | None = None
    request: str | None = None
    min: float | None = None
    max: float | None = None
    observed: float | None = None
    # Give one of ok and status; the other follows (the defaults only stand when neither is given).
    ok: bool = Field(default=False, description="True only when the check held (status 'held').")
    status: Status = Field(default="failed", description="held, failed, or not_checked (see `why`).")
    why: str = Field(default="", description="Why it was not checked, when it was not.")
    window: tuple[float, float]
    samples: int = 0
    detail: str = ""

    @model_validator(mode="before")
    @classmethod
    def _status(cls, data: Any) -> Any:
        return _outcome(data, "ok")


class RecoveryRecord(_Record):
    """How one fault hurt the steady state and how long it took to come back: the figures of docs/recovery.md."""

    degraded_at: float | None = Field(
        default=None,
        description="First second at or after the injection in which the steady state did not hold; never before "
        "the injection (a second that straddles it is clamped to the injection: degraded_straddles).",
    )
    degraded_straddles: bool = Field(
        default=False, description="That first deviating second began before the injection: it straddles it."
    )
    recovered_at: float | None = Field(
        default=None,
        description="When the steady state held again (the first of `stable_for` healthy seconds in a row); while "
        "the fault was in place only if every in-window tolerance held from then until it ended.",
    )
    recovered_in_window: bool = Field(default=False, description="recovered_at came before the fault ended.")
    settled_at: float | None = Field(
        default=None, description="After the fault ended: when the steady state held for `stable_for` seconds."
    )
    from_start_s: float | None = Field(default=None, description="Fault start (injection) until recovered_at.")
    impact_s: float | None = Field(default=None, description="degraded_at until recovered_at; 0 without impact.")
    after_end_s: float | None = Field(default=None, description="Fault end (rollback verified) until settled_at.")
    rto_from: RtoFrom = Field(default="fault_start", description="Which figure rto_s is (objectives.rto_from).")
    rto_s: float | None = Field(default=None, description="What objectives.rto judges: from_start_s or after_end_s.")
    deviating_seconds: int = Field(
        default=0, description="Seconds from the injection on in which the steady state did not hold."
    )
    recovered: bool = Field(default=False, description="rto_s was measured: the steady state held again.")
    detail: str = ""


class FaultRecord(_Record):
    """One step of the method: what was planned, done to each target, undone and verified."""

    index: int = Field(ge=1, description="1-based position on the timeline; reports show it as #index.")
    name: str | None = Field(default=None, description="The step's label from the experiment file.")
    kind: str
    target: str
    at_s: float
    duration_s: float | None
    params: dict[str, Any] = Field(default_factory=dict)
    status: Literal["pending", "skipped", "injected", "failed", "rolled_back", "rollback_failed"] = "pending"
    plan: FaultPlan | None = None
    scheduled_at: float | None = None
    injected_at: float | None = None
    ended_at: float | None = Field(default=None, description="When the rollback was verified (or failed).")
    inject: list[TargetResult] = Field(default_factory=list)
    rollback: list[TargetResult] = Field(default_factory=list)
    verify: list[TargetResult] = Field(default_factory=list)
    error: str | None = None
    recovery: RecoveryRecord | None = None
    measured: dict[str, float] = Field(
        default_factory=dict,
        description="Times the injector measured while the fault lasted, in seconds, e.g. promoted_after_s "
        "(until Sentinel promoted a replica) or elected_after_s (until ZooKeeper elected a new leader).",
    )


class ObjectiveRecord(_Record):
    """One objective (rto, rpo_orders, ...) judged for one fault, or for the run or the drill."""

    name: str
    target: float
    observed: float | None
    unit: str
    met: bool = Field(default=False, description="True only when the objective held (status 'held').")
    status: Status = Field(default="failed", description="held, failed, or not_checked (see `why`).")
    why: str = Field(default="", description="Why it was not checked, when it was not.")
    fault_index: int | None = None
    detail: str = ""

    @model_validator(mode="before")
    @classmethod
    def _status(cls, data: Any) -> Any:
        return _outcome(data, "met")


class MetricPoint(_Record):
    """Load metrics of one request name (or '*' for all) over one second starting at `t`."""

    t: float
    n: int
    fail: int
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None
    users: int | None = None
    errors: dict[str, int] = Field(default_factory=dict, description="Up to 5 error messages and their counts.")


class SteadyPoint(_Record):
    """The steady-state verdict of one second [t, t+1): `ok` is False if any probe failed in it."""

    t: float
    ok: bool
    failing: list[str] = Field(default_factory=list)
    tolerated: bool | None = Field(
        default=None,
        description="In a fault window: every entry held its in-window tolerance (`during:`, else its own "
        "thresholds). None outside every fault window.",
    )
    untolerated: list[str] = Field(default_factory=list, description="The entries beyond their in-window tolerance.")
    straddles: list[int] = Field(
        default_factory=list, description="Faults injected inside this second: part of it came before the fault."
    )


class LoadRecord(_Record):
    locustfile: str
    users: int
    spawn_rate: float
    duration_s: float
    host: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    workers: int = Field(default=1, description="Locust workers the load was spread over, remote ones included.")
    remote_workers: int = Field(default=0, description="Of `workers`, how many ran on other machines.")
    master: str | None = Field(default=None, description="host:port the Locust master listened on (None: no master).")
    notes: list[str] = Field(default_factory=list, description="What happened to the load processes (a worker died).")
    log: str | None = None


class IntegrityRecord(_Record):
    """One data-integrity invariant checked after the run, with counts and the first few violations."""

    name: str = Field(description="The check's name, as listed under `integrity:` in the experiment.")
    description: str = Field(default="", description="What the invariant says, in one sentence.")
    ok: bool = Field(default=False, description="True only when the invariant was checked and holds (status 'held').")
    status: Status = Field(
        default="failed", description="held, failed, or not_checked: could not run, or nothing to check (`why`)."
    )
    why: str = Field(default="", description="Why it was not checked, when it was not.")
    checked: int = Field(default=0, description="How many items (orders, fills, accounts, books) were examined.")
    violations: int = Field(default=0, description="How many items broke the invariant.")
    examples: list[dict[str, Any]] = Field(
        default_factory=list, description="Up to 20 violating items, as found (order ids, expected, found)."
    )
    error: str | None = Field(default=None, description="Why the check could not run, if it could not.")
    took_s: float = 0.0

    @model_validator(mode="before")
    @classmethod
    def _status(cls, data: Any) -> Any:
        return _outcome(data, "ok", not_checked_when="error")


class LostOrder(_Record):
    """An order the system acknowledged that it no longer has (or has in another shape); None: not recorded."""

    order_id: str
    client_order_id: str | None = None
    account: str | None = Field(default=None, description="None: the locustfile did not record it (shown as —).")
    symbol: str | None = None
    side: str | None = None
    qty: int | None = None
    price: float | None = None
    acked_at: float = Field(description="When the load generator received the acknowledgement (wall clock).")
    fault_index: int | None = Field(default=None, description="The fault it is attributed to (None: no fault).")
    found: str = Field(default="missing", description="'missing', or what differs from the acknowledgement.")


class RpoRecord(_Record):
    """Recovery point: acknowledged orders lost, for one fault (or for the run outside any fault)."""

    fault_index: int | None
    lost: int
    first_acked_at: float | None = None
    last_acked_at: float | None = None


class LedgerRecord(_Record):
    """What the load generators recorded: every acknowledgement, in append-only files per process."""

    files: list[str] = Field(default_factory=list)
    acknowledged: int = Field(default=0, description="Orders the gateway acknowledged (201).")
    cancels_acknowledged: int = Field(default=0, description="Cancels the gateway acknowledged (200).")
    unreadable_lines: int = Field(default=0, description="Lines that were not whole JSON (a process killed mid-line).")


class GuardRecord(_Record):
    """One safety guard judged before the run: passed, refused, or overridden by someone, for a reason."""

    name: str = Field(description="production, market_hours or blast_radius.")
    ok: bool = Field(description="True when the run was allowed past this guard.")
    overridden: bool = Field(default=False, description="Allowed only because an operator overrode it.")
    detail: str = ""
    by: str | None = Field(default=None, description="Who overrode it (user@host).")
    reason: str | None = Field(default=None, description="Why, as given with the override.")


class ErrorRecord(_Record):
    t: float
    phase: str
    type: str
    message: str


class Journal(_Record):
    """Everything known about one run."""

    schema_version: int = JOURNAL_SCHEMA_VERSION
    run_id: str
    tool_version: str
    experiment_title: str
    experiment_description: str = ""
    experiment_file: str
    experiment_sha256: str
    experiment: dict[str, Any] = Field(description="The validated experiment, as loaded.")
    stack: dict[str, Any] = Field(default_factory=dict, description="Stack name, profile, endpoints, targets.")
    seed: int
    started_at: float
    finished_at: float | None = None
    verdict: Verdict = "running"
    exit_code: int | None = None
    summary: str = ""
    load: LoadRecord | None = None
    phases: list[PhaseRecord] = Field(default_factory=list)
    events: list[EventRecord] = Field(default_factory=list)
    faults: list[FaultRecord] = Field(default_factory=list)
    checks: list[CheckRecord] = Field(default_factory=list)
    objectives: list[ObjectiveRecord] = Field(default_factory=list)
    metrics: dict[str, list[MetricPoint]] = Field(
        default_factory=dict, description="Per-second load metrics by request name; '*' is all requests."
    )
    steady: list[SteadyPoint] = Field(default_factory=list)
    probes: dict[str, list[ProbePoint]] = Field(default_factory=dict, description="Prometheus probe samples by name.")
    errors: list[ErrorRecord] = Field(default_factory=list)
    integrity: list[IntegrityRecord] = Field(default_factory=list, description="Data-integrity checks after the run.")
    ledger: LedgerRecord | None = Field(default=None, description="The acknowledgements the integrity checks used.")
    lost_orders: list[LostOrder] = Field(
        default_factory=list, description="Acknowledged orders not found as acknowledged (at most 200 listed)."
    )
    rpo: list[RpoRecord] = Field(default_factory=list, description="Acknowledged orders lost, per fault.")
    guards: list[GuardRecord] = Field(
        default_factory=list, description="Safety guards judged before the run, with any overrides."
    )
    metrics_listen: str | None = Field(default=None, description="HOST:PORT the runner's own metrics were served on.")
    upgraded_from: int | None = Field(
        default=None, description="The schema version this journal was written in, when read from an older one."
    )

    def phase(self, name: PhaseName) -> PhaseRecord | None:
        for record in reversed(self.phases):
            if record.name == name:
                return record
        return None


# Sections made only of numbers and names this tool generates: nothing user-provided to redact there.
_GENERATED = frozenset({"metrics", "steady", "checks", "phases", "rpo", "objectives", "lost_orders", "integrity"})


def redacted_dict(journal: Journal) -> dict[str, Any]:
    """The journal as JSON data with every secret masked (engine.redact): what is written and reported."""
    data = journal.model_dump(mode="json")
    return {key: value if key in _GENERATED else redact(value) for key, value in data.items()}


def redacted(journal: Journal) -> Journal:
    """A copy of the journal with every secret masked; reports render only this."""
    return Journal.model_validate(redacted_dict(journal))


def save_journal(journal: Journal, path: Path) -> None:
    write_atomic(path, json.dumps(redacted_dict(journal), indent=1, ensure_ascii=False) + "\n")


def load_journal(path: Path) -> Journal:
    """Read a journal file, with its event log's later events; ValueError naming the file if it is not readable."""
    raw = read_json(path, LIMITS["journal"], "a run journal (journal.json)", "journal")
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if version == 1:
        from engine.journal_v1 import upgrade  # only for old files: keeps what schema 1 lacked out of this module

        raw = upgrade(raw)
    elif version != JOURNAL_SCHEMA_VERSION:
        raise ValueError(
            f"{path}: journal schema_version {version!r}, this tool reads {JOURNAL_SCHEMA_VERSION} (and upgrades 1)"
        )
    else:
        raw = merge(raw, path)  # a run killed mid-phase: its last events are only in the log
    try:
        return Journal.model_validate(raw)
    except ValidationError as exc:  # one line: the first problem and how many there are
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "top level"
        raise ValueError(
            f"{path}: not a valid journal ({exc.error_count()} problem(s)); first: {where}: {first['msg']}"
        ) from None
