"""A small real process supervisor for tests (there is no systemd here), and its control command.

    python -m tests.support.mini_supervisor run --control DIR --pidfile FILE [--delay S | --never] -- ARGV...
    python -m tests.support.mini_supervisor start --control DIR [--timeout S] [--hold-stdout]

`run` starts ARGV as its child, writes the child's PID to FILE and its own to DIR/supervisor.pid, and
when the child dies starts it again after `--delay` seconds — or, with `--never`, only when asked.
`start` is the restart command: it asks the supervisor in DIR to start the child unless it runs,
waits until it does, and prints its PID; exit 0, or 3 when no supervisor runs there, 4 on timeout.
With `--hold-stdout` it leaves a background process holding its stdout open for a minute (what a
daemonising init script does), its PID in DIR/lingerer.pid: a caller that reads the output until EOF
hangs. SIGTERM ends the supervisor and its child.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

POLL_S = 0.02
_stopping = False


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _stop(signum: int, frame: object) -> None:
    global _stopping
    _stopping = True


def supervise(control: Path, pidfile: Path, argv: list[str], delay_s: float | None) -> int:
    """Run `argv`, restart it after `delay_s` (None: only on request) whenever it dies, until SIGTERM."""
    signal.signal(signal.SIGTERM, _stop)
    control.mkdir(parents=True, exist_ok=True)
    _write(control / "supervisor.pid", f"{os.getpid()}\n")
    log = open(control / "child.log", "ab")  # noqa: SIM115 - held for the supervisor's whole life

    def start() -> subprocess.Popen[bytes]:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        _write(pidfile, f"{child.pid}\n")
        return child

    child: subprocess.Popen[bytes] | None = start()
    died_at = 0.0
    while not _stopping:
        if child is not None and child.poll() is not None:
            child, died_at = None, time.monotonic()
        for request in sorted(control.glob("request-*")):
            if child is None:
                child = start()
            _write(control / f"done-{request.name.removeprefix('request-')}", f"{child.pid}\n")
            request.unlink()
        if child is None and delay_s is not None and time.monotonic() - died_at >= delay_s:
            child = start()
        time.sleep(POLL_S)
    if child is not None and child.poll() is None:
        child.terminate()
        try:
            child.wait(5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(5)
    (control / "supervisor.pid").unlink(missing_ok=True)
    return 0


def _supervisor_alive(control: Path) -> bool:
    try:
        pid = int((control / "supervisor.pid").read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return False
    return True


def request_start(control: Path, timeout_s: float, hold_stdout: bool) -> int:
    """Ask the supervisor in `control` to start its child; print the child's PID."""
    if not _supervisor_alive(control):
        print(f"mini_supervisor: no supervisor runs for {control}", file=sys.stderr)
        return 3
    token = uuid.uuid4().hex
    _write(control / f"request-{token}", "start\n")
    done = control / f"done-{token}"
    deadline = time.monotonic() + timeout_s
    while not done.exists():
        if time.monotonic() > deadline:
            print(f"mini_supervisor: the supervisor did not answer within {timeout_s:g}s", file=sys.stderr)
            return 4
        time.sleep(POLL_S)
    print(f"started pid {done.read_text().strip()}")
    done.unlink()
    if hold_stdout:
        lingerer = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL, start_new_session=True)
        _write(control / "lingerer.pid", f"{lingerer.pid}\n")
    sys.stdout.flush()
    return 0


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mini_supervisor")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run")
    run.add_argument("--control", type=Path, required=True)
    run.add_argument("--pidfile", type=Path, required=True)
    when = run.add_mutually_exclusive_group()
    when.add_argument("--delay", type=float, default=0.3)
    when.add_argument("--never", action="store_true")
    run.add_argument("argv", nargs="+")
    start = commands.add_parser("start")
    start.add_argument("--control", type=Path, required=True)
    start.add_argument("--timeout", type=float, default=10.0)
    start.add_argument("--hold-stdout", action="store_true")
    parsed = parser.parse_args(args)
    if parsed.command == "run":
        return supervise(parsed.control, parsed.pidfile, parsed.argv, None if parsed.never else parsed.delay)
    return request_start(parsed.control, parsed.timeout, parsed.hold_stdout)


if __name__ == "__main__":
    sys.exit(main())
