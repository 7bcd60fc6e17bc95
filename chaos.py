#!/usr/bin/env python3
"""chaos.py — the command line: parse arguments, call the engine and reports, exit with a documented code."""

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

from engine.api import RunOptions, describe, dry_run, press_abort, recover_pending, run_experiment
from engine.drill.commands import (
    ack_command,
    describe_drill,
    export_command,
    history_command,
    load_if_drill,
    run_command,
    schedule_command,
)
from engine.drill.history import History, default_history_path
from engine.drill.model import load_drill
from engine.drill.record import load_drill_record
from engine.drill.run import DrillOptions
from engine.drill.schedule import ChildLauncher
from engine.durations import parse_duration
from engine.errors import ChaosError, ExitCode, InvalidInputError, Problem
from engine.guards import GuardOptions, Override
from engine.journal import load_journal
from engine.model import REFERENCE_PROFILES
from engine.plan import load_plan
from engine.schema import experiment_schema, reference_markdown
from engine.stack import default_stack_dir
from engine.undo import LEDGER_FILE
from reports import write_all
from reports.management import write_management_report
from reports.pdf import print_pdf

EXIT_CODES = "exit codes:\n" + "\n".join(f"  {code:>3}  {text}" for code, text in ExitCode.TABLE)


def _add_guard_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--i-understand-production",
        action="store_true",
        help="allow a run against a stack marked `production: true` (needs --reason; who and why are journaled)",
    )
    p.add_argument(
        "--ignore-market-hours",
        action="store_true",
        help="allow a run inside the trading sessions (needs --reason; journaled)",
    )
    p.add_argument("--reason", default=None, help="why a guard is overridden (recorded in the journal)")


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chaos.py",
        description="Chaos experiments and emergency drills for a distributed trading system.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check experiment files; report problems as file:line:col")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")

    p = sub.add_parser("schema", help="print the experiment file's JSON Schema (for editors)")
    p.add_argument("--markdown", action="store_true", help="print the Markdown reference instead")

    p = sub.add_parser(
        "run",
        help="run an experiment against the live stack",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument(
        "--stack-up",
        action="store_true",
        help="start a fresh reference stack for this run in the run directory, stop it afterwards",
    )
    p.add_argument(
        "--stack-dir",
        type=Path,
        default=None,
        help="directory of a running reference stack (default: $CHAOS_STACK_DIR or runs/stack)",
    )
    p.add_argument(
        "--runs-dir",
        type=Path,
        default=Path(os.environ.get("CHAOS_RUNS_DIR", "runs")),
        help="where run directories are created (default: $CHAOS_RUNS_DIR or runs)",
    )
    p.add_argument("--seed", type=int, default=None, help="seed for random target selection (recorded in the journal)")
    p.add_argument("--dry-run", action="store_true", help="validate and print the timeline; start and inject nothing")
    p.add_argument("--quiet", action="store_true", help="print only the start and the verdict")
    p.add_argument(
        "--ci",
        action="store_true",
        help="CI resilience stage: no colour, no prompts; summary.md next to the journal is also appended to "
        "$GITHUB_STEP_SUMMARY when set (exit codes as documented)",
    )
    p.add_argument(
        "--recover",
        action="store_true",
        help="first undo faults an earlier, killed run left pending (else such a run refuses to start)",
    )
    _add_guard_overrides(p)

    p = sub.add_parser(
        "recover",
        help="undo and verify every fault a killed run left in the undo ledger",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--runs-dir",
        type=Path,
        default=Path(os.environ.get("CHAOS_RUNS_DIR", "runs")),
        help="the runs directory whose undo-ledger.jsonl to replay (default: $CHAOS_RUNS_DIR or runs)",
    )

    p = sub.add_parser("abort", help="the big red button: every run in the runs directory rolls back and stops")
    p.add_argument(
        "--runs-dir",
        type=Path,
        default=Path(os.environ.get("CHAOS_RUNS_DIR", "runs")),
        help="the runs directory of the runs to abort (default: $CHAOS_RUNS_DIR or runs)",
    )

    p = sub.add_parser(
        "report",
        help="render reports again from a journal.json (report.html, junit.xml) or a drill.json (drill-report.html)",
    )
    p.add_argument("journal", type=Path, metavar="PATH", help="a run's journal.json or a drill run's drill.json")
    p.add_argument("--out", type=Path, default=None, help="output directory (default: next to PATH)")
    p.add_argument("--pdf", action="store_true", help="also print the HTML report to PDF beside it (system Chromium)")
    p.add_argument(
        "--history",
        type=Path,
        default=None,
        help="drill history database for the trends (default: $CHAOS_DRILL_HISTORY, else history.sqlite of the "
        "runs directory the drill.json is in)",
    )

    p = sub.add_parser("proxy", help="the embedded Toxiproxy-API server")
    p.add_argument("action", choices=["serve"])
    p.add_argument("--host", default="127.0.0.1", help="API address (default 127.0.0.1; loopback only by default)")
    p.add_argument("--port", type=int, default=8474, help="API port (default 8474, Toxiproxy's; 0 = any free)")
    p.add_argument("--config", type=Path, default=None, help="JSON list of proxies to create at start")

    p = sub.add_parser("stack", help="start, stop or inspect the reference trading stack")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--dir", type=Path, default=None, help="stack directory (default: $CHAOS_STACK_DIR or runs/stack)")
    p.add_argument(
        "--profile", default="basic", choices=list(REFERENCE_PROFILES), help="reference stack profile (up only)"
    )
    p.add_argument(
        "--port",
        action="append",
        default=[],
        metavar="NAME=PORT",
        help="fix a port instead of choosing a free one, e.g. gateway=8080 (up only; repeatable)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable status")
    _drill_parser(sub)
    return parser


def _drill_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`chaos.py drill run|ack|schedule|export|history` (see docs/drills.md)."""
    drill = sub.add_parser("drill", help="emergency drills: run, acknowledge steps, schedule, export, history")
    dsub = drill.add_subparsers(dest="drill_command", required=True, metavar="ACTION")
    runs_default = Path(os.environ.get("CHAOS_RUNS_DIR", "runs"))
    history_help = "history database (default: $CHAOS_DRILL_HISTORY or RUNS_DIR/drills/history.sqlite)"

    p = dsub.add_parser(
        "run",
        help="run a drill: its experiments, the live runbook, the record and the report",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--non-interactive", action="store_true", help="CI: acknowledge manual steps automatically")
    p.add_argument("--stack-up", action="store_true", help="start a fresh reference stack for each experiment")
    p.add_argument("--stack-dir", type=Path, default=None, help="directory of a running reference stack")
    p.add_argument("--runs-dir", type=Path, default=runs_default, help="where runs and drill records go")
    p.add_argument("--history", type=Path, default=None, help=history_help)
    p.add_argument("--seed", type=int, default=None, help="seed for random target selection")
    p.add_argument("--ack-timeout", default="10m", metavar="DURATION", help="wait this long for manual steps")
    p.add_argument("--no-web", action="store_true", help="do not serve the acknowledgement page on 127.0.0.1")
    p.add_argument("--quiet", action="store_true", help="print fewer experiment events")
    _add_guard_overrides(p)

    p = dsub.add_parser("ack", help="acknowledge a manual runbook step of the running drill")
    p.add_argument("step", metavar="STEP")
    p.add_argument("--by", default=os.environ.get("USER", "operator"), help="who acknowledges (default: $USER)")
    p.add_argument("--drill", default=None, help="drill name or run id, when several drills run")
    p.add_argument("--runs-dir", type=Path, default=runs_default, help="the running drill's runs directory")

    p = dsub.add_parser("schedule", help="run drills at their cron times (APScheduler) until stopped")
    p.add_argument("paths", nargs="*", type=Path, default=[Path("drills")], metavar="FILE|DIR")
    p.add_argument("--runs-dir", type=Path, default=runs_default, help="runs directory passed to each drill run")
    p.add_argument("--history", type=Path, default=None, help=history_help)
    p.add_argument("--max-runs", type=int, default=None, metavar="N", help="stop after N drill runs")
    p.add_argument("--for", dest="for_", default=None, metavar="DURATION", help="stop after this long, e.g. 8h")
    p.add_argument("--stack-up", action="store_true", help="each drill starts fresh reference stacks")
    p.add_argument("--stack-dir", type=Path, default=None, help="directory of a running reference stack")

    p = dsub.add_parser("export", help="print a crontab entry or a Kubernetes CronJob for a drill's schedule")
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--crontab", action="store_true", help="a crontab entry")
    kind.add_argument("--k8s-cronjob", action="store_true", help="a batch/v1 CronJob manifest")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--runs-dir", type=Path, default=runs_default, help="runs directory (crontab)")
    p.add_argument("--image", default="trading-chaos:latest", help="container image with this project (CronJob)")
    p.add_argument("--namespace", default=None, help="namespace of the CronJob")
    p.add_argument("--pvc", default=None, help="PersistentVolumeClaim for the runs directory (default: emptyDir)")

    p = dsub.add_parser("history", help="list recorded drill runs, oldest first")
    p.add_argument("name", nargs="?", default=None, metavar="NAME")
    p.add_argument("--runs-dir", type=Path, default=runs_default, help="runs directory of the history")
    p.add_argument("--history", type=Path, default=None, help=history_help)
    p.add_argument("--json", action="store_true", help="machine-readable rows")


def _problems(exc: InvalidInputError) -> int:
    for problem in exc.problems:
        print(problem, file=sys.stderr)
    return ExitCode.INVALID_INPUT


def cmd_validate(files: Sequence[Path]) -> int:
    code = ExitCode.PASSED
    for path in files:
        try:
            drill = load_if_drill(path)
            if drill is not None:
                print(f"{path}: ok — drill {drill.drill.name}: {drill.drill.title}")
                for line in describe_drill(drill):
                    print(f"  {line}")
                continue
            plan = load_plan(path)
        except InvalidInputError as exc:
            code = _problems(exc)
            continue
        print(f"{path}: ok — {plan.experiment.title}")
        for line in describe(plan):
            print(f"  {line}")
    return code


def cmd_drill(args: argparse.Namespace) -> int:
    action = args.drill_command
    runs_dir: Path = args.runs_dir
    history = getattr(args, "history", None) or default_history_path(runs_dir)
    if action == "ack":
        return ack_command(runs_dir, args.step, args.by, args.drill)
    if action == "history":
        return history_command(history, args.name, args.json)
    if action == "schedule":
        command = [sys.executable, str(Path(__file__).resolve()), "drill", "run", "--non-interactive"]
        command += ["--runs-dir", str(runs_dir), "--history", str(history)]
        command += ["--stack-up"] if args.stack_up else []
        command += ["--stack-dir", str(args.stack_dir)] if args.stack_dir else []
        duration = parse_duration(args.for_) if args.for_ else None
        launcher = ChildLauncher(lambda path: [*command, str(path)])
        return schedule_command(args.paths, history, launcher, args.max_runs, duration)
    plan = load_drill(args.file)
    if action == "export":
        return export_command(
            plan,
            "crontab" if args.crontab else "k8s",
            python=sys.executable,
            chaos_py=Path(__file__).resolve(),
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
        ack_timeout_s=parse_duration(args.ack_timeout),
        web=not args.no_web,
        quiet=args.quiet,
        guards=_guard_options(args),
    )
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
    )
    if args.dry_run:
        print(f"{args.file}: dry run — nothing will be started or injected")
        code, lines = dry_run(args.file, options)
        for line in lines:
            print(f"  {line}")
        return code
    # Until the runner takes over signals (and after it lets go), SIGTERM/SIGHUP unwind like Ctrl-C,
    # so a reference stack started for this run is always stopped again.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_keyboard_interrupt)
    outcome = run_experiment(args.file, options)
    written = write_all(outcome.journal, outcome.run_dir)
    journal = outcome.journal
    print(f"\nverdict: {journal.verdict.upper()} — {journal.summary}")
    for fault in journal.faults:
        if fault.recovery is not None:
            rto = "not recovered" if fault.recovery.rto_s is None else f"RTO {fault.recovery.rto_s:g}s"
            print(f"  fault #{fault.index} {fault.kind} on {fault.target}: {fault.status}, {rto}")
    print(f"journal: {outcome.journal_path}")
    for name, path in written.items():
        print(f"{name}: {path}")
    if args.ci:
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
        state = "undone and verified gone" if item.ok else "STILL IN PLACE"
        print(f"{item.undo.label}: {state}")
        for result in (*item.rollback, *item.verify):
            print(f"  {result.action} {result.id}: {'ok' if result.ok else result.error} {result.detail}")
        if item.error:
            print(f"  error: {item.error}")
    if all(item.ok for item in recoveries):
        return ExitCode.PASSED
    print("some faults could not be undone: check the system now, then run `chaos.py recover` again", file=sys.stderr)
    return ExitCode.ROLLBACK_FAILED


def _is_drill_record(path: Path) -> bool:
    """True when `path` holds a drill record (drill.json) rather than a run journal; decided by content."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
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
    root = str(Path(__file__).resolve().parent)
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}


