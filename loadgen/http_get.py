"""Light HTTP GETs of the load host's own URL, for experiments imported from Chaos Toolkit (which drives no load).

Run with the metrics plugin: ``locust -f loadgen/http_get.py,loadgen/metrics_plugin.py --host URL``. Each user
requests the host URL as given — with its path, e.g. ``http://127.0.0.1:8080/health`` — one to two times a
second; ``/`` when the host has no path. Any status below 400 is a success; 4xx, 5xx, connection errors and
timeouts are failures, named ``HTTP <status>`` or after the exception.
"""

from __future__ import annotations

import urllib.parse

from locust import between, task
from locust.contrib.fasthttp import FastHttpUser


def request_name(host: str | None) -> str:
    """The Locust request name for a host URL: 'GET /health', 'GET /' without a path."""
    path = urllib.parse.urlsplit(host or "").path or "/"
    return f"GET {path}"


class LightGet(FastHttpUser):
    """A client that keeps asking one URL, lightly."""

    wait_time = between(0.5, 1.0)

    @task
    def get(self) -> None:
        host = self.host or ""
        suffix = "" if urllib.parse.urlsplit(host).path else "/"
        with self.client.get(suffix, name=request_name(host), catch_response=True) as response:
            if response.status_code >= 400 or response.status_code == 0:
                response.failure(f"HTTP {response.status_code}" if response.status_code else str(response.error))
            else:
                response.success()
