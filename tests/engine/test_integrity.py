"""The integrity phase: the ledger read back, acknowledged orders checked through a real HTTP API, RPO."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from engine import integrity
from engine.integrity import (
    ATTRIBUTION_S,
    GENERIC_CHECKS,
    REFERENCE_CHECKS,
    Outcome,
    checks_for,
    get_check,
    phase_detail,
    read_ledger,
    register,
    run_integrity,
)
from engine.model import Experiment, Objectives
from engine.stack import LiveStack
from engine.verdict import decide
from stackspec.targets import AuditCommand
from tests.engine.fakes import fake_stack, journal_with_faults, make_plan
from tests.support.helpers import ROOT, chaos

T0 = 1_800_000_000.0


class _Orders(BaseHTTPRequestHandler):
    """GET /orders/{id} from a dict, like the gateway; anything else 404."""

    orders: dict[str, dict[str, Any]] = {}

    def do_GET(self) -> None:
        order = self.orders.get(self.path.removeprefix("/orders/"))
        body = json.dumps(order if order else {"error": "unknown order"}).encode()
        self.send_response(200 if order else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[dict[str, dict[str, Any]]]:
    orders: dict[str, dict[str, Any]] = {}
    handler = type("Handler", (_Orders,), {"orders": orders})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    orders["__url__"] = {"url": f"http://127.0.0.1:{server.server_address[1]}"}
    yield orders
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def no_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing order's second look comes at once here (the grace is for a real system's writes in flight)."""
    monkeypatch.setattr(integrity, "MISSING_GRACE_S", 0.0)


def ack(order_id: str, t: float, **changes: Any) -> dict[str, Any]:
    entry = {
        "ev": "ack",
        "t": t,
        "order_id": order_id,
        "client_order_id": f"c-{order_id}",
        "account": "ACC0001",
        "symbol": "600000",
        "side": "buy",
        "qty": 100,
        "price": 10.5,
        "status": "new",
        "filled_qty": 0,
        "ack_at": t,
    }
    return {**entry, **changes}


def as_stored(entry: dict[str, Any], **changes: Any) -> dict[str, Any]:
    keys = ("order_id", "client_order_id", "account", "symbol", "side", "qty", "price", "status", "filled_qty")
    return {**{k: entry[k] for k in keys}, "fills": [], **changes}


def write_ledger(directory: Path, name: str, entries: list[dict[str, Any]], torn: str = "") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(e) + "\n" for e in entries) + torn
    (directory / name).write_text(text)


def experiment(tmp_path: Path, checks: str) -> Experiment:
    plan = make_plan(tmp_path, "- {at: 10s, duration: 5s, kind: process.kill, target: matcher}\n")
    return plan.experiment.model_copy(update={"integrity": json.loads(checks)})


def test_the_ledger_is_read_across_files_and_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    write_ledger(tmp_path, "w1.jsonl", [ack("1", T0 + 2), {"ev": "cancel", "t": T0 + 3, "order_id": "1"}])
    write_ledger(tmp_path, "w2.jsonl", [ack("2", T0 + 1)], torn='{"ev": "ack", "t": 18000')
    ledger = read_ledger(tmp_path)
    assert [a.order_id for a in ledger.acks] == ["2", "1"]  # by acknowledgement time
    assert ledger.cancels == {"1": T0 + 3}
    record = ledger.record
    assert (record.files, record.acknowledged, record.cancels_acknowledged, record.unreadable_lines) == (
        ["w1.jsonl", "w2.jsonl"],
        2,
        1,
        1,
    )
    assert read_ledger(tmp_path / "nothing").record.acknowledged == 0


