"""Every toxic's effect on real TCP connections through the chaosproxy server (one server for the module)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import NamedTuple

import pytest

from clients import http
from clients.toxiproxy import ToxiproxyClient
from tests.chaosproxy.support import connect, pattern


class Link(NamedTuple):
    name: str  # the proxy's name
    address: str  # where clients connect (the proxy's listen address)


@pytest.fixture(scope="module")
def api(chaosproxy: str) -> ToxiproxyClient:
    return ToxiproxyClient(chaosproxy, timeout_s=5.0)


def _link(api: ToxiproxyClient, request: pytest.FixtureRequest, upstream: str) -> Iterator[Link]:
    name = request.node.name.replace("[", "_").replace("]", "")
    created = api.create_proxy(name, "127.0.0.1:0", upstream)
    assert not created.listen.endswith(":0")
    try:
        yield Link(name, created.listen)
    finally:
        api.delete_proxy(name)


@pytest.fixture
def proxy(api: ToxiproxyClient, request: pytest.FixtureRequest, echo: str) -> Iterator[Link]:
    """A fresh proxy in front of the echo server, deleted after the test."""
    yield from _link(api, request, echo)


@pytest.fixture
def source_proxy(api: ToxiproxyClient, request: pytest.FixtureRequest, source: str) -> Iterator[Link]:
    """A fresh proxy in front of the source server (`N\\n` → N bytes, then close)."""
    yield from _link(api, request, source)


def elapsed_ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    got = b""
    while len(got) < size:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {len(got)} of {size} bytes"
        got += chunk
    return got


def read_to_eof(sock: socket.socket) -> bytes:
    parts = []
    while chunk := sock.recv(65536):
        parts.append(chunk)
    return b"".join(parts)


def round_trip_ms(sock: socket.socket, payload: bytes = b"ping") -> float:
    started = time.perf_counter()
    sock.sendall(payload)
    assert recv_exactly(sock, len(payload)) == payload
    return elapsed_ms(started)


def fresh_round_trip_ms(address: str) -> float:
    with connect(address) as sock:
        return round_trip_ms(sock)


def first_difference(got: bytes, want: bytes) -> str:
    index = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), min(len(got), len(want)))
    return f"got {len(got)} bytes, want {len(want)}; first difference at offset {index}"


def update_toxic(chaosproxy: str, proxy: str, toxic: str, body: dict[str, object]) -> None:
    status, raw = http.request("POST", f"{chaosproxy}/proxies/{proxy}/toxics/{toxic}", 5.0, body)
    assert status == 200, raw


# --- no toxic ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 70_000, 5 * 1024 * 1024])
def test_without_toxics_bytes_round_trip_exactly_and_half_close_passes(proxy: Link, size: int) -> None:
    payload = pattern(size)
    with connect(proxy.address) as sock:

        def send_then_shut() -> None:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)  # our end of stream; reading stays open

        sender = threading.Thread(target=send_then_shut)
        sender.start()
        got = read_to_eof(sock)  # the echo answers everything, then closes after our end of stream
        sender.join(timeout=10)
    assert got == payload, first_difference(got, payload)


# --- latency -------------------------------------------------------------------------------------------------


def test_latency_delays_the_downstream_by_the_latency(api: ToxiproxyClient, proxy: Link) -> None:
    with connect(proxy.address) as sock:
        assert round_trip_ms(sock) < 80
        api.add_toxic(proxy.name, "slow", "latency", {"latency": 100})  # applies to open connections too
        samples = [round_trip_ms(sock) for _ in range(3)]
    samples.append(fresh_round_trip_ms(proxy.address))
    assert all(95 <= s < 300 for s in samples), samples


def test_latency_jitter_spreads_delays_around_the_latency(api: ToxiproxyClient, proxy: Link) -> None:
    api.add_toxic(proxy.name, "jittery", "latency", {"latency": 100, "jitter": 50})
    with connect(proxy.address) as sock:
        samples = [round_trip_ms(sock) for _ in range(10)]
    assert all(48 <= s < 250 for s in samples), samples
    assert max(samples) - min(samples) >= 15, samples  # uniform over 100 ms: all within 15 ms is ~1e-7
    assert min(samples) < 140 and max(samples) > 60, samples


def test_latency_on_the_upstream_stream_delays_requests(api: ToxiproxyClient, proxy: Link) -> None:
    api.add_toxic(proxy.name, "slow_up", "latency", {"latency": 100}, stream="upstream")
    with connect(proxy.address) as sock:
        samples = [round_trip_ms(sock) for _ in range(2)]
    assert all(95 <= s < 300 for s in samples), samples


def test_removing_a_latency_toxic_releases_held_data_at_once(api: ToxiproxyClient, proxy: Link) -> None:
    api.add_toxic(proxy.name, "very_slow", "latency", {"latency": 2000})
    with connect(proxy.address) as sock:
        started = time.perf_counter()
        sock.sendall(b"held")
        time.sleep(0.1)
        assert api.remove_toxic(proxy.name, "very_slow")
        assert recv_exactly(sock, 4) == b"held"
        took = elapsed_ms(started)
        assert 90 <= took < 700, took  # held until the removal, released then, not after 2 s
        assert round_trip_ms(sock) < 100  # and what follows is not delayed


def test_latency_pipelines_chunks_instead_of_queueing_their_delays(api: ToxiproxyClient, proxy: Link) -> None:
    api.add_toxic(proxy.name, "pipelined", "latency", {"latency": 200})
    chunks = [bytes([65 + i]) * 8 for i in range(10)]
    sent_at: list[float] = []
    with connect(proxy.address) as sock:

        def send_spaced() -> None:
            for chunk in chunks:
                sent_at.append(time.perf_counter())
                sock.sendall(chunk)
                time.sleep(0.02)

        sender = threading.Thread(target=send_spaced)
        sender.start()
        got = b""
        arrived_at: list[float] = []  # when each chunk had fully arrived
        while len(arrived_at) < len(chunks):
            piece = sock.recv(65536)
            assert piece, "connection closed"
            got += piece
            now = time.perf_counter()
            arrived_at.extend([now] * (len(got) // 8 - len(arrived_at)))
        sender.join(timeout=5)
    assert got == b"".join(chunks)
    delays = [(arrived - sent) * 1000 for sent, arrived in zip(sent_at, arrived_at, strict=True)]
    assert all(190 <= d < 360 for d in delays), delays
    total = (arrived_at[-1] - sent_at[0]) * 1000
    assert 370 <= total < 800, total  # ≈ 9 x 20 ms + 200 ms, not 10 x 200 ms


# --- bandwidth, slow_close -----------------------------------------------------------------------------------


def test_bandwidth_limits_the_downstream_rate(api: ToxiproxyClient, source_proxy: Link) -> None:
    api.add_toxic(source_proxy.name, "thin", "bandwidth", {"rate": 100})  # 100 KB/s = 100,000 bytes/s
    size = 200_000
    with connect(source_proxy.address) as sock:
        started = time.perf_counter()
        sock.sendall(f"{size}\n".encode())
        got = read_to_eof(sock)
        seconds = time.perf_counter() - started
    assert got == pattern(size), first_difference(got, pattern(size))
    rate = size / seconds
    assert 80_000 <= rate <= 120_000, f"{rate:.0f} B/s in {seconds:.2f} s"


def test_slow_close_delays_the_end_of_stream_not_the_data(api: ToxiproxyClient, source_proxy: Link) -> None:
    api.add_toxic(source_proxy.name, "lingering", "slow_close", {"delay": 300})
    with connect(source_proxy.address) as sock:
        started = time.perf_counter()
        sock.sendall(b"3\n")
        assert recv_exactly(sock, 3) == pattern(3)
        data_ms = elapsed_ms(started)
        assert sock.recv(10) == b""  # the upstream closed right after sending
        eof_ms = elapsed_ms(started)
    assert data_ms < 200, data_ms
    assert 280 <= eof_ms < 1500, eof_ms


# --- timeout, reset_peer -------------------------------------------------------------------------------------


def test_timeout_drops_data_and_closes_after_the_timeout(api: ToxiproxyClient, proxy: Link) -> None:
    api.add_toxic(proxy.name, "stall", "timeout", {"timeout": 500})
    started = time.perf_counter()
    with connect(proxy.address) as sock:
        sock.sendall(b"hello")
        assert sock.recv(100) == b""  # nothing delivered, then closed
        took = elapsed_ms(started)
    assert 400 <= took <= 1500, took


def test_timeout_zero_holds_the_connection_open_until_removed(api: ToxiproxyClient, proxy: Link) -> None:
    api.add_toxic(proxy.name, "stall", "timeout", {"timeout": 0})
    with connect(proxy.address) as sock:
        sock.sendall(b"hello")
        sock.settimeout(1.0)
        started = time.perf_counter()
        with pytest.raises(TimeoutError):
            sock.recv(100)  # neither data nor a close for a whole second
        assert elapsed_ms(started) >= 950
        assert api.remove_toxic(proxy.name, "stall")
        # As in Toxiproxy, what met the toxic was dropped; the same connection carries new data again.
        sock.settimeout(5.0)
        assert round_trip_ms(sock, b"again") < 200
    assert fresh_round_trip_ms(proxy.address) < 100


def test_reset_peer_resets_the_connection_after_the_timeout(api: ToxiproxyClient, proxy: Link) -> None:
    api.add_toxic(proxy.name, "rst", "reset_peer", {"timeout": 100})
    started = time.perf_counter()
    with connect(proxy.address) as sock:
        assert round_trip_ms(sock, b"before") < 80  # data flows until the reset
        with pytest.raises(ConnectionResetError):
            sock.recv(100)
        took = elapsed_ms(started)
    assert 80 <= took < 1000, took


def test_reset_peer_with_zero_timeout_resets_at_once(api: ToxiproxyClient, proxy: Link) -> None:
    api.add_toxic(proxy.name, "rst", "reset_peer", {"timeout": 0})
    started = time.perf_counter()
    # The reset may even beat connect() returning.
    with pytest.raises(ConnectionResetError), connect(proxy.address) as sock:
        sock.recv(100)
    assert elapsed_ms(started) < 300


# --- slicer, limit_data --------------------------------------------------------------------------------------


def test_slicer_delivers_small_separate_slices(api: ToxiproxyClient, proxy: Link) -> None:
    api.add_toxic(proxy.name, "sliced", "slicer", {"average_size": 10, "size_variation": 0, "delay": 2000})
    payload = pattern(100)
    chunks: list[bytes] = []
    with connect(proxy.address) as sock:
        sock.sendall(payload)
        while sum(map(len, chunks)) < len(payload):
            chunk = sock.recv(4096)
            assert chunk, "connection closed"
            chunks.append(chunk)
    assert b"".join(chunks) == payload
    assert len(chunks) >= 5 and all(len(c) <= 10 for c in chunks), [len(c) for c in chunks]


def test_limit_data_passes_that_many_bytes_then_closes(api: ToxiproxyClient, proxy: Link) -> None:
    api.add_toxic(proxy.name, "capped", "limit_data", {"bytes": 1000})
    payload = pattern(5000)
    with connect(proxy.address) as sock:
        sock.sendall(payload)
        got = read_to_eof(sock)
    assert got == payload[:1000], first_difference(got, payload[:1000])


# --- enabled, toxicity ---------------------------------------------------------------------------------------


def test_disabling_refuses_and_cuts_then_enabling_restores_the_address(api: ToxiproxyClient, proxy: Link) -> None:
    with connect(proxy.address) as open_conn:
        assert round_trip_ms(open_conn) < 100
        assert api.set_enabled(proxy.name, False).enabled is False
        with pytest.raises(ConnectionRefusedError):
            connect(proxy.address, timeout=2).close()
        open_conn.settimeout(2)
        with contextlib.suppress(ConnectionResetError):  # cut: reset...
            assert open_conn.recv(10) == b""  # ...or closed
    again = api.set_enabled(proxy.name, True)
    assert again.enabled is True and again.listen == proxy.address
    assert fresh_round_trip_ms(proxy.address) < 100


def test_toxicity_decides_per_connection_whether_a_toxic_applies(
    api: ToxiproxyClient, proxy: Link, chaosproxy: str
) -> None:
    api.add_toxic(proxy.name, "maybe", "latency", {"latency": 200}, toxicity=0.0)
    never = [fresh_round_trip_ms(proxy.address) for _ in range(5)]
    assert all(s < 150 for s in never), never

    update_toxic(chaosproxy, proxy.name, "maybe", {"toxicity": 1.0})
    always = [fresh_round_trip_ms(proxy.address) for _ in range(3)]
    assert all(195 <= s < 400 for s in always), always

    update_toxic(chaosproxy, proxy.name, "maybe", {"toxicity": 0.5, "attributes": {"latency": 60}})
    samples = [fresh_round_trip_ms(proxy.address) for _ in range(40)]
    delayed = sum(s >= 55 for s in samples)
    assert 4 <= delayed <= 36, sorted(samples)  # both happen: failing by chance is ~1e-7
