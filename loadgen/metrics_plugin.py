"""Locust plugin that streams per-second request counts, failures and latency histograms as JSON Lines.

Load it beside any locustfile (``locust -f user.py,loadgen/metrics_plugin.py``) with the environment
variable ``CHAOS_METRICS_FILE`` naming the output file; without it the plugin does nothing. The stream
format is section 2 of docs/contracts.md.

* LocalRunner: measures and appends to the file itself.
* MasterRunner: answers each worker's greeting by asking it to measure, writes the seconds the
  workers send it, and writes the ``stop`` line once every worker has sent its last seconds (or
  after a timeout).
* WorkerRunner: greets its master, measures once the master asks (so CHAOS_METRICS_FILE only
  matters on the master), and sends its closed seconds with ``runner.send_message``.

The module registers with Locust only when Locust has already been imported (that is, when Locust
loads it as a locustfile); imported anywhere else it stays free of gevent's monkey-patching, so
tests and readers may use `SecondAggregator`, `MetricsFile` and the constants directly.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hdrh.histogram import HdrHistogram

if TYPE_CHECKING:
    from locust.env import Environment
    from locust.rpc.protocol import Message
    from locust.runners import MasterRunner, Runner, WorkerRunner

__all__ = [
    "HIST_HIGHEST_US",
    "HIST_LOWEST_US",
    "HIST_SIGNIFICANT_DIGITS",
    "METRICS_FILE_ENV",
    "MetricsFile",
    "SecondAggregator",
    "histogram_floor",
    "new_histogram",
]

METRICS_FILE_ENV = "CHAOS_METRICS_FILE"
HIST_LOWEST_US = 1
HIST_HIGHEST_US = 60_000_000
HIST_SIGNIFICANT_DIGITS = 2
MAX_ERRORS_PER_SECOND = 5
MAX_ERROR_CHARS = 300
FLUSH_INTERVAL_S = 0.25
STOP_DRAIN_TIMEOUT_S = 5.0
HELLO_MESSAGE = "chaos_metrics_hello"  # worker -> master, once the worker's handlers are registered
ENABLE_MESSAGE = "chaos_metrics_enable"  # master -> worker: start measuring
RECORDS_MESSAGE = "chaos_metrics_records"  # worker -> master: {"src", "records", "final"}

Record = dict[str, Any]
Sink = Callable[[list[Record], bool], None]

logger = logging.getLogger("chaos.metrics_plugin")
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _listen(hook: Any, listener: Callable[..., None]) -> None:
    """Add a listener to a Locust EventHook (whose ``add_listener`` is untyped)."""
    hook.add_listener(listener)


def new_histogram() -> HdrHistogram:
    """Return an empty histogram with the contract's range: 1 µs to 60 s, 2 significant digits."""
    return HdrHistogram(HIST_LOWEST_US, HIST_HIGHEST_US, HIST_SIGNIFICANT_DIGITS)


def source_id() -> str:
    """Return ``hostname:pid`` of this process, the ``src`` of every line it measures."""
    return f"{socket.gethostname()}:{os.getpid()}"


def error_key(error: object) -> str:
    """Return a stable, bounded string for an error, without object addresses (as Locust groups them)."""
    text = error if isinstance(error, str) else repr(error)
    return _ADDRESS.sub("", text)[:MAX_ERROR_CHARS]


def histogram_floor(micros: int) -> int:
    """Return the lowest value the histogram cannot tell apart from ``micros``.

    With a lowest trackable value of 1 and 2 significant digits the histogram counts values below 256
    exactly and, above, in steps of 2^(bit_length - 8). Counting the floors in a dict and recording
    each distinct floor once gives the very same histogram at half the cost of ``record_value`` per
    request (a test checks the equality).
    """
    shift = micros.bit_length() - 8
    return micros >> shift << shift if shift > 0 else micros


class _Second:
    """One request name's counts within one epoch second."""

    __slots__ = ("errors", "fail", "latencies", "method", "n")

    def __init__(self, method: str) -> None:
        self.method = method
        self.n = 0
        self.fail = 0
        self.latencies: dict[int, int] = {}  # histogram_floor(µs) -> count
        self.errors: dict[str, int] = {}

    def histogram(self) -> HdrHistogram:
        hist = new_histogram()
        for micros, count in self.latencies.items():
            hist.record_value(micros if micros < HIST_HIGHEST_US else HIST_HIGHEST_US, count)
        return hist


