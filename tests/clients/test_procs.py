"""Process control's pure parts: /proc/PID/stat parsing, the remote restart script, waiting for an exit."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from clients.procs import LOCAL, parse_stat, restart_script, role_of, wait_exit, wait_exit_on
from stackspec.targets import ProcessInstance

# Field 2 (comm) may hold spaces and parentheses; field 3 is the state and field 22 the start time.
STAT = "4242 (my (odd) proc) S 1 4242 4242 0 -1 4194560 88 0 0 0 1 2 0 0 20 0 3 0 987654 12345 678"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (STAT, ("S", 987654)),
        ("7 (sh) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 0 0", ("Z", 55)),
        ("9 ()) R 1 9 9 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 3 0 0\n", ("R", 3)),
    ],
)
def test_parse_stat_reads_state_and_start_time_after_the_last_parenthesis(text: str, expected: tuple[str, int]) -> None:
    assert parse_stat(text) == expected


def test_parse_stat_reads_this_process() -> None:
    state, started = parse_stat(Path(f"/proc/{os.getpid()}/stat").read_text())
    assert state in "RS" and started > 0


@pytest.mark.parametrize("text", ["", "4242 no parenthesis here", "4242 (short) S 1 2"])
def test_parse_stat_refuses_what_is_not_a_stat_line(text: str) -> None:
    with pytest.raises((ValueError, IndexError)):
        parse_stat(text)


def _instance(**changes: object) -> ProcessInstance:
    base: dict[str, object] = {
        "name": "matcher-1",
        "argv": ["/opt/matcher/bin/matcher", "--name", "it's; rm -rf /", "$(whoami)"],
        "cwd": "/opt/my matcher",
        "log": "/var/log/matcher dir/matcher-1.log",
        "env": {"GREETING": "a b 'c' $HOME"},
    }
    return ProcessInstance.model_validate({**base, **changes})


def test_the_restart_script_quotes_every_value_and_prints_the_pid() -> None:
    script = restart_script(_instance())
    lines = script.splitlines()
    assert lines[0] == "set -e"
    assert lines[1] == "cd -- '/opt/my matcher'"
    greeting = shlex.quote(os.path.expandvars("a b 'c' $HOME"))  # expanded from the runner's environment
    assert lines[2] == f"GREETING={greeting}; export GREETING"
    assert lines[3] == "mkdir -p -- '/var/log/matcher dir'"
    command = shlex.join(["setsid", "nohup", *_instance().argv])
    assert lines[4] == f"{command} >>'/var/log/matcher dir/matcher-1.log' 2>&1 </dev/null &"
    assert lines[5] == 'echo "$!"' and script.endswith("\n")


def test_the_restart_script_runs_under_sh_without_the_shell_reading_any_value(tmp_path: Path) -> None:
    """The script's words reach the program as they were written: nothing is expanded or split."""
    out = tmp_path / "argv.txt"
    printer = "import sys, os; open(sys.argv[1], 'w').write(repr((sys.argv[2:], os.environ['GREETING'], os.getcwd())))"
    instance = _instance(
        argv=[sys.executable, "-c", printer, str(out), "it's; echo pwned", "$(whoami)", "a  b"],
        cwd=str(tmp_path),
        log=str(tmp_path / "log dir" / "x.log"),
        env={"GREETING": "semi;colon 'quoted'"},
    )
    result = subprocess.run(["sh", "-s"], input=restart_script(instance), capture_output=True, text=True, check=True)
    pid = int(result.stdout.strip().splitlines()[-1])
    assert wait_exit(pid, 10) is not None  # the program itself: setsid and nohup exec it
    assert out.read_text() == repr((["it's; echo pwned", "$(whoami)", "a  b"], "semi;colon 'quoted'", str(tmp_path)))
    assert (tmp_path / "log dir").is_dir()


def test_an_env_name_that_is_not_a_name_is_refused() -> None:
    with pytest.raises(ValueError, match="not a valid environment variable name"):
        restart_script(_instance(env={"BAD;NAME": "x"}))


def test_the_restart_script_without_cwd_or_log_writes_to_dev_null() -> None:
    script = restart_script(ProcessInstance(name="x", argv=["/bin/true"]))
    assert script == 'set -e\nsetsid nohup /bin/true >>/dev/null 2>&1 </dev/null &\necho "$!"\n'


class _FakeHost:
    """A host whose process exits after `looks` looks."""

    label = "fake host"
    poll_s = 0.001

    def __init__(self, looks: int) -> None:
        self.left = looks
        self.reaped: list[int] = []

    def stat(self, pid: int) -> tuple[str, int] | None:
        self.left -= 1
        return ("S", 1) if self.left > 0 else ("Z", 1)

    def reap(self, pid: int) -> None:
        self.reaped.append(pid)


def test_wait_exit_on_counts_a_zombie_as_exited_and_reaps_each_look() -> None:
    host = _FakeHost(looks=3)
    waited = wait_exit_on(host, 42, 5.0)  # type: ignore[arg-type]  # only stat, reap, label and poll_s are used
    assert waited is not None and waited < 5.0 and host.reaped == [42, 42, 42, 42]  # and once more when gone


def test_wait_exit_on_gives_none_once_the_time_is_up() -> None:
    assert wait_exit_on(_FakeHost(looks=10**9), 42, 0.02) is None  # type: ignore[arg-type]


def test_wait_exit_sees_a_real_child_exit() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
    assert wait_exit(child.pid, 10) is not None
    assert LOCAL.stat(child.pid) is None


def test_role_of_asks_nothing_of_a_process_that_does_not_run() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    gone = ProcessInstance(name="x", argv=["x"], pid=child.pid, role_url="http://127.0.0.1:9/status")
    assert role_of(gone) is None
    assert role_of(ProcessInstance(name="x", argv=["x"], pid=os.getpid())) is None  # no role URL
