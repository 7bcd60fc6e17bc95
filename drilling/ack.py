"""Acknowledging manual runbook steps of a running drill: an append-only inbox file and a loopback web page.

`chaos.py drill ack STEP` (another terminal) and the web page both append one JSON line to the
drill's `acks.jsonl`; the drill reads new lines as they come and decides whether each is valid.
A running drill advertises itself in `live.json` (its pid and page) beside its `drill.json`.
"""

from __future__ import annotations

import html
import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

ACK_FILE = "acks.jsonl"
LIVE_FILE = "live.json"
MAX_BODY = 4096


@dataclass(frozen=True)
class Ack:
    step: str
    by: str
    t: float
    source: str


def append_ack(drill_dir: Path, step: str, by: str, source: str) -> Ack:
    """Append one acknowledgement to the drill's inbox (one small O_APPEND write: never interleaved)."""
    ack = Ack(step=step, by=by.strip()[:80] or "operator", t=time.time(), source=source)
    line = json.dumps({"step": ack.step, "by": ack.by, "t": ack.t, "source": ack.source}) + "\n"
    fd = os.open(drill_dir / ACK_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return ack


class AckInbox:
    """Reads acknowledgements appended since the last read."""

    def __init__(self, drill_dir: Path) -> None:
        self.path = drill_dir / ACK_FILE
        self._offset = 0

    def read_new(self) -> list[Ack]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        self._offset += end
        acks = []
        for raw in data[:end].splitlines():
            try:
                item = json.loads(raw)
                acks.append(Ack(str(item["step"]), str(item["by"]), float(item["t"]), str(item.get("source", "?"))))
            except (ValueError, KeyError, TypeError):
                continue  # not ours or torn: ignore rather than stop the drill
        return acks


@dataclass(frozen=True)
class LiveDrill:
    drill_dir: Path
    pid: int
    drill_name: str
    drill_run_id: str
    page: str | None


def write_live(drill_dir: Path, drill_name: str, drill_run_id: str, page: str | None) -> None:
    info = {"pid": os.getpid(), "drill_name": drill_name, "drill_run_id": drill_run_id, "page": page}
    (drill_dir / LIVE_FILE).write_text(json.dumps(info) + "\n")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live_drills(runs_dir: Path) -> list[LiveDrill]:
    """Drills running now whose records are under `<runs_dir>/drills/` (their process is alive)."""
    found = []
    for path in sorted((runs_dir / "drills").glob(f"*/{LIVE_FILE}")):
        try:
            info = json.loads(path.read_text())
            live = LiveDrill(path.parent, int(info["pid"]), info["drill_name"], info["drill_run_id"], info.get("page"))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if _alive(live.pid):
            found.append(live)
    return found


# -- the web page ----------------------------------------------------------------------------------
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


class AckServer:
    """A small page on 127.0.0.1 (a free port) listing the runbook, with a button per pending manual step.

    Every request carries a random token (it is in the URL printed at start), so other local
    programs, or web pages in the operator's browser, cannot acknowledge steps.
    """

    def __init__(
        self,
        drill_dir: Path,
        title: str,
        name: str,
        state: Callable[[], dict[str, Any]],
        accept: Callable[[str], str | None],
    ) -> None:
        self.token = secrets.token_urlsafe(16)
        server = self

        class Handler(BaseHTTPRequestHandler):
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
                return given is not None and secrets.compare_digest(given, server.token)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                if not self._token_ok(query.get("token", [None])[0]):
                    self._json(HTTPStatus.FORBIDDEN, {"message": "open the URL the drill printed (with its token)"})
                    return
                if url.path == "/":
                    page = _PAGE.format(
                        name=html.escape(name), title=html.escape(title), token=json.dumps(server.token)
                    )
                    self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8")
                elif url.path == "/state":
                    self._json(HTTPStatus.OK, state())
                else:
                    self._json(HTTPStatus.NOT_FOUND, {"message": "not found"})

            def do_POST(self) -> None:
                if urlsplit(self.path).path != "/ack":
                    self._json(HTTPStatus.NOT_FOUND, {"message": "not found"})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"message": "request too large"})
                    return
                raw = self.rfile.read(length).decode("utf-8", errors="replace")
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    try:
                        form = {k: str(v) for k, v in json.loads(raw).items()}
                    except (ValueError, AttributeError):
                        self._json(HTTPStatus.BAD_REQUEST, {"message": "invalid JSON"})
                        return
                else:
                    form = {k: v[0] for k, v in parse_qs(raw).items()}
                if not self._token_ok(form.get("token")):
                    self._json(HTTPStatus.FORBIDDEN, {"message": "missing or wrong token"})
                    return
                step = form.get("step", "")
                problem = accept(step)
                if problem is not None:
                    self._json(HTTPStatus.CONFLICT, {"message": problem})
                    return
                ack = append_ack(drill_dir, step, form.get("by", "") or "operator (web)", "web")
                self._json(HTTPStatus.OK, {"message": f"step {step!r} acknowledged by {ack.by}"})

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="drill-ack-page", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/?token={self.token}"

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
