"""Process providers that signal processes: what they signal and which processes of the stack they hit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from importers.ctk_processes import SignalAction, matches, parse_process, signal_name
from importers.ctk_targets import ProcessCandidate, load_stack
from tests.importers.ctk_support import converted, decisions, document, refused

MATCHER_1 = ProcessCandidate(
    "matcher", "matcher-1", ("/usr/bin/python3", "-m", "tradingstack.matcher", "--name", "matcher-1")
)
REDIS = ProcessCandidate("redis", "redis", ("/usr/bin/redis-server", "--port", "6379"), pid=4242)


@pytest.mark.parametrize(
    ("path", "arguments", "expected"),
    [
        (
            "pkill",
            "-9 -f 'tradingstack.matcher --name matcher-1'",
            [("KILL", "full", "tradingstack.matcher --name matcher-1")],
        ),
        (
            "pkill",
            ["--signal", "STOP", "-fx", "redis-server --port 6379"],
            [("STOP", "full-exact", "redis-server --port 6379")],
        ),
        ("/usr/bin/pkill", "redis-server", [("TERM", "name", "redis-server")]),
        ("kill", ["-s", "KILL", "4242", "4243"], [("KILL", "pid", "4242"), ("KILL", "pid", "4243")]),
        ("kill", "-SIGSTOP 4242", [("STOP", "pid", "4242")]),
        ("kill", "-9 $(pgrep -f tradingstack.gateway)", [("KILL", "full", "tradingstack.gateway")]),
        ("kill", "-CONT `pgrep -x redis-server`", [("CONT", "name-exact", "redis-server")]),
        ("killall", ["-s", "STOP", "redis-server"], [("STOP", "comm", "redis-server")]),
        ("killall", "-9 -r '^redis'", [("KILL", "comm-regex", "^redis")]),
        ("/bin/sh", "-c 'kill -9 $(pgrep -f matcher-2)'", [("KILL", "full", "matcher-2")]),
        ("bash", ["-c", "pkill -19 -f matcher"], [("STOP", "full", "matcher")]),
        ("pkill", {"-f": "matcher", "--signal": "KILL"}, [("KILL", "full", "matcher")]),  # a mapping's pairs, in order
    ],
)
def test_what_a_command_signals(path: str, arguments: Any, expected: list[tuple[str, str, str]]) -> None:
    assert [(a.signal, a.how, a.pattern) for a in parse_process(path, arguments)] == expected


@pytest.mark.parametrize(
    ("path", "arguments", "reason"),
    [
        ("rm", "-rf /tmp/x", "the process provider runs 'rm'"),
        ("kubectl", ["delete", "pod", "web-1"], "the process provider runs 'kubectl'"),
        ("sh", "-c 'pkill -9 matcher; rm -rf /'", "a shell command with operators"),
        ("sh", "-c 'pkill -9 matcher | tee log'", "a shell command with operators"),
        ("sh", "script.sh", "is mapped only as `sh -c 'ONE COMMAND'`"),
        ("kill", "-9 $PID", "shell expansions other than $(pgrep ...) are not mapped"),
        ("kill", "-9 %1", "is not a PID"),
        ("kill", "-l", "kill -l lists signal names"),
        ("pkill", "-u root matcher", "pkill option -u is not mapped"),
        ("pkill", "-9", "pgrep has no pattern"),
        ("pkill", "-f 'match(er'", "is not a valid regular expression"),
        ("kill", "-s NOPE 1", "'NOPE' is not a signal"),
        ("killall", "-9", "killall names no process"),
    ],
)
def test_commands_that_cannot_be_mapped_say_why(path: str, arguments: Any, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_process(path, arguments)
    assert reason in str(caught.value)


def test_signal_names_and_numbers() -> None:
    assert [signal_name(s) for s in ("9", "kill", "SIGKILL", "15", "STOP", "sigcont")] == [
        "KILL",
        "KILL",
        "KILL",
        "TERM",
        "STOP",
        "CONT",
    ]


@pytest.mark.parametrize(
    ("action", "hits_matcher", "hits_redis"),
    [
        (SignalAction("KILL", "full", "tradingstack.matcher", "pkill"), True, False),
        (SignalAction("KILL", "full", "matcher-2", "pkill"), False, False),
        (SignalAction("KILL", "full-exact", "redis-server --port 6379", "pkill"), False, False),  # argv[0] is a path
        (SignalAction("KILL", "full-exact", "/usr/bin/redis-server --port 6379", "pkill"), False, True),
        # Without -f, pkill matches the process name: a Python program is named python3, not 'matcher'.
        (SignalAction("KILL", "name", "matcher", "pkill"), False, False),
        (SignalAction("KILL", "name", "python", "pkill"), True, False),
        (SignalAction("KILL", "name-exact", "redis-server", "pkill"), False, True),
        (SignalAction("KILL", "comm", "redis-server", "killall"), False, True),
        (SignalAction("KILL", "comm-regex", "^redis", "killall"), False, True),
        (SignalAction("KILL", "pid", "4242", "kill"), False, True),
    ],
)
def test_which_processes_a_matcher_selects(action: SignalAction, hits_matcher: bool, hits_redis: bool) -> None:
    assert (matches(action, MATCHER_1), matches(action, REDIS)) == (hits_matcher, hits_redis)


def _action(arguments: Any, path: str = "pkill", name: str = "act") -> dict[str, Any]:
    return {"type": "action", "name": name, "provider": {"type": "process", "path": path, "arguments": arguments}}


def test_a_pattern_matching_every_instance_of_a_target_selects_all_of_them(tmp_path: Path) -> None:
    conversion = converted(tmp_path, document(method=[_action("-9 -f tradingstack.matcher")]))
    (fault,) = conversion.experiment["method"]
    assert (fault["kind"], fault["target"], fault["select"], fault["params"]) == (
        "process.kill",
        "matcher",
        {"all": True},
        {"signal": "SIGKILL"},
    )
    assert any(
        "only processes of the stack are hit; pkill would signal every process" in d for d in decisions(conversion)
    )


def test_a_pattern_matching_several_targets_makes_one_fault_per_target(tmp_path: Path) -> None:
    conversion = converted(
        tmp_path, document(method=[_action("-STOP -f 'tradingstack\\.(matcher --name matcher-2|gateway)'")])
    )
    faults = {(f["target"], str(f["select"])) for f in conversion.experiment["method"]}
    assert faults == {("matcher", "{'name': 'matcher-2'}"), ("gateway", "{'all': True}")}
    assert {f["kind"] for f in conversion.experiment["method"]} == {"process.pause"}
    assert conversion.experiment["guards"] == {"max_concurrent_faults": 2}


def test_sigterm_is_an_orderly_kill(tmp_path: Path) -> None:
    conversion = converted(tmp_path, document(method=[_action(["-f", "tradingstack.gateway"])]))
    assert conversion.experiment["method"][0]["params"] == {"signal": "SIGTERM"}


def test_a_pid_needs_a_target_option_and_the_option_can_name_one_instance(tmp_path: Path) -> None:
    doc = document(method=[_action("-9 31337", path="kill")])
    (problem,) = refused(tmp_path, doc)
    assert (
        "method[0].provider: SIGKILL to every process with PID 31337 (kill): no process of the reference stack"
        in problem
    )
    assert "PIDs change whenever a process starts" in problem and "--target '31337=TARGET[/INSTANCE]'" in problem
    conversion = converted(tmp_path, doc, targets={"31337": "matcher/matcher-2"})
    assert conversion.experiment["method"][0]["select"] == {"name": "matcher-2"}
    conversion = converted(tmp_path, doc, targets={"act": "redis"})  # by the activity's name
    assert conversion.experiment["method"][0]["target"] == "redis"


def test_a_target_option_must_name_a_process_target(tmp_path: Path) -> None:
    doc = document(method=[_action("-9 -f matcher")])
    (problem,) = refused(tmp_path, doc, targets={"act": "matcher->redis"})
    assert "'matcher->redis' is a link target" in problem
    (problem,) = refused(tmp_path, doc, targets={"act": "matcher/matcher-9"})
    assert "'matcher' has no instance 'matcher-9' (it has: matcher-1, matcher-2)" in problem


def test_pkill_without_f_matches_process_names_like_pkill_does(tmp_path: Path) -> None:
    (problem,) = refused(tmp_path, document(method=[_action("-9 matcher")]))
    assert "whose process name matches 'matcher'" in problem and "no process of the reference stack" in problem
    conversion = converted(tmp_path, document(method=[_action("-9 redis-server")]))
    assert conversion.experiment["method"][0]["target"] == "redis"


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        ("-HUP -f matcher", "SIGHUP has no fault kind here"),
        (
            "-CONT -f tradingstack.matcher",
            "method[0]: resumes matcher-1, matcher-2 (SIGCONT), but nothing the method did is in place to undo",
        ),
        (  # the gateway's real command line names the matchers too (--route matcher-1=...), as pgrep -f sees it
            "-CONT -f matcher",
            "method[0]: resumes matcher-1, matcher-2, gateway-1 (SIGCONT), but nothing the method did is in place",
        ),
    ],
)
def test_signals_without_a_fault_kind_are_refused(tmp_path: Path, arguments: str, reason: str) -> None:
    problems = refused(tmp_path, document(method=[_action(arguments)]))
    assert any(reason in p for p in problems), problems


def test_a_stack_description_matches_against_its_own_command_lines_and_pids(tmp_path: Path) -> None:
    stack = tmp_path / "stack.yaml"
    stack.write_text(
        "schema_version: 1\nname: bare-metal\nmarket_hours: null\n"
        "endpoints: {api: 'http://127.0.0.1:9000'}\n"
        "targets:\n  engine:\n    instances:\n"
        "      - {name: engine-a, pid: 1001, argv: [/opt/engine/bin/engine, --shard, a]}\n"
        "      - {name: engine-b, pid: 1002, argv: [/opt/engine/bin/engine, --shard, b]}\n"
    )
    info = load_stack(str(stack), tmp_path)
    assert [p.cmdline for p in info.processes] == [
        "/opt/engine/bin/engine --shard a",
        "/opt/engine/bin/engine --shard b",
    ]
    doc = document(method=[_action("-9 1002", path="kill")])
    conversion = converted(tmp_path, doc, stack=str(stack), endpoints={"http://127.0.0.1:8080": "api"})
    assert conversion.experiment["method"][0]["select"] == {"name": "engine-b"}
    assert conversion.experiment["stack"] == {"file": "stack.yaml"}
    assert any("PID 1002 is engine-b's in the stack description" in d for d in decisions(conversion))
    conversion = converted(
        tmp_path,
        document(method=[_action("engine", path="killall")]),
        stack=str(stack),
        endpoints={"http://127.0.0.1:8080": "api"},
    )
    assert conversion.experiment["method"][0]["select"] == {"all": True}
