"""Chaos Toolkit's sequence (activities one after another, pauses between, background ones alongside,
rollbacks at the end) → this framework's timeline of faults with a start and a duration each.

The load starts at 0; after the warmup and the baseline (Chaos Toolkit's hypothesis before the method)
the method's clock starts. Pauses move it on; an activity itself takes no time; a background activity
starts where it is met and the method goes on at once, but the method ends only when it is done (Chaos
Toolkit waits for it). Every fault lasts until the activity that undoes it (a SIGCONT, a scale-back —
in the method or the rollbacks) or else until the rollbacks begin, after the method: there Chaos Toolkit
judges its hypothesis again, with the faults still in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.durations import format_duration
from importers.ctk_document import Context, Loc, dotted
from importers.ctk_items import CheckItem, FaultItem, Step, UndoItem, WaitItem
from importers.ctk_options import ConvertOptions


@dataclass
class TimedFault:
    item: FaultItem
    loc: Loc
    name: str
    at: float
    end: float | None = None

    @property
    def duration(self) -> float:
        assert self.end is not None
        return self.end - self.at


@dataclass
class Timeline:
    faults: list[TimedFault] = field(default_factory=list)
    checks: list[CheckItem] = field(default_factory=list)
    method_start: float = 0.0
    method_end: float = 0.0
    rollbacks_start: float = 0.0

    @property
    def last_end(self) -> float:
        return max((f.end or 0.0 for f in self.faults), default=self.rollbacks_start)

    def after_check_s(self) -> float:
        """Time from the latest injection to Chaos Toolkit's hypothesis after the method (at least 1s)."""
        return max(1.0, min((self.method_end - f.at for f in self.faults), default=1.0))

    def max_concurrent(self) -> int:
        """Faults in effect at once at the worst moment, counted as engine.plan counts them."""
        worst = 1
        for fault in self.faults:
            at_once = sum(1 for other in self.faults if other.at <= fault.at < (other.end or 0.0))
            worst = max(worst, at_once)
        return worst


def _t(seconds: float) -> str:
    return format_duration(round(seconds, 3))


def _close(
    ctx: Context,
    step: Step,
    item: UndoItem,
    at: float,
    open_faults: list[TimedFault],
    done: list[TimedFault],
    in_rollbacks: bool,
) -> None:
    hit = [f for f in open_faults if f.item.undo_keys & item.undo_keys]
    for fault in hit:
        if not fault.item.undo_keys <= item.undo_keys:
            ctx.refuse(
                step.loc,
                f"{item.what}, but only part of what {dotted(fault.loc)} paused: a fault is undone as a whole here",
            )
            return
    if not hit:
        if any(f.item.undo_keys & item.undo_keys for f in done):
            ctx.decide(step.loc, f"{item.what}: already undone earlier in the method; nothing is left to undo")
        else:
            ctx.refuse(step.loc, f"{item.what}, but nothing the method did is in place to undo")
        return
    for fault in hit:
        fault.end = at
        open_faults.remove(fault)
        done.append(fault)
        if fault.end <= fault.at:
            ctx.refuse(step.loc, f"undoes {dotted(fault.loc)} as it is injected: there is no fault to inject")
        where = "rollback" if in_rollbacks else "method activity"
        ctx.decide(
            step.loc,
            f"{item.what} → the end of the fault from {dotted(fault.loc)} at {_t(at)} ({where}); "
            "undone and verified by that fault's automatic rollback",
        )


def build_timeline(ctx: Context, method: list[Step], rollbacks: list[Step], options: ConvertOptions) -> Timeline:
    """Lay the steps out in time; decisions and refusals go to `ctx`."""
    timeline = Timeline(method_start=options.warmup_s + options.baseline_s)
    open_faults: list[TimedFault] = []
    done: list[TimedFault] = []
    timeline.method_end = _lay_method(ctx, timeline, method, open_faults, done)
    rollbacks_start = _rollbacks_start(ctx, timeline, open_faults, options)
    timeline.rollbacks_start = rollbacks_start
    rcursor = rollbacks_start
    for step in rollbacks:
        start = rcursor + step.before_s
        for item in step.items:
            if isinstance(item, UndoItem):
                _close(ctx, step, item, start, open_faults, done, in_rollbacks=True)
        if not step.background:
            rcursor = start + step.after_s
    for fault in open_faults:
        fault.end = rollbacks_start
        ctx.decide(
            fault.loc,
            f"in place until the rollbacks begin ({_t(rollbacks_start)}, "
            f"{_t(fault.end - fault.at)} in all): its automatic rollback then undoes and verifies it",
        )
    return timeline


def _lay_method(
    ctx: Context, timeline: Timeline, method: list[Step], open_faults: list[TimedFault], done: list[TimedFault]
) -> float:
    """Place the method's steps from the method's start; returns when the method ends."""
    cursor = background_end = timeline.method_start
    for step in method:
        start = cursor + step.before_s
        end = start
        for item in step.items:
            if isinstance(item, FaultItem):
                fault = TimedFault(item, step.loc, step.name, start)
                timeline.faults.append(fault)
                open_faults.append(fault)
                ctx.decide(step.loc, f"{item.what}, injected at {_t(start)}")
            elif isinstance(item, UndoItem):
                _close(ctx, step, item, start, open_faults, done, in_rollbacks=False)
            elif isinstance(item, WaitItem):
                end = start + item.seconds
            elif isinstance(item, CheckItem):
                timeline.checks.append(item)
        if step.before_s or step.after_s:
            pauses = (("before", step.before_s), ("after", step.after_s))
            said = [f"{word} {_t(value)}" for word, value in pauses if value]
            ctx.decide((*step.loc, "pauses"), f"pause {' and '.join(said)}: the timeline moves on as long")
        if step.background:
            background_end = max(background_end, end + step.after_s)
            ctx.decide(
                (*step.loc, "background"),
                f"runs in the background: starts at {_t(start)} and the method goes "
                "on at once; the method ends only once it is done, as Chaos Toolkit waits for it",
            )
        else:
            cursor = end + step.after_s
    return max(cursor, background_end)


def _rollbacks_start(ctx: Context, timeline: Timeline, open_faults: list[TimedFault], options: ConvertOptions) -> float:
    """The method's end, or later so that every fault still in place lasts at least min_fault."""
    rollbacks_start = timeline.method_end
    for fault in open_faults:
        if fault.at + options.min_fault_s > rollbacks_start:
            rollbacks_start = fault.at + options.min_fault_s
    if rollbacks_start > timeline.method_end:
        ctx.decide(
            ("method",),
            f"the method ends {_t(timeline.method_end - max(f.at for f in open_faults))} after "
            f"its last fault; faults still in place last at least {_t(options.min_fault_s)} (option "
            f"min_fault), so the rollbacks begin at {_t(rollbacks_start)}",
        )
    return rollbacks_start
