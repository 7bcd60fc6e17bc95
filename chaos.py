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

from engine.api import RunOptions, describe, press_abort, recover_pending, run_experiment
from engine.errors import ChaosError, ExitCode, InvalidInputError
from engine.journal import load_journal
from engine.plan import load_plan
from engine.schema import experiment_schema, reference_markdown
from engine.stack import default_stack_dir
from engine.undo import LEDGER_FILE
from reports import write_all

EXIT_CODES = "exit codes:\n" + "\n".join(f"  {code:>3}  {text}" for code, text in ExitCode.TABLE)


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
        "--recover",
        action="store_true",
        help="first undo faults an earlier, killed run left pending (else such a run refuses to start)",
    )

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

    p = sub.add_parser("report", help="render report.html and junit.xml again from a journal")
    p.add_argument("journal", type=Path, metavar="JOURNAL")
    p.add_argument("--out", type=Path, default=None, help="output directory (default: next to the journal)")

    p = sub.add_parser("proxy", help="the embedded Toxiproxy-API server")
    p.add_argument("action", choices=["serve"])
    p.add_argument("--host", default="127.0.0.1", help="API address (default 127.0.0.1; loopback only by default)")
    p.add_argument("--port", type=int, default=8474, help="API port (default 8474, Toxiproxy's; 0 = any free)")
    p.add_argument("--config", type=Path, default=None, help="JSON list of proxies to create at start")

    p = sub.add_parser("stack", help="start, stop or inspect the reference trading stack")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--dir", type=Path, default=None, help="stack directory (default: $CHAOS_STACK_DIR or runs/stack)")
    p.add_argument(
        "--profile", default="basic", choices=["basic", "ha", "lossy"], help="reference stack profile (up only)"
    )
    p.add_argument(
        "--port",
        action="append",
        default=[],
        metavar="NAME=PORT",
        help="fix a port instead of choosing a free one, e.g. gateway=8080 (up only; repeatable)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable status")
    return parser


def _problems(exc: InvalidInputError) -> int:
    for problem in exc.problems:
        print(problem, file=sys.stderr)
    return ExitCode.INVALID_INPUT


def cmd_validate(files: Sequence[Path]) -> int:
    code = ExitCode.PASSED
    for path in files:
        try:
            plan = load_plan(path)
        except InvalidInputError as exc:
            code = _problems(exc)
            continue
        print(f"{path}: ok — {plan.experiment.title}")
        for line in describe(plan):
            print(f"  {line}")
    return code


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def cmd_run(args: argparse.Namespace) -> int:
    if args.dry_run:
        plan = load_plan(args.file)
        print(f"{args.file}: {plan.experiment.title} (dry run: nothing will be started or injected)")
        for line in describe(plan):
            print(f"  {line}")
        return ExitCode.PASSED
    options = RunOptions(
        runs_dir=args.runs_dir,
        stack_dir=args.stack_dir,
        stack_up=args.stack_up,
        seed=args.seed,
        quiet=args.quiet,
        recover=args.recover,
    )
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
    return outcome.exit_code


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


def cmd_report(journal_path: Path, out: Path | None) -> int:
    try:
        journal = load_journal(journal_path)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return ExitCode.INVALID_INPUT
    for name, path in write_all(journal, out or journal_path.parent).items():
        print(f"{name}: {path}")
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
            return cmd_report(args.journal, args.out)
        if args.command == "stack":
            return cmd_stack(args)
        if args.command == "proxy":
            return cmd_proxy(args)
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
