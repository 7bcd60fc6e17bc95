"""What `chaos.py drill ...` does, with arguments already parsed: run (and its dry run), ack, schedule, export, history.

Reports are rendered by `reports/`, which the engine must not import: chaos.py passes the writers in.
Each function returns the exit code (engine.errors.ExitCode).
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TextIO

from drilling import cron
from drilling.ack import append_ack, live_drills
from drilling.export import crontab_line, k8s_cronjob
from drilling.history import History, default_history_path, format_history
from drilling.model import DrillPlan, calendar_summary, drill_from_document, is_drill_data, redact_url
from drilling.record import load_drill_record
from drilling.run import (
    DrillOptions,
    ExperimentReports,
    ReportWriter,
    check_calendar,
    experiment_options,
    finish_drill,
    market_override,
    run_drill,
)
from drilling.schedule import ChildLauncher, DrillScheduler, load_scheduled
from engine.api import dry_run
from engine.console import printable
from engine.durations import format_duration
from engine.errors import ChaosError, ExitCode, GuardRefusedError, InvalidInputError, Problem
from engine.loader import load_document


def load_if_drill(path: Path) -> DrillPlan | None:
    """The validated drill when `path` is a drill file; None when it is (meant as) an experiment."""
    doc = load_document(path)
    return drill_from_document(doc) if is_drill_data(doc.data) else None


def describe_drill(plan: DrillPlan) -> list[str]:
    """What a drill will do, one line per item, for `validate`."""
    drill = plan.drill
    lines = [
        f"owner: {drill.owner}; participants: {', '.join(f'{p.name} ({p.role})' for p in drill.participants) or '-'}"
    ]
    for i, (rel, sub) in enumerate(zip(drill.experiments, plan.experiments, strict=True), start=1):
        lines.append(f"experiment {i}: {rel} — {sub.experiment.title}")
    for i, step in enumerate(drill.runbook, start=1):
        how = f"auto when {step.when}" if step.when else "manual"
        extra = f", expected {format_duration(step.expected)}" if step.expected is not None else ""
        mark = f", marks {step.marks}" if step.marks != "none" else ""
        lines.append(f"step {i} {step.id}: {step.title} ({how}{extra}{mark})")
    objectives = drill.objectives.model_dump(exclude_none=True)
    shown = ", ".join(f"{k} ≤ {format_duration(v) if k != 'rpo_orders' else v}" for k, v in objectives.items())
    lines.append(f"objectives: {shown or 'none'}")
    if drill.schedule is not None:
        trig = cron.trigger(drill.schedule.cron, drill.schedule.timezone)
        nxt = trig.get_next_fire_time(None, datetime.now(cron.zone(drill.schedule.timezone)))
        lines.append(
            f"schedule: '{drill.schedule.cron}' {drill.schedule.timezone}; next {nxt.isoformat() if nxt else 'never'}"
        )
    else:
        lines.append("schedule: none (run by hand)")
    cal = drill.calendar
    try:
        shown = calendar_summary(plan.calendars())
    except ChaosError as exc:
        shown = f"cannot be judged: {exc}"
    lines.append(f"calendar guard: {shown}{f'; OVERRIDDEN: {cal.reason}' if cal.override else ''}")
    for target in drill.notify:
        lines.append(f"notify: {redact_url(target.webhook)} on {', '.join(target.events)}")
    return lines


def dry_run_command(plan: DrillPlan, options: DrillOptions, out: TextIO | None = None) -> int:
    """`chaos.py drill run --dry-run`: validate, judge the calendar, dry-run every experiment against the live
    stacks and print the timeline, starting and injecting nothing. Exit codes as `run --dry-run`: the first
    experiment's code that is not 0 (every experiment is still tried, so each problem is shown)."""
    stream = out or sys.stdout
    print(printable(f"{plan.path}: drill dry run — nothing will be started or injected"), file=stream)
    for line in describe_drill(plan):
        if not line.startswith("calendar guard:"):  # the decision below names the calendars
            print(printable(f"  {line}"), file=stream)
    override = market_override(plan.drill, options)
    try:
        decided = check_calendar(plan, override, options.guards.now)
    except GuardRefusedError as exc:
        print(printable(f"calendar: refused — {exc}"), file=stream)
        return exc.exit_code
    print(printable(f"calendar: {decided}"), file=stream)
    code: int = ExitCode.PASSED
    run_options = experiment_options(options, override)
    for i, (rel, sub) in enumerate(zip(plan.drill.experiments, plan.experiments, strict=True)):
        print(printable(f"experiment {i + 1}: {rel} — {sub.experiment.title}"), file=stream)
        try:
            result, lines = dry_run(plan.experiment_path(i), run_options, sub)
        except ChaosError as exc:  # e.g. its stack is not running: this experiment cannot start
            result, lines = exc.exit_code, [f"error: {exc}"]
        for line in lines:
            print(printable(f"  {line}"), file=stream)
        code = result if code == ExitCode.PASSED else code
    verdict = "ok" if code == ExitCode.PASSED else f"the drill would not run as planned (exit {code})"
    print(f"drill dry run: {verdict}; nothing was started or injected", file=stream)
    return code


