"""The run context handed to injectors, and the clock the runner keeps time with."""

from __future__ import annotations

import random
import time
from typing import Any, Protocol

from engine.events import EventBus, Noted
from engine.stack import LiveStack


class Clock(Protocol):
    def time(self) -> float: ...

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class EngineContext:
    """Implements injectors.RunContext for one run."""

    def __init__(self, run_id: str, stack: LiveStack, seed: int, bus: EventBus) -> None:
        self._run_id = run_id
        self._stack = stack
        self._rng = random.Random(seed)
        self._bus = bus

    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    def stack(self) -> LiveStack:
        return self._stack

    @property
    def rng(self) -> random.Random:
        return self._rng

    def note(self, message: str, **data: Any) -> None:
        self._bus.emit(Noted(text=message, details=data))
