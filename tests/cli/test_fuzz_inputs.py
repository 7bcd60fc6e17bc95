"""Input fuzzing: every option value and every kind of path ends in exit 2 or 4 with one line — no traceback, no hang.

Option values are generated with hypothesis (bounded example counts; about 20 s in all); the odd
kinds of path are few enough to try every one with every command that takes a file or a directory.
chaos.py runs in-process (fast) with an alarm against hangs; the two programs it starts
(`python -m tradingstack`, `python -m chaosproxy`) run as subprocesses with a timeout.
Each command line is built so that even a value that turns out valid cannot start anything: it is
paired with an argument that is refused (a missing file, an unwritable directory).
"""

from __future__ import annotations

import contextlib
import io
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chaos
from engine.errors import ExitCode
from tests.cli.odd_paths import ODD_INPUTS, ODD_OUTPUT_DIRS, make_under_a_file
from tests.engine.fakes import run_fake
from tests.support.helpers import ROOT

HANG_S = 10
DRILL = str(ROOT / "drills" / "matcher-node-loss.yaml")
EXPERIMENT = str(ROOT / "experiments" / "ci-smoke.yaml")
FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))


class Hang(Exception):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise Hang(f"no answer within {HANG_S} s")


@contextlib.contextmanager
def hang_alarm() -> Iterator[None]:
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(HANG_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_in_process(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with hang_alarm(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = chaos.main(argv)
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code if isinstance(exc.code, int) else ExitCode.INVALID_INPUT
    return code, out.getvalue(), err.getvalue()


def assert_refused(argv: list[str], codes: tuple[int, ...] = (ExitCode.INVALID_INPUT, ExitCode.CANNOT_RUN)) -> None:
    code, out, err = run_in_process(argv)
    shown = f"chaos.py {argv!r} → {code}\nstdout: {out}\nstderr: {err}"
    assert "Traceback" not in out + err, shown
    assert code in codes, shown
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].strip(), shown


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A missing file, a directory nothing can be created in, a real journal, a file that is not SQLite."""
    tmp = tmp_path_factory.mktemp("fuzz")
    run_fake(tmp, "- {at: 10s, duration: 8s, kind: fake.break, target: matcher}\n")
    not_sqlite = tmp / "not-a-db.sqlite"
    not_sqlite.write_text("plain text")
    return {
        "missing": str(tmp / "missing.yaml"),
        "unwritable": str(make_under_a_file(tmp)),
        "journal": str(tmp / "run" / "journal.json"),
        "not-sqlite": str(not_sqlite),
    }


# --- option values ---------------------------------------------------------------------------------

durations = st.one_of(
    st.text(max_size=24),
    st.from_regex(r"-?\d{1,7}(\.\d{1,3})?(ms|s|m|h|d|x|)", fullmatch=True),
    st.sampled_from(["", "0s", "99999h", "1e3s", "nan", "inf", "5 m", "10m", "1h" * 200, "9" * 400 + "s"]),
)
numbers = st.one_of(
    st.text(max_size=12),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["", "0", "-1", "65536", "99999", "1e3", "0x50", " 80 ", "9" * 5000]),
)
hosts = st.one_of(
    st.text(max_size=40),
    st.ip_addresses().map(str),
    st.from_regex(r"[0-9]{1,4}(\.[0-9]{1,4}){3}", fullmatch=True),
    st.sampled_from(["", "999.1.1.1", "localhost", "-bad-", "a" * 300, "[::1]", "0.0.0.0", "host name"]),
)
name_ports = st.one_of(
    st.text(max_size=20),
    st.builds(lambda n, p: f"{n}={p}", st.sampled_from(["gateway", "redis", "nope", "", "matcher-9"]), numbers),
)
labels = st.one_of(st.text(max_size=30), st.sampled_from(["", "\n", "x" * 500, "UPPER_case", "ok-name"]))


def option_cases(value: str, places: dict[str, str]) -> list[list[str]]:
    """Every option of chaos.py that takes a value, with `value`, each in a command that cannot start."""
    missing, unwritable = places["missing"], places["unwritable"]
    return [
        ["drill", "run", f"--ack-timeout={value}", missing],
        ["drill", "schedule", f"--for={value}", missing],
        ["drill", "schedule", f"--max-runs={value}", missing],
        ["run", f"--seed={value}", missing],
        ["drill", "run", f"--seed={value}", missing],
        ["proxy", "serve", f"--port={value}", f"--config={missing}"],
        ["proxy", "serve", f"--host={value}", f"--config={missing}"],
        ["stack", "up", f"--port={value}", f"--dir={unwritable}"],
        ["stack", "up", f"--profile={value}", f"--dir={unwritable}"],
        ["run", f"--reason={value}", missing],
        ["drill", "ack", f"--by={value}", f"--runs-dir={unwritable}", "step"],
        ["drill", "ack", f"--drill={value}", f"--runs-dir={unwritable}", "step"],
        ["drill", "export", "--k8s-cronjob", f"--namespace={value}", missing],
        ["drill", "export", "--k8s-cronjob", f"--pvc={value}", missing],
        ["drill", "export", "--k8s-cronjob", f"--image={value}", missing],
        ["report", places["journal"], f"--out={value}" if value.strip() else "--out=", f"--history={missing}"],
        ["run", f"--runs-dir={value}", missing],
        ["run", f"--stack-dir={value}", missing],
    ]


@FUZZ
@given(st.one_of(durations, numbers, hosts, name_ports, labels), st.data())
def test_every_option_value_is_refused_in_one_line_or_harmless(
    places: dict[str, str], value: str, data: st.DataObject
) -> None:
    argv = data.draw(st.sampled_from(option_cases(value, places)))
    assert_refused(argv)


@settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(value=durations)
def test_bad_durations_are_refused_by_name(places: dict[str, str], value: str) -> None:
    code, _, err = run_in_process(["drill", "run", f"--ack-timeout={value}", places["missing"]])
    assert code == ExitCode.INVALID_INPUT and "Traceback" not in err
    assert "--ack-timeout" in err or "no such file" in err


# --- paths of every kind ---------------------------------------------------------------------------

FILE_COMMANDS = {
    "validate": lambda p, x: ["validate", p],
    "run": lambda p, x: ["run", p, "--dry-run", "--stack-up"],
    "drill run": lambda p, x: ["drill", "run", p, f"--runs-dir={x['unwritable']}"],
    "drill export": lambda p, x: ["drill", "export", "--crontab", p],
    "drill schedule": lambda p, x: ["drill", "schedule", p, f"--runs-dir={x['unwritable']}"],
    "report": lambda p, x: ["report", p],
    "report --history": lambda p, x: ["report", x["journal"], f"--history={p}"],
    "proxy --config": lambda p, x: ["proxy", "serve", "--port=0", f"--config={p}"],
}


@pytest.mark.parametrize("command", sorted(FILE_COMMANDS))
@pytest.mark.parametrize("kind", sorted(ODD_INPUTS))
def test_every_kind_of_path_as_a_file_argument(tmp_path: Path, places: dict[str, str], kind: str, command: str) -> None:
    path = ODD_INPUTS[kind](tmp_path)
    if path is None:
        pytest.skip("nothing is unreadable for root here (no write-only sysfs attribute)")
    if command == "report --history" and kind == "empty":
        pytest.skip("an empty file is a valid new SQLite database; a journal's report does not read it")
    assert_refused(FILE_COMMANDS[command](str(path), places))


DIR_COMMANDS = {
    "run --runs-dir": lambda d, x: ["run", EXPERIMENT, "--dry-run", "--stack-up", f"--runs-dir={d}"],
    "drill run --runs-dir": lambda d, x: ["drill", "run", DRILL, f"--runs-dir={d}", f"--stack-dir={x['journal']}"],
    "drill schedule --runs-dir": lambda d, x: ["drill", "schedule", f"--runs-dir={d}", f"--history={x['not-sqlite']}"],
    "abort --runs-dir": lambda d, x: ["abort", f"--runs-dir={d}"],
    "report --out": lambda d, x: ["report", x["journal"], f"--out={d}"],
    "stack up --dir": lambda d, x: ["stack", "up", f"--dir={d}", "--port=nope=1"],
}


@pytest.mark.parametrize("command", sorted(DIR_COMMANDS))
@pytest.mark.parametrize("kind", sorted(ODD_OUTPUT_DIRS))
def test_every_kind_of_unwritable_path_as_an_output_directory(
    tmp_path: Path, places: dict[str, str], kind: str, command: str
) -> None:
    where = ODD_OUTPUT_DIRS[kind](tmp_path)
    assert_refused(DIR_COMMANDS[command](str(where), places), codes=(ExitCode.CANNOT_RUN,))


@pytest.mark.parametrize("kind", sorted(ODD_OUTPUT_DIRS))
def test_recover_with_an_odd_runs_dir_never_crashes(tmp_path: Path, kind: str) -> None:
    # Not refused up front (undoing comes first): with no ledger to read there is nothing to recover.
    code, out, err = run_in_process(["recover", f"--runs-dir={ODD_OUTPUT_DIRS[kind](tmp_path)}"])
    assert "Traceback" not in out + err and code in (ExitCode.PASSED, ExitCode.CANNOT_RUN), out + err
    assert len(err.strip().splitlines()) <= 1, err


# --- the programs chaos.py starts ------------------------------------------------------------------


def run_program(module: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *argv],
        capture_output=True,
        text=True,
        timeout=HANG_S * 3,
        cwd=ROOT,
        check=False,
    )


@settings(max_examples=8, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(port=numbers.filter(lambda s: "\x00" not in s), host=hosts.filter(lambda s: "\x00" not in s))
def test_chaosproxy_arguments(places: dict[str, str], port: str, host: str) -> None:
    result = run_program("chaosproxy", ["serve", f"--port={port}", f"--host={host}", f"--config={places['missing']}"])
    assert result.returncode == ExitCode.INVALID_INPUT and "Traceback" not in result.stderr, result.stderr


@settings(max_examples=8, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(port=name_ports.filter(lambda s: "\x00" not in s), matchers=numbers.filter(lambda s: "\x00" not in s))
def test_tradingstack_arguments(places: dict[str, str], port: str, matchers: str) -> None:
    argv = ["up", f"--dir={places['unwritable']}", f"--port={port}", f"--matchers={matchers}"]
    result = run_program("tradingstack", argv)
    assert result.returncode in (1, 2) and "Traceback" not in result.stderr, result.stderr
