"""The engine's public entry points: validate a file, run an experiment, describe the plan."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine.console import ConsoleProgress
from engine.durations import format_duration
from engine.errors import ChaosError, ExitCode, GuardRefusedError, PendingFaultsError, PreflightError, StackError
from engine.events import EventBus, Noted
from engine.guards import GuardOptions, check_start
from engine.journal import Journal, LoadRecord
from engine.load import Distribution, LocustLoad
from engine.locks import SystemLock, busy, identities
from engine.plan import Plan, load_plan
from engine.run_metrics import MetricsServer, RunMetrics
from engine.runner import Runner, RunSettings
from engine.stack import (
    LiveStack,
    default_stack_dir,
    open_stack,
    start_reference,
    stop_reference,
)
from engine.undo import Recovery, UndoLedger, left_by_dead_runs, recover


@dataclass(frozen=True)
class RunOptions:
    runs_dir: Path = Path("runs")
    stack_dir: Path | None = None
    stack_up: bool = False
    seed: int | None = None
    quiet: bool = False
    recover: bool = False
    guards: GuardOptions = field(default_factory=GuardOptions)
    metrics_listen: tuple[str, int] | None = None  # serve the runner's own metrics there (engine.run_metrics)


@dataclass
class RunOutcome:
    journal: Journal
    run_dir: Path
    journal_path: Path
    record_error: str | None = None  # the journal or a report could not be written (e.g. a full disk)

    @property
    def exit_code(self) -> int:
        """The journal's code; a record that could not be written is exit 5, unless a rollback failed (3)."""
        assert self.journal.exit_code is not None
        if self.record_error is not None and self.journal.exit_code != ExitCode.ROLLBACK_FAILED:
            return ExitCode.RECORD_FAILED
        return self.journal.exit_code


def _locust_load(plan: Plan, stack: LiveStack, run_dir: Path) -> LocustLoad:
    """The experiment's load, aimed at the stack's endpoint, writing its metrics and ledgers into `run_dir`."""
    spec = plan.experiment.load
    record = LoadRecord(
        locustfile=str(plan.locustfile),
        users=spec.users,
        spawn_rate=spec.spawn_rate,
        duration_s=spec.duration,
        host=stack.endpoint(spec.host),
    )
    return LocustLoad(record, plan.locustfile, run_dir, Distribution.from_spec(spec))


