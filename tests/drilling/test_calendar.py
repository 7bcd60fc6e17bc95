"""One calendar: a drill obeys the market hours of the stacks its experiments run on, unless its file says otherwise;
the scheduler judges the same calendar, from the stack files as they are at each fire."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from drilling.model import load_drill
from drilling.run import check_calendar
from drilling.schedule import load_scheduled
from engine.errors import GuardRefusedError
from engine.guards import Override
from tests.support.helpers import ROOT

LOCUSTFILE = ROOT / "tests" / "cli" / "web_locustfile.py"
SHANGHAI_OPEN = datetime.datetime(2026, 12, 2, 2, 0, tzinfo=datetime.UTC)  # Wed 10:00 Asia/Shanghai
SHANGHAI_NIGHT = datetime.datetime(2026, 12, 2, 20, 0, tzinfo=datetime.UTC)  # Thu 04:00 Asia/Shanghai
ABSENT = object()


def _stack(folder: Path, name: str, market_hours: object = ABSENT) -> None:
    doc: dict[str, object] = {
        "name": name,
        "endpoints": {"web": "http://127.0.0.1:9"},
        "targets": {"web": {"instances": [{"name": "web-1", "argv": ["sleep", "60"]}]}},
    }
    if market_hours is not ABSENT:
        doc["market_hours"] = market_hours
    (folder / f"{name}.json").write_text(json.dumps(doc))


def _experiment(folder: Path, name: str, stack: str) -> str:
    (folder / f"{name}.yaml").write_text(f"""\
version: 1
title: Pause the web server ({name})
{stack}
load: {{locustfile: {LOCUSTFILE}, users: 1, spawn_rate: 1, duration: 10s, warmup: 2s, host: web}}
steady_state:
  - {{name: errors, metric: error_rate, max: 0.01}}
method:
  - {{at: 4s, duration: 2s, kind: process.pause, target: web}}
integrity: []
""")
    return f"{name}.yaml"


def _drill(folder: Path, experiments: list[str], calendar: str = "") -> Path:
    path = folder / "drill.yaml"
    path.write_text(f"""\
version: 1
name: cal-drill
title: Calendar test drill
owner: tests
experiments: [{", ".join(experiments)}]
schedule: {{cron: "0 10 * * *", timezone: Asia/Shanghai}}
{calendar}""")
    return path


def _on(folder: Path, stack: str, market_hours: object = ABSENT, calendar: str = "") -> Path:
    _stack(folder, stack, market_hours)
    return _drill(folder, [_experiment(folder, "exp", f"stack: {{file: {stack}.json}}")], calendar)


def test_a_drill_on_a_stack_that_never_trades_runs_in_china_market_hours(tmp_path: Path) -> None:
    plan = load_drill(_on(tmp_path, "lab", None))
    decided = check_calendar(plan, None, SHANGHAI_OPEN)
    assert decided.startswith("no market hours apply") and "stack lab" in decided and "never trades" in decided
    (scheduled,) = load_scheduled([plan.path], print)
    assert scheduled.refusal(SHANGHAI_OPEN) is None


def test_a_drill_on_a_trading_stack_obeys_its_hours(tmp_path: Path) -> None:
    plan = load_drill(_on(tmp_path, "prod"))  # no market_hours: China A-share sessions
    with pytest.raises(GuardRefusedError) as refused:
        check_calendar(plan, None, SHANGHAI_OPEN)
    assert "stack prod" in str(refused.value) and "the market is open: 09:30-11:30 Asia/Shanghai" in str(refused.value)
    assert check_calendar(plan, None, SHANGHAI_NIGHT).startswith("outside market hours — stack prod")
    overridden = check_calendar(plan, Override(reason="agreed with the desk", by="alice"), SHANGHAI_OPEN)
    assert "run anyway by alice: agreed with the desk" in overridden
    (scheduled,) = load_scheduled([plan.path], print)
    refusal = scheduled.refusal(SHANGHAI_OPEN)
    assert refusal is not None and "the market is open" in refusal
    assert scheduled.refusal(SHANGHAI_NIGHT) is None


def test_the_drill_file_may_still_set_its_own_calendar(tmp_path: Path) -> None:
    strict = load_drill(_on(tmp_path, "lab", None, "calendar: {market_hours: default}\n"))
    with pytest.raises(GuardRefusedError, match="the drill's calendar"):
        check_calendar(strict, None, SHANGHAI_OPEN)
    lax = load_drill(_on(tmp_path, "prod", ABSENT, "calendar: {market_hours: none}\n"))
    assert check_calendar(lax, None, SHANGHAI_OPEN).startswith("no market hours apply — no drill-level guard")


def test_every_stack_of_the_drill_is_obeyed(tmp_path: Path) -> None:
    _stack(tmp_path, "lab", None)
    _stack(tmp_path, "prod")
    first = _experiment(tmp_path, "one", "stack: {file: lab.json}")
    second = _experiment(tmp_path, "two", "stack: {file: prod.json}")
    plan = load_drill(_drill(tmp_path, [first, second]))
    with pytest.raises(GuardRefusedError, match=r"stack prod \("):
        check_calendar(plan, None, SHANGHAI_OPEN)


def test_the_reference_stack_never_trades_so_its_drills_run_at_any_hour(tmp_path: Path) -> None:
    exp = _experiment(tmp_path, "ref", "stack: {reference: basic}")
    text = (tmp_path / exp).read_text().replace("host: web", "host: gateway").replace("target: web", "target: gateway")
    (tmp_path / exp).write_text(text)
    plan = load_drill(_drill(tmp_path, [exp]))
    assert "reference stack basic: never trades" in check_calendar(plan, None, SHANGHAI_OPEN)


def test_the_scheduler_reads_the_stack_calendar_at_each_fire(tmp_path: Path) -> None:
    (scheduled,) = load_scheduled([_on(tmp_path, "lab", None)], print)
    assert scheduled.refusal(SHANGHAI_OPEN) is None
    _stack(tmp_path, "lab", {"timezone": "Asia/Shanghai"})  # the stack now declares China hours
    refusal = scheduled.refusal(SHANGHAI_OPEN)
    assert refusal is not None and refusal.startswith("stack lab") and "the market is open" in refusal
    (tmp_path / "lab.json").write_text("{not json")
    broken = scheduled.refusal(SHANGHAI_OPEN)
    assert broken is not None and broken.startswith("its calendar cannot be judged") and "lab.json" in broken
