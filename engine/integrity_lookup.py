"""`acknowledged_found_by_url`: every acknowledged id looked up through a URL of the user's own system.

After recovery each id the ledger holds (or an even sample of `max_ids`) is requested from the URL
template with at most `parallel` requests in flight, each tried `attempts` times within `timeout`,
the whole within `total_timeout`. An answer with `status` is found (and, with `compare`, its fields
must equal what the ledger recorded); `missing_status` is gone — a lost order, unless its cancel was
acknowledged (a system may delete what it cancelled); anything else, after every attempt, leaves
the id **not checked**. An id acknowledged for two different orders breaks the check too.

Never "held" on less than what it says: ids not checked keep it from holding, and a sample is said
to be one, in the record and in every report; the RPO is then not measured (engine.integrity_rpo).
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from clients import http
from engine.integrity_spec import LookupCheck
from engine.journal import IntegrityRecord, LostOrder
from loadgen.ledger import Ack

MAX_EXAMPLES = 20
DESCRIPTION = "Every acknowledged id is found, as acknowledged, through the system's own URL."
FOUND, MISSING, UNCHECKED = "found", "missing", "unchecked"
_NUMERIC = {"qty", "price"}


@dataclass
class Answer:
    """What one id's lookup came to: found (with the answer's JSON, if any), missing, or unchecked (why)."""

    outcome: str
    body: Any = None
    why: str = ""


@dataclass
class Coverage:
    """How much of the ledger the lookup covered: what a claim about lost orders may rest on."""

    acknowledged: int = 0
    selected: int = 0
    answered: int = 0
    unchecked: list[tuple[str, str]] = field(default_factory=list)  # (id, why)

    @property
    def sample(self) -> bool:
        return self.selected < self.acknowledged

    @property
    def complete(self) -> bool:
        """Every acknowledged id was looked up and answered: only then is an RPO measured."""
        return not self.sample and not self.unchecked

    def sample_note(self) -> str:
        return f"a sample: looked up {self.selected:,} of {self.acknowledged:,} acknowledged ids (max_ids)"

    def unchecked_note(self) -> str:
        shown = "; ".join(f"{order_id}: {why}" for order_id, why in self.unchecked[:3])
        return f"{len(self.unchecked):,} of {self.selected:,} ids could not be checked (e.g. {shown})"


def render(spec: LookupCheck, order_id: str, endpoint: Callable[[str], str]) -> str:
    """The URL for one id: {id} URL-quoted, a leading {endpoint} from the stack (StackError if unknown)."""
    url = spec.url
    if spec.endpoint is not None:
        url = endpoint(spec.endpoint).rstrip("/") + url[len(spec.endpoint) + 2 :]
    return url.replace("{id}", urllib.parse.quote(order_id, safe=""))


def look_up(spec: LookupCheck, url: str, deadline: float) -> Answer:
    """One id, `attempts` tries, never past `deadline` (time.monotonic)."""
    why = "not looked up before total_timeout"
    for attempt in range(spec.attempts):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            status, raw = http.get(url, min(spec.timeout, left))
        except (OSError, ValueError) as exc:
            why = f"no answer after {attempt + 1} attempt(s): {exc or type(exc).__name__}"
        else:
            if status == spec.missing_status:
                return Answer(MISSING)
            if status == spec.status:
                return _found(spec, raw)
            why = f"answered {status} (expected {spec.status} found or {spec.missing_status} missing)"
        time.sleep(min(0.1 * (attempt + 1), max(deadline - time.monotonic(), 0)))
    return Answer(UNCHECKED, why=why)


def _found(spec: LookupCheck, raw: bytes) -> Answer:
    if spec.compare is None:
        return Answer(FOUND)
    try:
        body = json.loads(raw)
    except ValueError:
        return Answer(UNCHECKED, why="found, but the answer is not JSON: its fields cannot be compared")
    if not isinstance(body, dict):
        return Answer(UNCHECKED, why="found, but the answer is not a JSON object: its fields cannot be compared")
    return Answer(FOUND, body=body)


def _field(body: dict[str, Any], path: str) -> tuple[bool, Any]:
    value: Any = body
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


def difference(spec: LookupCheck, ack: Ack, body: Any) -> str | None:
    """What differs between the answer and the ledger, over `compare`; fields the ledger lacks are skipped."""
    if spec.compare is None or not isinstance(body, dict):
        return None
    for json_field, ledger_field in spec.compare.items():
        expected = getattr(ack, ledger_field)
        if expected is None:
            continue  # the locustfile did not record it: nothing to compare with
        present, value = _field(body, json_field)
        if not present:
            return f"{json_field} is absent, acknowledged {expected!r}"
        if ledger_field in _NUMERIC:
            try:
                same = abs(float(value) - float(expected)) <= 1e-9
            except (TypeError, ValueError):
                same = False
        else:
            same = str(value) == str(expected)
        if not same:
            return f"{json_field} is {value!r}, acknowledged {expected!r}"
    return None


def select(acks: list[Ack], max_ids: int | None) -> list[Ack]:
    """Every id once (the latest acknowledgement of it), or `max_ids` of them spread evenly over the run."""
    latest = list({ack.order_id: ack for ack in acks}.values())
    latest.sort(key=lambda a: a.t)
    if max_ids is None or max_ids >= len(latest):
        return latest
    step = len(latest) / max_ids
    return [latest[int(i * step)] for i in range(max_ids)]


def answers(spec: LookupCheck, urls: list[str]) -> list[Answer]:
    """Every URL looked up, at most `parallel` at once, all within `total_timeout`."""
    deadline = time.monotonic() + spec.total_timeout
    pool = ThreadPoolExecutor(max_workers=spec.parallel, thread_name_prefix="lookup")
    try:
        futures: list[Future[Answer]] = [pool.submit(look_up, spec, url, deadline) for url in urls]
        wait(futures, timeout=spec.total_timeout + spec.timeout + 1, return_when=FIRST_EXCEPTION)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    late = Answer(UNCHECKED, why="not looked up before total_timeout")
    return [f.result() if f.done() and not f.cancelled() and f.exception() is None else late for f in futures]


def duplicates(acks: list[Ack]) -> list[dict[str, Any]]:
    """Ids the ledger holds for two different orders (another client order id or account)."""
    seen: dict[str, Ack] = {}
    clashes = []
    for ack in acks:
        first = seen.setdefault(ack.order_id, ack)
        if first is not ack and (first.client_order_id, first.account) != (ack.client_order_id, ack.account):
            clashes.append(
                {
                    "order_id": ack.order_id,
                    "found": "acknowledged twice",
                    "first": first.client_order_id,
                    "then": ack.client_order_id,
                }
            )
    return clashes


def lost_order(ack: Ack, found: str) -> LostOrder:
    """An acknowledged order found missing (or not as acknowledged), with what the ledger recorded of it."""
    return LostOrder(
        order_id=ack.order_id,
        client_order_id=ack.client_order_id,
        account=ack.account,
        symbol=ack.symbol,
        side=ack.side,
        qty=ack.qty,
        price=ack.price,
        acked_at=ack.t,
        found=found,
    )


def run_lookup(
    spec: LookupCheck, acks: list[Ack], cancels: dict[str, float], endpoint: Callable[[str], str]
) -> tuple[list[LostOrder], list[dict[str, Any]], Coverage]:
    """Look the ledger's ids up: the lost orders, the duplicate ids, and how much was covered."""
    chosen = select(acks, spec.max_ids)
    coverage = Coverage(acknowledged=len({a.order_id for a in acks}), selected=len(chosen))
    urls = [render(spec, ack.order_id, endpoint) for ack in chosen]
    lost: list[LostOrder] = []
    for ack, answer in zip(chosen, answers(spec, urls), strict=True):
        if answer.outcome == UNCHECKED:
            coverage.unchecked.append((ack.order_id, answer.why))
            continue
        coverage.answered += 1
        if answer.outcome == MISSING:
            if ack.order_id not in cancels:  # a cancelled order may be deleted: not lost
                lost.append(lost_order(ack, "missing"))
            continue
        found = difference(spec, ack, answer.body)
        if found is not None:
            lost.append(lost_order(ack, found))
    return lost, duplicates(acks), coverage


def lookup_record(
    spec: LookupCheck, lost: list[LostOrder], clashes: list[dict[str, Any]], coverage: Coverage
) -> IntegrityRecord:
    """The journal record: failed on any loss or duplicate; else not checked while any id is unchecked;
    else held — stating a sample as a sample."""
    examples = [o.model_dump(exclude={"fault_index"}) for o in lost] + clashes
    violations = len(lost) + len(clashes)
    notes = [coverage.sample_note()] if coverage.sample else []
    error = None
    if coverage.unchecked:
        notes.append(coverage.unchecked_note())
    if violations:
        status = "failed"
    elif coverage.unchecked:
        status, error = "not_checked", coverage.unchecked_note()
    elif coverage.answered:
        status = "held"
    else:
        status = "not_checked"
        notes.append("nothing to check: it examined 0 items")
    return IntegrityRecord(
        name=spec.check,
        description=DESCRIPTION,
        status=status,
        why="; ".join(notes),
        checked=coverage.answered,
        violations=violations,
        examples=examples[:MAX_EXAMPLES],
        error=error,
    )