def test_every_acknowledged_order_is_looked_up_and_each_loss_is_attributed_to_its_fault(
    tmp_path: Path, gateway: dict[str, dict[str, Any]]
) -> None:
    url = gateway.pop("__url__")["url"]
    fault_at = T0 + 10
    entries = [
        ack("1", T0 + 5),  # intact
        ack("2", fault_at - ATTRIBUTION_S / 2),  # in flight when the fault hit: lost
        ack("3", fault_at + 1),  # stored with another quantity
        ack("4", fault_at + 2),  # cancel acknowledged, but still open
        ack("5", T0 + 1),  # lost long before any fault
    ]
    for entry in entries:
        gateway[entry["order_id"]] = as_stored(entry)
    del gateway["2"], gateway["5"]
    gateway["3"]["qty"] = 50
    write_ledger(tmp_path / "ledger", "w.jsonl", [*entries, {"ev": "cancel", "t": fault_at + 3, "order_id": "4"}])
    journal = journal_with_faults(fault_at)
    exp = experiment(tmp_path, '["acknowledged_orders_persisted", "no_duplicate_order_ids"]')

    assert run_integrity(journal, exp, fake_stack(), url, tmp_path / "ledger") is False

    persisted, unique = journal.integrity
    assert (persisted.name, persisted.ok, persisted.checked, persisted.violations) == (
        "acknowledged_orders_persisted",
        False,
        5,
        4,
    )
    assert unique.ok and unique.checked == 5
    found = {o.order_id: (o.found, o.fault_index) for o in journal.lost_orders}
    assert found == {
        "5": ("missing", None),
        "2": ("missing", 1),
        "3": ("qty is 50, acknowledged 100", 1),
        "4": ("status is 'new', but its cancel was acknowledged", 1),
    }
    assert [(r.fault_index, r.lost) for r in journal.rpo] == [(1, 3), (None, 1)]
    assert [(o.name, o.fault_index, o.observed, o.met) for o in journal.objectives] == [
        ("rpo_orders", 1, 3, False),
        ("rpo_orders", None, 1, False),
    ]
    assert journal.ledger is not None and journal.ledger.acknowledged == 5


def test_all_accounted_for_meets_the_rpo_objective(tmp_path: Path, gateway: dict[str, dict[str, Any]]) -> None:
    url = gateway.pop("__url__")["url"]
    entries = [ack(str(n), T0 + n, filled_qty=0) for n in range(1, 30)]
    for entry in entries:
        gateway[entry["order_id"]] = as_stored(entry, status="filled", filled_qty=100)  # filled since: fine
    write_ledger(tmp_path / "ledger", "w.jsonl", entries)
    journal = journal_with_faults(T0 + 10)
    exp = experiment(tmp_path, '["acknowledged_orders_persisted"]')
    assert run_integrity(journal, exp, fake_stack(), url, tmp_path / "ledger") is True
    assert journal.lost_orders == [] and [(r.fault_index, r.lost) for r in journal.rpo] == [(1, 0)]
    assert [(o.observed, o.met) for o in journal.objectives] == [(0, True)]


def test_an_order_written_late_is_looked_up_again_and_not_counted_lost(tmp_path: Path) -> None:
    """A write-behind or replicated store shows an acknowledged order a moment later: that is no loss."""
    entries = [ack("1", T0 + 1), ack("2", T0 + 2), ack("3", T0 + 3)]
    stored = {e["order_id"]: as_stored(e) for e in entries[:2]}
    asked: dict[str, int] = {}

    class Late(_Orders):
        orders = stored

        def do_GET(self) -> None:
            order_id = self.path.removeprefix("/orders/")
            asked[order_id] = asked.get(order_id, 0) + 1
            if order_id == "2" and asked[order_id] == 1:  # not written yet at the first look
                self.orders = {}
            super().do_GET()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Late)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        write_ledger(tmp_path / "ledger", "w.jsonl", entries)
        journal = journal_with_faults(T0 + 10)
        exp = experiment(tmp_path, '["acknowledged_orders_persisted"]')
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert run_integrity(journal, exp, fake_stack(), url, tmp_path / "ledger") is False
    finally:
        server.shutdown()
        server.server_close()
    assert [(o.order_id, o.found) for o in journal.lost_orders] == [("3", "missing")]  # never written
    assert asked == {"1": 1, "2": 2, "3": 2}  # only the missing ones looked up again


def test_an_unreachable_system_is_not_a_pass(tmp_path: Path) -> None:
    write_ledger(tmp_path / "ledger", "w.jsonl", [ack("1", T0 + 1)])
    journal = journal_with_faults(T0 + 10)
    exp = experiment(tmp_path, '["acknowledged_orders_persisted"]')
    assert run_integrity(journal, exp, fake_stack(), "http://127.0.0.1:9", tmp_path / "ledger") is False
    (record,) = journal.integrity
    assert not record.ok and record.error and "did not answer" in record.error
    assert [(o.observed, o.met) for o in journal.objectives] == [(None, False)]


def test_a_duplicate_order_id_in_the_ledger_is_caught(tmp_path: Path) -> None:
    write_ledger(tmp_path / "ledger", "w.jsonl", [ack("7", T0 + 1), ack("7", T0 + 2, client_order_id="other")])
    journal = journal_with_faults(None)
    exp = experiment(tmp_path, '["no_duplicate_order_ids"]')
    assert run_integrity(journal, exp, fake_stack(), None, tmp_path / "ledger") is False
    (record,) = journal.integrity
    assert record.violations == 1 and record.examples == [{"order_id": "7", "first": "c-7", "then": "other"}]


