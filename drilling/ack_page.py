"""The runbook page: a small page on 127.0.0.1 (a free port) listing the steps, a button per pending manual step.

Every request carries a random token (it is in the URL printed at start), so other local programs,
or web pages in the operator's browser, cannot acknowledge steps. An acknowledgement is appended to
the drill's inbox (drilling.ack), like `chaos.py drill ack` does.
"""

from __future__ import annotations

import html
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from drilling.ack import append_ack

MAX_BODY = 4096

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Drill {name}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: .3em .6em; text-align: left; }}
.done {{ color: #15803d; }} .late {{ color: #b45309; }} .missed {{ color: #b91c1c; }} .pending {{ color: #555; }}
</style></head>
<body>
<h1>Drill: {title}</h1>
<p id="phase"></p>
<p><label>Your name: <input id="by" value="operator"></label></p>
<table><thead><tr><th>#</th><th>step</th><th>what</th><th>mode</th><th>status</th><th>took</th><th>by</th>
<th></th></tr></thead><tbody id="steps"></tbody></table>
<p id="msg"></p>
<script>
const token = {token};
async function ack(step) {{
  const body = new URLSearchParams({{step: step, by: document.getElementById('by').value, token: token}});
  const r = await fetch('/ack', {{method: 'POST', body: body}});
  document.getElementById('msg').textContent = (await r.json()).message;
  refresh();
}}
function cell(text, cls) {{ const td = document.createElement('td'); td.textContent = text ?? '';
  if (cls) td.className = cls; return td; }}
async function refresh() {{
  const state = await (await fetch('/state?token=' + encodeURIComponent(token))).json();
  document.getElementById('phase').textContent = state.phase;
  const rows = document.getElementById('steps'); rows.replaceChildren();
  state.steps.forEach((s, i) => {{
    const tr = document.createElement('tr');
    [String(i + 1), s.id, s.title, s.mode, s.status, s.took_s == null ? '' : s.took_s.toFixed(1) + 's', s.by]
      .forEach((v, j) => tr.appendChild(cell(v, j === 4 ? s.status : null)));
    const td = document.createElement('td');
    if (s.mode === 'manual' && s.status === 'pending') {{
      const b = document.createElement('button'); b.textContent = 'acknowledge'; b.onclick = () => ack(s.id);
      td.appendChild(b);
    }}
    tr.appendChild(td); rows.appendChild(tr);
  }});
}}
refresh(); setInterval(refresh, 1000);
</script>
</body></html>
"""


@dataclass(frozen=True)
class PageContext:
    """What the page's handlers need: where acknowledgements go, the token, the drill's state and its judge."""

    drill_dir: Path
    title: str
    name: str
    token: str
    state: Callable[[], dict[str, Any]]
    accept: Callable[[str], str | None]  # why a step cannot be acknowledged, or None


class _PageServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context: PageContext) -> None:
        super().__init__(("127.0.0.1", 0), AckHandler)
        self.context = context


class AckHandler(BaseHTTPRequestHandler):
    """GET / (the page), GET /state (the runbook as JSON), POST /ack; each needs the server's token."""

    server: _PageServer

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, value: dict[str, Any]) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def _token_ok(self, given: str | None) -> bool:
        return given is not None and secrets.compare_digest(given, self.server.context.token)

    def do_GET(self) -> None:
        context = self.server.context
        url = urlsplit(self.path)
        if not self._token_ok(parse_qs(url.query).get("token", [None])[0]):
            self._json(HTTPStatus.FORBIDDEN, {"message": "open the URL the drill printed (with its token)"})
        elif url.path == "/":
            name, title = html.escape(context.name), html.escape(context.title)
            page = _PAGE.format(name=name, title=title, token=json.dumps(context.token))
            self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8")
        elif url.path == "/state":
            self._json(HTTPStatus.OK, context.state())
        else:
            self._json(HTTPStatus.NOT_FOUND, {"message": "not found"})

    def _form(self) -> dict[str, str] | None:
        """The POSTed form (urlencoded or JSON); None when an error was already answered."""
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"message": "request too large"})
            return None
        raw = self.rfile.read(length).decode("utf-8", errors="replace")
        if not self.headers.get("Content-Type", "").startswith("application/json"):
            return {k: v[0] for k, v in parse_qs(raw).items()}
        try:
            return {k: str(v) for k, v in json.loads(raw).items()}
        except (ValueError, AttributeError):
            self._json(HTTPStatus.BAD_REQUEST, {"message": "invalid JSON"})
            return None

    def do_POST(self) -> None:
        if urlsplit(self.path).path != "/ack":
            self._json(HTTPStatus.NOT_FOUND, {"message": "not found"})
            return
        form = self._form()
        if form is None:
            return
        if not self._token_ok(form.get("token")):
            self._json(HTTPStatus.FORBIDDEN, {"message": "missing or wrong token"})
            return
        context = self.server.context
        step = form.get("step", "")
        problem = context.accept(step)
        if problem is not None:
            self._json(HTTPStatus.CONFLICT, {"message": problem})
            return
        ack = append_ack(context.drill_dir, step, form.get("by", "") or "operator (web)", "web")
        self._json(HTTPStatus.OK, {"message": f"step {step!r} acknowledged by {ack.by}"})


class AckServer:
    """The runbook page, served from a thread of its own between `start()` and `stop()`."""

    def __init__(
        self,
        drill_dir: Path,
        title: str,
        name: str,
        state: Callable[[], dict[str, Any]],
        accept: Callable[[str], str | None],
    ) -> None:
        self.token = secrets.token_urlsafe(16)
        self._httpd = _PageServer(PageContext(drill_dir, title, name, self.token, state, accept))
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="drill-ack-page", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/?token={self.token}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
