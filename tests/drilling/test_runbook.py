"""The runbook: steps fall due in order, conditions are taken once each, manual steps wait for an operator."""

from __future__ import annotations

from typing import Any

from drilling.model import RunbookStep
from drilling.runbook import CI_BY, Occurrence, Runbook


def steps(*specs: dict[str, Any]) -> list[RunbookStep]:
    return [RunbookStep.model_validate({"title": s["id"], **s}) for s in specs]


def status(book: Runbook) -> list[tuple[str, str]]:
    return [(r.id, r.status) for r in book.records]


def test_steps_fall_due_in_order_and_auto_steps_take_their_event_time() -> None:
    book = Runbook(
        steps(
            {"id": "brief"},
            {"id": "inject", "when": "fault_injected"},
            {"id": "detect", "when": "steady_state_failed", "marks": "detect", "expected": "5s"},
        )
    )
    book.start(100.0)
    assert [r.due_at for r in book.records] == [100.0, None, None]
    book.observe(Occurrence("fault_injected", 1, 104.0), now=104.0)  # happens before its step is due
    assert status(book) == [("brief", "pending"), ("inject", "done"), ("detect", "pending")]
    assert book.records[1].took_s is None and book.current() == 0  # done, but not due yet: the brief is
    assert book.check_ack("inject") is not None and "automatic" in str(book.check_ack("inject"))
    book.ack("brief", "alice", 106.0)
    inject = book.records[1]
    assert (inject.status, inject.done_at, inject.due_at, inject.took_s) == ("done", 104.0, 106.0, 0.0)
    book.observe(Occurrence("steady_state_failed", 1, 113.0), now=113.5)
    detect = book.records[2]
    assert (detect.status, detect.took_s, detect.by) == ("late", 7.0, "auto")  # 7 s after due, 5 s expected
    assert book.all_finished() and book.marked("detect") is detect


def test_each_occurrence_is_taken_by_one_step_and_scopes_hold() -> None:
    book = Runbook(
        steps(
            {"id": "second-exp", "when": "fault_injected", "experiment": 2},
            {"id": "first", "when": "fault_injected"},
            {"id": "second", "when": "fault_injected"},
        )
    )
    book.start(0.0)
    book.observe(Occurrence("fault_injected", 1, 1.0), now=1.0)
    assert status(book) == [("second-exp", "pending"), ("first", "done"), ("second", "pending")]
    book.observe(Occurrence("fault_injected", 2, 5.0), now=5.0)
    assert status(book) == [("second-exp", "done"), ("first", "done"), ("second", "pending")]
    book.observe(Occurrence("fault_injected", 2, 9.0), now=9.0)
    assert [r.done_at for r in book.records] == [5.0, 1.0, 9.0]


def test_acknowledgements_are_checked() -> None:
    book = Runbook(steps({"id": "page"}, {"id": "rolled", "when": "fault_rolled_back"}))
    book.start(0.0)
    assert "no step 'nope'" in book.ack("nope", "bob", 1.0)[0]
    assert "manual steps: page" in str(book.check_ack("nope"))
    book.ack("page", "bob", 2.0, "web")
    assert book.records[0].by == "bob" and book.records[0].detail == "via web"
    assert "already done" in str(book.check_ack("page"))


def test_non_interactive_acknowledges_due_manual_steps_and_marks_them() -> None:
    book = Runbook(steps({"id": "a"}, {"id": "b"}, {"id": "c", "when": "recovered"}, {"id": "d"}), non_interactive=True)
    book.start(10.0)
    book.tick(10.5)
    assert status(book)[:2] == [("a", "done"), ("b", "done")]
    assert all(r.auto_acknowledged and r.by == CI_BY for r in book.records[:2])
    assert status(book)[3] == ("d", "pending")  # behind an automatic step that has not happened
    book.close_conditions(20.0)  # the experiments are over: 'recovered' never came
    assert book.records[2].status == "missed" and "did not happen" in book.records[2].detail
    book.tick(20.1)
    assert status(book)[3] == ("d", "done") and book.records[3].auto_acknowledged


def test_closing_marks_what_is_left() -> None:
    book = Runbook(steps({"id": "a"}, {"id": "b"}))
    book.start(0.0)
    book.close(5.0, "skipped", "interrupted")
    assert status(book) == [("a", "skipped"), ("b", "skipped")]


def test_a_step_falls_due_when_its_predecessor_happened_not_when_that_became_known() -> None:
    # The recovery is known only when the experiment's journal is analysed (here at +65 s), after the
    # rollback that follows it in the runbook was seen (+40 s): the rollback step is due from +29 s.
    book = Runbook(
        steps(
            {"id": "inject", "when": "fault_injected"},
            {"id": "recover", "when": "recovered", "marks": "recover"},
            {"id": "rejoin", "when": "fault_rolled_back"},
        )
    )
    book.start(0.0)
    book.observe(Occurrence("fault_injected", 1, 10.0), now=10.0)
    book.observe(Occurrence("fault_rolled_back", 1, 40.0), now=40.0)
    book.observe(Occurrence("recovered", 1, 29.0), now=65.0)
    rejoin = book.records[2]
    assert (rejoin.due_at, rejoin.done_at, rejoin.took_s) == (29.0, 40.0, 11.0)
    assert all(r.due_at is not None and r.done_at is not None and r.due_at <= r.done_at for r in book.records)
