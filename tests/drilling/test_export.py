"""Cron expressions mean the same to APScheduler, crontab and Kubernetes; the exported entries run the drill."""

from __future__ import annotations

import shlex
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from drilling import cron
from drilling.export import crontab_line, k8s_cronjob
from drilling.model import load_drill
from tests.support.helpers import ROOT

SHANGHAI = cron.zone("Asia/Shanghai")


def test_weekday_names_fire_on_those_days_in_the_drill_time_zone() -> None:
    trig = cron.trigger("0 10 * * sat", "Asia/Shanghai")
    start = datetime(2026, 1, 1, tzinfo=SHANGHAI)  # a Thursday
    fires = cron.fires_between(trig, start, start + timedelta(days=21))
    assert [f.strftime("%a %H:%M %Z") for f in fires] == ["Sat 10:00 CST"] * 3
    assert cron.last_fire(trig, datetime(2026, 1, 5, tzinfo=SHANGHAI), timedelta(days=7)) == fires[0]


@pytest.mark.parametrize(
    ("expr", "standard"),
    [
        ("0 10 * * sat", "0 10 * * 6"),
        ("30 2 * * mon-fri,sun", "30 2 * * 1-5,0"),
        ("0 4 * * sat-sun", "0 4 * * 6-7"),
        ("0 20 1 * *", "0 20 1 * *"),
        ("*/15 22 * * tue", "*/15 22 * * 2"),
    ],
)
def test_standard_cron_for_crontab_and_kubernetes(expr: str, standard: str) -> None:
    assert cron.standard_cron(expr) == standard


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 10 * * 0", "weekday names"),
        ("0 10 1 * mon", "not both"),
        ("0 10 * *", "4 fields"),
        ("61 * * * *", "invalid cron"),
    ],
)
def test_ambiguous_or_invalid_crons_are_refused(expr: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cron.trigger(expr, "UTC")


def test_seconds_crons_run_here_but_are_not_exported() -> None:
    assert cron.has_seconds("*/2 * * * * *")
    cron.trigger("*/2 * * * * *", "UTC")
    with pytest.raises(ValueError, match="seconds field"):
        cron.standard_cron("*/2 * * * * *")


def test_crontab_line_runs_the_drill_non_interactively_without_overlap(tmp_path: Path) -> None:
    plan = load_drill(ROOT / "drills" / "redis-primary-loss.yaml")
    text = crontab_line(plan.drill, plan.path, "/usr/bin/python3", ROOT / "chaos.py", tmp_path / "runs")
    lines = text.splitlines()
    assert "CRON_TZ=Asia/Shanghai" in lines
    (entry,) = [line for line in lines if line and not line.startswith(("#", "CRON_TZ"))]
    assert entry.startswith("0 10 * * 6 cd ")
    argv = shlex.split(entry.split(" && ", 1)[1].split(" >> ")[0])
    assert argv[:3] == ["flock", "-n", str((tmp_path / "runs").resolve() / "drills" / "redis-primary-loss.cron.lock")]
    assert argv[4:9] == [str(ROOT / "chaos.py"), "drill", "run", "--non-interactive", "--runs-dir"]
    assert argv[-1] == str(plan.path.resolve())


def test_kubernetes_cronjob_manifest() -> None:
    plan = load_drill(ROOT / "drills" / "zookeeper-quorum-loss.yaml")
    doc = yaml.safe_load(k8s_cronjob(plan.drill, "drills/zookeeper-quorum-loss.yaml", "chaos:1", "drills", "runs-pvc"))
    assert (doc["apiVersion"], doc["kind"]) == ("batch/v1", "CronJob")
    assert doc["metadata"]["name"] == "drill-zookeeper-quorum-loss" and doc["metadata"]["namespace"] == "drills"
    spec = doc["spec"]
    assert spec["schedule"] == "0 20 1 * *" and spec["timeZone"] == "Asia/Shanghai"
    assert spec["concurrencyPolicy"] == "Forbid" and spec["startingDeadlineSeconds"] == 6 * 3600
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and spec["jobTemplate"]["spec"]["backoffLimit"] == 0
    (container,) = pod["containers"]
    assert container["image"] == "chaos:1"
    assert container["command"] == [
        "python", "chaos.py", "drill", "run", "--non-interactive", "--runs-dir", "/runs",
        "drills/zookeeper-quorum-loss.yaml",
    ]  # fmt: skip
    assert pod["volumes"] == [{"name": "runs", "persistentVolumeClaim": {"claimName": "runs-pvc"}}]


def test_a_drill_without_schedule_cannot_be_exported(tmp_path: Path) -> None:
    plan = load_drill(ROOT / "drills" / "matcher-node-loss.yaml")
    drill = plan.drill.model_copy(update={"schedule": None})
    with pytest.raises(ValueError, match="has no schedule"):
        k8s_cronjob(drill, "x.yaml", "img")
