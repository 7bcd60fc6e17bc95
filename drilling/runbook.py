"""The runbook as a drill runs it: which step is due, which conditions happened, who acknowledged what.

Steps fall due in order: the first when the drill starts, each next one when its predecessor is
done (or missed), at the moment the runbook learns that. An automatic step is done by the first
occurrence of its condition (in its experiment, if it names one) that an earlier step with the
same condition has not taken, so two `fault_injected` steps are done by the first and the second
injection. Its time is the time the condition happened, even when that was before the step fell
due (took 0 s then). A manual step is done when an operator acknowledges it; in non-interactive
runs as soon as it falls due. Not thread-safe by itself: drilling.state holds its one lock around every call.
"""

from __future__ import annotations

from dataclasses import dataclass

from drilling.model import RunbookStep
from drilling.record import StepRecord, StepStatus

CI_BY = "auto (CI)"


@dataclass(frozen=True)
class Occurrence:
    condition: str
    experiment: int  # 1-based
    t: float
    detail: str = ""


class Runbook:
    def __init__(self, steps: list[RunbookStep], non_interactive: bool = False) -> None:
        self.steps = steps
        self.non_interactive = non_interactive
        self.records = [
            StepRecord(id=s.id, title=s.title, mode=s.mode, marks=s.marks, expected_s=s.expected) for s in steps
        ]
        self.occurrences: list[Occurrence] = []
        self._used: dict[int, int] = {}  # automatic step index → the occurrence that did it

    # -- queries -----------------------------------------------------------------------------
    def finished(self, index: int) -> bool:
        return self.records[index].status in ("done", "late", "missed", "skipped")

    def all_finished(self) -> bool:
        return all(self.finished(i) for i in range(len(self.records)))

    def current(self) -> int | None:
        """The first step not finished yet (the one the live view counts down)."""
        return next((i for i in range(len(self.records)) if not self.finished(i)), None)

    def step_index(self, step_id: str) -> int | None:
        return next((i for i, s in enumerate(self.steps) if s.id == step_id), None)

    def marked(self, mark: str) -> StepRecord | None:
        return next((r for r in self.records if r.marks == mark), None)

    def check_ack(self, step_id: str) -> str | None:
        """Why acknowledging `step_id` would be refused, or None when it is fine."""
        index = self.step_index(step_id)
        if index is None:
            manual = ", ".join(s.id for s in self.steps if s.mode == "manual") or "none"
            return f"no step {step_id!r} in this drill (manual steps: {manual})"
        if self.steps[index].mode != "manual":
            return f"step {step_id!r} is automatic (when: {self.steps[index].when}); it cannot be acknowledged"
        if self.finished(index):
            return f"step {step_id!r} is already {self.records[index].status}"
        return None

    # -- changes (each returns a line per step that changed, for the console) -----------------
    def start(self, t: float) -> list[str]:
        return self._advance(t)

    def observe(self, occurrence: Occurrence, now: float) -> list[str]:
        """A condition happened at `occurrence.t` (it may be reported later, at `now`)."""
        self.occurrences.append(occurrence)
        return self._match(now)

    def ack(self, step_id: str, by: str, t: float, source: str = "cli") -> list[str]:
        problem = self.check_ack(step_id)
        if problem is not None:
            return [f"acknowledgement refused: {problem}"]
        index = self.step_index(step_id)
        assert index is not None
        auto = by == CI_BY
        self._done(index, t, by, detail="acknowledged automatically (non-interactive)" if auto else f"via {source}")
        self.records[index].auto_acknowledged = auto
        return [self._line(index), *self._advance(t)]

    def tick(self, now: float) -> list[str]:
        """Non-interactive: acknowledge the manual steps that are due (the runner calls this often)."""
        lines: list[str] = []
        if not self.non_interactive:
            return lines
        while (index := self.current()) is not None and self.steps[index].mode == "manual":
            if self.records[index].due_at is None:
                break
            lines += self.ack(self.steps[index].id, CI_BY, now, "ci")
        return lines

    def close_conditions(self, now: float) -> list[str]:
        """No more events will come (the experiments are over): pending automatic steps are missed."""
        lines: list[str] = []
        for i, step in enumerate(self.steps):
            if step.mode == "auto" and not self.finished(i):
                self._finish(i, "missed", f"'{step.when}' did not happen")
                lines.append(self._line(i))
        return lines + self._advance(now)

    def close(
        self, now: float, status: StepStatus = "missed", why: str = "not acknowledged before the drill ended"
    ) -> list[str]:
        lines = []
        for i in range(len(self.records)):
            if not self.finished(i):
                self._finish(i, status, why)
                lines.append(self._line(i))
        return lines

    # -- internals ---------------------------------------------------------------------------
    def _match(self, now: float) -> list[str]:
        lines: list[str] = []
        for i, step in enumerate(self.steps):
            if step.when is None or self.finished(i):
                continue
            taken = set(self._used.values())
            found = next(
                (
                    k
                    for k, occ in enumerate(self.occurrences)
                    if k not in taken
                    and occ.condition == step.when
                    and (step.experiment is None or occ.experiment == step.experiment)
                ),
                None,
            )
            if found is None:
                continue
            self._used[i] = found
            occ = self.occurrences[found]
            detail = f"{step.when} in experiment {occ.experiment}" + (f": {occ.detail}" if occ.detail else "")
            self._done(i, occ.t, "auto", detail)
            self.records[i].experiment = occ.experiment  # its figures are measured within that experiment
            lines.append(self._line(i))
        return lines + self._advance(now)

    def _done(self, index: int, t: float, by: str, detail: str) -> None:
        record = self.records[index]
        record.done_at, record.by, record.detail = t, by, detail
        record.status = "done"
        self._settle(index)

    def _finish(self, index: int, status: StepStatus, why: str) -> None:
        record = self.records[index]
        record.status = status
        record.detail = why

    def _settle(self, index: int) -> None:
        """Took and late-ness, once a done step is due."""
        record = self.records[index]
        if record.done_at is None or record.due_at is None:
            return
        record.took_s = round(max(0.0, record.done_at - record.due_at), 3)
        if record.expected_s is not None and record.took_s > record.expected_s:
            record.status = "late"

    def _advance(self, now: float) -> list[str]:
        """Make steps due (at `now`) whose predecessor has finished; returns lines for newly due pending steps."""
        lines = []
        for i, record in enumerate(self.records):
            if record.due_at is not None:
                continue
            if i > 0 and (self.records[i - 1].due_at is None or not self.finished(i - 1)):
                break
            # Due once the step before was both due and done — which may be earlier than now: a recovery is
            # known only when the experiment's journal is analysed, after the steps that follow it happened.
            prev = self.records[i - 1] if i > 0 else None
            before = max(prev.due_at or 0.0, prev.done_at) if prev is not None and prev.done_at is not None else None
            record.due_at = min(before, now) if before is not None else now
            self._settle(i)
            if not self.finished(i):
                lines.append(self._line(i))
        return lines

    def _line(self, index: int) -> str:
        step, record = self.steps[index], self.records[index]
        how = f"when {step.when}" if step.when else "manual"
        if record.status == "pending":
            hint = f", expected within {record.expected_s:g}s" if record.expected_s is not None else ""
            ack = f" — acknowledge: chaos.py drill ack {step.id}" if step.mode == "manual" else ""
            return f"step {index + 1} '{step.id}' due ({how}{hint}): {step.title}{ack}"
        took = f" after {record.took_s:g}s" if record.took_s is not None else ""
        by = f" by {record.by}" if record.by else ""
        return f"step {index + 1} '{step.id}' {record.status.upper()}{took}{by} ({record.detail})"
