"""Data integrity after the run: every acknowledged order accounted for, and the system's own invariants.

The load generators record every acknowledgement in an append-only ledger (docs/contracts.md §4).
After the recovery phase, each check named under `integrity:` runs once and becomes an
`IntegrityRecord` in the journal: held, failed, or not checked — it could not run (an error), or
it had nothing to examine (no acknowledgement ledger, 0 items), which is never reported as held.
Acknowledged orders that are gone (or not as acknowledged) are listed, attributed to the fault
they happened under, and counted against `objectives.rpo_orders` — only when they were reconciled.

An entry may also be a configured check (engine.integrity_spec): `acknowledged_found_by_url` looks
every acknowledged id up through a URL of the user's own system (engine.integrity_lookup), and the
RPO then rests on it (engine.integrity_rpo).

Checks are pluggable: an object with `name`, `description` and `run(ctx) -> Outcome`, registered
with `register`; an experiment may also name `package.module:attribute` to import one of its own.
The system's own invariants come from the audit command its stack description declares (`audit:`,
`clients.audit`); the engine runs whatever is declared and knows nothing of the system's storage.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from clients import http
from clients.audit import AuditError, invariant, run_audit
from engine import integrity_rpo
from engine.integrity_lookup import Coverage, lookup_record, lost_order, run_lookup
from engine.integrity_rpo import ATTRIBUTION_S as ATTRIBUTION_S  # re-exported: where the RPO rules live
from engine.integrity_spec import LookupCheck
from engine.journal import IntegrityRecord, Journal, LedgerRecord, LostOrder
from engine.model import Experiment
from engine.stack import LiveStack
from loadgen.ledger import Ack, read_ledger_dir

LEDGER_DIR = "ledger"
MAX_EXAMPLES = 20
MAX_LOST_LISTED = 200
HTTP_TIMEOUT_S = 5.0
HTTP_ATTEMPTS = 3
QUERY_THREADS = 16
# An acknowledged order not found is looked up once more this much later before it counts as lost: a write
# still on its way (replication, a write-behind cache) is not a loss.
MISSING_GRACE_S = 3.0
REFERENCE_CHECKS = (
    "acknowledged_orders_persisted",
    "no_duplicate_order_ids",
    "no_double_fills",
    "balances_conserved",
    "book_not_crossed",
)
GENERIC_CHECKS = ("acknowledged_orders_persisted", "no_duplicate_order_ids")
LEDGER_CHECKS = frozenset(GENERIC_CHECKS)  # what they examine comes from the acknowledgement ledger
AUDIT_CACHE_KEY = "audit"
NO_LEDGER = (
    "no acknowledgement ledger was recorded: the load wrote none, so there was nothing to reconcile "
    "(a locustfile records acknowledgements with loadgen.ledger.acknowledged; docs/integrity.md)"
)


class IntegrityError(Exception):
    """A check could not run (the system did not answer, a needed facility is missing)."""


@dataclass
class Ledger:
    acks: list[Ack] = field(default_factory=list)
    cancels: dict[str, float] = field(default_factory=dict)
    record: LedgerRecord = field(default_factory=LedgerRecord)


def read_ledger(directory: Path) -> Ledger:
    """Every ledger file of a run (`loadgen.ledger`, the format's own reader), with the journal's record of it."""
    found = read_ledger_dir(directory)
    record = LedgerRecord(
        files=found.files,
        acknowledged=len(found.acks),
        cancels_acknowledged=len(found.cancels),
        unreadable_lines=found.unreadable_lines,
    )
    return Ledger(acks=found.acks, cancels=found.cancels, record=record)


@dataclass
class IntegrityContext:
    """What a check may use: the ledger, the system's public API, the live stack."""

    ledger: Ledger
    gateway: str | None
    stack: LiveStack
    lost: list[LostOrder] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=dict)
    lookup_lost: list[LostOrder] = field(default_factory=list)  # what acknowledged_found_by_url found lost
    coverage: Coverage | None = None  # how much of the ledger acknowledged_found_by_url covered

    def audit(self) -> dict[str, Any]:
        """The report of the audit command the stack declares (`clients.audit`), run once per run."""
        if AUDIT_CACHE_KEY not in self.cache:
            command = self.stack.description.audit
            if command is None:
                raise IntegrityError(
                    f"this check reads the system's own invariants, and stack {self.stack.description.name!r} "
                    "declares no `audit` command (the reference stack's description does; docs/integrity.md)"
                )
            try:
                self.cache[AUDIT_CACHE_KEY] = run_audit(command)
            except AuditError as exc:
                raise IntegrityError(str(exc)) from exc
        report: dict[str, Any] = self.cache[AUDIT_CACHE_KEY]
        return report

    reference_audit = audit  # the name checks of one's own may still use


