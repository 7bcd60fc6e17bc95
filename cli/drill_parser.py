"""`chaos.py drill run|ack|schedule|export|history` (see docs/drills.md): one function per action."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from cli import args as types
from cli.shared_options import EXIT_CODES, add_guard_overrides

if TYPE_CHECKING:
    from typing import TypeAlias

    Subparsers: TypeAlias = argparse._SubParsersAction[types.Parser]

HISTORY_HELP = "history database (default: $CHAOS_DRILL_HISTORY or RUNS_DIR/drills/history.sqlite)"


def _runs_default() -> Path:
    return Path(os.environ.get("CHAOS_RUNS_DIR", "runs"))


def add_drill_parser(sub: Subparsers) -> None:
    """The `drill` command and its actions."""
    drill = sub.add_parser("drill", help="emergency drills: run, acknowledge steps, schedule, export, history")
    dsub = drill.add_subparsers(dest="drill_command", required=True, metavar="ACTION")
    _run(dsub)
    _ack(dsub)
    _schedule(dsub)
    _export(dsub)
    _history(dsub)


def _run(dsub: Subparsers) -> None:
    p = dsub.add_parser(
        "run",
        help="run a drill: its experiments, the live runbook, the record and the report",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", type=types.path, metavar="FILE", help="the drill file (YAML)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="validate, judge the calendar, dry-run every experiment against the live stack, print the timeline; "
        "start and inject nothing",
    )
    p.add_argument("--non-interactive", action="store_true", help="CI: acknowledge manual steps automatically")
    p.add_argument("--stack-up", action="store_true", help="start a fresh reference stack for each experiment")
    p.add_argument("--stack-dir", type=types.path, default=None, help="directory of a running reference stack")
    p.add_argument("--runs-dir", type=types.path, default=_runs_default(), help="where runs and drill records go")
    p.add_argument("--history", type=types.path, default=None, metavar="DB", help=HISTORY_HELP)
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
    add_guard_overrides(p)


def _ack(dsub: Subparsers) -> None:
    p = dsub.add_parser("ack", help="acknowledge a manual runbook step of the running drill")
    p.add_argument("step", type=types.label, metavar="STEP", help="the id of a manual runbook step")
    p.add_argument(
        "--by", type=types.label, default=os.environ.get("USER", "operator"), help="who acknowledges (default: $USER)"
    )
    p.add_argument("--drill", type=types.label, default=None, help="drill name or run id, when several drills run")
    p.add_argument("--runs-dir", type=types.path, default=_runs_default(), help="the running drill's runs directory")


def _schedule(dsub: Subparsers) -> None:
    p = dsub.add_parser("schedule", help="run drills at their cron times (APScheduler) until stopped")
    p.add_argument(
        "paths", nargs="*", type=types.path, default=[Path("drills")], metavar="FILE|DIR", help="default: drills"
    )
    p.add_argument(
        "--runs-dir", type=types.path, default=_runs_default(), help="runs directory passed to each drill run"
    )
    p.add_argument("--history", type=types.path, default=None, metavar="DB", help=HISTORY_HELP)
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


def _export(dsub: Subparsers) -> None:
    p = dsub.add_parser("export", help="print a crontab entry or a Kubernetes CronJob for a drill's schedule")
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--crontab", action="store_true", help="a crontab entry")
    kind.add_argument("--k8s-cronjob", action="store_true", help="a batch/v1 CronJob manifest")
    p.add_argument("file", type=types.path, metavar="FILE", help="the drill file (YAML)")
    p.add_argument("--runs-dir", type=types.path, default=_runs_default(), help="runs directory (crontab)")
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


def _history(dsub: Subparsers) -> None:
    p = dsub.add_parser("history", help="list recorded drill runs, oldest first")
    p.add_argument("name", nargs="?", type=types.label, default=None, metavar="NAME", help="only this drill's runs")
    p.add_argument("--runs-dir", type=types.path, default=_runs_default(), help="runs directory of the history")
    p.add_argument("--history", type=types.path, default=None, metavar="DB", help=HISTORY_HELP)
    p.add_argument("--json", action="store_true", help="machine-readable rows")
