"""Signals to processes → process.kill / process.pause faults on the stack's process targets, or the resume
that undoes a pause. Which processes: the ones a `--target` option names, else those whose command line
(or name, or PID) the command's own matching rules select."""

from __future__ import annotations

from collections import defaultdict

from importers.ctk_document import Context, Loc
from importers.ctk_items import FaultItem, Item, UndoItem
from importers.ctk_options import ConvertOptions
from importers.ctk_processes import SignalAction, matches
from importers.ctk_targets import ProcessCandidate, StackInfo

_KINDS = {"KILL": ("process.kill", {"signal": "SIGKILL"}), "TERM": ("process.kill", {"signal": "SIGTERM"})}
_KINDS["STOP"] = ("process.pause", {})


def _by_option(
    ctx: Context, loc: Loc, name: str, action: SignalAction, stack: StackInfo, options: ConvertOptions
) -> list[ProcessCandidate] | None:
    for key in (name, action.key):
        if key not in options.targets:
            continue
        target, _, instance = options.targets[key].partition("/")
        if stack.kinds.get(target) != "process":
            kind = stack.kinds.get(target)
            why = f"is a {kind} target" if kind else "does not exist"
            ctx.refuse(
                loc,
                f"--target {key}={options.targets[key]}: {target!r} {why} in {stack.label}; process "
                f"targets: {', '.join(sorted(t for t, k in stack.kinds.items() if k == 'process'))}",
            )
            return []
        members = [c for c in stack.processes if c.target == target and (not instance or c.instance == instance)]
        if not members:
            known = ", ".join(stack.instances(target))
            ctx.refuse(
                loc, f"--target {key}={options.targets[key]}: {target!r} has no instance {instance!r} (it has: {known})"
            )
            return []
        ctx.decide(
            loc,
            f"{action.describe()} → {', '.join(c.instance for c in members)} of target {target!r}, by "
            f"the option --target {key}={options.targets[key]}",
        )
        return members
    return None


def _matched(
    ctx: Context, loc: Loc, name: str, action: SignalAction, stack: StackInfo, options: ConvertOptions
) -> list[ProcessCandidate]:
    chosen = _by_option(ctx, loc, name, action, stack, options)
    if chosen is not None:
        return chosen
    found = [c for c in stack.processes if matches(action, c)]
    if not found:
        listed = "; ".join(f"{c.instance}: {c.cmdline!r}" for c in stack.processes) or "none"
        hint = "PIDs change whenever a process starts, " if action.how == "pid" else ""
        ctx.refuse(
            loc,
            f"{action.describe()}: no process of {stack.label} matches ({hint}its processes, "
            f"{'as identified' if stack.reference else 'by command line'}: {listed}); choose one with "
            f"`--target '{action.key}=TARGET[/INSTANCE]'`",
        )
        return []
    names = ", ".join(f"{c.instance} ({c.target})" for c in found)
    rule = "the reference stack's identifying command lines" if stack.reference else "the stack description"
    ctx.decide(loc, f"{action.describe()} → {names}, matched against {rule}")
    if action.how == "pid":
        ctx.decide(
            loc,
            f"PID {action.pattern} is {found[0].instance}'s in the stack description; PIDs change when a "
            "process restarts, so the fault hits the instance by name",
        )
    else:
        ctx.decide(
            loc,
            f"only processes of the stack are hit; {action.program} would signal every process on the "
            "host that matches",
        )
    return found


def _faults(kind: str, params: dict[str, str], found: list[ProcessCandidate], stack: StackInfo) -> list[Item]:
    grouped: dict[str, list[ProcessCandidate]] = defaultdict(list)
    for candidate in found:
        grouped[candidate.target].append(candidate)
    prefix = "pause" if kind == "process.pause" else "kill"
    items: list[Item] = []
    for target, members in grouped.items():
        keys = [f"{prefix}:{target}/{m.instance}" for m in members]
        if len(members) == len(stack.instances(target)):
            what = f"{kind} of every instance of {target!r} ({', '.join(m.instance for m in members)})"
            items.append(FaultItem(kind, target, {"all": True}, dict(params), frozenset(keys), what))
            continue
        for member, key in zip(members, keys, strict=True):
            what = f"{kind} of {member.instance} ({target!r})"
            items.append(FaultItem(kind, target, {"name": member.instance}, dict(params), frozenset({key}), what))
    return items


def process_items(
    ctx: Context,
    loc: Loc,
    name: str,
    actions: list[SignalAction],
    stack: StackInfo,
    options: ConvertOptions,
    rollback: bool,
) -> list[Item] | None:
    """The items of one process activity; None when something in it was refused."""
    items: list[Item] = []
    ploc: Loc = (*loc, "provider")
    for action in actions:
        if action.signal not in (*_KINDS, "CONT"):
            ctx.refuse(
                ploc,
                f"SIG{action.signal} has no fault kind here (process.kill sends SIGKILL or SIGTERM and "
                "restarts the process at its end; process.pause sends SIGSTOP and SIGCONT at its end)",
            )
            return None
        if rollback and action.signal != "CONT":
            ctx.refuse(
                ploc,
                f"a rollback that sends SIG{action.signal} does something the automatic rollbacks do "
                "not; only a SIGCONT that resumes paused processes is undone here",
            )
            return None
        found = _matched(ctx, ploc, name, action, stack, options)
        if not found:
            return None
        if action.signal == "CONT":
            keys = frozenset(f"pause:{c.target}/{c.instance}" for c in found)
            what = f"resumes {', '.join(c.instance for c in found)} (SIGCONT)"
            items.append(UndoItem(keys, what))
            continue
        kind, params = _KINDS[action.signal]
        items += _faults(kind, params, found, stack)
    return items
