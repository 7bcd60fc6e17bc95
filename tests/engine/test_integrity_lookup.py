"""acknowledged_found_by_url against a real order service on loopback, with a ledger written by the public API."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.errors import InvalidInputError
from engine.integrity import run_integrity
from engine.integrity_lookup import select
from engine.integrity_rpo import ATTRIBUTION_S, measured_loss
from engine.integrity_spec import LookupCheck
from engine.model import Experiment
from engine.plan import load_plan
from engine.stack import LiveStack
from loadgen.ledger import Ledger, read_ledger_dir
from reports.markdown import render_markdown
from stackspec.targets import ProcessInstance, ProcessTarget, StackDescription
from tests.engine.fakes import journal_with_faults, make_plan
from tests.support.order_service import OrderService, order_service

T0 = 1_800_000_000.0
FAULT_AT = T0 + 10


@pytest.fixture
def service() -> Iterator[OrderService]:
    with order_service() as running:
        yield running


def stack(endpoints: dict[str, str] | None = None) -> LiveStack:
    target = ProcessTarget(instances=[ProcessInstance(name="matcher-1", argv=["true"])])
    return LiveStack(StackDescription(name="own", targets={"matcher": target}, endpoints=endpoints or {}), None)


def experiment(tmp_path: Path, **lookup: Any) -> Experiment:
    plan = make_plan(tmp_path, "- {at: 10s, duration: 5s, kind: process.kill, target: matcher}\n")
    spec = LookupCheck.model_validate({"check": "acknowledged_found_by_url", **lookup})
    return plan.experiment.model_copy(update={"integrity": [spec]})


def place(service: OrderService, ledger: Ledger, t: float, **order: Any) -> str:
    """An order stored by the service and acknowledged in the ledger through the public API."""
    body = {"account": "ACC0001", "symbol": "AAA", "side": "buy", "qty": 100, "price": 10.25, **order}
    order_id = service.add(body)
    ledger.acknowledged(order_id, t=t, **body)
    return order_id


def test_every_id_found_holds_and_measures_a_zero_rpo(tmp_path: Path, service: OrderService) -> None:
    ledger = Ledger(tmp_path / "ledger")
    ids = [place(service, ledger, T0 + n) for n in range(1, 31)]
    run = journal_with_faults(FAULT_AT)
    exp = experiment(tmp_path, url=f"{service.url}/orders/{{id}}", parallel=4)

    assert run_integrity(run, exp, stack(), None, tmp_path / "ledger") is True

    (record,) = run.integrity
    assert (record.name, record.status, record.checked, record.violations, record.why) == (
        "acknowledged_found_by_url",
        "held",
        30,
        0,
        "",
    )
    assert set(service.lookups) == set(ids) and 1 < service.in_flight_max <= 4
    assert [(r.fault_index, r.lost) for r in run.rpo] == [(1, 0)]
    assert [(o.observed, o.status) for o in run.objectives] == [(0, "held")]
    assert measured_loss(run) == (0, "")


def test_lost_ids_are_found_missing_and_attributed_to_their_fault(tmp_path: Path, service: OrderService) -> None:
    ledger = Ledger(tmp_path / "ledger")
    early = place(service, ledger, T0 + 1)  # lost long before any fault
    in_flight = place(service, ledger, FAULT_AT - ATTRIBUTION_S / 2)  # acknowledged just before the kill
    after = place(service, ledger, FAULT_AT + 1)
    kept = place(service, ledger, FAULT_AT + 2)
    cancelled = place(service, ledger, FAULT_AT + 3)
    altered = place(service, ledger, FAULT_AT + 4)
    ledger.cancelled(cancelled, t=FAULT_AT + 3.5)
    service.lose([early, in_flight, after, cancelled])  # a cancelled order may be deleted: no loss
    service.alter(altered, "price", 10.5)
    run = journal_with_faults(FAULT_AT)
    exp = experiment(tmp_path, url=f"{service.url}/orders/{{id}}", compare={"price": "price", "side": "side"})

    assert run_integrity(run, exp, stack(), None, tmp_path / "ledger") is False

    (record,) = run.integrity
    assert (record.status, record.checked, record.violations) == ("failed", 6, 4)
    found = {o.order_id: (o.found, o.fault_index) for o in run.lost_orders}
    assert found == {
        early: ("missing", None),
        in_flight: ("missing", 1),
        after: ("missing", 1),
        altered: ("price is 10.5, acknowledged 10.25", 1),
    }
    assert kept not in found
    assert [(r.fault_index, r.lost) for r in run.rpo] == [(1, 3), (None, 1)]
    assert [(o.fault_index, o.observed, o.status) for o in run.objectives] == [
        (1, 3, "failed"),
        (None, 1, "failed"),
    ]
    assert measured_loss(run) == (4, "")


def test_an_id_that_times_out_is_not_checked_and_no_rpo_is_claimed(tmp_path: Path, service: OrderService) -> None:
    ledger = Ledger(tmp_path / "ledger")
    ids = [place(service, ledger, T0 + n) for n in range(1, 6)]
    service.stall(ids[:1], 2.0)
    run = journal_with_faults(FAULT_AT)
    exp = experiment(tmp_path, url=f"{service.url}/orders/{{id}}", timeout="200ms", attempts=2)

    started = time.monotonic()
    assert run_integrity(run, exp, stack(), None, tmp_path / "ledger") is False
    assert time.monotonic() - started < 5

    (record,) = run.integrity
    assert (record.status, record.checked, record.violations) == ("not_checked", 4, 0)
    assert record.error is not None and f"1 of 5 ids could not be checked (e.g. {ids[0]}: no answer" in record.error
    assert service.lookups[ids[0]] == 2  # every attempt was made
    assert run.rpo == []
    (objective,) = run.objectives
    assert objective.status == "not_checked" and "not checked" in objective.why
    assert measured_loss(run)[0] is None


def test_another_status_after_every_attempt_is_not_checked(tmp_path: Path, service: OrderService) -> None:
    ledger = Ledger(tmp_path / "ledger")
    ids = [place(service, ledger, T0 + n) for n in range(1, 4)]
    service.fail(ids[1:2], 503)
    run = journal_with_faults(FAULT_AT)
    exp = experiment(tmp_path, url=f"{service.url}/orders/{{id}}", attempts=3)
    assert run_integrity(run, exp, stack(), None, tmp_path / "ledger") is False
    (record,) = run.integrity
    assert record.status == "not_checked" and "answered 503" in (record.error or "")
    assert service.lookups[ids[1]] == 3


def test_a_sample_is_said_to_be_one_and_measures_no_rpo(tmp_path: Path, service: OrderService) -> None:
    ledger = Ledger(tmp_path / "ledger")
    for n in range(40):
        place(service, ledger, T0 + n / 2)
    run = journal_with_faults(FAULT_AT)
    exp = experiment(tmp_path, url=f"{service.url}/orders/{{id}}", max_ids=10)

    assert run_integrity(run, exp, stack(), None, tmp_path / "ledger") is True

    (record,) = run.integrity
    assert (record.status, record.checked) == ("held", 10)
    assert record.why == "a sample: looked up 10 of 40 acknowledged ids (max_ids)"
    assert len(service.lookups) == 10
    assert run.rpo == [] and [o.status for o in run.objectives] == ["not_checked"]
    lost, why = measured_loss(run)
    assert lost is None and "did not cover every acknowledged id" in why
    assert "a sample: looked up 10 of 40" in render_markdown(run)


def test_the_sample_spreads_over_the_whole_run(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    for n in range(100):
        ledger.acknowledged(f"o{n}", t=T0 + n)
    chosen = select(read_ledger_dir(tmp_path).acks, 4)
    assert [a.order_id for a in chosen] == ["o0", "o25", "o50", "o75"]


def test_an_id_acknowledged_for_two_orders_breaks_it(tmp_path: Path, service: OrderService) -> None:
    ledger = Ledger(tmp_path / "ledger")
    order_id = place(service, ledger, T0 + 1, client_order_id="c-1")
    ledger.acknowledged(order_id, t=T0 + 2, client_order_id="c-2", account="ACC0001")
    run = journal_with_faults(FAULT_AT)
    exp = experiment(tmp_path, url=f"{service.url}/orders/{{id}}")
    assert run_integrity(run, exp, stack(), None, tmp_path / "ledger") is False
    (record,) = run.integrity
    assert record.status == "failed" and record.examples[0]["found"] == "acknowledged twice"


def test_a_leading_endpoint_name_is_the_stacks(tmp_path: Path, service: OrderService) -> None:
    ledger = Ledger(tmp_path / "ledger")
    place(service, ledger, T0 + 1)
    run = journal_with_faults(FAULT_AT)
    exp = experiment(tmp_path, url="{orders}/orders/{id}")
    assert run_integrity(run, exp, stack({"orders": service.url + "/"}), None, tmp_path / "ledger") is True
    unknown = journal_with_faults(FAULT_AT)
    assert run_integrity(unknown, exp, stack({}), None, tmp_path / "ledger") is False
    assert unknown.integrity[0].status == "not_checked" and "no endpoint 'orders'" in (unknown.integrity[0].error or "")


def test_without_a_ledger_it_is_not_checked_and_says_why(tmp_path: Path, service: OrderService) -> None:
    run = journal_with_faults(FAULT_AT)
    exp = experiment(tmp_path, url=f"{service.url}/orders/{{id}}")
    assert run_integrity(run, exp, stack(), None, tmp_path / "ledger") is True  # nothing to examine
    assert run.integrity[0].status == "not_checked" and "no acknowledgement ledger" in run.integrity[0].why
    assert run.rpo == [] and measured_loss(run)[0] is None


EXPERIMENT = """\
version: 1
title: own system
stack: {file: stack.json}
load: {locustfile: lf.py, host: orders, users: 5, spawn_rate: 5, duration: 30s}
steady_state:
  - {name: errors, metric: error_rate, max: 0.01}
