"""TCP proxies: a listener per proxy, two streams per connection, toxics applied per stream.

Data that meets no toxic is written straight through from the socket callback (no queue, no task),
so an idle proxy costs one event-loop hop per direction. Once a stream has toxics, or still holds
data from them, chunks queue with their arrival time and one task per stream passes them through
the toxics in the order the toxics were added. Back-pressure is end to end: a full outgoing socket
or a full queue pauses reading on the incoming one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import struct
from collections import deque

from chaosproxy.toxics import ApiError, Toxic, ToxicConfig

log = logging.getLogger("chaosproxy")

QUEUE_HIGH_BYTES = 4 * 1024 * 1024
QUEUE_LOW_BYTES = 1024 * 1024
UPSTREAM_CONNECT_TIMEOUT_S = 5.0
_EOF = b""


def split_address(address: str) -> tuple[str, int]:
    """'host:port' (or '[v6]:port', or ':port' for loopback) → (host, port)."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ApiError(f"bad address {address!r}: expected host:port", 400)
    host = host.strip("[]")
    # An empty host means loopback here (Toxiproxy would listen everywhere); "localhost" is the IPv4 one,
    # so a proxy listens on exactly one socket and reports exactly that port.
    return ("127.0.0.1" if host in ("", "localhost") else host), int(port_text)


class _Side(asyncio.Protocol):
    """One socket of a proxied connection: the accepted client, or the connection to the upstream."""

    def __init__(self, connection: Connection, stream: str) -> None:
        self.connection = connection
        self.stream = stream  # the stream this socket's incoming data belongs to
        self.transport: asyncio.Transport | None = None
        self.blocked = False
        self._writable: asyncio.Event | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.connection.pipes[self.stream].feed(data)

    def eof_received(self) -> bool:
        self.connection.pipes[self.stream].feed(_EOF)
        return True  # keep the other direction open (half-close)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connection.side_lost(self, exc)

    def pause_writing(self) -> None:
        self.blocked = True
        self.connection.pipe_into(self).pause("socket")

    def resume_writing(self) -> None:
        self.blocked = False
        if self._writable is not None:
            self._writable.set()
        self.connection.pipe_into(self).resume("socket")

    async def writable(self) -> None:
        while self.blocked and not self.connection.closed:
            if self._writable is None:
                self._writable = asyncio.Event()
            self._writable.clear()
            await self._writable.wait()


class _ClientSide(_Side):
    def __init__(self, proxy: Proxy) -> None:
        super().__init__(Connection(proxy), "upstream")
        self.connection.client = self

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert self.transport is not None
        self.transport.pause_reading()  # until the upstream connection is open
        self.connection.start()