def cmd_proxy(args: argparse.Namespace) -> int:
    # The server is a separate program; it runs in this process so that signals reach it directly.
    from chaosproxy.__main__ import main as serve

    argv = ["serve", "--host", args.host, "--port", str(args.port)]
    if args.config is not None:
        argv += ["--config", str(args.config)]
    return serve(argv)


def cmd_stack(args: argparse.Namespace) -> int:
    stack_dir = args.dir or default_stack_dir()
    command = [sys.executable, "-m", "tradingstack", args.action, "--dir", str(stack_dir)]
    if args.action == "up":
        command += ["--profile", args.profile]
        for port in args.port:
            command += ["--port", port]
    if args.action == "status" and args.json:
        command.append("--json")
    return subprocess.run(command, env=_repo_env(), check=False).returncode


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "validate":
            return cmd_validate(args.files)
        if args.command == "schema":
            sys.stdout.write(
                reference_markdown() if args.markdown else json.dumps(experiment_schema(), indent=2) + "\n"
            )
            return ExitCode.PASSED
        if args.command == "run":
            return cmd_run(args)
        if args.command == "abort":
            print(f"abort requested: {press_abort(args.runs_dir)}; running drills roll back within a second")
            return ExitCode.PASSED
        if args.command == "recover":
            return cmd_recover(args.runs_dir)
        if args.command == "report":
            return cmd_report(args.journal, args.out, args.pdf, args.history)
        if args.command == "stack":
            return cmd_stack(args)
        if args.command == "proxy":
            return cmd_proxy(args)
        if args.command == "drill":
            return cmd_drill(args)
    except InvalidInputError as exc:
        return _problems(exc)
    except ChaosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
