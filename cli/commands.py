"""The command handlers behind chaos.py: each takes parsed arguments, calls the engine, returns an exit code."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from cli.drill_commands import (
    ack_command,
    describe_drill,
    dry_run_command,
    export_command,
    history_command,
    load_if_drill,
    run_command,
    schedule_command,
)
from cli.import_commands import options_from_args
from cli.stack_commands import is_description_command, stack_description_command
from drilling.history import History, default_history_path
from drilling.model import load_drill
from drilling.record import load_drill_record
from drilling.run import DrillOptions
from drilling.schedule import ChildLauncher
from engine.api import RunOptions, describe, dry_run, recover_pending, run_experiment
from engine.console import printable
from engine.errors import ExitCode, InvalidInputError, Problem
from engine.files import LIMITS, check_sqlite, read_bytes
from engine.guards import GuardOptions, Override
from engine.journal import load_journal
from engine.plan import Plan, load_plan
from engine.run_metrics import is_loopback
from engine.schema import experiment_schema, reference_markdown
from engine.stack import default_stack_dir
from engine.stack_schema import stack_reference_markdown, stack_schema
from engine.undo import LEDGER_FILE
from importers.ctk import is_ctk_document, load_ctk_plan
from reports import write_all
from reports.management import write_management_report
from reports.pdf import print_pdf

CHAOS_PY = Path(__file__).resolve().parents[1] / "chaos.py"  # what child runs and exported schedules call


def _guard_options(args: argparse.Namespace) -> GuardOptions:
    """The guard overrides given on the command line; an override without a reason is invalid input."""
    overriding = args.i_understand_production or args.ignore_market_hours
    if overriding and not (args.reason or "").strip():
        raise InvalidInputError(
            [Problem("chaos.py", None, None, "--i-understand-production and --ignore-market-hours need --reason TEXT")]
        )
    reason = Override(reason=args.reason.strip()) if overriding else None
    return GuardOptions(
        production=reason if args.i_understand_production else None,
        market_hours=reason if args.ignore_market_hours else None,
    )


def problems_exit(exc: InvalidInputError) -> int:
    for problem in exc.problems:
        print(problem, file=sys.stderr)
    return ExitCode.INVALID_INPUT


def cmd_validate(files: Sequence[Path]) -> int:
    code = ExitCode.PASSED
    for path in files:
        try:
            drill = load_if_drill(path)
            if drill is not None:
                print(printable(f"{path}: ok — drill {drill.drill.name}: {drill.drill.title}"))
                for line in describe_drill(drill):
                    print(f"  {line}")
                continue
            # A Chaos Toolkit experiment validates as its conversion (default choices; see `import ctk`).
            plan = load_ctk_plan(path)[0] if is_ctk_document(path) else load_plan(path)
        except InvalidInputError as exc:
            code = problems_exit(exc)
            continue
        print(printable(f"{path}: ok — {plan.experiment.title}"))
        for line in describe(plan):
            print(f"  {line}")
    return code


def cmd_schema(stack: bool, markdown: bool) -> int:
    """`chaos.py schema [--stack] [--markdown]`: the experiment file's or the stack description's schema."""
    if stack:
        text = stack_reference_markdown() if markdown else json.dumps(stack_schema(), indent=2) + "\n"
    else:
        text = reference_markdown() if markdown else json.dumps(experiment_schema(), indent=2) + "\n"
    sys.stdout.write(text)
    return ExitCode.PASSED


def cmd_drill(args: argparse.Namespace) -> int:
    action = args.drill_command
    runs_dir: Path = args.runs_dir
    history = getattr(args, "history", None) or default_history_path(runs_dir)
    if action == "ack":
        return ack_command(runs_dir, args.step, args.by, args.drill)
    if action == "history":
        return history_command(history, args.name, args.json)
    if action == "schedule":
        command = [sys.executable, str(CHAOS_PY), "drill", "run", "--non-interactive"]
        command += ["--runs-dir", str(runs_dir), "--history", str(history)]
        command += ["--stack-up"] if args.stack_up else []
        command += ["--stack-dir", str(args.stack_dir)] if args.stack_dir else []
        launcher = ChildLauncher(lambda path: [*command, str(path)])
        return schedule_command(args.paths, history, launcher, args.max_runs, args.for_)
    plan = load_drill(args.file)
    if action == "export":
        return export_command(
            plan,
            "crontab" if args.crontab else "k8s",
            python=sys.executable,
            chaos_py=CHAOS_PY,
            runs_dir=runs_dir,
            image=args.image,
            namespace=args.namespace,
            pvc=args.pvc,
        )
    options = DrillOptions(
        runs_dir=runs_dir,
        stack_dir=args.stack_dir,
        stack_up=args.stack_up,
        seed=args.seed,
        non_interactive=args.non_interactive,
        ack_timeout_s=args.ack_timeout,
        web=not args.no_web,
        quiet=args.quiet,
        guards=_guard_options(args),
    )
    if args.dry_run:
        return dry_run_command(plan, options)
    for sig in (signal.SIGTERM, signal.SIGHUP):  # unwind like Ctrl-C: experiments roll back, the record is kept
        signal.signal(sig, _raise_keyboard_interrupt)
    return run_command(
        plan,
        options,
        history,
        lambda outcome: write_all(outcome.journal, outcome.run_dir)["html"],
        write_management_report,
    )


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def cmd_run(args: argparse.Namespace) -> int:
    if args.ci:
        os.environ["NO_COLOR"] = "1"  # Locust and every child process: plain logs
    options = RunOptions(
        runs_dir=args.runs_dir,
        stack_dir=args.stack_dir,
        stack_up=args.stack_up,
        seed=args.seed,
        quiet=args.quiet,
        recover=args.recover,
        guards=_guard_options(args),
        metrics_listen=args.metrics_listen,
    )
    if args.metrics_listen is not None and not is_loopback(args.metrics_listen[0]):
        print(
            f"warning: --metrics-listen {args.metrics_listen[0]} is not loopback: anyone who reaches it sees the run",
            file=sys.stderr,
        )
    plan: Plan | None = None
    conversion: list[str] = []
    if is_ctk_document(args.file):  # a Chaos Toolkit experiment: converted in memory, nothing written
        plan, conversion = load_ctk_plan(args.file, options_from_args(args))
        print(f"{args.file}: a Chaos Toolkit experiment, converted ({len(conversion)} note(s); see the journal)")
    if args.dry_run:
        print(f"{args.file}: dry run — nothing will be started or injected")
        for line in conversion:
            print(printable(f"  {line}"))
        code, lines = dry_run(args.file, options, plan)
        for line in lines:
            print(f"  {line}")
        return code
    # Until the runner takes over signals (and after it lets go), SIGTERM/SIGHUP unwind like Ctrl-C,
    # so a reference stack started for this run is always stopped again.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_keyboard_interrupt)
    outcome = run_experiment(args.file, options, plan=plan, conversion=conversion)
    try:
        written = write_all(outcome.journal, outcome.run_dir)
    except OSError as exc:  # the run is over and rolled back: say what is known, and that the record is not
        written = {}
        outcome.record_error = outcome.record_error or f"cannot write the reports in {outcome.run_dir}: {exc}"
    journal = outcome.journal
    print(printable(f"\nverdict: {journal.verdict.upper()} — {journal.summary}"))
    for fault in journal.faults:
        if fault.recovery is not None:
            rto = "not recovered" if fault.recovery.rto_s is None else f"RTO {fault.recovery.rto_s:g}s"
            print(f"  fault #{fault.index} {fault.kind} on {fault.target}: {fault.status}, {rto}")
        else:
            print(f"  fault #{fault.index} {fault.kind} on {fault.target}: {fault.status}")
    print(f"journal: {outcome.journal_path}")
    for name, path in written.items():
        print(f"{name}: {path}")
    if outcome.record_error is not None:
        print(f"RECORD INCOMPLETE: {outcome.record_error}", file=sys.stderr)
    if args.ci and "summary" in written:
        _publish_ci_summary(written["summary"])
    return outcome.exit_code


def _publish_ci_summary(summary: Path) -> None:
    """GitHub Actions shows $GITHUB_STEP_SUMMARY on the job page; elsewhere summary.md is an artifact."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(summary.read_text(encoding="utf-8") + "\n")
        print(f"summary appended to $GITHUB_STEP_SUMMARY ({target})")


