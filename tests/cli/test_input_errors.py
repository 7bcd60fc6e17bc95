"""Each command-line input that once crashed (a traceback, exit 1) or hung now ends at once: exit 2 or 4, one line."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import chaos
from engine.errors import ExitCode
from tests.cli.odd_paths import make_fifo, read_only_dir
from tests.engine.fakes import run_fake
from tests.support.helpers import ROOT
from tests.support.helpers import chaos as run_chaos

DRILL = str(ROOT / "drills" / "matcher-node-loss.yaml")
EXPERIMENT = str(ROOT / "experiments" / "ci-smoke.yaml")
TIMEOUT_S = 30  # a FIFO once made these commands wait forever


def refused(args: list[str], code: int, *message: str) -> str:
    """Run chaos.py ARGS; it must end with `code` and one line on stderr holding every `message` part."""
    result = run_chaos(*args, timeout=TIMEOUT_S)
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == code, output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for part in message:
        assert part in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["drill", "run", DRILL, "--ack-timeout", "5x"], ["--ack-timeout", "invalid duration '5x'", "e.g. '30s'"]),
        (["drill", "run", DRILL, "--ack-timeout", ""], ["--ack-timeout", "invalid duration '': it is empty"]),
        (["drill", "run", DRILL, "--ack-timeout", "99999h"], ["--ack-timeout", "longer than the limit of 7 days"]),
        (["drill", "schedule", "--for", "5x", str(ROOT / "drills")], ["--for", "invalid duration '5x'"]),
        (["proxy", "serve", "--port", "99999"], ["--port", "'99999': out of range: a port is 0 to 65535"]),
        (["proxy", "serve", "--port", "-1"], ["--port", "'-1': out of range"]),
        (["proxy", "serve", "--host", "999.1.1.1"], ["--host", "'999.1.1.1': not a valid IPv4 address"]),
    ],
    ids=["ack-timeout-5x", "ack-timeout-empty", "ack-timeout-99999h", "for-5x", "port-99999", "port--1", "host"],
)
def test_bad_option_values_exit_2_in_one_line(args: list[str], message: list[str]) -> None:
    refused(args, ExitCode.INVALID_INPUT, *message)


def test_an_unknown_stack_port_name_exits_2_listing_the_known_names(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    refused(
        ["stack", "up", "--dir", str(stack), "--port", "nope=1234"],
        ExitCode.INVALID_INPUT,
        "unknown name(s) 'nope'",
        "known: redis, zookeeper, toxiproxy, gateway, matcher-1, matcher-2",
    )
    assert not stack.exists(), "nothing was started"


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[Path]:
    """A directory nothing can be created in, even by root."""
    with read_only_dir(tmp_path) as path:
        yield path


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    run_fake(tmp_path, "- {at: 10s, duration: 8s, kind: fake.break, target: matcher}\n")
    return tmp_path / "run" / "journal.json"


@pytest.mark.parametrize("command", ["run", "drill run", "abort", "report --out", "stack up"])
def test_a_read_only_output_directory_exits_4_before_anything_starts(
    tmp_path: Path, locked: Path, journal: Path, command: str
) -> None:
    target = locked / "out"
    stack = tmp_path / "stack"
    args = {
        "run": ["run", EXPERIMENT, "--stack-up", "--runs-dir", str(target)],
        "drill run": [
            *["drill", "run", DRILL, "--non-interactive", "--no-web", "--stack-up", "--runs-dir", str(target)],
            *["--ignore-market-hours", "--reason", "test"],
        ],
        "abort": ["abort", "--runs-dir", str(target)],
        "report --out": ["report", str(journal), "--out", str(target)],
        "stack up": ["stack", "up", "--dir", str(target)],
    }[command]
    option = "--dir" if command == "stack up" else "--out" if command == "report --out" else "--runs-dir"
    refused(args, ExitCode.CANNOT_RUN, f"{option} {target}: cannot create anything in {locked}")
    assert not target.exists() and not stack.exists()


def test_report_of_dev_zero_is_refused_without_reading_it() -> None:
    refused(["report", "/dev/zero"], ExitCode.INVALID_INPUT, "/dev/zero: is a character device")


@contextlib.contextmanager
def fifo_with_a_writer(tmp_path: Path) -> Iterator[Path]:
    """A FIFO a writer waits on, as `<(generate)` gives: reading it would block until the writer writes."""
    fifo = make_fifo(tmp_path)
    stop = threading.Event()

    def feed() -> None:
        with contextlib.suppress(OSError), fifo.open("wb"):
            stop.wait(TIMEOUT_S)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        yield fifo
    finally:
        stop.set()
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))  # release a writer still waiting for a reader
        writer.join(timeout=5)


@pytest.mark.parametrize(
    "command", [["validate"], ["run"], ["drill", "run"], ["report"], ["drill", "export", "--crontab"]]
)
def test_a_fifo_as_file_is_refused_at_once(tmp_path: Path, command: list[str]) -> None:
    with fifo_with_a_writer(tmp_path) as fifo:
        refused([*command, str(fifo)], ExitCode.INVALID_INPUT, f"{fifo}: is a FIFO (named pipe)")


def test_validate_into_a_closed_pipe_ends_quietly_with_its_own_exit_code() -> None:
    files = [str(p) for p in sorted((ROOT / "experiments").glob("*.yaml"))]
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line, like `| head -0`
    try:
        result = subprocess.run(
            [sys.executable, str(ROOT / "chaos.py"), "validate", *files],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=TIMEOUT_S,
            cwd=ROOT,
            check=False,
        )
    finally:
        os.close(write_end)
    assert result.stderr == "", result.stderr  # no BrokenPipeError traceback, no "Exception ignored"
    assert result.returncode == ExitCode.PASSED  # every file was still checked; all are valid


def test_an_unexpected_error_is_one_line_naming_the_kept_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(args: object) -> int:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(chaos, "cmd_stack", broken)
    assert chaos.main(["stack", "status", "--dir", "/nonexistent"]) == ExitCode.CANNOT_RUN
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("internal error: ZeroDivisionError: a bug (a bug in chaos.py; the traceback is in ")
    kept = Path(line.split("the traceback is in ")[1].split(";")[0])
    try:
        assert "Traceback" in kept.read_text() and "raise ZeroDivisionError" in kept.read_text()
    finally:
        kept.unlink()


def test_an_os_error_is_one_line_naming_the_path(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def full(args: object) -> int:
        raise OSError(28, "No space left on device", "/runs/x/journal.json")

    monkeypatch.setattr(chaos, "cmd_stack", full)
    assert chaos.main(["stack", "status", "--dir", "/nonexistent"]) == ExitCode.CANNOT_RUN
    err = capsys.readouterr().err
    assert err == "error: /runs/x/journal.json: No space left on device (nothing more was done)\n"


def test_help_lists_the_exit_codes_and_every_option_has_help() -> None:
    from cli.parser import build_parser  # here, not at the top: the other tests also run against older code

    parser = build_parser()
    assert "exit codes:" in parser.format_help()
    missing = []
    stack = [parser]
    while stack:
        current = stack.pop()
        for action in current._actions:
            if action.choices and isinstance(action.choices, dict):
                stack.extend(action.choices.values())
            elif not action.help and action.dest != "help":
                missing.append(f"{current.prog} {action.dest}")
    assert not missing, missing