class SecondAggregator:
    """Counts requests per (epoch second of completion, request name).

    Not thread-safe on purpose: Locust calls it from greenlets of one hub, which never switch inside
    these methods, so no lock is needed.
    """

    def __init__(self, src: str, clock: Callable[[], float] = time.time) -> None:
        self.src = src
        self._clock = clock
        self._seconds: dict[int, dict[str, _Second]] = {}
        self._users: dict[int, int] = {}
        self._last_users = 0

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float | None,
        response_length: int = 0,
        response: object = None,
        context: object = None,
        exception: object = None,
        start_time: object = None,
        url: object = None,
        **_kwargs: Any,
    ) -> None:
        """Count one completed request; the signature is Locust's ``events.request`` listener.

        Every argument Locust passes is named, although unused: leftovers collected by ``**_kwargs``
        would cost a dict per request.
        """
        t = int(self._clock())
        per_name = self._seconds.get(t)
        if per_name is None:
            per_name = self._seconds[t] = {}
        second = per_name.get(name)
        if second is None:
            second = per_name[name] = _Second(request_type)
        second.n += 1
        if exception is None:
            if response_time is None:  # Locust allows requests without a time: counted, not sampled
                return
            # histogram_floor inlined: this runs for every request.
            micros = int(response_time * 1000.0)
            shift = micros.bit_length() - 8
            if shift > 0:
                micros = micros >> shift << shift
            latencies = second.latencies
            latencies[micros] = latencies.get(micros, 0) + 1
            return
        # A failed request's time is not a latency sample (a refused connection is fast, not healthy).
        second.fail += 1
        key = error_key(exception)
        errors = second.errors
        if key in errors:
            errors[key] += 1
        elif len(errors) < MAX_ERRORS_PER_SECOND:
            errors[key] = 1

    def sample_users(self, count: int) -> None:
        """Remember the user count now; a second reports the last count sampled within it."""
        self._users[int(self._clock())] = count
        self._last_users = count

    def pop_closed(self) -> list[Record]:
        """Remove and return the records of every second that is over (t < floor(now)), oldest first."""
        return self._pop(int(self._clock()))

    def pop_all(self) -> list[Record]:
        """Remove and return every record, the current second's included."""
        return self._pop(None)

    def _pop(self, before: int | None) -> list[Record]:
        records: list[Record] = []
        due = sorted(t for t in self._seconds if before is None or t < before)
        for t in due:
            users = self._users.get(t, self._last_users)
            for name, second in self._seconds.pop(t).items():
                records.append(
                    {
                        "type": "second",
                        "t": t,
                        "src": self.src,
                        "name": name,
                        "method": second.method,
                        "n": second.n,
                        "fail": second.fail,
                        "hist": second.histogram().encode().decode("ascii"),
                        "errors": second.errors,
                        "users": users,
                    }
                )
        for t in [t for t in self._users if before is None or t < before]:
            del self._users[t]
        return records


class MetricsFile:
    """Append-only JSON Lines file; each line goes out in one ``os.write``, so a killed writer loses
    at most the line in flight, and several processes may append to the same file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, record: Record) -> None:
        """Append one record as one line."""
        data = memoryview((json.dumps(record, separators=(",", ":")) + "\n").encode())
        while data:  # a regular file takes it all at once; loop only for a short write
            data = data[os.write(self._fd, data) :]

    def write_mark(self, kind: str, src: str) -> None:
        """Append a ``start`` or ``stop`` line stamped with the current epoch time."""
        self.write({"type": kind, "t": round(time.time(), 3), "src": src})

    def close(self) -> None:
        """Close the file descriptor."""
        os.close(self._fd)


class _Stream:
    """The writing side: one start line, the seconds, one stop line per test."""

    def __init__(self, path: str, src: str) -> None:
        self.file = MetricsFile(path)
        self.src = src
        self.open = False

    def start(self) -> None:
        self.file.write_mark("start", self.src)
        self.open = True

    def records(self, records: list[Record]) -> None:
        for record in records:
            self.file.write(record)

    def stop(self) -> None:
        if self.open:
            self.open = False
            self.file.write_mark("stop", self.src)


class _Measurer:
    """The measuring side: aggregates this process's requests and hands closed seconds to a sink."""

    def __init__(self, environment: Environment, runner: Runner, sink: Sink) -> None:
        self._runner = runner
        self._sink = sink
        self._aggregator = SecondAggregator(source_id())
        _listen(environment.events.request, self._aggregator.on_request)
        _listen(environment.events.test_stop, self._on_test_stop)
        runner.greenlet.spawn(self._flush_loop)

    def _flush_loop(self) -> None:
        import gevent

        while True:
            gevent.sleep(FLUSH_INTERVAL_S)
            try:
                self._aggregator.sample_users(self._runner.user_count)
                records = self._aggregator.pop_closed()
                if records:
                    self._sink(records, False)
            except Exception:
                # Losing a second of metrics must not end the load test; say so and go on.
                logger.exception("chaos metrics: flushing closed seconds failed")

    def _on_test_stop(self, **_kwargs: Any) -> None:
        self._sink(self._aggregator.pop_all(), True)