def new_run_id(title: str, fallback: str = "run") -> str:
    """`<UTC stamp>-<slug of title>-<4 hex>`: sortable by start, readable, unique in a runs directory."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40].rstrip("-") or fallback
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return f"{stamp}-{slug}-{secrets.token_hex(2)}"


def describe(plan: Plan) -> list[str]:
    """The timeline of a plan, one line per step, for validate and dry runs."""
    exp = plan.experiment
    load = exp.load
    lines = [
        f"load: {load.users} users (+{load.spawn_rate:g}/s) for {format_duration(load.duration)} "
        f"from {load.locustfile}; baseline judged after {format_duration(load.warmup)} warmup",
    ]
    for fault in plan.faults:
        step = fault.step
        select = step.select.model_dump(exclude_defaults=True) if step.select else {"count": 1}
        lines.append(
            f"  +{format_duration(step.at):>6}  #{fault.index} {step.kind} on {step.target} {select} "
            f"for {format_duration(step.duration)} {fault.spec.model_dump(mode='json')}"
        )
    objective = f"RTO ≤ {format_duration(exp.objectives.rto)}" if exp.objectives.rto else "no RTO objective"
    lines.append(f"steady state: {len(exp.steady_state)} probe(s); {objective}")
    return lines


@contextlib.contextmanager
def _reference_stack(plan: Plan, options: RunOptions, run_dir: Path) -> Iterator[Path]:
    """The stack directory to use; with --stack-up a fresh reference stack lives for this run only."""
    profile = plan.experiment.stack.reference
    if not options.stack_up or profile is None:
        yield options.stack_dir or default_stack_dir()
        return
    stack_dir = run_dir / "stack"
    log = run_dir / "stack.log"
    print(
        f"starting the reference trading stack (profile {profile}) in {stack_dir} ...",
        file=sys.stderr,
        flush=True,
    )
    try:
        start_reference(profile, stack_dir, log)
        yield stack_dir
    finally:
        print("stopping the reference trading stack ...", file=sys.stderr, flush=True)
        try:
            stop_reference(stack_dir, log)
        except StackError as exc:  # the run's outcome must not be lost; the operator must still know
            print(f"WARNING: {exc}; see {log}", file=sys.stderr, flush=True)


def _why(recovery: Recovery) -> str:
    failures = [f"{r.action} {r.id}: {r.error}" for r in (*recovery.rollback, *recovery.verify) if not r.ok]
    return recovery.error or "; ".join(failures) or "not verified"


ABORT_FILE = "ABORT"


def abort_file(runs_dir: Path) -> Path:
    """The big red button of every run in `runs_dir`: a run aborts once this file appears (is touched)."""
    return runs_dir.resolve() / ABORT_FILE


def press_abort(runs_dir: Path) -> Path:
    """`chaos.py abort`: every run using `runs_dir` rolls back and ends as aborted within a second."""
    path = abort_file(runs_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"aborted by pid {os.getpid()} at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n")
    return path


def recover_pending(runs_dir: Path) -> list[Recovery]:
    """`chaos.py recover`: undo and verify every fault the undo ledger still lists (a live run's are left alone)."""
    return recover(UndoLedger.in_runs_dir(runs_dir))


def _settle_ledger(ledger: UndoLedger, options: RunOptions) -> None:
    """Refuse to start over faults a killed run left in place — or, with --recover, undo them first.

    Faults of runs still alive are pending by design (their run rolls them back); they are not ours.
    """
    left = left_by_dead_runs(ledger)
    if not left:
        return
    if not options.recover:
        listed = "; ".join(p.label for p in left)
        raise PendingFaultsError(
            f"faults of an earlier, killed run were never verified undone ({listed}); nothing was started. "
            f"Run `chaos.py recover --runs-dir {options.runs_dir}` (or `run --recover`) first."
        )
    done = recover(ledger)
    failed = [r for r in done if r.undo.key in {u.key for u in left} and not r.ok and r.busy is None]
    if failed:
        raise PendingFaultsError(
            "recovery failed, nothing was started: " + "; ".join(f"{r.undo.label}: {_why(r)}" for r in failed)
        )


def _metrics_server(plan: Plan, options: RunOptions, bus: EventBus) -> MetricsServer | None:
    """With --metrics-listen, the runner's own metrics endpoint, bound now and fed by the bus."""
    if options.metrics_listen is None:
        return None
    metrics = RunMetrics(
        probes=[probe.name for probe in plan.experiment.steady_state],
        faults=[(fault.index, fault.step.kind, fault.step.target) for fault in plan.faults],
    )
    server = MetricsServer(metrics, *options.metrics_listen)
    bus.subscribe(metrics)
    print(f"run metrics: {server.url} (Prometheus text format, until the run ends)", file=sys.stderr, flush=True)
    return server


def _remove_if_empty(directory: Path) -> None:
    """A refused run leaves no run directory behind (only one that holds something is kept)."""
    with contextlib.suppress(OSError):
        directory.rmdir()


def run_experiment(
    path: Path,
    options: RunOptions,
    bus: EventBus | None = None,
    plan: Plan | None = None,
    conversion: Sequence[str] = (),
) -> RunOutcome:
    """Validate and run an experiment file. InvalidInputError (nothing started) and StackError escape;
    everything after the load starts ends up in the journal's verdict instead.

    `plan` is an experiment already loaded another way (a converted Chaos Toolkit file); `conversion`,
    the conversion's report, is journaled as the run's first note.
    """
    plan = plan or load_plan(path)
    ledger = UndoLedger.in_runs_dir(options.runs_dir)
    _settle_ledger(ledger, options)
    bus = bus or EventBus()
    bus.subscribe(ConsoleProgress(quiet=options.quiet))
    run_id = new_run_id(plan.experiment.title)
    run_dir = (options.runs_dir / run_id).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    seed = options.seed if options.seed is not None else secrets.randbits(32)
    metrics: MetricsServer | None = None
    try:
        metrics = _metrics_server(plan, options, bus)  # a port in use refuses the run here: exit 4, nothing started
        with _reference_stack(plan, options, run_dir) as stack_dir:
            stack = open_stack(plan.experiment.stack, plan.base_dir, stack_dir)
            where = stack.path or (stack.overlay.stack_file if stack.overlay else stack_dir)
            lock = SystemLock(identities(stack.description), f"run {run_id} (pid {os.getpid()}, stack {where})")
            with lock:
                guards = check_start(stack.description, options.guards)
                load = _locust_load(plan, stack, run_dir)
                settings = RunSettings(
                    run_id=run_id,
                    run_dir=run_dir,
                    seed=seed,
                    undo_ledger=ledger.path,
                    abort_file=abort_file(options.runs_dir),
                    guards=tuple(guards),
                    lock_keys=tuple(lock.keys),
                    guard_options=options.guards,
                )
                runner = Runner(plan, stack, load, settings, bus)
                runner.journal.metrics_listen = metrics.address if metrics is not None else None
                if conversion:
                    bus.emit(
                        Noted(
                            text=f"converted from {path} in memory: {len(conversion)} conversion note(s)",
                            details={"conversion": list(conversion)},
                        )
                    )
                journal = runner.execute()
    except ChaosError:
        _remove_if_empty(run_dir)
        raise
    finally:
        if metrics is not None:
            metrics.close()
    return RunOutcome(journal, run_dir, run_dir / "journal.json", record_error=runner.writer.failure)


def dry_run(path: Path, options: RunOptions, plan: Plan | None = None) -> tuple[int, list[str]]:
    """`chaos.py run --dry-run`: validate, judge the guards, resolve the targets and run the preflight against
    the live stack, and describe the timeline — starting and injecting nothing. Returns (exit code, lines)."""
    plan = plan or load_plan(path)
    lines = describe(plan)
    if options.stack_up and plan.experiment.stack.reference is not None:
        lines.append("stack: a fresh reference stack would be started for the run; targets are resolved then")
        return ExitCode.PASSED, lines
    stack = open_stack(plan.experiment.stack, plan.base_dir, options.stack_dir or default_stack_dir())
    pending = left_by_dead_runs(UndoLedger.in_runs_dir(options.runs_dir))
    if pending:
        lines.append(f"undo ledger: {len(pending)} pending fault(s): the run would refuse to start without --recover")
    if (holder := busy(identities(stack.description))) is not None:
        lines.append(f"lock: {holder}")
    try:
        for guard in check_start(stack.description, options.guards):
            state = "overridden by " + f"{guard.by} ({guard.reason})" if guard.overridden else "ok"
            lines.append(f"guard {guard.name}: {state} — {guard.detail}")
    except GuardRefusedError as exc:
        return exc.exit_code, [*lines, f"guards: {exc}"]
    with tempfile.TemporaryDirectory(prefix="chaos-dry-run-") as scratch:
        settings = RunSettings(run_id="dry-run", run_dir=Path(scratch), seed=options.seed or 0)
        load = _locust_load(plan, stack, Path(scratch))
        runner = Runner(plan, stack, load, settings, EventBus())
        try:
            plans = runner.preflight()
        except PreflightError as exc:
            return exc.exit_code, [*lines, str(exc)]
    lines.append(f"preflight: ok — the load target {load.record.host} answers")
    for fault, fault_plan in zip(plan.faults, plans, strict=True):
        hit = ", ".join(ref.id for ref in fault_plan.targets)
        lines.append(f"  #{fault.index} {fault.step.kind} would hit now: {hit}")
    lines.append("nothing was started or injected (random choices can differ at run time unless --seed is given)")
    return ExitCode.PASSED, lines