class _Pipe:
    """One direction of a connection: from `source` to `sink`, through the stream's toxics."""

    def __init__(self, connection: Connection, stream: str) -> None:
        self.connection = connection
        self.stream = stream
        self.toxics: list[Toxic] = []
        self._queue: deque[tuple[float, bytes]] = deque()
        self._queued_bytes = 0
        self._task: asyncio.Task[None] | None = None
        self._paused: set[str] = set()
        self.ended = False

    @property
    def source(self) -> _Side:
        return self.connection.client if self.stream == "upstream" else self.connection.server

    @property
    def sink(self) -> _Side:
        return self.connection.server if self.stream == "upstream" else self.connection.client

    def feed(self, data: bytes) -> None:
        if not self.toxics and self._task is None:
            self._deliver(data)
            return
        self._queue.append((asyncio.get_running_loop().time(), data))
        self._queued_bytes += len(data)
        if self._queued_bytes > QUEUE_HIGH_BYTES:
            self.pause("queue")
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())

    def kick(self) -> None:
        """The toxics changed: a stream holding data must get it moving again."""
        if self._queue and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())

    def pause(self, reason: str) -> None:
        transport = self.source.transport
        if not self._paused and transport is not None and not self.connection.closed:
            transport.pause_reading()
        self._paused.add(reason)

    def resume(self, reason: str) -> None:
        if reason not in self._paused:
            return
        self._paused.discard(reason)
        transport = self.source.transport
        if not self._paused and transport is not None and not self.connection.closed:
            transport.resume_reading()

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _deliver(self, data: bytes) -> None:
        transport = self.sink.transport
        if self.connection.closed or transport is None:
            return
        if not data:
            self.ended = True
            if transport.can_write_eof():
                transport.write_eof()
            self.connection.stream_ended()
        else:
            transport.write(data)

    async def _drain(self) -> None:
        try:
            while self._queue and not self.connection.closed:
                arrival, data = self._queue.popleft()
                self._queued_bytes -= len(data)
                if self._queued_bytes < QUEUE_LOW_BYTES:
                    self.resume("queue")
                toxics = list(self.toxics)
                if not data:
                    if await self._eof_through(toxics):
                        self._deliver(_EOF)
                    continue
                await self._through(toxics, 0, data, arrival)
        except asyncio.CancelledError:
            pass
        except Exception:  # a toxic failing must not take the server down; the connection goes instead
            log.exception("proxy %s: toxic failed, closing the connection", self.connection.proxy.name)
            self.connection.close()
        finally:
            self._task = None
            if self._queue and not self.connection.closed:
                self.kick()

    async def _through(self, toxics: list[Toxic], index: int, data: bytes, arrival: float) -> None:
        if index == len(toxics):
            self._deliver(data)
            await self.sink.writable()
            return
        async for piece in toxics[index].process(data, arrival):
            if self.connection.closed:
                return
            await self._through(toxics, index + 1, piece, arrival)

    @staticmethod
    async def _eof_through(toxics: list[Toxic]) -> bool:
        for toxic in toxics:
            if not await toxic.on_eof():
                return False
        return True


class Connection:
    """A client connection and its connection to the upstream, with the toxics applied to each stream."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.client: _Side = _Side(self, "upstream")  # replaced by the accepting side
        self.server = _Side(self, "downstream")
        self.pipes = {"upstream": _Pipe(self, "upstream"), "downstream": _Pipe(self, "downstream")}
        self.closed = False
        self._draws: dict[str, bool] = {}
        self._active: dict[str, Toxic] = {}
        self._opening: asyncio.Task[None] | None = None

    def pipe_into(self, side: _Side) -> _Pipe:
        return self.pipes["upstream" if side is self.server else "downstream"]

    def start(self) -> None:
        self.proxy.connections.add(self)
        self._opening = asyncio.get_running_loop().create_task(self._open_upstream())

    async def _open_upstream(self) -> None:
        host, port = split_address(self.proxy.upstream)
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.create_connection(lambda: self.server, host, port), UPSTREAM_CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            log.warning("proxy %s: upstream %s unreachable: %s", self.proxy.name, self.proxy.upstream, exc)
            self.close()
            return
        if self.closed:
            if self.server.transport is not None:
                self.server.transport.close()
            return
        self.refresh_toxics()
        assert self.client.transport is not None
        if not self.pipes["upstream"]._paused:
            self.client.transport.resume_reading()

    def refresh_toxics(self) -> None:
        """Bring the toxics applied to this connection in line with the proxy's list."""
        if self.server.transport is None or self.closed:
            return
        wanted: dict[str, ToxicConfig] = {}
        for config in self.proxy.toxics:
            if config.name not in self._draws:
                self._draws[config.name] = random.random() < config.toxicity
            if self._draws[config.name]:
                wanted[config.name] = config
        for name in list(self._active):
            if name not in wanted:
                self._active.pop(name).remove()
        self._draws = {
            name: drawn for name, drawn in self._draws.items() if any(c.name == name for c in self.proxy.toxics)
        }
        for name, config in wanted.items():
            toxic = self._active.get(name)
            if toxic is None:
                toxic = Toxic.registry[config.type](config.attributes, self)
                self._active[name] = toxic
                toxic.activate()
            else:
                toxic.attributes = config.attributes
        for stream, pipe in self.pipes.items():
            pipe.toxics = [self._active[c.name] for c in self.proxy.toxics if c.name in wanted and c.stream == stream]
            pipe.kick()

    def forget_draw(self, name: str) -> None:
        self._draws.pop(name, None)

    def stream_ended(self) -> None:
        if all(pipe.ended for pipe in self.pipes.values()):
            self.close()

    def side_lost(self, side: _Side, exc: Exception | None) -> None:
        # A socket only goes away on its own when it failed (reset, broken pipe): take the other with it.
        self.close(abort=exc is not None)

    def close(self, abort: bool = False) -> None:
        """Graceful close of both sides (pending writes flushed); `abort` drops them."""
        if self.closed:
            return
        self.closed = True
        self.proxy.connections.discard(self)
        for toxic in self._active.values():
            toxic.remove()
        for pipe in self.pipes.values():
            pipe.cancel()
        if self._opening is not None and not self._opening.done():
            self._opening.cancel()
        for side in (self.client, self.server):
            if side.transport is not None:
                if abort:
                    side.transport.abort()
                else:
                    side.transport.close()
            if side._writable is not None:
                side._writable.set()

    def reset(self) -> None:
        """Close both sides with a TCP RST (SO_LINGER 0), as a crashed or resetting peer would."""
        for side in (self.client, self.server):
            sock = side.transport.get_extra_info("socket") if side.transport is not None else None
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close(abort=True)


