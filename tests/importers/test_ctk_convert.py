"""Whole Chaos Toolkit experiments converted, written, and validated by the engine's own loader."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from cli.import_commands import add_import_parser
from engine.durations import parse_duration
from engine.plan import load_plan
from importers.ctk import ConvertOptions, convert, import_command, is_ctk_document, load_ctk_plan
from tests.importers.ctk_support import FIXTURES, GATEWAY, converted, decisions, document, refused

ROOT = Path(__file__).resolve().parents[2]
K8S: dict[str, Any] = {"stack": str(FIXTURES / "stack-k8s.yaml"), "endpoints": {"http://127.0.0.1:8080": "web"}}
CASES: dict[str, dict[str, Any]] = {
    "matcher-kill.json": {"endpoints": GATEWAY},
    "matcher-pause.yaml": {"endpoints": GATEWAY},
    "exploring.json": {},
    "k8s-pods.yaml": K8S,
}


def _write_and_load(tmp_path: Path, name: str, options: dict[str, Any]) -> tuple[Any, Any]:
    out = tmp_path / "converted" / (Path(name).stem + ".yaml")
    conversion = convert(FIXTURES / name, ConvertOptions(out=out, **options))
    out.parent.mkdir()
    out.write_text(conversion.yaml_text)
    return conversion, load_plan(out)  # the engine's own loader and checks, from the written file


def _seconds(text: str) -> float:
    return parse_duration(text)


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_fixture_converts_and_validates_with_every_decision_in_the_file(tmp_path: Path, name: str) -> None:
    conversion, plan = _write_and_load(tmp_path, name, CASES[name])
    assert plan.faults and plan.experiment.title == conversion.experiment["title"]
    assert yaml.safe_load(conversion.yaml_text) == conversion.experiment
    comments = " ".join(line.strip("# ") for line in conversion.yaml_text.splitlines() if line.startswith("#"))
    for decision in conversion.decisions:
        assert " ".join(str(decision).split()) in " ".join(comments.split())
    report = conversion.report_lines()
    assert report[0].startswith(f"Chaos Toolkit experiment {FIXTURES / name} converted")
    assert report[1:] == [f"  {d}" for d in conversion.decisions]
    assert "chaos-toolkit" in conversion.experiment["tags"]


def test_kill_with_a_pause_after_becomes_a_fault_held_until_the_rollbacks(tmp_path: Path) -> None:
    conversion, _ = _write_and_load(tmp_path, "matcher-kill.json", CASES["matcher-kill.json"])
    exp = conversion.experiment
    (fault,) = exp["method"]
    assert fault == {
        "name": "kill-matching-engine-1",
        "at": "15s",
        "duration": "10s",
        "kind": "process.kill",
        "target": "matcher",
        "select": {"name": "matcher-1"},
        "params": {"signal": "SIGKILL"},
    }
    # The pause after the kill is 8s (from the configuration); the hypothesis after the method is an RTO of 8s.
    assert exp["objectives"] == {"rto": "8s", "rto_from": "fault_start"}
    # Written outside the repository: the locustfile by its absolute path (inside it, a relative one).
    assert exp["load"]["locustfile"] == str(ROOT / "loadgen" / "trading.py")
    assert exp["load"]["host"] == "gateway" and exp["stack"] == {"reference": "basic"}
    text = "\n".join(decisions(conversion))
    assert "faults still in place last at least 10s (option min_fault)" in text
    assert "method[1]" in text and "sampled through every fault window already" in text  # the ref'd probe


def test_pauses_background_and_a_resume_in_the_rollbacks_lay_out_the_timeline(tmp_path: Path) -> None:
    conversion, _ = _write_and_load(tmp_path, "matcher-pause.yaml", CASES["matcher-pause.yaml"])
    exp = conversion.experiment
    (fault,) = exp["method"]
    # 15s (warmup 5 + baseline 10) + pause before 2 → 17s; the method ends at 17 + 6 (freeze_s) + 3 (idle_for) = 26s;
    # at least 10s in place → the rollbacks begin at 27s, the resume waits 1s → the fault ends at 28s.
    assert (fault["at"], fault["duration"], fault["kind"], fault["select"]) == (
        "17s",
        "11s",
        "process.pause",
        {"all": True},
    )
    assert exp["objectives"]["rto"] == "9s"
    assert exp["load"]["duration"] == "48s"
    assert [p["http"]["url"] for p in exp["steady_state"]] == [
        "{gateway}/health",
        "{gateway}/accounts/ACC0001?fields=balance",
    ]
    text = "\n".join(decisions(conversion))
    assert "resumes matcher-1, matcher-2 (SIGCONT) → the end of the fault from method[0] at 28s (rollback)" in text
    assert "method[1].background" in text and "the method goes on at once" in text
    assert "idle_for(3) only waits" in text
    assert "'always': every fault is rolled back and verified here" in text
    assert "secrets.ops.api_token" in text


def test_an_experiment_without_hypothesis_gets_a_placeholder_that_judges_nothing(tmp_path: Path) -> None:
    conversion, plan = _write_and_load(tmp_path, "exploring.json", {})
    (entry,) = conversion.experiment["steady_state"]
    assert entry["metric"] == "error_rate" and entry["max"] == 1.0
    assert "objectives" not in conversion.experiment
    (fault,) = conversion.experiment["method"]
    # The background freeze starts after its 1s pause; sleep 4 and echo's 2s pause pass; the SIGCONT ends it.
    assert (fault["target"], fault["at"], fault["duration"]) == ("redis", "16s", "5s")
    text = "\n".join(decisions(conversion))
    assert "echo only prints" in text and "sleep 4 only waits" in text
    assert plan.faults[0].step.kind == "process.pause"


def test_kubernetes_pod_termination_and_scaling_map_onto_the_stack_targets(tmp_path: Path) -> None:
    conversion, plan = _write_and_load(tmp_path, "k8s-pods.yaml", K8S)
    exp = conversion.experiment
    pods, scale = exp["method"]
    assert (pods["kind"], pods["target"], pods["select"], pods["params"]) == (
        "pod.delete",
        "web-pods",
        {"count": 2},
        {"grace_period_s": 0},
    )
    assert (pods["at"], pods["duration"]) == ("15s", "35s")  # until the rollbacks begin, after both pauses
    assert (scale["kind"], scale["target"], scale["params"], scale["at"], scale["duration"]) == (
        "deployment.scale",
        "web-deployment",
        {"replicas": 1},
        "35s",
        "15s",
    )
    assert exp["guards"] == {"max_concurrent_faults": 2}
    assert exp["objectives"]["rto"] == "15s"  # the strictest: the later fault's time to the hypothesis after
    assert exp["load"]["locustfile"].endswith("loadgen/http_get.py") and exp["load"]["host"] == "web"
    assert exp["stack"] == {"file": str(FIXTURES / "stack-k8s.yaml")}
    text = "\n".join(decisions(conversion))
    assert "a Kubernetes state probe in the method" in text and "not run" in text
    assert "scales 'web' back to 3: undone by the automatic rollback" in text
    assert "not through the experiment's secrets" in text
    assert [f.step.kind for f in plan.faults] == ["pod.delete", "deployment.scale"]


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        ({"label_selector": "app=shop", "ns": "shop"}, "has no kubernetes target that is the pods 'app=shop'"),
        ({"ns": "shop"}, "no label_selector: Chaos Toolkit picks among every pod of namespace 'shop'"),
        ({"label_selector": "app=web,tier=front", "ns": "shop", "name_pattern": "web-.*"}, "name_pattern: a regular"),
        ({"label_selector": "app=web,tier=front", "ns": "shop", "qty": 0}, "qty 0 deletes no pod"),
        (
            {"label_selector": "app=web,tier=front", "ns": "shop", "force": True},
            "terminate_pods has no argument 'force'",
        ),
    ],
)
def test_pod_terminations_that_cannot_be_mapped_are_refused(
    tmp_path: Path, arguments: dict[str, Any], reason: str
) -> None:
    action = {
        "type": "action",
        "name": "kill-pods",
        "provider": {
            "type": "python",
            "module": "chaosk8s.pod.actions",
            "func": "terminate_pods",
            "arguments": arguments,
        },
    }
    problems = refused(tmp_path, document(method=[action]), **K8S)
    assert any("method[0].provider.arguments" in p and reason in p for p in problems), problems


def test_pod_percentages_and_orders_are_reported(tmp_path: Path) -> None:
    arguments = {
        "label_selector": "app=web,tier=front",
        "ns": "shop",
        "mode": "percentage",
        "qty": 80,
        "order": "oldest",
    }
    action = {
        "type": "action",
        "name": "kill-pods",
        "provider": {
            "type": "python",
            "module": "chaosk8s.pod.actions",
            "func": "terminate_pods",
            "arguments": arguments,
        },
    }
    conversion = converted(tmp_path, document(method=[action]), **K8S)
    assert conversion.experiment["method"][0]["select"] == {"percent": 80}
    assert conversion.experiment["guards"] == {"max_percent": 80}
    assert any("first pods in oldest order; here they are chosen at random" in d for d in decisions(conversion))


def test_http_probes_of_the_method_are_reported_or_judged_over_the_fault_windows(tmp_path: Path) -> None:
    orders = {
        "type": "probe",
        "name": "orders-answer",
        "tolerance": 200,
        "provider": {"type": "http", "url": "http://127.0.0.1:8080/orders/1"},
    }
    doc = document(method=[*document()["method"], orders])
    reported = converted(tmp_path, doc)
    assert [p["name"] for p in reported.experiment["steady_state"]] == ["gateway-health"]
    assert any("judges nothing with it; not added" in d for d in decisions(reported))
    judged = converted(tmp_path, doc, method_probes="judge")
    added = judged.experiment["steady_state"][1]
    assert added == {
        "name": "orders-answer",
        "during": {"max": 0.0},
        "http": {"url": "{gateway}/orders/1", "method": "GET", "timeout": "1s", "interval": "1s", "status": 200},
    }


def test_the_continuous_hypothesis_strategy_judges_the_fault_windows(tmp_path: Path) -> None:
    conversion = converted(tmp_path, document(runtime={"hypothesis": {"strategy": "continuously"}}))
    assert conversion.experiment["steady_state"][0]["during"] == {"max": 0.0}
    skip = converted(tmp_path, document(runtime={"hypothesis": {"strategy": "before-method-only"}}))
    assert "objectives" not in skip.experiment


def test_load_and_timeline_options(tmp_path: Path) -> None:
    conversion = converted(
        tmp_path,
        document(),
        users=3,
        warmup_s=2.0,
        baseline_s=3.0,
        recovery_s=6.0,
        min_fault_s=4.0,
        duration_s=60.0,
        stable_for_s=2.0,
        probe_interval_s=0.5,
    )
    exp = conversion.experiment
    assert exp["method"][0]["at"] == "5s" and exp["method"][0]["duration"] == "5s"  # the pause after: 5s
    assert (exp["load"]["users"], exp["load"]["warmup"], exp["load"]["duration"]) == (3, "2s", "1m")
    assert exp["recovery"] == {"stable_for": "2s"} and exp["steady_state"][0]["http"]["interval"] == "500ms"
    (problem,) = refused(tmp_path, document(), duration_s=20.0)
    assert "--duration 20s is too short: the faults end at 25s and recovery needs 20s" in problem


def test_a_stack_without_loopback_or_endpoint_urls_needs_a_load_host(tmp_path: Path) -> None:
    stack = FIXTURES / "stack-k8s.yaml"
    doc = document(
        [
            {
                "type": "probe",
                "name": "p",
                "tolerance": 200,
                "provider": {"type": "http", "url": "https://shop.example.com/"},
            }
        ],
        method=[
            {
                "type": "action",
                "name": "kill-pods",
                "provider": {
                    "type": "python",
                    "module": "chaosk8s.pod.actions",
                    "func": "terminate_pods",
                    "arguments": {"label_selector": "app=web,tier=front", "ns": "shop"},
                },
            }
        ],
    )
    (problem,) = refused(tmp_path, doc, stack=str(stack))
    assert "give one with --load-host" in problem
    conversion = converted(tmp_path, doc, stack=str(stack), load_host="web")
    assert conversion.experiment["load"]["host"] == "web"


def test_load_ctk_plan_gives_the_engine_plan_in_memory_with_the_report(tmp_path: Path) -> None:
    before = set(FIXTURES.iterdir())
    plan, report = load_ctk_plan(FIXTURES / "matcher-kill.json", ConvertOptions(endpoints=GATEWAY))
    assert set(FIXTURES.iterdir()) == before  # nothing written
    assert plan.document.path == FIXTURES / "matcher-kill.json"
    assert plan.locustfile == ROOT / "loadgen" / "trading.py"
    assert [f.step.kind for f in plan.faults] == ["process.kill"]
    assert report[0].startswith("Chaos Toolkit experiment") and any("objectives.rto 8s" in line for line in report)


def test_documents_are_told_apart_by_their_content(tmp_path: Path) -> None:
    for name in CASES:
        assert is_ctk_document(FIXTURES / name)
    assert not is_ctk_document(FIXTURES / "stack-k8s.yaml")
    for experiment in (ROOT / "experiments").glob("*.yaml"):
        assert not is_ctk_document(experiment), experiment
    broken = tmp_path / "broken.json"
    broken.write_text('{"title": "x", "steady-state-hypothesis": {}, "method": [}')
    assert is_ctk_document(broken)  # still ours to explain
    assert not is_ctk_document(tmp_path / "missing.json")


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="chaos.py")
    add_import_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["import", "ctk", *argv])


def test_the_import_command_writes_the_file_and_prints_the_report(tmp_path: Path) -> None:
    out = tmp_path / "matcher-kill.yaml"
    stdout, stderr = io.StringIO(), io.StringIO()
    args = _args(
        str(FIXTURES / "matcher-kill.json"),
        "-o",
        str(out),
        "--endpoint",
        "http://127.0.0.1:8080=gateway",
        "--users",
        "4",
        "--var",
        "settle_s=6",
        "--warmup",
        "4s",
    )
    assert import_command(args, stdout, stderr) == 0
    assert "objectives.rto 6s" in stdout.getvalue() and f"wrote {out}" in stdout.getvalue()
    assert load_plan(out).experiment.load.users == 4
    stdout, stderr = io.StringIO(), io.StringIO()
    assert import_command(_args(str(FIXTURES / "exploring.json")), stdout, stderr) == 0
    assert yaml.safe_load(stdout.getvalue())["version"] == 1  # the YAML alone on stdout
    assert "converted: 1 fault(s)" in stderr.getvalue()


def test_nothing_of_an_imported_document_is_executed(tmp_path: Path) -> None:
    sentinel = tmp_path / "executed"
    doc = document(
        method=[
            {
                "type": "action",
                "name": "py",
                "provider": {
                    "type": "python",
                    "module": "os",
                    "func": "system",
                    "arguments": {"command": f"touch {sentinel}"},
                },
            },
            {
                "type": "action",
                "name": "proc",
                "provider": {"type": "process", "path": "touch", "arguments": str(sentinel)},
            },
        ],
        configuration={
            "dyn": {
                "type": "probe",
                "name": "d",
                "provider": {"type": "process", "path": "touch", "arguments": str(sentinel)},
            }
        },
    )
    problems = refused(tmp_path, doc)
    assert any("method[0].provider.module: python provider os.system has no mapping" in p for p in problems)
    assert any("method[1].provider: the process provider runs 'touch'" in p for p in problems)
    assert any("configuration.dyn.type: dynamic configuration runs an activity" in p for p in problems)
    assert not sentinel.exists()
    assert json.loads((tmp_path / "experiment.json").read_text())["method"][0]["name"] == "py"


def test_the_public_api_is_what_it_says() -> None:
    import importers.ctk as api

    assert sorted(api.__all__) == sorted(
        [
            "Conversion",
            "ConvertOptions",
            "CtkImportError",
            "Decision",
            "convert",
            "import_command",
            "is_ctk_document",
            "load_ctk_plan",
        ]
    )
    assert all(hasattr(api, name) for name in api.__all__)
    from engine.errors import InvalidInputError

    assert issubclass(api.CtkImportError, InvalidInputError)
