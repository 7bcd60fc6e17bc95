"""Checks of parsed chaos.py arguments that depend on each other or on the disk, run before any command starts."""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

from cli import args as types
from drilling.history import default_history_path
from engine.files import kind_of
from engine.stack import default_stack_dir

# The input files of each command and their kind (engine.files.LIMITS): (command, action) → (argument, kind).
INPUT_FILES: dict[tuple[str, str | None], list[tuple[str, str]]] = {
    ("run", None): [("file", "experiment")],
    ("report", None): [("journal", "journal")],
    ("proxy", "serve"): [("config", "proxy config")],
    ("drill", "run"): [("file", "drill")],
    ("drill", "export"): [("file", "drill")],
}


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse what cannot work before anything starts.

    Input files come first: one that is missing, not a regular file (a FIFO, a device, a directory),
    unreadable or over its size limit raises InvalidInputError (exit 2) — `validate` leaves this to
    the loaders, to report every file. Then output directories that cannot be created or written
    raise OutputDirError (exit 4, "could not run").
    """
    command = args.command
    _check_inputs(args)
    # `recover` is not refused here: undoing a fault matters more than crossing it out of the ledger.
    if command in ("run", "abort"):
        types.writable_dir(args.runs_dir, "--runs-dir")
    elif command == "report":
        types.writable_dir(args.out or args.journal.parent, "--out" if args.out else "the directory of PATH")
    elif command == "stack":
        _check_stack(args)
    elif command == "drill":
        _check_drill(args)
    stack_dir = getattr(args, "stack_dir", None)
    if stack_dir is not None:
        _existing_dir_or_nothing(stack_dir, "--stack-dir")


def _check_inputs(args: argparse.Namespace) -> None:
    action = getattr(args, "drill_command", None) if args.command == "drill" else getattr(args, "action", None)
    for name, kind in INPUT_FILES.get((args.command, action), []):
        file = getattr(args, name)
        if file is not None:
            types.input_file(file, kind)
    if args.command == "report" and args.history is not None:
        types.history_file(args.history)
    if args.command == "drill" and action == "schedule":
        for found in args.paths:
            types.file_or_dir(found)


def _check_stack(args: argparse.Namespace) -> None:
    if args.action in ("check", "discover"):
        return  # their files and --out are checked by cli.stack_commands, as each is used
    stack_dir = args.dir or default_stack_dir()
    if args.action == "up":  # `down` is never refused: stopping the processes comes first
        types.writable_dir(stack_dir, "--dir")
    if args.action == "up" and args.port:
        from tradingstack.topology import port_names  # the stack's own list; imported only for `stack up`

        known = port_names(args.profile, ["matcher-1", "matcher-2"])
        types.check_port_names(args.port, known, args.profile)


def _check_drill(args: argparse.Namespace) -> None:
    action = args.drill_command
    history: Path = getattr(args, "history", None) or default_history_path(args.runs_dir)
    if action in ("run", "schedule", "ack"):
        types.writable_dir(args.runs_dir, "--runs-dir")
    if action in ("run", "schedule"):
        types.writable_history(history, "--history")
    elif action == "history" and os.path.lexists(history):
        types.history_file(history)


def _existing_dir_or_nothing(where: Path, option: str) -> None:
    """A directory option that names something else (a file, a FIFO) is invalid input."""
    try:
        info = os.stat(where)
    except (OSError, ValueError):
        return  # missing (the command says what that means) or unreachable (the write check says why)
    if not stat.S_ISDIR(info.st_mode):
        raise types.usage_error(f"{option} {where}", f"is {kind_of(info.st_mode) or 'a file'}, expected a directory")
