"""`chaos.py import ctk FILE [-o OUT]`: its options (shared with a `run` of a Chaos Toolkit file) and handler."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import yaml

from cli import args as types
from engine.durations import parse_duration
from engine.errors import ExitCode
from engine.journal import write_atomic
from importers.ctk import convert
from importers.ctk_document import CtkImportError
from importers.ctk_options import DEFAULT_STACK, ConvertOptions

__all__ = ["add_conversion_arguments", "add_import_parser", "import_command", "options_from_args"]


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 100_000:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: a whole number from 1 to 100000")
    return int(text)


def _pair(what: str) -> Callable[[str], tuple[str, str]]:
    def parse(text: str) -> tuple[str, str]:
        key, sep, value = text.rpartition("=") if what == "URL=NAME" else text.partition("=")
        if not sep or not key or not value:
            raise argparse.ArgumentTypeError(f"invalid {text!r}: expected {what}")
        return key, value

    return parse


def add_conversion_arguments(p: argparse.ArgumentParser) -> None:
    """The conversion's choices (docs/chaos-toolkit.md), for `import ctk` and for `run` of a Chaos Toolkit file."""
    p.add_argument(
        "--stack",
        type=types.label,
        default=DEFAULT_STACK,
        metavar="STACK",
        help=f"reference:PROFILE or a stack description file (default {DEFAULT_STACK})",
    )
    p.add_argument(
        "--locustfile",
        type=types.path,
        help="the load (default: loadgen/trading.py on the reference stack, else loadgen/http_get.py, light GETs)",
    )
    p.add_argument("--users", type=_count, help="Locust users (default 10 with the trading load, else 2)")
    p.add_argument("--duration", type=_duration, help="load duration (default: the timeline's end + --recovery)")
    p.add_argument("--load-host", type=types.label, help="stack endpoint name or loopback URL the load goes to")
    for flag, default, what in (
        ("--warmup", "5s", "start of the load left out of the baseline"),
        ("--baseline", "10s", "steady state judged before the method starts (Chaos Toolkit's hypothesis before)"),
        ("--recovery", "20s", "load after the last fault ends"),
        ("--min-fault", "10s", "shortest time a fault still in place at the method's end lasts"),
        ("--stable-for", "3s", "recovery.stable_for"),
        ("--probe-interval", "1s", "interval of the HTTP probes"),
    ):
        p.add_argument(flag, type=_duration, default=parse_duration(default), help=f"{what} (default {default})")
    _add_mapping_arguments(p)


def _add_mapping_arguments(p: argparse.ArgumentParser) -> None:
    """How the document's names map onto the stack, and what the conversion may drop."""
    p.add_argument(
        "--endpoint",
        type=_pair("URL=NAME"),
        action="append",
        default=[],
        metavar="URL=NAME",
        help="a URL prefix of the document that is the stack endpoint NAME (repeatable)",
    )
    p.add_argument(
        "--target",
        type=_pair("KEY=TARGET"),
        action="append",
        default=[],
        metavar="KEY=TARGET[/INSTANCE]",
        help="an activity name, pattern, PID or label selector that means this stack target (repeatable)",
    )
    p.add_argument(
        "--var",
        type=_pair("NAME=VALUE"),
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a configuration value (overrides the document's; VALUE read as a YAML scalar)",
    )
    p.add_argument(
        "--subsumed-rollback",
        type=types.label,
        action="append",
        default=[],
        metavar="NAME",
        help="a rollback you declare undone by the automatic rollbacks (repeatable)",
    )
    p.add_argument(
        "--method-probes",
        choices=("report", "judge"),
        default="report",
        help="HTTP probes of the method: listed only (default), or judged over the fault windows",
    )
    p.add_argument(
        "--ignore-controls", action="store_true", help="drop the document's controls (listed) instead of refusing it"
    )


def add_import_parser(sub: Any) -> argparse.ArgumentParser:
    """Add `import ctk` to chaos.py's subcommands (`sub` is its add_subparsers() result); returns `ctk`'s parser."""
    parser = sub.add_parser("import", help="convert experiments of other tools into experiment files")
    kinds = parser.add_subparsers(dest="import_kind", required=True, metavar="KIND")
    p: argparse.ArgumentParser = kinds.add_parser("ctk", help="a Chaos Toolkit experiment (JSON or YAML)")
    p.add_argument("file", type=Path, metavar="FILE", help="the Chaos Toolkit experiment")
    p.add_argument("-o", "--out", type=Path, help="write the experiment here (default: standard output)")
    add_conversion_arguments(p)
    return p


def _scalar(text: str) -> Any:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, str | int | float | bool) else text


def options_from_args(args: argparse.Namespace, out: Path | None = None) -> ConvertOptions:
    """ConvertOptions from parsed arguments of add_conversion_arguments."""
    return ConvertOptions(
        stack=args.stack,
        locustfile=args.locustfile.resolve() if args.locustfile else None,
        users=args.users,
        duration_s=args.duration,
        warmup_s=args.warmup,
        baseline_s=args.baseline,
        recovery_s=args.recovery,
        min_fault_s=args.min_fault,
        stable_for_s=args.stable_for,
        probe_interval_s=args.probe_interval,
        load_host=args.load_host,
        endpoints=dict(args.endpoint),
        targets=dict(args.target),
        variables={name: _scalar(value) for name, value in args.var},
        subsumed_rollbacks=frozenset(args.subsumed_rollback),
        method_probes=args.method_probes,
        ignore_controls=args.ignore_controls,
        out=out,
    )


def import_command(args: argparse.Namespace, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Convert `args.file`; print the conversion report, then write the experiment to `args.out` or stdout.

    Exit codes: 0 converted, 2 refused (every problem printed as file:line: path: message, nothing written),
    4 the output could not be written. With the YAML on stdout the report goes to stderr.
    """
    out_stream, err_stream = stdout or sys.stdout, stderr or sys.stderr
    out: Path | None = args.out
    try:
        conversion = convert(args.file, options_from_args(args, out))
    except CtkImportError as exc:
        for problem in exc.problems:
            print(problem, file=err_stream)
        print(f"{args.file}: not converted ({len(exc.problems)} problem(s)); nothing written", file=err_stream)
        return ExitCode.INVALID_INPUT
    report = out_stream if out is not None else err_stream
    print("\n".join(conversion.report_lines()), file=report)
    if out is None:
        out_stream.write(conversion.yaml_text)
        return ExitCode.PASSED
    try:
        write_atomic(out, conversion.yaml_text)
    except OSError as exc:
        print(f"error: {out}: {exc.strerror or exc}", file=err_stream)
        return ExitCode.CANNOT_RUN
    print(f"wrote {out}", file=report)
    return ExitCode.PASSED
