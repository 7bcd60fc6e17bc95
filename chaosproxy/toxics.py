"""Toxics: what each one does to one stream of one proxied connection.

Every toxic type is one small class: its attributes (integers, as in Toxiproxy's API), a one-line
description, and the hooks it needs — `process` for each chunk of data, `on_eof` for the end of
the stream, `activate` for time-based effects. A toxic's sleeps end early when it is removed, so
removing a toxic releases held data at once, as Toxiproxy does.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol


class ApiError(Exception):
    """A request the API refuses; carries the HTTP status Toxiproxy answers with."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


STREAMS = ("upstream", "downstream")


class Link(Protocol):
    """What a toxic may do to the connection it is applied to."""

    def close(self) -> None:
        """Close both sides gracefully (pending data is flushed, then FIN)."""

    def reset(self) -> None:
        """Close both sides with a TCP RST."""


@dataclass
class ToxicConfig:
    """A toxic as the API shows it: generic envelope plus per-type integer attributes."""

    name: str
    type: str
    stream: str
    toxicity: float
    attributes: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
            "attributes": dict(self.attributes),
        }


class Toxic:
    """One toxic's effect on one stream of one connection. Subclasses register by `type_name`."""

    type_name: ClassVar[str]
    attribute_names: ClassVar[tuple[str, ...]]
    registry: ClassVar[dict[str, type[Toxic]]] = {}

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        Toxic.registry[cls.type_name] = cls

    def __init__(self, attributes: dict[str, int], link: Link) -> None:
        self.attributes = attributes
        self.link = link
        self.removed = False
        self._sleepers: set[asyncio.Future[None]] = set()

    def attr(self, name: str) -> int:
        return self.attributes.get(name, 0)

    def activate(self) -> None:
        """Called once when the toxic starts applying to a connection (time-based toxics start timers)."""

    def remove(self) -> None:
        """The toxic was removed: end every pending sleep so held data flows on."""
        self.removed = True
        for sleeper in self._sleepers:
            if not sleeper.done():
                sleeper.set_result(None)

    async def sleep_until(self, when: float) -> None:
        loop = asyncio.get_running_loop()
        if self.removed or when <= loop.time():
            return
        sleeper: asyncio.Future[None] = loop.create_future()
        handle = loop.call_at(when, _wake, sleeper)
        self._sleepers.add(sleeper)
        try:
            await sleeper
        finally:
            handle.cancel()
            self._sleepers.discard(sleeper)

    async def process(self, data: bytes, arrival: float) -> AsyncIterator[bytes]:
        """Turn one chunk into the chunks passed on (default: unchanged)."""
        yield data

    async def on_eof(self) -> bool:
        """The stream ended; True passes the end on, False swallows it."""
        return True


def _wake(sleeper: asyncio.Future[None]) -> None:
    if not sleeper.done():
        sleeper.set_result(None)


class Latency(Toxic):
    """Delays every chunk by `latency` ms ± `jitter` ms, counted from when the chunk arrived."""

    type_name = "latency"
    attribute_names = ("latency", "jitter")

    async def process(self, data: bytes, arrival: float) -> AsyncIterator[bytes]:
        jitter = self.attr("jitter")
        delay_ms = self.attr("latency") + (random.uniform(-jitter, jitter) if jitter > 0 else 0.0)
        await self.sleep_until(arrival + max(0.0, delay_ms) / 1000)
        yield data


