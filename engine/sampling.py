"""A probe sampled on its interval in a daemon thread until stopped: what HTTP and Prometheus probes share."""

from __future__ import annotations

import threading
import time
from typing import Generic, Protocol, TypeVar


class Timed(Protocol):
    @property
    def t(self) -> float: ...


S = TypeVar("S", bound=Timed)


class IntervalSampler(Generic[S]):
    """Takes one sample every `interval_s` (`_take`, in a thread of its own) and keeps them all, in order."""

    def __init__(self, name: str, interval_s: float, timeout_s: float) -> None:
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._samples: list[S] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"probe:{name}", daemon=True)

    def _take(self) -> S:
        raise NotImplementedError

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=self._timeout_s + 1.0)

    def sample_once(self) -> S:
        sample = self._take()
        with self._lock:
            self._samples.append(sample)
        return sample

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            self.sample_once()
            self._stop.wait(max(0.0, self._interval_s - (time.monotonic() - began)))

    def samples(self, start: float = float("-inf"), end: float = float("inf")) -> list[S]:
        """The samples taken in [start, end)."""
        with self._lock:
            return [s for s in self._samples if start <= s.t < end]