def _start_local(environment: Environment, runner: Runner, path: str) -> None:
    stream = _Stream(path, source_id())

    def sink(records: list[Record], final: bool) -> None:
        stream.records(records)
        if final:
            stream.stop()

    _listen(environment.events.test_start, lambda **_kwargs: stream.start())
    _Measurer(environment, runner, sink)


class _MasterCollector:
    """Writes the seconds that workers send; the stop line waits for every worker's last seconds."""

    def __init__(self, environment: Environment, runner: MasterRunner, path: str) -> None:
        self._runner = runner
        self._stream = _Stream(path, source_id())
        self._finished: set[str] = set()
        self._test = 0  # which test a stop waiter belongs to: a new test must not be stopped by it
        runner.register_message(HELLO_MESSAGE, self._on_hello)
        runner.register_message(RECORDS_MESSAGE, self._on_records)
        events = environment.events
        _listen(events.test_start, self._on_test_start)
        _listen(events.test_stop, self._on_test_stop)
        # Fired after runner.quit(), when no worker message can arrive any more.
        _listen(events.quit, lambda **_kwargs: self._stream.stop())

    def _on_hello(self, environment: Environment, msg: Message, **_kwargs: Any) -> None:
        # A worker greets from its init event, long before the spawn message of a test started after
        # it joined, so it measures from its first request.
        self._runner.send_message(ENABLE_MESSAGE, None, msg.node_id)

    def _on_test_start(self, **_kwargs: Any) -> None:
        self._test += 1
        self._finished.clear()
        self._stream.start()

    def _on_records(self, environment: Environment, msg: Message, **_kwargs: Any) -> None:
        data: dict[str, Any] = msg.data
        self._stream.records(data["records"])
        if data["final"]:
            self._finished.add(data["src"])

    def _on_test_stop(self, **_kwargs: Any) -> None:
        import gevent

        # On quit the master fires test_stop before it tells the workers to stop: wait in a greenlet of
        # our own, outside the runner's group, which quit() kills. A worker that went missing (killed)
        # sends no last seconds: only the live ones are waited for.
        clients = self._runner.clients
        gevent.spawn(self._stop_when_drained, self._test, len(clients) - len(clients.missing))

    def _stop_when_drained(self, test: int, workers: int) -> None:
        import gevent

        deadline = time.monotonic() + STOP_DRAIN_TIMEOUT_S
        while len(self._finished) < workers and time.monotonic() < deadline:
            gevent.sleep(0.05)
        if test == self._test:
            self._stream.stop()


class _WorkerReporter:
    """Starts measuring when the master asks and sends the closed seconds to it."""

    def __init__(self, environment: Environment, runner: WorkerRunner) -> None:
        self._environment = environment
        self._runner = runner
        self._src = source_id()
        self._measurer: _Measurer | None = None
        runner.register_message(ENABLE_MESSAGE, self._on_enable)
        # Not on connect: the master's answer could arrive before this handler exists.
        runner.send_message(HELLO_MESSAGE)

    def _on_enable(self, **_kwargs: Any) -> None:
        if self._measurer is None:
            self._measurer = _Measurer(self._environment, self._runner, self._send)

    def _send(self, records: list[Record], final: bool) -> None:
        self._runner.send_message(RECORDS_MESSAGE, {"src": self._src, "records": records, "final": final})


def _on_init(environment: Environment, runner: Runner | None = None, **_kwargs: Any) -> None:
    from locust.runners import MasterRunner, WorkerRunner

    if isinstance(runner, WorkerRunner):
        _WorkerReporter(environment, runner)
        return
    path = os.environ.get(METRICS_FILE_ENV)
    if not path and isinstance(runner, MasterRunner):
        runner.register_message(HELLO_MESSAGE, lambda **_kwargs: None)  # no metrics wanted: stay silent
    if not path or runner is None:
        return
    if isinstance(runner, MasterRunner):
        _MasterCollector(environment, runner, path)
    else:
        _start_local(environment, runner, path)


if "locust" in sys.modules:
    from locust import events

    _listen(events.init, _on_init)
