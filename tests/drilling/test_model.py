"""Drill files: the shipped drills validate; every kind of mistake is reported at its file:line:col."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import get_args

import pytest

from cli.drill_commands import describe_drill
from drilling.model import (
    CONDITIONS,
    CalendarGuard,
    Condition,
    Drill,
    DrillObjectives,
    RunbookStep,
    ScheduleSpec,
    WebhookTarget,
    load_drill,
    redact_url,
)
from engine.errors import InvalidInputError
from tests.support.helpers import ROOT

EXPERIMENT = (ROOT / "experiments" / "matcher-leader-kill.yaml").read_text()

GOOD = """\
version: 1
name: good
title: A good drill
owner: SRE
experiments: [exp.yaml]
runbook:
  - {id: inject, title: injected, when: fault_injected}
  - {id: detect, title: alert, when: steady_state_failed, marks: detect}
  - {id: ack, title: a person confirms}
objectives: {time_to_detect: 10s}
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "exp.yaml").write_text(EXPERIMENT.replace("../loadgen/", str(ROOT / "loadgen") + "/"))
    path = tmp_path / "drill.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(InvalidInputError) as info:
        load_drill(write(tmp_path, text))
    return [str(p) for p in info.value.problems]


def test_the_shipped_drills_validate_and_reference_the_shipped_experiments() -> None:
    files = sorted((ROOT / "drills").glob("*.yaml"))
    assert len(files) >= 3
    names = set()
    for path in files:
        plan = load_drill(path)
        names.add(plan.drill.name)
        assert plan.drill.schedule is not None and plan.drill.runbook
        assert all(p.experiment.stack.reference == "ha" for p in plan.experiments)
        marks = {s.marks for s in plan.drill.runbook}
        assert {"detect", "recover"} <= marks, path
        assert any(line.startswith("schedule: ") and "next 20" in line for line in describe_drill(plan))
    assert {"redis-primary-loss", "zookeeper-quorum-loss", "matcher-node-loss"} <= names


def test_a_good_drill_loads(tmp_path: Path) -> None:
    plan = load_drill(write(tmp_path, GOOD))
    assert [s.mode for s in plan.drill.runbook] == ["auto", "auto", "manual"]
    assert plan.experiments[0].experiment.title.startswith("Matching engine")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("owner: SRE", "owner: SRE\nownr: x"), ":5:1: unknown key 'ownr'"),
        (("[exp.yaml]", "[exp.yaml, missing.yaml]"), ":5:25: experiment 'missing.yaml' not found"),
        (("id: ack,", "id: inject,"), ":9:10: step id 'inject' is already used by step #1"),
        (("id: ack,", "id: Bad Id,"), ":9:10: runbook.2.id: String should match pattern"),
        (("when: fault_injected", "when: fault_injectd"), ":7:41: runbook.0.when: Input should be"),
        (("marks: detect}", "marks: recover}"), ":10:30: time_to_detect needs a runbook step with 'marks: detect'"),
        (("version: 1", "version: true"), ":1:10: unsupported version True"),
        (
            ("objectives:", "schedule: {cron: '0 10 * * 6'}\nobjectives:"),
            ":10:18: schedule.cron: weekday field '6': write weekday names",
        ),
        (
            ("objectives:", "schedule: {cron: '0 10 * *'}\nobjectives:"),
            ":10:18: schedule.cron: cron '0 10 * *' has 4 fields",
        ),
        (
            ("objectives:", "schedule: {cron: '0 10 * * sat', timezone: Mars/Base}\nobjectives:"),
            ":10:44: schedule.timezone: unknown time zone 'Mars/Base'",
        ),
        (
            ("objectives:", "calendar: {override: true}\nobjectives:"),
            ":10:11: calendar: 'override: true' needs a 'reason'",
        ),
        (
            ("objectives:", "notify: [{webhook: 'http://hooks.example.com/x?token=SECRET'}]\nobjectives:"),
            ":10:20: use https for a webhook off this machine",
        ),
    ],
)
def test_mistakes_are_located(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    found = problems(tmp_path, GOOD.replace(*change))
    assert any(expected in p and p.startswith(str(tmp_path / "drill.yaml")) for p in found), found
    assert not any("SECRET" in p for p in found)


def test_an_invalid_experiment_is_reported_in_its_own_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    (tmp_path / "exp.yaml").write_text(EXPERIMENT.replace("kind: process.kill", "kind: process.kil"))
    with pytest.raises(InvalidInputError) as info:
        load_drill(path)
    shown = [str(p) for p in info.value.problems]
    assert shown[0].startswith(f"{path}:5:15: experiment 'exp.yaml' is invalid")
    assert any(p.startswith(f"{tmp_path / 'exp.yaml'}:") and "process.kill" in p for p in shown[1:]), shown


def test_step_scoped_to_a_missing_experiment(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("when: fault_injected}", "when: fault_injected, experiment: 2}"))
    assert any(":7:69: experiment 2 does not exist: the drill lists 1" in p for p in found), found


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.example.com/hook?token=SECRET", "https://hooks.example.com/hook?…"),
        ("https://user:SECRET@hooks.example.com:8443/a", "https://hooks.example.com:8443/a"),
        ("https://hooks.slack.example/services/T0/B0/SECRET", "https://hooks.slack.example/services/…"),
        ("http://127.0.0.1:9000/hook#SECRET", "http://127.0.0.1:9000/hook"),
    ],
)
def test_webhook_urls_are_redacted(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "SECRET" not in redact_url(url)


def test_every_drill_file_key_and_condition_is_documented() -> None:
    doc = (ROOT / "docs" / "drills.md").read_text()
    for model in (Drill, DrillObjectives, RunbookStep, ScheduleSpec, CalendarGuard, WebhookTarget):
        for key in model.model_fields:
            assert f"| `{key}` |" in doc, (model.__name__, key)
    assert set(CONDITIONS) == set(get_args(Condition))
    for condition in CONDITIONS:
        assert f"| `{condition}` |" in doc, condition
    assert "docs/drills.md" in (ROOT / "drills" / "README.md").read_text()