def test_a_check_of_your_own_plugs_in_by_import_path(tmp_path: Path) -> None:
    exp = experiment(tmp_path, '["tests.engine.test_integrity:ALWAYS_TWO_BAD"]')
    journal = journal_with_faults(None)
    assert run_integrity(journal, exp, fake_stack(), None, tmp_path / "ledger") is False
    (record,) = journal.integrity
    assert (record.name, record.description, record.checked, record.violations) == (
        "tests.engine.test_integrity:ALWAYS_TWO_BAD",
        "Two of three things are wrong.",
        3,
        2,
    )
    with pytest.raises(KeyError, match="unknown integrity check 'no_such_check'"):
        get_check("no_such_check")


def test_reference_checks_need_the_reference_stack(tmp_path: Path) -> None:
    exp = experiment(tmp_path, '["balances_conserved"]')
    journal = journal_with_faults(None)
    assert run_integrity(journal, exp, fake_stack(), None, tmp_path / "ledger") is False
    assert "reference stack" in (journal.integrity[0].error or "")


class _TwoBad:
    name = "two_bad"
    description = "Two of three things are wrong."

    def run(self, ctx: object) -> Outcome:
        return Outcome(3, 2, [{"thing": 1}, {"thing": 2}])


ALWAYS_TWO_BAD = register(_TwoBad())


def test_an_unknown_check_in_the_file_is_refused_with_its_line(tmp_path: Path) -> None:
    shipped = (ROOT / "experiments" / "redis-link-latency.yaml").read_text()
    text = shipped.replace("locustfile: ../loadgen/trading.py", f"locustfile: {ROOT / 'loadgen' / 'trading.py'}")
    text += "integrity: [acknowledged_orders_persisted, no_such_check]\n"
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = chaos("validate", str(path))
    line = text.count("\n")
    assert result.returncode == 2
    assert f"{path}:{line}:" in result.stdout + result.stderr
    assert "unknown integrity check 'no_such_check'" in result.stdout + result.stderr


def test_without_a_ledger_nothing_is_held_and_no_loss_is_counted(tmp_path: Path) -> None:
    journal = journal_with_faults(T0 + 10)
    exp = experiment(tmp_path, '["acknowledged_orders_persisted", "no_duplicate_order_ids"]')
    # Nothing to reconcile does not fail the run, but it is not checked: never "held", never "0 lost".
    assert run_integrity(journal, exp, fake_stack(), "http://127.0.0.1:9", tmp_path / "ledger") is True
    assert [(r.name, r.status, r.ok, r.checked) for r in journal.integrity] == [
        ("acknowledged_orders_persisted", "not_checked", False, 0),
        ("no_duplicate_order_ids", "not_checked", False, 0),
    ]
    assert all("no acknowledgement ledger" in r.why for r in journal.integrity)
    assert journal.rpo == []
    assert [(o.name, o.status, o.observed) for o in journal.objectives] == [("rpo_orders", "not_checked", None)]
    assert phase_detail(journal) == "acknowledged orders not reconciled (not checked)"
    verdict, _, summary = decide(journal, exp, None)
    assert verdict == "passed"
    assert "Integrity held" not in summary and "accounted for" not in summary
    assert "Not checked: acknowledged_orders_persisted (no acknowledgement ledger" in summary


def test_an_rpo_objective_written_in_the_file_must_be_checkable(tmp_path: Path) -> None:
    journal = journal_with_faults(T0 + 10)
    exp = experiment(tmp_path, '["acknowledged_orders_persisted"]')
    exp = exp.model_copy(update={"objectives": Objectives(rpo_orders=0)})
    run_integrity(journal, exp, fake_stack(), None, tmp_path / "ledger")
    verdict, _, summary = decide(journal, exp, None)
    assert verdict == "deviated"
    assert "RPO of fault #1 not checked: acknowledged_orders_persisted was not checked" in summary


def test_a_check_that_examined_nothing_is_not_checked(tmp_path: Path) -> None:
    write_ledger(tmp_path / "ledger", "w.jsonl", [])
    journal = journal_with_faults(None)
    exp = experiment(tmp_path, '["tests.engine.test_integrity:EXAMINES_NOTHING"]')
    assert run_integrity(journal, exp, fake_stack(), None, tmp_path / "ledger") is True
    (record,) = journal.integrity
    assert (record.status, record.why) == ("not_checked", "nothing to check: it examined 0 items")


class _Nothing:
    name = "examines_nothing"
    description = "Looks at nothing."

    def run(self, ctx: object) -> Outcome:
        return Outcome(0, 0, [])


EXAMINES_NOTHING = register(_Nothing())


