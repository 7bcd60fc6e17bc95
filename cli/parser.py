"""chaos.py's argument parser: every command and option, each value parsed by a typed validator (cli.args)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from cli import args as types
from cli.drill_parser import add_drill_parser
from cli.import_commands import add_conversion_arguments, add_import_parser
from cli.shared_options import EXIT_CODES, add_guard_overrides
from cli.stack_commands import add_stack_parser

if TYPE_CHECKING:
    from cli.drill_parser import Subparsers


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; parsing is syntax only — what is on disk is checked after it (cli.checks)."""
    parser = types.Parser(
        prog="chaos.py",
        description="Chaos experiments and emergency drills for a distributed trading system.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _validate_command(sub)
    _schema_command(sub)
    _run_command(sub)
    _recover_command(sub)
    _abort_command(sub)
    _report_command(sub)
    _proxy_command(sub)
    _stack_command(sub)
    add_import_parser(sub)
    add_drill_parser(sub)
    return parser


def _validate_command(sub: Subparsers) -> None:
    p = sub.add_parser("validate", help="check experiment files; report problems as file:line:col")
    p.add_argument("files", nargs="+", type=types.path, metavar="FILE", help="experiment or drill files (YAML)")


def _schema_command(sub: Subparsers) -> None:
    p = sub.add_parser("schema", help="print the experiment file's (or stack description's) JSON Schema")
    p.add_argument("--markdown", action="store_true", help="print the Markdown reference instead")
    p.add_argument(
        "--stack",
        action="store_true",
        help="the stack description's, not the experiment file's (docs/stack-reference.md)",
    )


def _run_command(sub: Subparsers) -> None:
    p = sub.add_parser(
        "run",
        help="run an experiment against the live stack",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "file",
        type=types.path,
        metavar="FILE",
        help="the experiment file (YAML), or a Chaos Toolkit experiment (JSON/YAML)",
    )
    p.add_argument(
        "--stack-up",
        action="store_true",
        help="start a fresh reference stack for this run in the run directory, stop it afterwards",
    )
    p.add_argument(
        "--stack-dir",
        type=types.path,
        default=None,
        help="directory of a running reference stack (default: $CHAOS_STACK_DIR or runs/stack)",
    )
    p.add_argument(
        "--runs-dir",
        type=types.path,
        default=Path(os.environ.get("CHAOS_RUNS_DIR", "runs")),
        help="where run directories are created (default: $CHAOS_RUNS_DIR or runs)",
    )
    p.add_argument(
        "--seed",
        type=types.seed,
        default=None,
        metavar="N",
        help="seed for random target selection, 0 to 2^63-1 (recorded in the journal)",
    )
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
    p.add_argument(
        "--metrics-listen",
        type=types.listen,
        default=None,
        metavar="HOST:PORT",
        help="serve the run's own metrics (phase, faults, probes) in Prometheus text format there while it runs; "
        "port 0 = any free one, the address bound is printed and journaled (docs/monitoring.md)",
    )
    add_guard_overrides(p)
    add_conversion_arguments(p)  # for a Chaos Toolkit file, converted in memory (docs/chaos-toolkit.md)


def _recover_command(sub: Subparsers) -> None:
    p = sub.add_parser(
        "recover",
        help="undo and verify every fault a killed run left in the undo ledger",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--runs-dir",
        type=types.path,
        default=Path(os.environ.get("CHAOS_RUNS_DIR", "runs")),
        help="the runs directory whose undo-ledger.jsonl to replay (default: $CHAOS_RUNS_DIR or runs)",
    )


def _abort_command(sub: Subparsers) -> None:
    p = sub.add_parser("abort", help="the big red button: every run in the runs directory rolls back and stops")
    p.add_argument(
        "--runs-dir",
        type=types.path,
        default=Path(os.environ.get("CHAOS_RUNS_DIR", "runs")),
        help="the runs directory of the runs to abort (default: $CHAOS_RUNS_DIR or runs)",
    )


def _report_command(sub: Subparsers) -> None:
    p = sub.add_parser(
        "report",
        help="render reports again from a journal.json (report.html, junit.xml) or a drill.json (drill-report.html)",
    )
    p.add_argument(
        "journal",
        type=types.path,
        metavar="PATH",
        help="a run's journal.json or a drill run's drill.json",
    )
    p.add_argument("--out", type=types.path, default=None, help="output directory (default: next to PATH)")
    p.add_argument("--pdf", action="store_true", help="also print the HTML report to PDF beside it (system Chromium)")
    p.add_argument(
        "--history",
        type=types.path,
        default=None,
        help="drill history database for the trends (default: $CHAOS_DRILL_HISTORY, else history.sqlite of the "
        "runs directory the drill.json is in)",
    )


def _proxy_command(sub: Subparsers) -> None:
    p = sub.add_parser("proxy", help="the embedded Toxiproxy-API server")
    p.add_argument("action", choices=["serve"], help="serve: run the server until SIGTERM or Ctrl-C")
    p.add_argument(
        "--host",
        type=types.host,
        default="127.0.0.1",
        help="API address: an IP address or host name (default 127.0.0.1; any other address is warned about)",
    )
    p.add_argument(
        "--port", type=types.port_or_any, default=8474, help="API port (default 8474, Toxiproxy's; 0 = any free)"
    )
    p.add_argument("--config", type=types.path, default=None, help="JSON list of proxies to create at start")


def _stack_command(sub: Subparsers) -> None:
    add_stack_parser(sub)  # up|down|status (the reference stack), check, discover, status FILE: cli.stack_commands
