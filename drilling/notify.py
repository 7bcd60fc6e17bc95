"""Webhook notifications of drill start and finish: a JSON POST each; failures are recorded, never raised.

Webhook URLs often carry tokens (in the query string, the user info or the path), so only the
redacted URL ever reaches the drill record or the console.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any, Literal

from clients.http import split_credentials
from drilling.model import WebhookTarget, redact_url
from drilling.record import DrillRecord

USER_AGENT = "chaos-drill/1"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect would re-send the payload (or drop it) to a host the drill file did not name.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect())


def payload(event: Literal["started", "finished"], record: DrillRecord) -> dict[str, Any]:
    """What a webhook receives: the drill, the run, and (when finished) the verdict and report."""
    return {
        "event": f"drill_{event}",
        "drill": record.drill_name,
        "title": str(record.drill.get("title", "")),
        "run_id": record.drill_run_id,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "verdict": record.verdict,
        "exit_code": record.exit_code,
        "summary": record.summary,
        "report": record.report,
        "non_interactive": record.non_interactive,
    }


def _scrub(text: str, url: str) -> str:
    redacted = redact_url(url)
    for secret in sorted({url, url.split("?", 1)[0], url.split("#", 1)[0]}, key=len, reverse=True):
        text = text.replace(secret, redacted)
    return text


def deliver(target: WebhookTarget, body: dict[str, Any]) -> dict[str, Any]:
    """POST `body` as JSON to one webhook; returns what happened (never raises)."""
    started = time.monotonic()
    result: dict[str, Any] = {"event": body["event"], "target": redact_url(target.webhook), "t": time.time()}
    url, auth = split_credentials(target.webhook)  # user:pw@ in the URL is sent as a header, never in the URL
    request = urllib.request.Request(  # noqa: S310 (the scheme is validated: http or https only)
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **auth},
        method="POST",
    )
    try:
        with _OPENER.open(request, timeout=target.timeout) as response:
            result.update(ok=200 <= response.status < 300, status=response.status)
    except urllib.error.HTTPError as exc:
        result.update(ok=False, status=exc.code, error=f"HTTP {exc.code} {exc.reason}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        kind = "timed out" if isinstance(reason, TimeoutError) or "timed out" in str(reason) else "failed"
        result.update(ok=False, status=None, error=_scrub(f"{kind}: {reason}", target.webhook))
    result["took_s"] = round(time.monotonic() - started, 3)
    return result


def notify(
    targets: list[WebhookTarget], event: Literal["started", "finished"], record: DrillRecord
) -> list[dict[str, Any]]:
    """Deliver `event` to every target that wants it; the results, for the record's `notifications`."""
    body = payload(event, record)
    return [deliver(t, body) for t in targets if event in t.events]


def delivery_line(result: dict[str, Any]) -> str:
    """One delivery as the console shows it."""
    state = f"HTTP {result['status']}" if result.get("ok") else f"FAILED ({result.get('error')})"
    return f"webhook {result['target']} ({result['event']}): {state}"
