"""The drill file format, version 1: experiments in order, a runbook, objectives, schedule, guard, notifications.

Like experiment files, unknown keys are refused everywhere and every problem is reported as
file:line:col. Cross-file rules (the experiments exist and are valid, steps name real experiments)
are checked by `load_drill` so each problem points at its own line.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from drilling import cron
from engine.durations import Duration
from engine.errors import InvalidInputError, Problem
from engine.guards import market_open
from engine.loader import LoadedDocument, load_document, sort_problems, validate_model
from engine.model import exact_version
from engine.plan import Plan, load_plan
from engine.stack import read_description, reference_description, resolve_stack_file
from stackspec.targets import MarketHours

Condition = Literal[
    "load_started",
    "fault_injected",
    "steady_state_failed",
    "steady_state_restored",
    "fault_rolled_back",
    "recovered",
    "experiment_finished",
]
CONDITIONS: dict[str, str] = {
    "load_started": "the experiment's load generator started",
    "fault_injected": "a fault was injected",
    "steady_state_failed": "the steady state stopped holding after a fault was injected (detection)",
    "steady_state_restored": "the steady state held again after it had failed",
    "fault_rolled_back": "a fault was rolled back and verified gone",
    "recovered": "every fault of the experiment recovered (the journal's recovery time: what RTO measures)",
    "experiment_finished": "the experiment finished (any verdict)",
}
STEP_ID = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ParticipantSpec(_Strict):
    """Someone taking part in the drill, and in what role."""

    name: str = Field(min_length=1, description="Person or team.")
    role: str = Field(min_length=1, description="Role in the drill, e.g. 'incident commander', 'DBA on call'.")


class DrillObjectives(_Strict):
    """What the drill is judged against; each omitted objective is not judged."""

    rto: Duration | None = Field(
        default=None, gt=0, description="Longest tolerated RTO of any single fault (as each experiment measures it)."
    )
    rpo_orders: int | None = Field(
        default=None,
        ge=0,
        description="Acknowledged orders that may be lost over the whole drill (from journals); not checked where "
        "an experiment reconciled none.",
    )
    time_to_detect: Duration | None = Field(
        default=None,
        gt=0,
        description="From the first fault of the experiment the `detect` step was done in, until that step.",
    )
    time_to_recover: Duration | None = Field(
        default=None,
        gt=0,
        description="From the first fault of the experiment the `recover` step was done in, until that step.",
    )


class RunbookStep(_Strict):
    """One runbook step: automatic (`when:` a condition holds) or manual (an operator acknowledges it)."""

    id: str = Field(pattern=STEP_ID, description="Short id, what `chaos.py drill ack ID` names: a-z, 0-9, -, _.")
    title: str = Field(min_length=1, description="What is done or seen, in one line.")
    when: Condition | None = Field(
        default=None,
        description="Automatic step: done when this happens (see the conditions in docs/drills.md). "
        "Omitted: a manual step, acknowledged by an operator.",
    )
    experiment: int | None = Field(
        default=None, ge=1, description="Only events of this experiment (1-based) count; default: any."
    )
    marks: Literal["detect", "recover", "none"] = Field(
        default="none",
        description="'detect': the drill's time to detect ends at this step; 'recover': its time to recover.",
    )
    expected: Duration | None = Field(
        default=None, gt=0, description="Expected time from the step becoming due; done later = 'late'."
    )

    @model_validator(mode="after")
    def _scope_needs_condition(self) -> Self:
        if self.experiment is not None and self.when is None:
            raise ValueError("'experiment' scopes the events of an automatic step: give 'when' too")
        return self

    @property
    def mode(self) -> Literal["auto", "manual"]:
        return "auto" if self.when is not None else "manual"


class ScheduleSpec(_Strict):
    """When `chaos.py drill schedule` runs the drill."""

    cron: str = Field(
        description="Cron expression: minute hour day month weekday, weekdays by name (e.g. '0 10 * * sat'); "
        "6 fields with seconds first are accepted for tests (not exportable)."
    )
    timezone: str = Field(default="UTC", description="IANA time zone the cron is read in, e.g. 'Asia/Shanghai'.")
    misfire_grace: Duration = Field(
        default=3600.0,
        ge=0,
        description="A fire missed while no scheduler ran is made up once on start if it is at most this old.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        cron.zone(value)
        return value

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        cron.trigger(value, "UTC")
        return value


NotifyEvent = Literal["started", "finished"]
CalendarSource = tuple[str, MarketHours | None]  # where market hours come from; None: that stack never trades


def _both_events() -> list[NotifyEvent]:
    return ["started", "finished"]


class CalendarGuard(_Strict):
    """Keeps the drill out of trading hours: a start inside them is refused (exit 4) or skipped by the scheduler.

    By default the drill obeys the calendar of the stacks its experiments run on, the one the engine
    checks each experiment against: one calendar. An override here (with its reason) is passed on to
    the experiments and journaled.
    """

    market_hours: Literal["stack", "default", "none"] | MarketHours = Field(
        default="stack",
        description="'stack': the `market_hours` of every stack the drill's experiments run on (a stack with "
        "`market_hours: null` never trades); 'default': China A-share sessions (09:30-11:30, 13:00-15:00 "
        "Asia/Shanghai, Mon-Fri); 'none': no drill-level check; or a mapping with timezone, weekdays, sessions, "
        "closed (as in a stack).",
    )
    override: bool = Field(default=False, description="Run even inside market hours; needs `reason`.")
    reason: str = Field(default="", description="Why the override: recorded in the drill record and journals.")

    @model_validator(mode="after")
    def _reason_for_override(self) -> Self:
        if self.override and not self.reason.strip():
            raise ValueError("'override: true' needs a 'reason' (it is recorded with the run)")
        return self

    def explicit(self) -> list[CalendarSource] | None:
        """The drill file's own calendar, or None when it follows its stacks' (`market_hours: stack`)."""
        if self.market_hours == "stack":
            return None
        if self.market_hours == "none":
            return []
        if self.market_hours == "default":
            return [("the drill's calendar (China A-share sessions)", MarketHours())]
        return [("the drill's calendar", self.market_hours)]


class WebhookTarget(_Strict):
    """Where drill start and finish are announced: a JSON POST; failures are recorded, never fatal."""

    webhook: str = Field(pattern=r"^https?://", description="http(s) URL; tokens in it are never logged.")
    timeout: Duration = Field(default=5.0, gt=0, le=60, description="Give up on a delivery after this long.")
    events: list[NotifyEvent] = Field(default_factory=_both_events, min_length=1, description="Which events to send.")

    @field_validator("webhook")
    @classmethod
    def _has_host(cls, value: str) -> str:
        if not urlsplit(value).hostname:
            raise ValueError(f"webhook {redact_url(value)!r} has no host")
        return value


class Drill(_Strict):
    """A drill file."""

    version: Annotated[Literal[1], BeforeValidator(exact_version)] = Field(
        description="File format version; this tool reads 1."
    )
    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", description="Unique id: history, schedules and reports key on it."
    )
    title: str = Field(min_length=1, description="One line; the management report's heading.")
    scenario: str = Field(default="", description="The emergency being rehearsed, for the participants.")
    owner: str = Field(min_length=1, description="Who owns the drill and its follow-ups (person or team).")
    participants: list[ParticipantSpec] = Field(default_factory=list, description="Who takes part, with roles.")
    objectives: DrillObjectives = Field(default_factory=DrillObjectives, description="What the drill is judged on.")
    experiments: list[str] = Field(
        min_length=1, description="Experiment files run in this order, relative to the drill file."
    )
    runbook: list[RunbookStep] = Field(default_factory=list, description="The steps, in the order they are due.")
    schedule: ScheduleSpec | None = Field(default=None, description="When the drill runs by itself.")
    calendar: CalendarGuard = Field(default_factory=CalendarGuard, description="The market-hours guard.")
    notify: list[WebhookTarget] = Field(default_factory=list, description="Webhooks told of start and finish.")
    trading: bool | None = Field(
        default=None,
        description="The drill rehearses a trading-system emergency: the management report speaks of orders and "
        "compares each outage with the CSRC thresholds (5 min reportable, 30 min major). Default: when every "
        "experiment's stack declares `trading: true`; otherwise neutral words (requests, outage).",
    )


def redact_url(url: str) -> str:
    """A URL fit for logs: no user info, no query string or fragment (where webhook tokens live)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    path = parts.path
    # Slack/Teams-style URLs carry the secret in the path: keep only the first segment.
    segments = [s for s in path.split("/") if s]
    if len(segments) > 1:
        path = f"/{segments[0]}/…"
    query = "…" if parts.query else ""
    return urlunsplit((parts.scheme, host, path, query, ""))


