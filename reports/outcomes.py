"""How reports say outcomes and recovery figures: one wording for HTML, Markdown, JUnit and the drill report.

Three outcomes — held, failed, not checked (with why) — and the recovery figures defined in
docs/recovery.md: the RTO as `objectives.rto_from` measures it, with the other figure beside it.
"""

from __future__ import annotations

from engine.journal import RecoveryRecord, Status
from reports.formatting import seconds

DEFINITIONS = "docs/recovery.md"  # reports are offline files: the definitions are named, not linked
BASIS = {"fault_start": "from the fault's start", "fault_end": "after the fault ended"}
MARKS = {"held": "✓", "failed": "✗", "not_checked": "?"}
TONES = {"held": "good", "failed": "bad", "not_checked": "warn"}


def outcome_word(status: Status, held: str = "held", failed: str = "failed") -> str:
    return {"held": held, "failed": failed, "not_checked": "not checked"}[status]


def rto_text(rec: RecoveryRecord | None) -> str:
    """The judged RTO: '2.6 s', 'not recovered', or '—' when nothing was measured."""
    return "—" if rec is None else seconds(rec.rto_s, "not recovered")


def other_basis(rec: RecoveryRecord) -> tuple[str, str]:
    """The recovery figure not judged, labelled: shown beside the RTO."""
    if rec.rto_from == "fault_start":
        return "Time to recover after the fault ended", seconds(rec.after_end_s, "not measured")
    return "Recovery from the fault's start", seconds(rec.from_start_s, "not recovered")


def recovery_lines(rec: RecoveryRecord) -> list[tuple[str, str]]:
    """Every recovery figure of one fault as (label, text), the judged RTO first."""
    impact = "no visible impact" if rec.degraded_at is None else seconds(rec.impact_s, "not recovered")
    lines = [
        (f"RTO ({BASIS[rec.rto_from]}, objectives.rto_from)", rto_text(rec)),
        ("From the fault's start", seconds(rec.from_start_s, "not recovered")),
        ("Impact (first deviating second → held again)", impact),
        ("After the fault ended", seconds(rec.after_end_s, "not measured")),
        ("Seconds without steady state", f"{rec.deviating_seconds:,}"),
    ]
    if rec.detail:
        lines.append(("Note", rec.detail))
    return lines
