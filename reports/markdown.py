"""A Markdown summary of a run's journal: for a pull-request comment or a CI job summary.

Everything a user wrote (titles, probe and target names, error messages, override reasons) is
escaped: HTML-significant characters as entities, Markdown-significant ones with a backslash, so a
title cannot inject markup into the page that shows the summary, nor break its tables.
"""

from __future__ import annotations

import re
from pathlib import Path

from engine.journal import CheckRecord, FaultRecord, Journal, Status, write_atomic
from reports.formatting import seconds
from reports.outcomes import BASIS, DEFINITIONS, outcome_word

_ICON = {"passed": "✅", "deviated": "❌", "aborted": "🛑", "rollback_failed": "🚨", "interrupted": "⏹️", "error": "⚠️"}
_OUTCOME = {"held": "✅", "failed": "❌", "not_checked": "⚪"}
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_MARKDOWN = re.compile(r"([\\`*_\[\]|~#])")  # emphasis, code, links and images, tables, strikes, headings
_BLOCK_START = re.compile(r"^(\s*\d*)([-+=>.)])")  # would open a list, a quote or a heading underline


def text(value: object) -> str:
    """User text made inert: no HTML, no Markdown emphasis, links, code or table breaks; one line."""
    flat = str(value).replace("\r", " ").replace("\n", " ")
    flat = "".join(_ENTITIES.get(c, c) for c in flat)
    return _BLOCK_START.sub(r"\1\\\2", _MARKDOWN.sub(r"\\\1", flat))


def _code(value: object) -> str:
    """A code span: inside one nothing is Markdown, so only a backtick could end it early."""
    return "`" + str(value).replace("`", "'").replace("\n", " ") + "`"


def _outcome(status: Status, why: str = "", held: str = "held", failed: str = "failed") -> str:
    shown = f"{_OUTCOME[status]} {outcome_word(status, held, failed)}"
    return shown + (f": {text(why)}" if status == "not_checked" and why else "")


def _fault_row(fault: FaultRecord) -> str:
    rec = fault.recovery
    if rec is None:
        rto = impact = after = "—"
    else:
        rto = f"{seconds(rec.rto_s, 'not recovered')} ({BASIS[rec.rto_from]})"
        impact = "none" if rec.degraded_at is None else seconds(rec.impact_s, "not recovered")
        after = seconds(rec.after_end_s, "not measured")
    measured = ", ".join(f"{k} {v:g} s" for k, v in fault.measured.items()) or "—"
    cells = [f"#{fault.index}", _code(fault.kind), text(fault.target), fault.status, rto, impact, after, text(measured)]
    return "| " + " | ".join(cells) + " |"


def _bounds(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"{low:g} to {high:g}"
    return f"at least {low:g}" if low is not None else f"at most {high:g}" if high is not None else "anything"


def _where(check: CheckRecord) -> str:
    return check.phase + ("" if check.fault_index is None else f" #{check.fault_index}")


FAULT_HEADER = "| fault | kind | target | status | RTO | impact | after the fault ended | measured |"


MAX_LOST_SHOWN = 10
UNRECORDED = "—"  # a field the locustfile did not record: never blank, never 0


def _known(value: object) -> str:
    return UNRECORDED if value is None or value == "" else text(f"{value:,}" if isinstance(value, int) else value)


def _lost_orders(journal: Journal) -> list[str]:
    """The first lost orders, with — for what the locustfile did not record."""
    if not journal.lost_orders:
        return []
    lines = [
        "| lost order | account | symbol | side | qty | price | fault | found |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for o in journal.lost_orders[:MAX_LOST_SHOWN]:
        fault = "none" if o.fault_index is None else f"#{o.fault_index}"
        price = UNRECORDED if o.price is None else f"{o.price:g}"
        cells = [_code(o.order_id), *(_known(v) for v in (o.account, o.symbol, o.side, o.qty)), price, fault]
        lines.append("| " + " | ".join([*cells, text(o.found)]) + " |")
    more = len(journal.lost_orders) - MAX_LOST_SHOWN
    return [*lines, *([f"… and {more:,} more in the journal."] if more > 0 else []), ""]


def render_markdown(journal: Journal) -> str:
    lines = [
        f"### {_ICON.get(journal.verdict, '•')} {text(journal.experiment_title)} — **{journal.verdict.upper()}**",
        "",
        text(journal.summary) if journal.summary else "No summary was recorded.",
        "",
    ]
    if journal.upgraded_from:
        lines += [f"> Read from a schema-{journal.upgraded_from} journal: some recovery figures were not recorded.", ""]
    for guard in journal.guards:
        if guard.overridden:
            lines += [f"> ⚠️ Safety guard **{guard.name}** overridden by {text(guard.by)}: {text(guard.reason)}", ""]
    if journal.faults:
        lines += [FAULT_HEADER, "|---|---|---|---|---|---|---|---|", *(_fault_row(f) for f in journal.faults), ""]
        lines += [f"Recovery figures as defined in {DEFINITIONS}.", ""]
    if journal.objectives:
        lines += ["| objective | target | observed | met |", "|---|---|---|---|"]
        for o in journal.objectives:
            observed = "—" if o.observed is None else f"{o.observed:g} {o.unit}"
            where = "" if o.fault_index is None else f" (#{o.fault_index})"
            met = _outcome(o.status, o.why, "met", "missed")
            lines.append(f"| {o.name}{where} | {o.target:g} {o.unit} | {observed} | {met} |")
        lines.append("")
    if journal.integrity:
        lines += ["| integrity check | checked | violations | holds |", "|---|---|---|---|"]
        for r in journal.integrity:
            why = r.error or r.why
            shown = _outcome(r.status, why, "holds", "violated")
            shown += f" ({text(r.why)})" if r.status != "not_checked" and r.why else ""  # e.g. a sample, said so
            lines.append(f"| {_code(r.name)} | {r.checked} | {r.violations} | {shown} |")
        lines.append("")
    lines += _lost_orders(journal)
    failed = [c for c in journal.checks if c.status == "failed"]
    if failed:
        lines += ["Steady-state checks that failed:", ""]
        lines += [
            f"- {text(c.probe)} ({_where(c)}): "
            f"observed {c.observed if c.observed is not None else 'nothing'}, allowed {_bounds(c.min, c.max)}"
            for c in failed
        ]
        lines.append("")
    unchecked = [c for c in journal.checks if c.status == "not_checked"]
    if unchecked:
        lines += ["Steady-state checks not checked:", ""]
        lines += [f"- {text(c.probe)} ({_where(c)}): {text(c.why)}" for c in unchecked]
        lines.append("")
    for error in journal.errors:
        lines += [f"> Error in {text(error.phase)}: {text(error.type)}: {text(error.message)}", ""]
    lines.append(f"Run `{journal.run_id}` · seed {journal.seed} · exit code {journal.exit_code}")
    return "\n".join(lines) + "\n"


def write_markdown(journal: Journal, path: Path) -> Path:
    write_atomic(path, render_markdown(journal))
    return path