@dataclass
class Outcome:
    checked: int
    violations: int
    examples: list[dict[str, Any]]


class IntegrityCheck(Protocol):
    """A data invariant: its name (what experiments list), one sentence, and how to check it."""

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    def run(self, ctx: IntegrityContext) -> Outcome: ...


_REGISTRY: dict[str, IntegrityCheck] = {}


def register(check: IntegrityCheck) -> IntegrityCheck:
    existing = _REGISTRY.get(check.name)
    if existing is not None and existing is not check:
        raise ValueError(f"integrity check {check.name!r} registered twice")
    _REGISTRY[check.name] = check
    return check


def known_checks() -> dict[str, IntegrityCheck]:
    return dict(sorted(_REGISTRY.items()))


def get_check(name: str) -> IntegrityCheck:
    """A registered check, or `package.module:attribute` imported (and registered) on demand."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" in name:
        module, _, attribute = name.partition(":")
        try:
            check = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError, ValueError) as exc:
            raise KeyError(f"cannot import integrity check {name!r}: {exc}") from exc
        if not all(hasattr(check, a) for a in ("name", "description", "run")) or not callable(check.run):
            raise KeyError(f"{name!r} is not an integrity check (it needs name, description and run(ctx))")
        return check  # type: ignore[no-any-return]
    raise KeyError(f"unknown integrity check {name!r}; known: {', '.join(known_checks())}")


@dataclass(frozen=True)
class _Check:
    name: str
    description: str
    body: Callable[[IntegrityContext], Outcome]

    def run(self, ctx: IntegrityContext) -> Outcome:
        return self.body(ctx)


def _builtin(name: str, description: str) -> Callable[[Callable[[IntegrityContext], Outcome]], IntegrityCheck]:
    def decorate(body: Callable[[IntegrityContext], Outcome]) -> IntegrityCheck:
        return register(_Check(name, description, body))

    return decorate


def _fetch_order(gateway: str, order_id: str) -> tuple[int, dict[str, Any] | None]:
    last: Exception | None = None
    for attempt in range(HTTP_ATTEMPTS):
        try:
            status, raw = http.get(f"{gateway}/orders/{order_id}", HTTP_TIMEOUT_S)
        except OSError as exc:
            last = exc
        else:
            if status == 200:
                return 200, json.loads(raw)
            if status == 404:
                return 404, None
            last = IntegrityError(f"GET /orders/{order_id} answered {status}")
        time.sleep(0.2 * (attempt + 1))
    raise IntegrityError(f"the gateway did not answer for order {order_id}: {last}")


def _difference(ack: Ack, order: dict[str, Any], cancelled: bool) -> str | None:
    """What differs from the acknowledgement; a field the locustfile did not record (None) is not compared."""
    for key in ("account", "symbol", "side", "qty"):
        if getattr(ack, key) is not None and str(order.get(key)) != str(getattr(ack, key)):
            return f"{key} is {order.get(key)!r}, acknowledged {getattr(ack, key)!r}"
    if ack.price is not None and abs(float(order.get("price", 0)) - ack.price) > 1e-9:
        return f"price is {order.get('price')}, acknowledged {ack.price}"
    if int(order.get("filled_qty", 0)) < ack.filled_qty:
        return f"filled_qty went back from {ack.filled_qty} to {order.get('filled_qty')}"
    if cancelled and order.get("status") != "cancelled":
        return f"status is {order.get('status')!r}, but its cancel was acknowledged"
    return None


@_builtin("acknowledged_orders_persisted", "Every order the gateway acknowledged exists, as acknowledged.")
def _acknowledged_orders_persisted(ctx: IntegrityContext) -> Outcome:
    if ctx.gateway is None:
        raise IntegrityError("no gateway URL to query orders through")
    gateway = ctx.gateway.rstrip("/")
    latest = {ack.order_id: ack for ack in ctx.ledger.acks}  # an order acknowledged twice: the later answer
    with ThreadPoolExecutor(max_workers=QUERY_THREADS) as pool:
        answers = list(pool.map(lambda ack: _fetch_order(gateway, ack.order_id), latest.values()))
        missing = [i for i, (status, _) in enumerate(answers) if status == 404]
        if missing:  # a write still on its way (replication, write-behind) is not a loss: look once more
            time.sleep(MISSING_GRACE_S)
            acks = list(latest.values())
            again = pool.map(lambda i: _fetch_order(gateway, acks[i].order_id), missing)
            for i, answer in zip(missing, again, strict=True):
                answers[i] = answer
    examples: list[dict[str, Any]] = []
    for ack, (status, order) in zip(latest.values(), answers, strict=True):
        found = "missing" if order is None else _difference(ack, order, ack.order_id in ctx.ledger.cancels)
        if status == 404 or found is not None:
            lost = lost_order(ack, found or "missing")
            ctx.lost.append(lost)
            examples.append(lost.model_dump(exclude={"fault_index"}))
    return Outcome(len(latest), len(examples), examples[:MAX_EXAMPLES])


def _audit_outcome(ctx: IntegrityContext, name: str, extra: list[dict[str, Any]] | None = None) -> Outcome:
    try:
        found = invariant(ctx.audit(), name)
    except AuditError as exc:
        raise IntegrityError(str(exc)) from exc
    examples = [*(extra or []), *found.examples]
    return Outcome(found.checked, found.violations + len(extra or []), examples[:MAX_EXAMPLES])


@_builtin(
    "no_duplicate_order_ids",
    "No order id was acknowledged for two different orders, and each client order id names one order.",
)
def _no_duplicate_order_ids(ctx: IntegrityContext) -> Outcome:
    seen: dict[str, Ack] = {}
    clashes: list[dict[str, Any]] = []
    for ack in ctx.ledger.acks:
        first = seen.setdefault(ack.order_id, ack)
        if first is not ack and (first.client_order_id, first.account) != (ack.client_order_id, ack.account):
            clashes.append({"order_id": ack.order_id, "first": first.client_order_id, "then": ack.client_order_id})
    # The system's audit also knows client order ids (each names one order), when it reports them.
    if ctx.stack.description.audit is not None and "no_duplicate_order_ids" in ctx.audit()["checks"]:
        return _audit_outcome(ctx, "no_duplicate_order_ids", clashes)
    return Outcome(len(seen), len(clashes), clashes[:MAX_EXAMPLES])


@_builtin("no_double_fills", "Each fill is recorded once, on both its orders, and no order fills beyond its quantity.")
def _no_double_fills(ctx: IntegrityContext) -> Outcome:
    return _audit_outcome(ctx, "no_double_fills")


@_builtin("balances_conserved", "Total cash and total shares of every symbol are what the accounts were seeded with.")
def _balances_conserved(ctx: IntegrityContext) -> Outcome:
    return _audit_outcome(ctx, "balances_conserved")


@_builtin("book_not_crossed", "No open book is crossed (best bid below best ask) and every resting order is open.")
def _book_not_crossed(ctx: IntegrityContext) -> Outcome:
    return _audit_outcome(ctx, "book_not_crossed")


def checks_for(experiment: Experiment, stack_name: str | None, audit_declared: bool = False) -> list[str | LookupCheck]:
    """The checks a run performs: the experiment's list, or the defaults for its stack — every built-in
    check on the reference stack or a stack that declares an audit, else the ledger's."""
    if experiment.integrity is not None:
        return list(experiment.integrity)
    every = experiment.stack.reference is not None or stack_name == "reference" or audit_declared
    return list(REFERENCE_CHECKS if every else GENERIC_CHECKS)


