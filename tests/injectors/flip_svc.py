"""A tiny service whose answers follow a script, played from its start and again after every SIGCONT.

argv: PORT SCRIPT, SCRIPT a JSON list of phases {"health": status, "role": role, "answers": N} or
{..., "for_s": seconds}: GET /health answers the phase's status, GET /status {"role": role}; a phase
ends after N /health answers or `for_s` seconds, and the last phase holds. So a test can play what a
resumed matching engine does: 200 at once, 503 a moment later (its session expired), then
"candidate" (stuck) or "follower" again.
"""

import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

PHASES: list[dict[str, object]] = json.loads(sys.argv[2])


class Script:
    """Where the service is in its script: phase index, when the phase began, /health answers given in it."""

    lock = threading.Lock()
    phase = 0
    since = time.monotonic()
    answers = 0

    @classmethod
    def restart(cls, signum: int = 0, frame: FrameType | None = None) -> None:
        with cls.lock:
            cls.phase, cls.since, cls.answers = 0, time.monotonic(), 0

    @classmethod
    def current(cls, count: bool) -> dict[str, object]:
        """The phase in force now; `count` tallies one /health answer against it."""
        with cls.lock:
            while cls.phase < len(PHASES) - 1:
                phase = PHASES[cls.phase]
                spent = "answers" in phase and cls.answers >= int(str(phase["answers"]))
                expired = "for_s" in phase and time.monotonic() - cls.since >= float(str(phase["for_s"]))
                if not (spent or expired):
                    break
                cls.phase, cls.since, cls.answers = cls.phase + 1, time.monotonic(), 0
            if count:
                cls.answers += 1
            return PHASES[cls.phase]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        phase = Script.current(count=self.path == "/health")
        if self.path == "/status":
            status, body = 200, {"role": phase.get("role", "follower")}
        else:
            status = int(str(phase.get("health", 200)))
            body = {"status": "ok" if status == 200 else "degraded"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


signal.signal(signal.SIGCONT, Script.restart)
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