method:
  - {at: 10s, duration: 5s, kind: process.kill, target: matcher}
integrity:
  - acknowledged_orders_persisted
  - check: acknowledged_found_by_url
"""


def problems(tmp_path: Path, entry: str) -> list[str]:
    (tmp_path / "lf.py").write_text("# locustfile\n")
    (tmp_path / "stack.json").write_text(stack({"orders": "http://127.0.0.1:1"}).description.model_dump_json())
    path = tmp_path / "exp.yaml"
    path.write_text(EXPERIMENT + textwrap.indent(textwrap.dedent(entry), "    "))
    with pytest.raises(InvalidInputError) as info:
        load_plan(path)
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("url: ftp://h/orders/{id}\n", ":12:10: integrity.1.url: 'ftp://h/orders/{id}' is not an http(s) URL"),
        ("url: http://h/orders\n", ":11:5: integrity.1: url 'http://h/orders' has no {id}"),
        (
            "url: http://h/{id}\nparallel: 0\n",
            ":13:15: integrity.1.parallel: Input should be greater than or equal to 1",
        ),
        ("url: http://h/{id}\ntimeout: 2\n", ":13:14: integrity.1.timeout: expected a duration with a unit"),
        ("url: http://h/{id}\nretries: 2\n", ":13:5: unknown key 'retries'"),
        ("url: http://h/{id}/{other}\n", "only a leading {endpoint} name is allowed"),
        ("url: http://h/{id}\ncompare: {px: cost}\n", "integrity.1.compare.px: Input should be 'client_order_id'"),
        ("url: http://h/{id}\nstatus: 404\n", "status and missing_status are both 404"),
        ("url: '{nowhere}/orders/{id}'\n", ":12:10: unknown endpoint {nowhere} in url (known: orders)"),
    ],
)
def test_bad_entries_are_refused_with_file_and_line(tmp_path: Path, entry: str, expected: str) -> None:
    found = problems(tmp_path, entry)
    assert any(expected in p for p in found), found


def test_an_unknown_configured_check_and_a_second_lookup_are_refused(tmp_path: Path) -> None:
    (tmp_path / "lf.py").write_text("# locustfile\n")
    (tmp_path / "stack.json").write_text(stack().description.model_dump_json())
    path = tmp_path / "exp.yaml"
    path.write_text(EXPERIMENT.replace("check: acknowledged_found_by_url", "check: found_somewhere") + "    url: x\n")
    with pytest.raises(InvalidInputError) as info:
        load_plan(path)
    found = [str(p) for p in info.value.problems]
    assert any(":11:12: integrity.1.check: Input should be 'acknowledged_found_by_url'" in p for p in found), found
    twice = EXPERIMENT + "    url: http://h/{id}\n  - {check: acknowledged_found_by_url, url: 'http://h/{id}'}\n"
    path.write_text(twice)
    with pytest.raises(InvalidInputError) as info:
        load_plan(path)
    assert any("at most one acknowledged_found_by_url entry" in str(p) for p in info.value.problems)