def _lookup(spec: LookupCheck, ctx: IntegrityContext) -> IntegrityRecord:
    """The configured URL lookup (engine.integrity_lookup); its lost orders and coverage kept for the RPO."""
    if not ctx.ledger.record.files:
        return IntegrityRecord(name=spec.check, status="not_checked", why=NO_LEDGER)
    try:
        lost, clashes, ctx.coverage = run_lookup(spec, ctx.ledger.acks, ctx.ledger.cancels, ctx.stack.endpoint)
    except Exception as exc:  # an unknown endpoint, a URL that cannot be built: the check could not run
        return IntegrityRecord(name=spec.check, status="not_checked", error=str(exc), why=f"could not run: {exc}")
    ctx.lookup_lost = lost
    return lookup_record(spec, lost, clashes, ctx.coverage)


def _record(name: str | LookupCheck, ctx: IntegrityContext) -> IntegrityRecord:
    """Run one check: held, failed, or not checked (could not run, or examined nothing)."""
    if isinstance(name, LookupCheck):
        return _lookup(name, ctx)
    try:
        check = get_check(name)
        outcome = check.run(ctx)
    except (IntegrityError, KeyError, OSError, ValueError) as exc:
        return IntegrityRecord(name=name, status="not_checked", error=str(exc), why=f"could not run: {exc}")
    if outcome.violations:
        status, why = "failed", ""
    elif outcome.checked:
        status, why = "held", ""
    elif name in LEDGER_CHECKS and not ctx.ledger.record.files:
        status, why = "not_checked", NO_LEDGER
    else:
        status, why = "not_checked", "nothing to check: it examined 0 items"
    return IntegrityRecord(
        name=name,
        description=check.description,
        status=status,
        why=why,
        checked=outcome.checked,
        violations=outcome.violations,
        examples=outcome.examples,
    )