def audited_stack(tmp_path: Path, report: dict[str, Any] | None, exit_code: int = 0) -> LiveStack:
    """fake_stack declaring an audit: a real command that prints `report` (and counts its runs in a file)."""
    runs = tmp_path / "audit-runs"
    code = (
        f"import sys; open({str(runs)!r}, 'a').write('x'); "
        f"print({json.dumps(report)!r}); print('redis went away', file=sys.stderr); sys.exit({exit_code})"
    )
    stack = fake_stack()
    audit = AuditCommand(argv=[sys.executable, "-c", code])
    return LiveStack(stack.description.model_copy(update={"name": "mine", "audit": audit}), None)


def result(checked: int, examples: list[dict[str, Any]]) -> dict[str, Any]:
    return {"checked": checked, "violations": len(examples), "examples": examples}


def test_the_stack_s_declared_audit_is_run_once_and_its_invariants_become_records(tmp_path: Path) -> None:
    report = {
        "checks": {
            "no_double_fills": result(40, []),
            "balances_conserved": result(100, [{"asset": "cash (cents)", "expected": 10, "found": 9}]),
            "book_not_crossed": result(5, []),
            "no_duplicate_order_ids": result(40, []),
        }
    }
    stack = audited_stack(tmp_path, report)
    write_ledger(tmp_path / "ledger", "w.jsonl", [ack("7", T0 + 1), ack("7", T0 + 2, client_order_id="other")])
    exp = experiment(
        tmp_path, '["no_double_fills", "balances_conserved", "book_not_crossed", "no_duplicate_order_ids"]'
    )
    journal = journal_with_faults(None)
    assert run_integrity(journal, exp, stack, None, tmp_path / "ledger") is False
    assert [(r.name, r.status, r.checked, r.violations) for r in journal.integrity] == [
        ("no_double_fills", "held", 40, 0),
        ("balances_conserved", "failed", 100, 1),
        ("book_not_crossed", "held", 5, 0),
        ("no_duplicate_order_ids", "failed", 40, 1),  # the audit's count, plus the ledger's clash
    ]
    assert journal.integrity[3].examples == [{"order_id": "7", "first": "c-7", "then": "other"}]
    assert (tmp_path / "audit-runs").read_text() == "x"  # once for all four checks


def test_without_a_declared_audit_its_checks_are_not_checked_and_say_why(tmp_path: Path) -> None:
    exp = experiment(tmp_path, '["no_double_fills", "no_duplicate_order_ids"]')
    write_ledger(tmp_path / "ledger", "w.jsonl", [ack("1", T0 + 1)])
    journal = journal_with_faults(None)
    assert run_integrity(journal, exp, fake_stack(), None, tmp_path / "ledger") is False
    fills, unique = journal.integrity
    assert fills.status == "not_checked" and fills.why.startswith("could not run: this check reads the system's own")
    assert "declares no `audit` command" in (fills.error or "")
    assert (unique.status, unique.checked) == ("held", 1)  # the ledger alone, as on any stack


def test_an_audit_that_fails_or_leaves_an_invariant_out_is_not_checked(tmp_path: Path) -> None:
    partial = audited_stack(tmp_path, {"checks": {"balances_conserved": result(100, [])}})
    write_ledger(tmp_path / "ledger", "w.jsonl", [ack("1", T0 + 1)])
    exp = experiment(tmp_path, '["balances_conserved", "book_not_crossed", "no_duplicate_order_ids"]')
    journal = journal_with_faults(None)
    assert run_integrity(journal, exp, partial, None, tmp_path / "ledger") is False
    held, missing, unique = journal.integrity
    assert (held.status, missing.status, unique.status) == ("held", "not_checked", "held")
    assert "does not report 'book_not_crossed' (it reports: balances_conserved)" in (missing.error or "")
    assert unique.checked == 1  # an audit without client order ids: the ledger's check alone

    broken = audited_stack(tmp_path / "b", None, exit_code=2)
    (tmp_path / "b").mkdir()
    journal = journal_with_faults(None)
    run_integrity(journal, experiment(tmp_path, '["no_double_fills"]'), broken, None, tmp_path / "ledger")
    (record,) = journal.integrity
    assert record.status == "not_checked" and "the audit failed (exit code 2): redis went away" in (record.error or "")


def test_a_stack_that_declares_an_audit_gets_every_built_in_check_by_default(tmp_path: Path) -> None:
    exp = experiment(tmp_path, "null")
    file_stack = exp.model_copy(update={"stack": exp.stack.model_copy(update={"reference": None, "file": "s.yaml"})})
    assert checks_for(file_stack, "mine") == list(GENERIC_CHECKS)
    assert checks_for(file_stack, "mine", audit_declared=True) == list(REFERENCE_CHECKS)
    assert checks_for(exp, "reference") == list(REFERENCE_CHECKS)
