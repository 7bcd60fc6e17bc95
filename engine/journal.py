"""The run journal: the one record of a run that every report is rendered from, written atomically.

Times are Unix epoch seconds (float). The journal is rewritten whole on every flush (temp file,
fsync, rename) so a reader never sees a torn file and a crashed run still leaves what it knew.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.redact import redact
from injectors.base import FaultPlan, TargetResult

JOURNAL_SCHEMA_VERSION = 1

Verdict = Literal["running", "passed", "deviated", "aborted", "rollback_failed", "interrupted", "error"]
PhaseName = Literal["preflight", "baseline", "faults", "rollback", "recovery", "integrity", "verdict"]
PhaseStatus = Literal["running", "ok", "deviated", "failed", "skipped", "interrupted", "aborted"]
JudgedPhase = Literal["baseline", "during", "recovery"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    kind: Literal["metric", "http"]
    metric: str | None = None
    request: str | None = None
    min: float | None = None
    max: float | None = None
    observed: float | None = None
    ok: bool
    window: tuple[float, float]
    samples: int = 0
    detail: str = ""


class RecoveryRecord(_Record):
    """How one fault hurt the steady state and how long it took to come back (RTO)."""

    degraded_at: float | None = None
    recovered_at: float | None = None
    rto_s: float | None = Field(default=None, description="Fault start until steady state held again.")
    impact_s: int = Field(default=0, description="Seconds in which the steady state did not hold.")
    recovered: bool = False
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
    name: str
    target: float
    observed: float | None
    unit: str
    met: bool
    fault_index: int | None = None
    detail: str = ""


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
    """The steady-state verdict of one second: `ok` is False if any probe failed in it."""

    t: float
    ok: bool
    failing: list[str] = Field(default_factory=list)


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
    ok: bool = Field(description="True when the invariant holds (and the check could run).")
    checked: int = Field(default=0, description="How many items (orders, fills, accounts, books) were examined.")
    violations: int = Field(default=0, description="How many items broke the invariant.")
    examples: list[dict[str, Any]] = Field(
        default_factory=list, description="Up to 20 violating items, as found (order ids, expected, found)."
    )
    error: str | None = Field(default=None, description="Why the check could not run, if it could not.")
    took_s: float = 0.0


class LostOrder(_Record):
    """An order the gateway acknowledged that the system no longer has (or has in another shape)."""

    order_id: str
    client_order_id: str | None = None
    account: str
    symbol: str
    side: str
    qty: int
    price: float
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

    def phase(self, name: PhaseName) -> PhaseRecord | None:
        for record in reversed(self.phases):
            if record.name == name:
                return record
        return None


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` so readers see the old or the new file, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; reports are meant to be shared
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


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
    """Read a journal file; raises ValueError naming the file when it is not a journal we can read."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable journal: {exc}") from exc
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if version != JOURNAL_SCHEMA_VERSION:
        raise ValueError(f"{path}: journal schema_version {version!r}, this tool reads {JOURNAL_SCHEMA_VERSION}")
    return Journal.model_validate(raw)
