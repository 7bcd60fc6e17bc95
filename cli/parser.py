"""chaos.py's argument parser: every command and option, each value parsed by a typed validator (cli.args)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from cli import args as types
from cli.import_commands import add_conversion_arguments, add_import_parser
from engine.errors import ExitCode
from engine.model import REFERENCE_PROFILES

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
    p.add_argument(
        "--reason", type=types.label, default=None, help="why a guard is overridden (recorded in the journal)"
    )


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; parsing is syntax only — what is on disk is checked after it (cli.checks)."""
    parser = types.Parser(
        prog="chaos.py",
        description="Chaos experiments and emergency drills for a distributed trading system.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check experiment files; report problems as file:line:col")
    p.add_argument("files", nargs="+", type=types.path, metavar="FILE", help="experiment or drill files (YAML)")

    p = sub.add_parser("schema", help="print the experiment file's JSON Schema (for editors)")
    p.add_argument("--markdown", action="store_true", help="print the Markdown reference instead")

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
    _add_guard_overrides(p)
    add_conversion_arguments(p)  # for a Chaos Toolkit file, converted in memory (docs/chaos-toolkit.md)

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

    p = sub.add_parser("abort", help="the big red button: every run in the runs directory rolls back and stops")
    p.add_argument(
        "--runs-dir",
        type=types.path,
        default=Path(os.environ.get("CHAOS_RUNS_DIR", "runs")),
        help="the runs directory of the runs to abort (default: $CHAOS_RUNS_DIR or runs)",
    )

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

    p = sub.add_parser("stack", help="start, stop or inspect the reference trading stack")
    p.add_argument("action", choices=["up", "down", "status"], help="start, stop or show the reference stack")
    p.add_argument(
        "--dir", type=types.path, default=None, help="stack directory (default: $CHAOS_STACK_DIR or runs/stack)"
    )
    p.add_argument(
        "--profile", default="basic", choices=list(REFERENCE_PROFILES), help="reference stack profile (up only)"
    )
    p.add_argument(
        "--port",
        type=types.name_port,
        action="append",
        default=[],
        metavar="NAME=PORT",
        help="fix a port (1-65535) instead of choosing a free one, e.g. gateway=8080 (up only; repeatable; "
        "names: redis, zookeeper, toxiproxy, gateway, matcher-1, matcher-2; ha: redis-1, redis-2, sentinel-1..3, "
        "zookeeper-1..3)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable status")
    add_import_parser(sub)
    _drill_parser(sub)
    return parser


def _drill_parser(sub: argparse._SubParsersAction[types.Parser]) -> None:
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
    p.add_argument("file", type=types.path, metavar="FILE", help="the drill file (YAML)")
    p.add_argument("--non-interactive", action="store_true", help="CI: acknowledge manual steps automatically")
    p.add_argument("--stack-up", action="store_true", help="start a fresh reference stack for each experiment")
    p.add_argument("--stack-dir", type=types.path, default=None, help="directory of a running reference stack")
    p.add_argument("--runs-dir", type=types.path, default=runs_default, help="where runs and drill records go")
    p.add_argument("--history", type=types.path, default=None, metavar="DB", help=history_help)
    p.add_argument("--seed", type=types.seed, default=None, metavar="N", help="seed for random target selection")
    p.add_argument(
        "--ack-timeout",
        type=types.duration,
        default="10m",
        metavar="DURATION",
        help="wait this long for manual steps (default 10m; e.g. 30s, 1h; at most 7 days)",
    )
    p.add_argument("--no-web", action="store_true", help="do not serve the acknowledgement page on 127.0.0.1")
    p.add_argument("--quiet", action="store_true", help="print fewer experiment events")
    _add_guard_overrides(p)

    p = dsub.add_parser("ack", help="acknowledge a manual runbook step of the running drill")
    p.add_argument("step", type=types.label, metavar="STEP", help="the id of a manual runbook step")
    p.add_argument(
        "--by", type=types.label, default=os.environ.get("USER", "operator"), help="who acknowledges (default: $USER)"
    )
    p.add_argument("--drill", type=types.label, default=None, help="drill name or run id, when several drills run")
    p.add_argument("--runs-dir", type=types.path, default=runs_default, help="the running drill's runs directory")

    p = dsub.add_parser("schedule", help="run drills at their cron times (APScheduler) until stopped")
    p.add_argument(
        "paths", nargs="*", type=types.path, default=[Path("drills")], metavar="FILE|DIR", help="default: drills"
    )
    p.add_argument("--runs-dir", type=types.path, default=runs_default, help="runs directory passed to each drill run")
    p.add_argument("--history", type=types.path, default=None, metavar="DB", help=history_help)
    p.add_argument("--max-runs", type=types.count, default=None, metavar="N", help="stop after N drill runs (N ≥ 1)")
    p.add_argument(
        "--for",
        dest="for_",
        type=types.duration,
        default=None,
        metavar="DURATION",
        help="stop after this long, e.g. 8h (at most 7 days)",
    )
    p.add_argument("--stack-up", action="store_true", help="each drill starts fresh reference stacks")
    p.add_argument("--stack-dir", type=types.path, default=None, help="directory of a running reference stack")

    p = dsub.add_parser("export", help="print a crontab entry or a Kubernetes CronJob for a drill's schedule")
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--crontab", action="store_true", help="a crontab entry")
    kind.add_argument("--k8s-cronjob", action="store_true", help="a batch/v1 CronJob manifest")
    p.add_argument("file", type=types.path, metavar="FILE", help="the drill file (YAML)")
    p.add_argument("--runs-dir", type=types.path, default=runs_default, help="runs directory (crontab)")
    p.add_argument(
        "--image", type=types.label, default="trading-chaos:latest", help="container image with this project (CronJob)"
    )
    p.add_argument("--namespace", type=types.k8s_name, default=None, help="namespace of the CronJob")
    p.add_argument(
        "--pvc",
        type=types.k8s_name,
        default=None,
        help="PersistentVolumeClaim for the runs directory (default: emptyDir)",
    )

    p = dsub.add_parser("history", help="list recorded drill runs, oldest first")
    p.add_argument("name", nargs="?", type=types.label, default=None, metavar="NAME", help="only this drill's runs")
    p.add_argument("--runs-dir", type=types.path, default=runs_default, help="runs directory of the history")
    p.add_argument("--history", type=types.path, default=None, metavar="DB", help=history_help)
    p.add_argument("--json", action="store_true", help="machine-readable rows")
