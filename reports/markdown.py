"""A Markdown summary of a run's journal: for a pull-request comment or a CI job summary."""

from __future__ import annotations

from pathlib import Path

from engine.journal import FaultRecord, Journal, write_atomic

_ICON = {"passed": "✅", "deviated": "❌", "aborted": "🛑", "rollback_failed": "🚨", "interrupted": "⏹️", "error": "⚠️"}


def _cell(text: object) -> str:
    # A table cell must not break the table: pipes escaped, newlines flattened.
    return str(text).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} s"


def _fault_row(fault: FaultRecord) -> str:
    recovery = fault.recovery
    rto = "—" if recovery is None else _seconds(recovery.rto_s) if recovery.recovered else "not recovered"
    measured = ", ".join(f"{k} {v:g} s" for k, v in fault.measured.items()) or "—"
    cells = [f"#{fault.index}", f"`{_cell(fault.kind)}`", _cell(fault.target), fault.status, rto, _cell(measured)]
    return "| " + " | ".join(cells) + " |"


def _bounds(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"{low:g} to {high:g}"
    return f"at least {low:g}" if low is not None else f"at most {high:g}" if high is not None else "anything"


def render_markdown(journal: Journal) -> str:
    lines = [
        f"### {_ICON.get(journal.verdict, '•')} {_cell(journal.experiment_title)} — **{journal.verdict.upper()}**",
        "",
        journal.summary or "No summary was recorded.",
        "",
    ]
    for guard in journal.guards:
        if guard.overridden:
            lines += [f"> ⚠️ Safety guard **{guard.name}** overridden by {guard.by}: {_cell(guard.reason)}", ""]
    if journal.faults:
        lines += [
            "| fault | kind | target | status | RTO | measured |",
            "|---|---|---|---|---|---|",
            *(_fault_row(f) for f in journal.faults),
            "",
        ]
    if journal.objectives:
        lines += ["| objective | target | observed | met |", "|---|---|---|---|"]
        for o in journal.objectives:
            observed = "—" if o.observed is None else f"{o.observed:g} {o.unit}"
            where = "" if o.fault_index is None else f" (#{o.fault_index})"
            lines.append(f"| {o.name}{where} | {o.target:g} {o.unit} | {observed} | {'✅' if o.met else '❌'} |")
        lines.append("")
    if journal.integrity:
        lines += ["| integrity check | checked | violations | holds |", "|---|---|---|---|"]
        for r in journal.integrity:
            lines.append(
                f"| {r.name} | {r.checked} | {r.violations} | {'✅' if r.ok else '❌ ' + _cell(r.error or '')} |"
            )
        lines.append("")
    failed = [c for c in journal.checks if not c.ok]
    if failed:
        lines += ["Steady-state checks that failed:", ""]
        lines += [
            f"- {_cell(c.probe)} ({c.phase}{'' if c.fault_index is None else f' #{c.fault_index}'}): "
            f"observed {c.observed if c.observed is not None else 'nothing'}, allowed {_bounds(c.min, c.max)}"
            for c in failed
        ]
        lines.append("")
    lines.append(f"Run `{journal.run_id}` · seed {journal.seed} · exit code {journal.exit_code}")
    return "\n".join(lines) + "\n"


def write_markdown(journal: Journal, path: Path) -> Path:
    write_atomic(path, render_markdown(journal))
    return path
