"""Webhooks against a real receiver on loopback: payload, failures and timeouts recorded, tokens never shown."""

from __future__ import annotations

import time

from drilling.model import WebhookTarget
from drilling.notify import notify
from drilling.record import DrillRecord
from tests.drilling.receiver import receiving
from tests.support.helpers import free_port


def record() -> DrillRecord:
    return DrillRecord(
        drill_run_id="20260101T000000Z-x-abcd",
        drill_name="x",
        drill_file="drills/x.yaml",
        drill_sha256="0" * 64,
        drill={"title": "X drill"},
        started_at=time.time(),
        verdict="passed",
        exit_code=0,
        report="runs/drills/r/drill-report.html",
    )


def test_payload_reaches_the_receiver_and_the_token_is_not_recorded() -> None:
    with receiving() as receiver:
        target = WebhookTarget(webhook=receiver.url("/hook?token=SECRET"))
        (result,) = notify([target], "finished", record())
    assert result["ok"] and result["status"] == 200
    assert "SECRET" not in str(result) and result["target"] == f"http://127.0.0.1:{receiver.port}/hook?…"
    (request,) = receiver.requests
    assert request["query"] == "token=SECRET" and request["type"] == "application/json"
    body = request["json"]
    assert body["event"] == "drill_finished" and body["drill"] == "x" and body["title"] == "X drill"
    assert body["run_id"] == "20260101T000000Z-x-abcd" and body["verdict"] == "passed"
    assert body["report"] == "runs/drills/r/drill-report.html"


def test_failures_and_timeouts_are_recorded_not_raised() -> None:
    closed = WebhookTarget(webhook=f"http://127.0.0.1:{free_port()}/hook?token=SECRET")
    with receiving(status=500) as failing, receiving(delay_s=3.0) as slow:
        started = time.monotonic()
        results = notify(
            [
                closed,
                WebhookTarget(webhook=failing.url("/h?token=SECRET")),
                WebhookTarget(webhook=slow.url("/h?token=SECRET"), timeout="500ms"),
                WebhookTarget(webhook=failing.url(), events=["finished"]),  # does not want 'started'
            ],
            "started",
            record(),
        )
        took = time.monotonic() - started
    assert [r["ok"] for r in results] == [False, False, False]
    assert "failed" in results[0]["error"] and "refused" in results[0]["error"].lower()
    assert results[1]["status"] == 500 and results[1]["error"].startswith("HTTP 500")
    assert "timed out" in results[2]["error"] and results[2]["took_s"] < 2.5
    assert took < 3.0
    assert "SECRET" not in str(results)