class Proxy:
    """One named proxy: a listening address, an upstream, an enabled flag, and an ordered list of toxics."""

    def __init__(self, name: str, listen: str, upstream: str) -> None:
        split_address(listen)
        split_address(upstream)
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.toxics: list[ToxicConfig] = []
        self.connections: set[Connection] = set()
        self._server: asyncio.Server | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [t.to_json() for t in self.toxics],
        }

    async def start(self) -> None:
        if self._server is not None:
            return
        host, port = split_address(self.listen)
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(lambda: _ClientSide(self), host, port, reuse_address=True)
        except OSError as exc:
            raise ApiError(f"proxy {self.name}: cannot listen on {self.listen}: {exc.strerror or exc}", 500) from exc
        if port == 0:  # report the port the system chose, as Toxiproxy does
            chosen = self._server.sockets[0].getsockname()[1]
            self.listen = f"{self.listen.rpartition(':')[0]}:{chosen}"
        self.enabled = True
        log.info("proxy %s listening on %s, upstream %s", self.name, self.listen, self.upstream)

    async def stop(self) -> None:
        """Stop listening and cut every open connection (what `enabled: false` means)."""
        self.enabled = False
        server, self._server = self._server, None
        for connection in list(self.connections):
            connection.close(abort=True)
        if server is not None:
            server.close()
            await server.wait_closed()
            log.info("proxy %s down", self.name)

    def find_toxic(self, name: str) -> ToxicConfig:
        for toxic in self.toxics:
            if toxic.name == name:
                return toxic
        raise ApiError("toxic not found", 404)

    def add_toxic(self, toxic: ToxicConfig) -> None:
        if any(t.name == toxic.name for t in self.toxics):
            raise ApiError("toxic already exists", 409)
        self.toxics.append(toxic)
        self._toxics_changed()

    def toxic_updated(self, name: str, toxicity_changed: bool) -> None:
        if toxicity_changed:
            for connection in self.connections:
                connection.forget_draw(name)
        self._toxics_changed()

    def remove_toxic(self, name: str) -> None:
        self.toxics.remove(self.find_toxic(name))
        self._toxics_changed()

    def reset_toxics(self) -> None:
        self.toxics.clear()
        self._toxics_changed()

    def _toxics_changed(self) -> None:
        for connection in list(self.connections):
            connection.refresh_toxics()
