"""`engine.stack_check` against real processes here and a real sshd on loopback: found or not, health, login, signal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clients.toxiproxy import ToxiproxyClient
from engine.stack_check import CheckResult, check_stack, render, stack_status
from stackspec.targets import StackDescription
from tests.injectors.sshd_server import Sshd, keygen
from tests.support.helpers import ROOT, free_port, listening_url
from tests.support.own_processes import Started, dead_pid


def stack(*instances: dict[str, Any], **more: Any) -> StackDescription:
    return StackDescription.model_validate(
        {"name": "own", "market_hours": None, "targets": {"svc": {"instances": list(instances)}}, **more}
    )


def by_match(name: str, marker: str, **more: Any) -> dict[str, Any]:
    return {"name": name, "match": {"cmdline": marker}, "argv": ["sleep", "1"], **more}


def row(result: CheckResult, name: str) -> dict[str, str]:
    return next(r.fields for r in result.rows if r.name == name)


def test_a_running_process_is_found_healthy_and_signallable(started: Started) -> None:
    proc, marker = started.sleeper()
    _, port = started.http_server()
    result = check_stack(stack(by_match("svc-1", marker, health={"tcp": f"127.0.0.1:{port}"})))
    assert result.problems == []
    assert row(result, "svc-1") == {"found": f"pid {proc.pid} (by match)", "health": "ok", "signal": "ok"}
    assert "ok: every target was found and answers" in render(result)


def test_a_process_not_running_is_a_problem_by_rule_and_by_pid(started: Started) -> None:
    gone = dead_pid()
    result = check_stack(
        stack(
            by_match("by-rule", "no-process-has-this-marker-4f1c"),
            {"name": "by-pid", "pid": gone, "argv": ["sleep", "1"]},
            {"name": "by-nothing", "argv": ["sleep", "1"]},
        )
    )
    assert row(result, "by-rule")["found"] == "no"
    assert any("by-rule: no process on this host matches cmdline ~" in p for p in result.problems)
    assert any(f"by-pid: pid {gone} is not running on this host" in p for p in result.problems)
    assert any("by-nothing: no `pid` recorded and no `match` rules" in p for p in result.problems)
    assert len(result.problems) == 3


def test_a_rule_matching_two_processes_is_a_problem_naming_both(started: Started) -> None:
    first, marker = started.sleeper()
    second, _ = started.sleeper(marker)
    result = check_stack(stack(by_match("svc-1", marker)))
    assert result.problems == [
        f"svc-1: 2 processes (pids {', '.join(map(str, sorted([first.pid, second.pid])))}) on this host match "
        f"cmdline ~ '{marker}'; make the rule narrower, e.g. add exe, pidfile or listen_port"
    ]


def test_a_failing_health_check_is_a_problem(started: Started) -> None:
    _, marker = started.sleeper()
    closed = free_port()
    result = check_stack(stack(by_match("svc-1", marker, health={"tcp": f"127.0.0.1:{closed}"})))
    assert row(result, "svc-1")["health"].startswith("failing: ConnectionRefusedError")
    assert [p.split(":")[0] for p in result.problems] == ["svc-1"]
    assert "health check failing" in result.problems[0]
    # `stack status` sees the same: the process runs, its health check fails.
    status = stack_status(stack(by_match("svc-1", marker, health={"tcp": f"127.0.0.1:{closed}"})))
    assert not status.ok and set(row(status, "svc-1")) == {"found", "health"}


def _netem_here() -> bool:
    release = os.uname().release
    modules = Path("/lib/modules", release)
    return Path("/sys/module/sch_netem").is_dir() or (modules.is_dir() and any(modules.rglob("sch_netem.ko*")))


def test_this_hosts_tools_are_reported_and_netem_truthfully(started: Started) -> None:
    _, marker = started.sleeper()
    result = check_stack(stack(by_match("svc-1", marker)))
    [host] = result.hosts
    assert host.host == "this host" and host.ssh == "not used"
    assert host.nft.startswith("available") == (os.path.exists("/usr/sbin/nft") and os.geteuid() == 0)
    if _netem_here():
        assert host.netem.startswith("available")
    else:  # this build machine: no sch_netem in its kernel
        assert host.netem.startswith("not available (kernel ")
        assert "this host: netem: not available" in render(result)
    assert result.ok  # tools are reported, not judged


def test_over_ssh_login_signal_and_restart_program_are_checked(started: Started, sshd: Sshd) -> None:
    proc, marker = started.sleeper()
    host = sshd.host().model_dump(mode="json")
    restart_ok = {"by": "command", "command": ["true"]}
    restart_missing = {"by": "command", "command": ["/nonexistent/restart-me"]}
    result = check_stack(
        stack(
            by_match("remote-1", marker, host=host, restart=restart_ok),
            by_match("remote-2", marker, host=host, restart=restart_missing),
        )
    )
    remote = next(h for h in result.hosts if h.host == sshd.host().label)
    assert remote.ssh == "ok" and remote.problems == []
    assert remote.nft != "not checked" and remote.netem.startswith(("available", "not available"))
    assert row(result, "remote-1") == {
        "found": f"pid {proc.pid} (by match)",
        "health": "none given",
        "signal": "ok",
        "restart": "true: found",
    }
    assert result.problems == [f"remote-2: restart program '/nonexistent/restart-me' not found on {sshd.host().label}"]


@pytest.mark.parametrize("case", ["unknown host key", "key not authorized", "unreachable"])
def test_a_host_that_refuses_or_does_not_answer_is_named_with_why(
    started: Started, sshd: Sshd, tmp_path: Path, case: str
) -> None:
    _, marker = started.sleeper()
    if case == "unknown host key":
        (tmp_path / "known_hosts").write_text("")
        ssh = sshd.host(known_hosts=str(tmp_path / "known_hosts"))
        said = "not in known_hosts"
    elif case == "key not authorized":
        keygen(tmp_path / "stranger")
        ssh = sshd.host(key_file=str(tmp_path / "stranger"))
        said = "refused key-based login"
    else:
        ssh = sshd.host(port=free_port(), connect_timeout_s=2.0)
        (tmp_path / "kh").write_text(sshd.known_hosts_line().replace(f":{sshd.port}]", f":{ssh.port}]") + "\n")
        ssh = ssh.model_copy(update={"known_hosts": str(tmp_path / "kh")})
        said = "cannot connect"
    result = check_stack(stack(by_match("remote-1", marker, host=ssh.model_dump(mode="json"))))
    [problem] = result.problems
    assert problem.startswith(f"{ssh.label}: SSH login failed: ") and said in problem
    assert row(result, "remote-1") == {"found": "not checked"}
    assert "failed (below)" in render(result)


_AS_NOBODY = """
import json, sys
from clients.toxiproxy import ToxiproxyClient
from engine.stack_check import check_stack
from stackspec.targets import StackDescription
print(json.dumps(check_stack(StackDescription.model_validate_json(sys.stdin.read())).to_json()))
"""


def test_a_user_who_may_not_signal_the_process_is_told_so(started: Started) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root, to run the check as the user nobody")
    probe = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", "import engine"],
        cwd="/",
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"the user nobody cannot import the project from {ROOT} (a private checkout)")
    proc, marker = started.sleeper()  # root's process
    done = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", _AS_NOBODY],
        input=stack(by_match("svc-1", marker)).model_dump_json(),
        cwd="/",
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(done.stdout)
    assert result["ok"] is False
    assert result["targets"][0]["fields"]["signal"] == "no"
    assert f"svc-1: user nobody may not signal pid {proc.pid} on this host" in result["problems"][0]


def test_many_instances_are_checked_in_parallel_with_the_same_result(started: Started) -> None:
    markers = [started.sleeper()[1] for _ in range(6)]
    description = stack(*(by_match(f"svc-{i}", m) for i, m in enumerate(markers)))
    one, many = check_stack(description, parallel=1), check_stack(description, parallel=8)
    assert one.ok and many.ok
    assert [r.name for r in one.rows] == [r.name for r in many.rows] == [f"svc-{i}" for i in range(6)]


@pytest.fixture
def toxiproxy() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "chaosproxy", "serve", "--host", "127.0.0.1", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        yield listening_url(proc)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_links_endpoints_and_engines_are_checked_where_they_answer(started: Started, toxiproxy: str) -> None:
    _, port = started.http_server()
    client = ToxiproxyClient(toxiproxy)
    client.create_proxy("up", f"127.0.0.1:{free_port()}", f"127.0.0.1:{port}")
    client.create_proxy("off", f"127.0.0.1:{free_port()}", f"127.0.0.1:{port}", enabled=False)
    link = {"listen": "127.0.0.1:1", "upstream": f"127.0.0.1:{port}"}
    description = StackDescription.model_validate(
        {
            "name": "own",
            "market_hours": None,
            "toxiproxy": {"url": toxiproxy},
            "endpoints": {"web": f"http://127.0.0.1:{port}/", "closed": f"127.0.0.1:{free_port()}"},
            "targets": {
                "links": {
                    "kind": "link",
                    "instances": [
                        {"name": "a", "proxy": "up", **link},
                        {"name": "b", "proxy": "off", **link},
                        {"name": "c", "proxy": "nowhere", **link},
                    ],
                },
                "boxes": {
                    "kind": "container",
                    "engine_url": "unix:///nonexistent/engine.sock",
                    "timeout_s": 2,
                    "containers": [{"name": "box-1"}],
                },
            },
        }
    )
    result = check_stack(description)
    assert row(result, "a") == {"proxy": "up: enabled, 0 toxic(s)"}
    assert row(result, "web") == {"answer": "HTTP 200"} and row(result, "closed") == {"answer": "unreachable"}
    assert [p.split(":")[0] for p in result.problems] == ["b", "c", "boxes", "endpoint closed (127.0.0.1"]
    assert "proxy 'off' is disabled" in result.problems[0]
    assert f"no proxy 'nowhere' on the Toxiproxy API at {toxiproxy}" in result.problems[1]
    assert "unix:///nonexistent/engine.sock" in result.problems[2]