@dataclass(frozen=True)
class DrillPlan:
    drill: Drill
    document: LoadedDocument
    experiments: list[Plan]

    @property
    def path(self) -> Path:
        return self.document.path

    @property
    def base_dir(self) -> Path:
        return self.document.path.resolve().parent

    def experiment_path(self, index: int) -> Path:
        return (self.base_dir / self.drill.experiments[index]).resolve()

    def calendars(self) -> list[CalendarSource]:
        """The market hours the drill must not start in, each named by where it comes from: the drill file's
        own calendar when it gives one, else each stack's; the stack files are read now (StackError, file:line)."""
        explicit = self.drill.calendar.explicit()
        return explicit if explicit is not None else stack_calendars(self.experiments)


def stack_calendars(plans: Sequence[Plan]) -> list[CalendarSource]:
    """The `market_hours` of each distinct stack the experiments run on, as its description declares them."""
    found: dict[str, CalendarSource] = {}
    for plan in plans:
        ref = plan.experiment.stack
        if ref.reference is not None:
            where, hours = f"reference stack {ref.reference}", reference_description(ref.reference).market_hours
        else:
            path = resolve_stack_file(ref, plan.base_dir, plan.base_dir)
            description = read_description(path)
            where, hours = f"stack {description.name} ({path})", description.market_hours
        found.setdefault(where, (where, hours))
    return list(found.values())


