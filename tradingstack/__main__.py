"""Command line of the reference stack: `python -m tradingstack up|down|status|audit --dir DIR`, `describe --profile P`.

Exit 0: done (status: all healthy); 1: the stack could not be started, stopped or read, or is
unhealthy; 2: bad arguments (an unknown --port name, a port outside 1-65535, --matchers < 1 …).
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
from pathlib import Path

from redis.exceptions import RedisError

from clients.procs import role_of
from stackspec.targets import ContainerTarget, ProcessTarget
from tradingstack.audit import run_audit
from tradingstack.describe import describe
from tradingstack.launcher import (
    LaunchError,
    StackStartError,
    read_state,
    stack_status,
    start_stack,
    status_dicts,
    stop_stack,
)
from tradingstack.store import StoreError
from tradingstack.topology import PROFILES, port_names

MAX_MATCHERS = 16


def _port(text: str) -> tuple[str, int]:
    name, sep, port = text.partition("=")
    if not sep or not name or not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected NAME=PORT with a port 1-65535 (e.g. gateway=8080), got {text!r}")
    return name, int(port)


def _matchers(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_MATCHERS:
        raise argparse.ArgumentTypeError(f"expected a number of matching engines 1-{MAX_MATCHERS}, got {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"expected seconds, more than 0 and at most 3600, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tradingstack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the stack detached and write DIR/state.json")
    up.add_argument("--dir", type=Path, required=True)
    up.add_argument("--profile", default="basic", choices=list(PROFILES), help="default: basic")
    up.add_argument("--matchers", type=_matchers, default=2, help=f"matching engines, 1-{MAX_MATCHERS} (default 2)")
    up.add_argument(
        "--port",
        type=_port,
        action="append",
        default=[],
        metavar="NAME=PORT",
        help="fixed port for redis, zookeeper, gateway or matcher-N (default: a free port)",
    )
    up.add_argument("--timeout", type=_seconds, default=60.0, help="seconds for everything to become ready")
    down = commands.add_parser("down", help="stop what DIR/state.json lists (logs are kept)")
    down.add_argument("--dir", type=Path, required=True)
    status = commands.add_parser("status", help="show every instance; exit 0 only if all are healthy")
    status.add_argument("--dir", type=Path, required=True)
    status.add_argument("--json", action="store_true")
    audit = commands.add_parser("audit", help="check the stack's data invariants on its Redis state; JSON out")
    audit.add_argument("--dir", type=Path, required=True)
    what = commands.add_parser("describe", help="print the stack description `up` would write (JSON), start nothing")
    what.add_argument("--profile", default="basic", choices=list(PROFILES), help="default: basic")
    what.add_argument("--matchers", type=_matchers, default=2, help=f"matching engines, 1-{MAX_MATCHERS} (default 2)")
    return parser


def _up(args: argparse.Namespace) -> int:
    known = port_names(args.profile, [f"matcher-{n}" for n in range(1, args.matchers + 1)])
    unknown = sorted({name for name, _ in args.port} - set(known))
    if unknown:
        print(f"up refused: unknown --port name(s) {', '.join(unknown)}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        stack = start_stack(
            args.dir,
            profile=args.profile,
            matchers=args.matchers,
            ports=dict(args.port),
            timeout_s=args.timeout,
        )
    except StackStartError as exc:
        print(f"up failed: {exc.component} did not come up: {exc.reason}", file=sys.stderr)
        if exc.log_tail:
            print(f"--- last lines of the {exc.component} log ---\n{exc.log_tail}", file=sys.stderr)
        print("everything started has been stopped again", file=sys.stderr)
        return 1
    except LaunchError as exc:
        print(f"up refused: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the stack directory cannot be created or written
        print(f"up refused: {exc.filename or args.dir}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started
    print(f"reference stack up in {elapsed:.1f} s; state in {args.dir.resolve() / 'state.json'}")
    for name, url in stack.endpoints.items():
        print(f"  {name:<10} {url}")
    for target in stack.targets.values():
        if isinstance(target, ContainerTarget):
            for member in target.containers:
                print(f"  {member.name:<10} container {(member.container or member.name)[:12]} on {target.engine_url}")
        if not isinstance(target, ProcessTarget):
            continue
        for instance in target.instances:
            role = role_of(instance)
            suffix = f"  ({role})" if role else ""
            print(f"  {instance.name:<10} pid {instance.pid:<8} log {instance.log}{suffix}")
    return 0


def _down(args: argparse.Namespace) -> int:
    for line in stop_stack(args.dir):
        print(line)
    return 0


def _status(args: argparse.Namespace) -> int:
    try:
        rows = stack_status(args.dir)
    except LaunchError as exc:
        print(exc, file=sys.stderr)
        return 1
    healthy = all(row.healthy for row in rows)
    if args.json:
        state = read_state(args.dir)
        name = state.name if state else None
        print(json.dumps({"healthy": healthy, "stack": name, "instances": status_dicts(rows)}))
        return 0 if healthy else 1
    tw = max([len("target"), *(len(row.target) for row in rows)])
    iw = max([len("instance"), *(len(row.instance) for row in rows)])
    print(f"{'target':<{tw}} {'instance':<{iw}} {'pid':>8} {'running':<8} {'healthy':<8} {'role':<10} problem")
    for row in rows:
        print(
            f"{row.target:<{tw}} {row.instance:<{iw}} {row.pid or '-':>8} {'yes' if row.running else 'no':<8} "
            f"{'yes' if row.healthy else 'no':<8} {row.role or '-':<10} {row.problem or ''}"
        )
    return 0 if healthy else 1


def _audit(args: argparse.Namespace) -> int:
    state = read_state(args.dir)
    if state is None:
        print(f"no state.json in {args.dir}: is the stack up?", file=sys.stderr)
        return 1
    try:
        report = run_audit(state.endpoints["redis"])
    except (StoreError, RedisError, OSError) as exc:
        print(f"audit failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report))
    return 0


def _describe(args: argparse.Namespace) -> int:
    print(describe(args.profile, args.matchers).model_dump_json(indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `stack status | head` ends quietly, like any Unix tool
    commands = {"up": _up, "down": _down, "status": _status, "audit": _audit, "describe": _describe}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
