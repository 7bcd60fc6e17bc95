"""`chaos.py stack`: the reference stack (up, down, status) and any stack description (check, discover, status FILE).

The reference stack is a separate program (`python -m tradingstack`), called as a subprocess by
`cli.commands.cmd_stack`; `check`, `discover` and `status FILE` run here, on `engine.stack_check` and
`engine.discover`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cli import args as types
from cli.shared_options import EXIT_CODES
from clients.errors import ClientError
from engine.errors import ExitCode
from engine.model import REFERENCE_PROFILES
from engine.stack import LiveOverlay, read_description
from stackspec.targets import SshHost

if TYPE_CHECKING:
    from cli.drill_parser import Subparsers

_CHECK_EPILOG = (
    "A problem is anything that would stop a fault or its rollback: an instance not found (no match, or\n"
    "several), a failing health check, an SSH login refused, no right to signal the process, a missing\n"
    "restart program, a proxy, engine, API or endpoint that does not answer. nft, tc and netem are shown\n"
    "per host, not judged (the experiment's preflight refuses a fault a host cannot take).\n\n" + EXIT_CODES
)


def _reference_options(p: argparse.ArgumentParser) -> None:
    """The options `stack up|down|status` have always taken (each accepted by all three, as before)."""
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


def add_stack_parser(sub: Subparsers) -> None:
    stack = sub.add_parser(
        "stack",
        help="the reference trading stack (up, down, status) and your own system's stack description "
        "(check, discover, status FILE)",
    )
    actions = stack.add_subparsers(dest="action", required=True, metavar="ACTION")
    _reference_options(actions.add_parser("up", help="start the reference stack"))
    _reference_options(actions.add_parser("down", help="stop the processes the reference stack started"))
    status = actions.add_parser(
        "status",
        help="who runs and is healthy: the reference stack, or the stack description FILE",
        description="Without FILE: the reference stack in --dir. With FILE: every process instance of that "
        "stack description, found (by pid or match rules) and healthy or not. Exit 0 when all are, else 1.",
    )
    status.add_argument("file", nargs="?", type=types.path, default=None, metavar="FILE", help="a stack description")
    _reference_options(status)
    _check_parser(actions)
    _discover_parser(actions)


def _check_parser(actions: Subparsers) -> None:
    p = actions.add_parser(
        "check",
        help="hold a stack description against the live system: found, healthy, SSH, signal rights, nft/tc/netem",
        epilog=_CHECK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", type=types.path, metavar="FILE", help="the stack description (YAML or JSON)")
    p.add_argument("--json", action="store_true", help="the result as JSON (stack, ok, problems, hosts, targets)")
    p.add_argument(
        "--parallel",
        type=_parallel,
        default=16,
        metavar="N",
        help="hosts and instances checked at once, 1-256 (default 16)",
    )


def _parallel(text: str) -> int:
    value = types.count(text)
    if value > 256:
        raise argparse.ArgumentTypeError(f"{text!r}: out of range: at most 256 at once; use e.g. 16")
    return value


def _discover_parser(actions: Subparsers) -> None:
    p = actions.add_parser(
        "discover",
        help="list the processes listening on TCP ports (here, or over SSH) and write a draft stack description",
        description="Lists every process listening on a TCP port, with its command line, and writes a draft "
        "stack description (YAML, with comments saying what to edit) with one process target per program. "
        "Without --ssh: this host. Then: edit the draft, and `chaos.py stack check` it.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--ssh",
        type=types.ssh_target,
        action="append",
        default=[],
        metavar="USER@HOST[:PORT]",
        help="a host to look at over SSH (repeatable; key-based login, its host key already in --known-hosts)",
    )
    p.add_argument("--local", action="store_true", help="with --ssh: this host too (without --ssh it always is)")
    p.add_argument("--key", type=types.path, default=None, help="private key for --ssh (default: the ssh-agent's keys)")
    p.add_argument(
        "--known-hosts",
        type=types.path,
        default=Path("~/.ssh/known_hosts"),
        help="known_hosts file holding the hosts' keys (default ~/.ssh/known_hosts; unknown hosts are refused)",
    )
    p.add_argument("--out", type=types.path, default=None, help="write the draft here (default: standard output)")
    p.add_argument("--name", type=types.label, default="my-system", help="the draft's stack name (default my-system)")


def is_description_command(args: argparse.Namespace) -> bool:
    """True for the `stack` actions that work on a stack description rather than the reference stack."""
    return args.action in ("check", "discover") or (args.action == "status" and args.file is not None)


def stack_description_command(args: argparse.Namespace) -> int:
    if args.action == "discover":
        return _discover(args)
    types.input_file(args.file, "stack")  # InvalidInputError: exit 2
    description = read_description(args.file)  # file:line problems: exit 2
    description = LiveOverlay(args.file).apply(description)  # PIDs a rollback recorded beside the file
    from engine.stack_check import check_stack, render, stack_status

    if args.action == "check":
        result = check_stack(description, args.parallel)
        code = ExitCode.PASSED if result.ok else ExitCode.CANNOT_RUN
        title = "stack check"
    else:
        result = stack_status(description)
        code = ExitCode.PASSED if result.ok else ExitCode.DEVIATED
        title = "stack status"
    if args.json:
        sys.stdout.write(json.dumps({"file": str(args.file), **result.to_json()}, indent=2) + "\n")
    else:
        sys.stdout.write(render(result, f"{title} {args.file}"))
    return code


def _ssh_hosts(args: argparse.Namespace) -> list[SshHost]:
    key = str(args.key.expanduser()) if args.key is not None else None
    return [
        SshHost(address=address, port=port, user=user, key_file=key, known_hosts=str(args.known_hosts))
        for user, address, port in args.ssh
    ]


def _discover(args: argparse.Namespace) -> int:
    from engine.discover import discover, draft, listing

    hosts = _ssh_hosts(args)
    if args.out is not None:
        types.writable_dir(args.out.parent if str(args.out.parent) else Path("."), "--out")
    try:
        found = discover(hosts, local=args.local or not hosts)
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.CANNOT_RUN
    text = draft(found, args.name)
    if args.out is None:
        sys.stderr.write(listing(found))
        sys.stdout.write(text)
        return ExitCode.PASSED
    tmp = args.out.with_name(f".{args.out.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, args.out)
    sys.stdout.write(listing(found))
    print(f"draft written to {args.out}: edit it, then `chaos.py stack check {args.out}`")
    return ExitCode.PASSED