class Bandwidth(Toxic):
    """Limits the stream to `rate` KB/s (1 KB = 1000 bytes), in slices of at most 100 ms worth."""

    type_name = "bandwidth"
    attribute_names = ("rate",)

    def __init__(self, attributes: dict[str, int], link: Link) -> None:
        super().__init__(attributes, link)
        self._next_free = 0.0

    async def process(self, data: bytes, arrival: float) -> AsyncIterator[bytes]:
        rate = self.attr("rate") * 1000  # bytes per second
        if rate <= 0:
            yield data
            return
        loop = asyncio.get_running_loop()
        step = max(1, rate // 10)
        for start in range(0, len(data), step):
            piece = data[start : start + step]
            # Each slice leaves when the previous one's transmission time has passed; idle time earns no credit.
            send_at = max(self._next_free, loop.time())
            self._next_free = send_at + len(piece) / rate
            await self.sleep_until(send_at)
            yield piece


class SlowClose(Toxic):
    """Holds the end of the stream back for `delay` ms before passing it on."""

    type_name = "slow_close"
    attribute_names = ("delay",)

    async def on_eof(self) -> bool:
        await self.sleep_until(asyncio.get_running_loop().time() + self.attr("delay") / 1000)
        return True


class Timeout(Toxic):
    """Drops all data and closes the connection after `timeout` ms (0: holds it open until removed)."""

    type_name = "timeout"
    attribute_names = ("timeout",)

    def __init__(self, attributes: dict[str, int], link: Link) -> None:
        super().__init__(attributes, link)
        self._timer: asyncio.TimerHandle | None = None

    def activate(self) -> None:
        if self.attr("timeout") > 0:
            self._timer = asyncio.get_running_loop().call_later(self.attr("timeout") / 1000, self.link.close)

    def remove(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        super().remove()

    async def process(self, data: bytes, arrival: float) -> AsyncIterator[bytes]:
        if self.removed:
            yield data

    async def on_eof(self) -> bool:
        # Data meeting the toxic is dropped, but the end of the stream is not lost: it passes once removed.
        loop = asyncio.get_running_loop()
        while not self.removed:
            await self.sleep_until(loop.time() + 3600)
        return True


class ResetPeer(Toxic):
    """Resets the connection (TCP RST) after `timeout` ms; data flows until then."""

    type_name = "reset_peer"
    attribute_names = ("timeout",)

    def __init__(self, attributes: dict[str, int], link: Link) -> None:
        super().__init__(attributes, link)
        self._timer: asyncio.TimerHandle | None = None

    def activate(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(max(0, self.attr("timeout")) / 1000, self.link.reset)

    def remove(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        super().remove()


class Slicer(Toxic):
    """Splits each chunk into slices of `average_size` ± `size_variation` bytes, `delay` µs apart."""

    type_name = "slicer"
    attribute_names = ("average_size", "size_variation", "delay")

    async def process(self, data: bytes, arrival: float) -> AsyncIterator[bytes]:
        average, variation = self.attr("average_size"), self.attr("size_variation")
        if average <= 0 or self.removed:
            yield data
            return
        loop = asyncio.get_running_loop()
        position = 0
        while position < len(data):
            size = max(1, average + (random.randint(-variation, variation) if variation > 0 else 0))
            yield data[position : position + size]
            position += size
            if position < len(data) and self.attr("delay") > 0:
                await self.sleep_until(loop.time() + self.attr("delay") / 1_000_000)


class LimitData(Toxic):
    """Passes `bytes` bytes, then closes the connection."""

    type_name = "limit_data"
    attribute_names = ("bytes",)

    def __init__(self, attributes: dict[str, int], link: Link) -> None:
        super().__init__(attributes, link)
        self._passed = 0

    def activate(self) -> None:
        if self.attr("bytes") <= 0:
            self.link.close()

    async def process(self, data: bytes, arrival: float) -> AsyncIterator[bytes]:
        if self.removed:
            yield data
            return
        allowed = data[: max(0, self.attr("bytes") - self._passed)]
        self._passed += len(allowed)
        if allowed:
            yield allowed
        if self._passed >= self.attr("bytes"):
            self.link.close()


def parse_toxic(body: Any) -> ToxicConfig:
    """A new toxic from an API request body, with Toxiproxy's defaults and refusals."""
    if not isinstance(body, dict):
        raise ApiError("bad request body: expected a JSON object", 400)
    type_name = body.get("type")
    if not isinstance(type_name, str) or type_name not in Toxic.registry:
        raise ApiError("invalid toxic type", 400)
    stream = body.get("stream") or "downstream"
    if stream not in STREAMS:
        raise ApiError("stream was invalid, can be either upstream or downstream", 400)
    name = body.get("name") or f"{type_name}_{stream}"
    if not isinstance(name, str):
        raise ApiError("bad request body: name must be a string", 400)
    toxicity = _toxicity(body.get("toxicity", 1.0))
    attributes = {key: 0 for key in Toxic.registry[type_name].attribute_names}
    attributes |= _attributes(type_name, body.get("attributes") or {})
    return ToxicConfig(name=name, type=type_name, stream=stream, toxicity=toxicity, attributes=attributes)


def apply_update(toxic: ToxicConfig, body: Any) -> None:
    """Change a toxic's toxicity and attributes in place (name, type and stream are fixed)."""
    if not isinstance(body, dict):
        raise ApiError("bad request body: expected a JSON object", 400)
    toxicity = _toxicity(body["toxicity"]) if "toxicity" in body else toxic.toxicity
    attributes = _attributes(toxic.type, body.get("attributes") or {})
    toxic.toxicity = toxicity
    toxic.attributes |= attributes


def _toxicity(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ApiError("bad request body: toxicity must be a number from 0 to 1", 400)
    return float(value)


def _attributes(type_name: str, given: Any) -> dict[str, int]:
    if not isinstance(given, dict):
        raise ApiError("bad request body: attributes must be an object", 400)
    known = Toxic.registry[type_name].attribute_names
    parsed: dict[str, int] = {}
    for key, value in given.items():
        if key not in known:
            continue  # Toxiproxy ignores attributes a toxic does not have
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ApiError(f"bad request body: attribute {key} must be a non-negative integer", 400)
        parsed[key] = value
    return parsed