def open_market(calendars: Sequence[CalendarSource], now: datetime.datetime) -> str | None:
    """Why a drill must not start at `now` ("stack web (…): the market is open: …"), or None."""
    for where, hours in calendars:
        reason = market_open(hours, now)
        if reason is not None:
            return f"{where}: {reason}"
    return None


def calendar_summary(calendars: Sequence[CalendarSource]) -> str:
    """The calendars a drill obeys, in one line, for validate, dry runs and the drill record."""
    if not calendars:
        return "no drill-level guard (calendar: {market_hours: none})"
    shown = [
        f"{where}: "
        + ("never trades (market_hours: null)" if h is None else f"{', '.join(h.sessions)} {h.timezone}")
        + ("" if h is None else f" ({'/'.join(h.weekdays)})")
        for where, h in calendars
    ]
    return "; ".join(shown)


def is_drill_data(data: Any) -> bool:
    """Whether a parsed YAML document is a drill (it lists experiments) rather than an experiment."""
    return isinstance(data, dict) and "method" not in data and ("experiments" in data or "runbook" in data)


def check(drill: Drill, doc: LoadedDocument) -> tuple[list[Plan], list[Problem]]:
    loc = doc.locator
    base = doc.path.resolve().parent
    problems: list[Problem] = []
    plans: list[Plan] = []
    for i, rel in enumerate(drill.experiments):
        path = (base / rel).resolve()
        if not path.is_file():
            problems.append(
                loc.problem(("experiments", i), f"experiment {rel!r} not found (paths are relative to the drill file)")
            )
            continue
        try:
            plans.append(load_plan(path))
        except InvalidInputError as exc:
            problems.append(loc.problem(("experiments", i), f"experiment {rel!r} is invalid: see below"))
            problems.extend(exc.problems)
    seen: dict[str, int] = {}
    marked: dict[str, int] = {}
    for i, step in enumerate(drill.runbook):
        if step.id in seen:
            problems.append(
                loc.problem(("runbook", i, "id"), f"step id {step.id!r} is already used by step #{seen[step.id] + 1}")
            )
        seen.setdefault(step.id, i)
        if step.experiment is not None and step.experiment > len(drill.experiments):
            problems.append(
                loc.problem(
                    ("runbook", i, "experiment"),
                    f"experiment {step.experiment} does not exist: the drill lists {len(drill.experiments)}",
                )
            )
        if step.marks != "none":
            if step.marks in marked:
                problems.append(
                    loc.problem(("runbook", i, "marks"), f"step #{marked[step.marks] + 1} already marks {step.marks!r}")
                )
            marked.setdefault(step.marks, i)
    for name, key in (("time_to_detect", "detect"), ("time_to_recover", "recover")):
        if getattr(drill.objectives, name) is not None and key not in marked:
            problems.append(
                loc.problem(("objectives", name), f"{name} needs a runbook step with 'marks: {key}' to measure it")
            )
    for i, target in enumerate(drill.notify):
        host = urlsplit(target.webhook).hostname
        if target.webhook.startswith("http://") and host not in ("127.0.0.1", "localhost", "::1"):
            problems.append(
                loc.problem(("notify", i, "webhook"), "use https for a webhook off this machine (tokens travel in it)")
            )
    return plans, problems


def drill_from_document(doc: LoadedDocument) -> DrillPlan:
    """Validate and check a loaded drill document and its experiments; InvalidInputError lists every problem."""
    drill = validate_model(Drill, doc)
    plans, problems = check(drill, doc)
    if problems:
        own = sort_problems([p for p in problems if p.file == doc.locator.file])
        raise InvalidInputError(own + [p for p in problems if p.file != doc.locator.file])
    return DrillPlan(drill, doc, plans)


def load_drill(path: Path) -> DrillPlan:
    """Read, validate and check a drill file and its experiments; InvalidInputError lists every problem."""
    return drill_from_document(load_document(path))


def step_by_id(drill: Drill, step_id: str) -> RunbookStep | None:
    return next((s for s in drill.runbook if s.id == step_id), None)