def phase_detail(journal: Journal) -> str:
    """The integrity phase's one line: what was lost, or that nothing was reconciled."""
    if not journal.rpo:
        unmeasured = [o.why for o in journal.objectives if o.name == "rpo_orders" and o.why]
        if unmeasured and "RPO not measured" in unmeasured[0]:  # a sample, or ids the lookup could not check
            return "acknowledged orders not all reconciled: RPO not measured"
        return "acknowledged orders not reconciled (not checked)"
    return f"{sum(r.lost for r in journal.rpo)} acknowledged order(s) lost"


def run_integrity(
    journal: Journal, experiment: Experiment, stack: LiveStack, gateway: str | None, ledger_dir: Path
) -> bool:
    """Run every check; fill the journal's integrity, ledger, lost orders, RPO and objectives. True if all hold."""
    ledger = read_ledger(ledger_dir)
    journal.ledger = ledger.record
    ctx = IntegrityContext(ledger=ledger, gateway=gateway, stack=stack)
    entries = checks_for(experiment, stack.description.name, stack.description.audit is not None)
    for entry in entries:
        started = time.monotonic()
        record = _record(entry, ctx)
        record.took_s = round(time.monotonic() - started, 3)
        journal.integrity.append(record)
    # The RPO rests on the URL lookup when it is configured (a system of one's own), else on the gateway check.
    lookup = any(isinstance(e, LookupCheck) for e in entries)
    lost = ctx.lookup_lost if lookup else ctx.lost
    integrity_rpo.attribute(journal, lost)
    journal.lost_orders = sorted(lost, key=lambda o: o.acked_at)[:MAX_LOST_LISTED]
    basis = integrity_rpo.basis(journal)
    if basis is not None:
        complete = not lookup or (ctx.coverage is not None and ctx.coverage.complete)
        integrity_rpo.judge(journal, experiment, lost, basis, complete)
    # Nothing to examine is not a failure of the run; a check that could not run is (unverified is not verified).
    return all(r.status != "failed" and r.error is None for r in journal.integrity)