def cmd_recover(runs_dir: Path) -> int:
    recoveries = recover_pending(runs_dir)
    if not recoveries:
        print(f"nothing to recover: no pending faults in {runs_dir / LEDGER_FILE}")
        return ExitCode.PASSED
    for item in recoveries:
        if item.busy is not None:
            print(f"{item.undo.label}: left alone, its run is alive: {item.busy}")
            continue
        state = "undone and verified gone" if item.ok else "STILL IN PLACE"
        print(f"{item.undo.label}: {state}")
        for result in (*item.rollback, *item.verify):
            print(f"  {result.action} {result.id}: {'ok' if result.ok else result.error} {result.detail}")
        if item.error:
            print(f"  error: {item.error}")
    if any(not item.ok and item.busy is None for item in recoveries):
        print(
            "some faults could not be undone: check the system now, then run `chaos.py recover` again", file=sys.stderr
        )
        return ExitCode.ROLLBACK_FAILED
    if any(item.busy is not None for item in recoveries):
        # Not ours to undo: the live run rolls its own faults back (or `chaos.py abort` makes it).
        print("refused: a live run holds these faults' system; it rolls them back itself", file=sys.stderr)
        return ExitCode.CANNOT_RUN
    return ExitCode.PASSED


def _is_drill_record(path: Path) -> bool:
    """True when `path` holds a drill record (drill.json) rather than a run journal; decided by content."""
    try:
        raw = json.loads(read_bytes(path, LIMITS["journal"], "a journal or a drill record"))
    except ValueError:  # InputFileError, UnicodeDecodeError, JSONDecodeError
        return False  # load_journal says what is wrong with it
    return isinstance(raw, dict) and "drill_run_id" in raw and "run_id" not in raw