def run_command(
    plan: DrillPlan,
    options: DrillOptions,
    history_path: Path | None,
    experiment_reports: ExperimentReports | None,
    report_writer: ReportWriter | None,
    out: TextIO | None = None,
) -> int:
    stream = out or sys.stdout
    outcome = run_drill(plan, options, experiment_reports=experiment_reports)
    history = History(history_path or default_history_path(options.runs_dir))
    row = finish_drill(outcome, history, report_writer)
    record = outcome.record
    print(f"\ndrill verdict: {record.verdict.upper()} — {record.summary}", file=stream)
    for exp in record.experiments:
        rto = f", RTO {exp.rto_s:g}s" if exp.rto_s is not None else ""
        print(f"  experiment {exp.file}: {exp.verdict}{rto}", file=stream)
    for objective in record.objectives:
        shown = {"held": "met", "failed": "MISSED", "not_checked": "NOT CHECKED (missed)"}[objective.status]
        print(f"  objective {objective.name}: {shown} ({objective.detail})", file=stream)
    for step in record.steps:
        took = f" in {step.took_s:g}s" if step.took_s is not None else ""
        auto = " [auto-acknowledged]" if step.auto_acknowledged else ""
        print(f"  step {step.id}: {step.status}{took}{auto}", file=stream)
    print(f"record: {outcome.record_path}", file=stream)
    if record.report:
        print(f"report: {record.report}", file=stream)
    if outcome.report_error:
        print(f"WARNING: the management report could not be written: {outcome.report_error}", file=sys.stderr)
    print(f"history: {history.path} ({len(history.runs(row.drill_name))} run(s) of {row.drill_name})", file=stream)
    return outcome.exit_code


def ack_command(runs_dir: Path, step: str, by: str, drill: str | None, wait_s: float = 5.0) -> int:
    """Acknowledge a manual step of the drill running with this runs directory."""
    running = [d for d in live_drills(runs_dir) if drill is None or drill in (d.drill_name, d.drill_run_id)]
    if not running:
        which = f" named {drill!r}" if drill else ""
        print(f"no drill{which} is running with runs directory {runs_dir}", file=sys.stderr)
        return ExitCode.CANNOT_RUN
    if len(running) > 1:
        names = ", ".join(f"{d.drill_name} ({d.drill_run_id})" for d in running)
        print(f"several drills are running ({names}): choose one with --drill NAME", file=sys.stderr)
        return ExitCode.INVALID_INPUT
    (live,) = running
    record_path = live.drill_dir / "drill.json"
    record = load_drill_record(record_path)
    found = next((s for s in record.steps if s.id == step), None)
    if found is None or found.mode != "manual":
        manual = ", ".join(s.id for s in record.steps if s.mode == "manual") or "none"
        what = "is automatic" if found is not None else "does not exist"
        print(f"step {step!r} {what} in drill {live.drill_name}; manual steps: {manual}", file=sys.stderr)
        return ExitCode.INVALID_INPUT
    if found.status != "pending":
        print(f"step {step!r} is already {found.status}", file=sys.stderr)
        return ExitCode.INVALID_INPUT
    append_ack(live.drill_dir, step, by, "cli")
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            now = next(s for s in load_drill_record(record_path).steps if s.id == step)
        except (ValueError, StopIteration):
            continue
        if now.status != "pending":
            took = f" after {now.took_s:g}s" if now.took_s is not None else ""
            print(f"step {step} of drill {live.drill_name}: {now.status}{took} (by {now.by})")
            return ExitCode.PASSED
    print(f"acknowledgement of {step} written; drill {live.drill_name} has not confirmed it yet", file=sys.stderr)
    return ExitCode.PASSED


def schedule_command(
    paths: list[Path],
    history_path: Path,
    command: ChildLauncher,
    max_runs: int | None,
    duration_s: float | None,
) -> int:
    drills = load_scheduled(paths, lambda text: print(text, file=sys.stderr))
    if not drills:
        raise InvalidInputError([Problem(", ".join(map(str, paths)), None, None, "no drill with a schedule found")])
    scheduler = DrillScheduler(
        drills,
        History(history_path),
        command,
        max_runs=max_runs,
        duration_s=duration_s,
        stop_running=command.stop,
    )
    ran = scheduler.run()
    failed = [r for r in scheduler.runs if r[2] != ExitCode.PASSED]
    print(f"scheduler stopped: {ran} drill run(s), {len(failed)} not passed, {len(scheduler.skipped)} fire(s) skipped")
    return ExitCode.DEVIATED if failed else ExitCode.PASSED


def export_command(
    plan: DrillPlan,
    kind: str,
    *,
    python: str,
    chaos_py: Path,
    runs_dir: Path,
    image: str,
    namespace: str | None,
    pvc: str | None,
) -> int:
    try:
        if kind == "crontab":
            text = crontab_line(plan.drill, plan.path, python, chaos_py, runs_dir)
        else:
            root = chaos_py.resolve().parent
            path = plan.path.resolve()
            rel = str(path.relative_to(root)) if path.is_relative_to(root) else str(plan.path)
            text = k8s_cronjob(plan.drill, rel, image, namespace, pvc)
    except ValueError as exc:
        print(f"{plan.path}: {exc}", file=sys.stderr)
        return ExitCode.INVALID_INPUT
    sys.stdout.write(text)
    return ExitCode.PASSED


def history_command(history_path: Path, name: str | None, as_json: bool) -> int:
    if not history_path.exists():
        print(f"no drill history yet ({history_path})", file=sys.stderr)
        rows = []
    else:
        rows = History(history_path).runs(name)
    if as_json:
        print(json.dumps([r.model_dump() for r in rows], indent=1))
    elif rows:
        sys.stdout.write(format_history(rows))
    else:
        print(f"no recorded runs{f' of {name}' if name else ''}")
    return ExitCode.PASSED
