"""What several commands share: the exit-code table in their help, and the guard overrides of `run` and `drill run`."""

from __future__ import annotations

import argparse

from cli import args as types
from engine.errors import ExitCode

EXIT_CODES = "exit codes:\n" + "\n".join(f"  {code:>3}  {text}" for code, text in ExitCode.TABLE)


def add_guard_overrides(p: argparse.ArgumentParser) -> None:
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