def cmd_report(journal_path: Path, out: Path | None, pdf: bool = False, history_db: Path | None = None) -> int:

    written: dict[str, Path]
    try:
        if _is_drill_record(journal_path):
            record = load_drill_record(journal_path)
            # <runs>/drills/<drill-run-id>/drill.json: the history is <runs>/drills/history.sqlite
            db = history_db or default_history_path(journal_path.resolve().parent.parent.parent)
            if history_db is not None and not history_db.is_file():
                raise ValueError(f"{history_db}: no such drill history database")
            if db.is_file():
                check_sqlite(db)  # an InputFileError is a ValueError: invalid input, exit 2
            history = History(db).runs(record.drill_name) if db.is_file() else []
            html = write_management_report(record, out or journal_path.parent, history, base=journal_path.parent)
            written = {"html": html}
        else:
            written = write_all(load_journal(journal_path), out or journal_path.parent)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return ExitCode.INVALID_INPUT
    for name, path in written.items():
        print(f"{name}: {path}")
    if pdf:  # a PdfError (no Chromium) ends with exit code 4, the HTML report already written
        print(f"pdf: {print_pdf(written['html'], written['html'].with_suffix('.pdf'))}")
    return ExitCode.PASSED


def _repo_env() -> dict[str, str]:
    root = str(CHAOS_PY.parent)
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}


def cmd_proxy(args: argparse.Namespace) -> int:
    # The server is a separate program; it runs in this process so that signals reach it directly.
    from chaosproxy.__main__ import main as serve

    argv = ["serve", "--host", args.host, "--port", str(args.port)]
    if args.config is not None:
        argv += ["--config", str(args.config)]
    return serve(argv)


def cmd_stack(args: argparse.Namespace) -> int:
    if is_description_command(args):  # check, discover, status FILE: any stack description (cli.stack_commands)
        return stack_description_command(args)
    stack_dir = args.dir or default_stack_dir()
    command = [sys.executable, "-m", "tradingstack", args.action, "--dir", str(stack_dir)]
    if args.action == "up":
        command += ["--profile", args.profile]
        for name, port in args.port:
            command += ["--port", f"{name}={port}"]
    if args.action == "status" and args.json:
        command.append("--json")
    # Its output is relayed, not inherited: a reader gone early (`| head`) must not kill the stack's launcher.
    result = subprocess.run(command, env=_repo_env(), check=False, stdout=subprocess.PIPE)
    sys.stdout.write(result.stdout.decode("utf-8", errors="replace"))
    return result.returncode
