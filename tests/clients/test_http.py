"""Control-plane HTTP: credentials in a URL travel as an Authorization header, never in the request line."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from clients import http
from drilling.model import WebhookTarget
from drilling.notify import deliver


class _Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        _Recorder.seen.append((self.requestline, self.headers.get("Authorization")))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    _Recorder.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield int(httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_split_credentials_moves_userinfo_into_a_header() -> None:
    assert http.split_credentials("http://h:1/x?q=1") == ("http://h:1/x?q=1", {})
    url, headers = http.split_credentials("https://ops%40bank:p%3Ass@h:8443/health")
    assert url == "https://h:8443/health"
    assert headers == {"Authorization": basic("ops@bank", "p:ss")}


def test_a_probe_url_with_credentials_is_answered_and_sends_them_as_a_header(server: int) -> None:
    status, body = http.get(f"http://probe:s3cret@127.0.0.1:{server}/health", 2.0)
    assert (status, body) == (200, b"ok")
    ((line, auth),) = _Recorder.seen
    assert line == "GET /health HTTP/1.1" and auth == basic("probe", "s3cret")


def test_a_webhook_with_credentials_is_delivered_and_its_url_is_masked_in_the_record(server: int) -> None:
    target = WebhookTarget(webhook=f"http://hook:s3cret@127.0.0.1:{server}/drill")
    result = deliver(target, {"event": "finished"})
    assert result["ok"] is True, result
    ((line, auth),) = _Recorder.seen
    assert line == "POST /drill HTTP/1.1" and auth == basic("hook", "s3cret")
    assert "s3cret" not in str(result)
