#!/usr/bin/env python3
"""chaos.py — the command line: parse arguments, call the engine and reports, exit with a documented code."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from cli.checks import check_arguments
from cli.commands import (
    cmd_drill,
    cmd_proxy,
    cmd_recover,
    cmd_report,
    cmd_run,
    cmd_schema,
    cmd_stack,
    cmd_validate,
    problems_exit,
)
from cli.import_commands import import_command
from cli.last_resort import guarded
from cli.parser import build_parser
from engine.api import press_abort
from engine.errors import ChaosError, ExitCode, InvalidInputError

# `_parser` is the name tests and manifests use to check command lines against chaos.py.
_parser = build_parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every outcome is an exit code of the documented table, never a traceback."""
    given = list(sys.argv[1:] if argv is None else argv)
    return guarded(lambda: _main(given), given)


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_arguments(args)
        if args.command == "validate":
            return cmd_validate(args.files)
        if args.command == "schema":
            return cmd_schema(args.stack, args.markdown)
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
        if args.command == "import":
            return import_command(args)
    except InvalidInputError as exc:
        return problems_exit(exc)
    except ChaosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
