"""The typed argument validators of chaos.py: what each accepts, and the one-line reason it refuses the rest."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import pytest

from cli import args as types
from cli.checks import check_arguments
from cli.parser import build_parser
from engine.errors import ExitCode, InvalidInputError
from tests.cli.odd_paths import ODD_INPUTS, ODD_OUTPUT_DIRS, read_only_dir
from tests.support.helpers import ROOT


@pytest.mark.parametrize(
    ("check", "text", "value"),
    [
        (types.duration, "30s", 30.0),
        (types.duration, " 10m ", 600.0),
        (types.duration, "1h30m", 5400.0),
        (types.port, "8080", 8080),
        (types.port, "65535", 65535),
        (types.port_or_any, "0", 0),
        (types.count, "1", 1),
        (types.seed, "0", 0),
        (types.seed, str(2**63 - 1), 2**63 - 1),
        (types.host, "127.0.0.1", "127.0.0.1"),
        (types.host, "::1", "::1"),
        (types.host, "[::1]", "::1"),
        (types.host, "localhost", "localhost"),
        (types.host, "proxy-1.example.com", "proxy-1.example.com"),
        (types.name_port, "gateway=8080", ("gateway", 8080)),
        (types.k8s_name, "chaos-runs", "chaos-runs"),
        (types.label, "ops on call", "ops on call"),
    ],
)
def test_accepted(check: Callable[[str], object], text: str, value: object) -> None:
    assert check(text) == value


@pytest.mark.parametrize(
    ("check", "text", "reason"),
    [
        (types.duration, "5x", "invalid duration '5x': use a number with a unit, e.g. '30s'"),
        (types.duration, "", "invalid duration '': it is empty"),
        (types.duration, "99999h", "longer than the limit of 7 days (168h)"),
        (types.duration, "0s", "must be longer than zero"),
        (types.duration, "9" * 400 + "s", "characters; write it shorter"),
        (types.port, "0", "out of range: a port is 1 to 65535"),
        (types.port, "99999", "out of range: a port is 1 to 65535"),
        (types.port_or_any, "-1", "out of range: a port is 0 to 65535"),
        (types.port_or_any, "http", "not a whole number, expected a port"),
        (types.port_or_any, "9" * 5000, "not a whole number"),
        (types.count, "0", "out of range: a count is 1 to 1000000"),
        (types.seed, "-1", "out of range: a seed is 0 to"),
        (types.seed, str(2**63), "out of range"),
        (types.host, "999.1.1.1", "not a valid IPv4 address"),
        (types.host, "", "not an IP address or a valid host name"),
        (types.host, "bad_host!", "not an IP address or a valid host name"),
        (types.host, "a" * 64 + ".com", "not an IP address or a valid host name"),
        (types.name_port, "nope", "expected NAME=PORT; use e.g. gateway=8080"),
        (types.name_port, "=1234", "expected NAME=PORT"),
        (types.name_port, "gateway=99999", "out of range: a port is 1 to 65535"),
        (types.k8s_name, "Chaos_Runs", "not a Kubernetes name"),
        (types.label, "", "expected a non-empty single line"),
        (types.label, "two\nlines", "expected a non-empty single line"),
        (types.path, "", "an empty path"),
    ],
)
def test_refused_in_one_line_naming_the_fix(check: Callable[[str], object], text: str, reason: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as info:
        check(text)
    message = str(info.value)
    assert reason in message
    assert "\n" not in message and len(message) < 300


def test_port_names_are_checked_against_the_profile_listing_the_known_ones() -> None:
    types.check_port_names([("gateway", 8080)], ["redis", "gateway"], "basic")
    with pytest.raises(InvalidInputError, match="unknown name\\(s\\) 'nope' for profile basic; known: redis, gateway"):
        types.check_port_names([("nope", 1234)], ["redis", "gateway"], "basic")


@pytest.mark.parametrize("kind", sorted(ODD_INPUTS))
def test_an_input_file_of_every_odd_kind_is_refused_by_kind(tmp_path: Path, kind: str) -> None:
    path = ODD_INPUTS[kind](tmp_path)
    if path is None:
        pytest.skip("no unreadable file can be made here (root without a write-only sysfs attribute)")
    expected = {
        "fifo": "is a FIFO (named pipe), expected an experiment file",
        "socket": "is a socket",
        "dev-zero": "is a character device",
        "dev-null": "is a character device",
        "directory": "is a directory",
        "dangling-link": "is a dangling symbolic link",
        "looping-link": "is a symbolic link loop",
        "unreadable": "permission denied",
        "huge-sparse": "file is 200,000,000 bytes; the limit is 1,000,000 for an experiment file",
        "missing": "no such file",
        "under-a-file": "a part of the path is a file, not a directory",
    }
    if kind not in expected:  # readable regular files: their content is the loaders' business
        types.input_file(path, "experiment")
        return
    with pytest.raises(InvalidInputError) as info:
        types.input_file(path, "experiment")
    (problem,) = info.value.problems
    assert str(problem).startswith(f"{path}: {expected[kind]}"), problem


@pytest.mark.parametrize("kind", sorted(ODD_OUTPUT_DIRS))
def test_an_output_dir_that_cannot_be_written_is_refused_up_front(tmp_path: Path, kind: str) -> None:
    where = ODD_OUTPUT_DIRS[kind](tmp_path)
    with pytest.raises(types.OutputDirError) as info:
        types.writable_dir(where, "--runs-dir")
    assert info.value.exit_code == ExitCode.CANNOT_RUN
    assert str(info.value).startswith(f"--runs-dir {where}: ") and "\n" not in str(info.value)


def test_a_read_only_dir_is_refused_and_a_creatable_one_is_not_created(tmp_path: Path) -> None:
    refused = pytest.raises(types.OutputDirError, match="cannot create anything in")
    with read_only_dir(tmp_path) as locked, refused:
        types.writable_dir(locked / "runs", "--runs-dir")
    types.writable_dir(tmp_path / "new" / "runs", "--runs-dir")
    assert not (tmp_path / "new").exists(), "the check must not create what it checks"
    assert not list(tmp_path.glob("**/.chaos-write-check-*")), "the probe is removed again"


def test_a_history_that_is_not_sqlite_is_invalid_input(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite"
    db.write_text("not a database")
    with pytest.raises(InvalidInputError, match="is not an SQLite database"):
        types.writable_history(db)
    with pytest.raises(InvalidInputError, match="is not an SQLite database"):
        types.history_file(db)


def test_checks_after_parsing_refuse_a_stack_dir_that_is_a_file(tmp_path: Path) -> None:
    file = tmp_path / "stack"
    file.write_text("")
    experiment = str(ROOT / "experiments" / "ci-smoke.yaml")
    args = build_parser().parse_args(
        ["run", experiment, "--runs-dir", str(tmp_path / "runs"), "--stack-dir", str(file)]
    )
    with pytest.raises(InvalidInputError, match="is a file, expected a directory"):
        check_arguments(args)


def test_parsing_is_syntax_only_the_disk_is_checked_after_it(tmp_path: Path) -> None:
    # A CronJob's command names files of its container: chaos.py must parse it where they do not exist.
    args = build_parser().parse_args(["drill", "run", "/drills/not-here.yaml", "--non-interactive"])
    assert args.file == Path("/drills/not-here.yaml")
    with pytest.raises(InvalidInputError, match=r"/drills/not-here\.yaml: no such file"):
        check_arguments(args)
