"""The acknowledgement ledger: its writer alone, a writer killed mid-line, and real distributed Locust runs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from loadgen.ledger import (
    ACK_KEYS,
    CANCEL_KEYS,
    LEDGER_DIR_ENV,
    Ack,
    Acknowledgements,
    Ledger,
    read_ledger_dir,
    source_id,
)
from tests.loadgen.locust_support import assert_clean_exit, locust, locust_env, locust_final_totals, running_gateway
from tests.support.helpers import first_line, free_port

REPO = Path(__file__).resolve().parents[2]
HOST = socket.gethostname()
REQUEST = {
    "account": "ACC0007",
    "symbol": "600000",
    "side": "buy",
    "qty": 300,
    "price": 7.81,
    "client_order_id": "abc-1",
}
ANSWER = {
    "order_id": "42",
    "client_order_id": "abc-1",
    "account": "ACC0007",
    "symbol": "600000",
    "side": "buy",
    "qty": 300,
    "price": 7.81,
    "filled_qty": 100,
    "status": "partially_filled",
    "ack_at": 1764050000.25,
    "fills": [{"qty": 100, "price": 7.8}],
}
MM_PER_WORKER = 5  # market makers only, 10 over 2 workers; a user has at most one request in flight


def read_ledger(path: Path) -> tuple[list[dict[str, Any]], bytes]:
    """Every whole line of a ledger file as a record (each must parse), and the torn tail after the last newline."""
    data = path.read_bytes()
    whole, _, tail = data.rpartition(b"\n")
    return [json.loads(line) for line in whole.split(b"\n") if whole], tail


def only_file(directory: Path) -> Path:
    (path,) = directory.iterdir()
    return path


# --- the writer ---


def test_records_have_exactly_the_contract_keys_in_one_compact_line_each(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger")
    ledger.ack(ANSWER, REQUEST, t=1764050000.5)
    ledger.cancel("42", t=1764050001.0)
    ledger.close()

    path = only_file(tmp_path / "ledger")
    assert path.name == f"{source_id()}.jsonl" == f"{HOST}:{os.getpid()}.jsonl"
    lines = path.read_text().splitlines()
    assert lines[0] == (
        '{"ev":"ack","t":1764050000.5,"order_id":"42","client_order_id":"abc-1","account":"ACC0007",'
        '"symbol":"600000","side":"buy","qty":300,"price":7.81,"status":"partially_filled","filled_qty":100,'
        '"ack_at":1764050000.25}'
    )
    assert lines[1] == '{"ev":"cancel","t":1764050001.0,"order_id":"42"}'
    ack, cancel = (json.loads(line) for line in lines)
    assert tuple(ack) == ACK_KEYS
    assert tuple(cancel) == CANCEL_KEYS


def test_missing_answer_values_fall_back_to_the_request_and_types_follow_the_contract(tmp_path: Path) -> None:
    clock = iter([10.0, 11.0])
    ledger = Ledger(tmp_path, clock=lambda: next(clock))
    ledger.ack({"order_id": 7, "qty": "200", "price": 8}, REQUEST)  # a sloppy gateway: ints, strings, gaps
    ledger.ack({"order_id": "8", "status": "new", "filled_qty": 0, "ack_at": 12}, {**REQUEST, "client_order_id": None})
    records, tail = read_ledger(only_file(tmp_path))
    assert tail == b""
    assert records == [
        {
            "ev": "ack",
            "t": 10.0,
            "order_id": "7",
            "client_order_id": "abc-1",
            "account": "ACC0007",
            "symbol": "600000",
            "side": "buy",
            "qty": 200,
            "price": 8.0,
            "status": "unknown",
            "filled_qty": 0,
            "ack_at": None,
        },
        {
            "ev": "ack",
            "t": 11.0,
            "order_id": "8",
            "client_order_id": None,
            "account": "ACC0007",
            "symbol": "600000",
            "side": "buy",
            "qty": 300,
            "price": 7.81,
            "status": "new",
            "filled_qty": 0,
            "ack_at": 12.0,
        },
    ]
    assert isinstance(records[0]["price"], float) and isinstance(records[1]["ack_at"], float)


def test_what_the_writer_records_the_reader_reads_back_by_time_across_files(tmp_path: Path) -> None:
    """The format's own reader (the engine's integrity phase uses it): torn and foreign lines counted, skipped."""
    ticks = iter([3.0, 4.0, 1.0])
    Ledger(tmp_path, clock=lambda: next(ticks)).ack(ANSWER, REQUEST)  # this process's file
    (tmp_path / "other:1.jsonl").write_text(
        json.dumps(
            {
                "ev": "ack",
                "t": 2.0,
                **{k: ANSWER[k] for k in ("order_id", "account", "symbol", "side")},
                "qty": 5,
                "price": 1.5,
                "client_order_id": None,
            }
        )
        + "\n"
        + json.dumps({"ev": "cancel", "t": 2.5, "order_id": "42"})
        + "\n"
        + "[1, 2]\n"  # not a record
        + '{"ev": "ack", "t": 9'  # torn last line
    )
    found = read_ledger_dir(tmp_path)
    assert found.files == sorted(p.name for p in tmp_path.glob("*.jsonl"))
    assert [(a.t, a.order_id, a.qty, a.filled_qty) for a in found.acks] == [(2.0, "42", 5, 0), (3.0, "42", 300, 100)]
    assert found.acks[1] == Ack("42", "abc-1", "ACC0007", "600000", "buy", 300, 7.81, 3.0, 100)
    assert (found.cancels, found.unreadable_lines) == ({"42": 2.5}, 2)
    assert read_ledger_dir(tmp_path / "none") == Acknowledgements()


def test_an_answer_without_order_id_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="without order_id"):
        Ledger(tmp_path).ack({k: v for k, v in ANSWER.items() if k != "order_id"}, REQUEST)
    assert list(tmp_path.iterdir()) == []


def test_without_the_environment_variable_recording_is_a_no_op(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LEDGER_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    for ledger in (Ledger.from_env(), Ledger.from_env({LEDGER_DIR_ENV: ""}), Ledger(None)):
        assert not ledger.enabled
        ledger.ack({}, {})  # not even looked at
        ledger.cancel("1")
        ledger.close()
        assert ledger.path is None
    assert list(tmp_path.iterdir()) == []

    monkeypatch.setenv(LEDGER_DIR_ENV, str(tmp_path / "a" / "b"))
    ledger = Ledger.from_env()
    assert ledger.enabled
    assert not (tmp_path / "a").exists()  # nothing until the first record: a master leaves no file
    ledger.cancel("1")
    assert ledger.path == str(tmp_path / "a" / "b" / f"{source_id()}.jsonl")
    assert Path(ledger.path).read_text().count("\n") == 1


def test_the_locustfile_records_only_when_the_variable_is_set(tmp_path: Path) -> None:
    code = "import loadgen.trading as t; print(t.LEDGER.directory)"
    env = {k: v for k, v in os.environ.items() if k != LEDGER_DIR_ENV}
    argv = [sys.executable, "-c", code]
    unset = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=True)
    env[LEDGER_DIR_ENV] = str(tmp_path)
    set_ = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=True)
    assert (unset.stdout.strip(), set_.stdout.strip()) == ("None", str(tmp_path))


def test_importing_the_ledger_imports_neither_locust_nor_gevent_nor_the_metrics_plugin() -> None:
    code = (
        "import sys, loadgen.ledger;"
        "print(sorted({'locust', 'gevent', 'hdrh', 'loadgen.metrics_plugin'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_source_id_is_the_metrics_streams_src() -> None:
    from loadgen.metrics_plugin import source_id as metrics_source_id

    assert source_id() == metrics_source_id()


def test_a_forked_child_writes_its_own_file(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.cancel("parent-1")
    pid = os.fork()
    if pid == 0:  # the child: record, then leave without running pytest's teardown
        code = 1
        try:
            ledger.cancel("child-1")
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    ledger.cancel("parent-2")  # the parent's descriptor is untouched by the child
    ledger.close()
    parent, child = tmp_path / f"{HOST}:{os.getpid()}.jsonl", tmp_path / f"{HOST}:{pid}.jsonl"
    assert sorted(tmp_path.iterdir()) == sorted([parent, child])
    assert [r["order_id"] for r in read_ledger(parent)[0]] == ["parent-1", "parent-2"]
    assert [r["order_id"] for r in read_ledger(child)[0]] == ["child-1"]


def test_concurrent_writers_never_interleave_lines(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    threads_n, per_thread = 8, 2000

    def write(n: int) -> None:
        for i in range(per_thread):
            ledger.ack({**ANSWER, "order_id": f"{n}-{i}", "client_order_id": "x" * 300}, REQUEST)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    ledger.close()
    records, tail = read_ledger(only_file(tmp_path))
    assert tail == b""
    assert len(records) == threads_n * per_thread
    for n in range(threads_n):  # each thread's records in its own order
        mine = [r["order_id"] for r in records if r["order_id"].startswith(f"{n}-")]
        assert mine == [f"{n}-{i}" for i in range(per_thread)]


KILLED_WRITER = """
import sys, time
from loadgen.ledger import Ledger
ledger = Ledger(sys.argv[1])
answer = dict(order_id="0", account="ACC0001", symbol="600000", side="sell", qty=100, price=7.8, status="new",
              filled_qty=0, ack_at=1.0, client_order_id="c")
print("ready", flush=True)
deadline = time.monotonic() + 10
for i in range(5_000_000):
    if time.monotonic() > deadline:
        break
    answer["order_id"] = str(i)
    ledger.ack(answer, {})
"""


def test_a_sigkilled_writer_leaves_whole_lines_but_at_most_a_torn_last_one(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert first_line(proc, "the ledger writer") == "ready\n"
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL  # killed mid-stream, not finished

    records, tail = read_ledger(tmp_path / f"{HOST}:{proc.pid}.jsonl")
    assert len(records) > 1000
    assert [r["order_id"] for r in records] == [str(i) for i in range(len(records))]
    assert all(tuple(r) == ACK_KEYS for r in records)
    times = [r["t"] for r in records]
    assert times == sorted(times)
    head = b'{"ev":"ack","t":'
    assert tail == b"" or head.startswith(tail) or tail.startswith(head)  # a torn line is a prefix of a record


# --- real distributed Locust runs against the fake gateway ---


def acknowledged(host: str) -> dict[str, Any]:
    """What the fake gateway answered 201 (order bodies) and 200 on DELETE (order ids) for."""
    with urllib.request.urlopen(f"{host}/_acknowledged", timeout=10) as resp:
        result: dict[str, Any] = json.loads(resp.read())
    return result


def distributed(
    tmp_path: Path, host: str, run_s: int, ledger_dir: Path, users: int, classes: tuple[str, ...] = ()
) -> list[subprocess.Popen[str]]:
    """Start a headless master expecting 2 workers and the 2 workers, all with CHAOS_LEDGER_DIR set.

    Locust's dispatcher is deterministic: with both classes, one worker gets all market makers and
    some retail traders, the other only retail traders (who place an order every ~4.5 s each)."""
    port = str(free_port())
    master_args = [
        "--master",
        "--master-bind-host",
        "127.0.0.1",
        "--master-bind-port",
        port,
        "--expect-workers",
        "2",
        "--headless",
        "-u",
        str(users),
        "-r",
        "10",
        "-t",
        f"{run_s}s",
        "--stop-timeout",
        "5",  # users finish their task: no 201 is left unread when the run ends
        "--host",
        host,
        "--json-file",
        str(tmp_path / "final"),
    ]
    worker_args = ["--worker", "--master-host", "127.0.0.1", "--master-port", port]
    env = {**locust_env(None), LEDGER_DIR_ENV: str(ledger_dir)}
    procs: list[subprocess.Popen[str]] = []
    for argv in (locust(*master_args, *classes), locust(*worker_args), locust(*worker_args)):
        procs.append(
            subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        )
    return procs


def finish(procs: list[subprocess.Popen[str]]) -> list[str]:
    """Wait (bounded) for every process; kill, by its pid, any still running; return their stderr."""
    try:
        return [proc.communicate(timeout=90)[1] or "" for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def ledger_path(ledger_dir: Path, proc: subprocess.Popen[str]) -> Path:
    return ledger_dir / f"{HOST}:{proc.pid}.jsonl"


def ack_fields(order: dict[str, Any]) -> tuple[Any, ...]:
    """An acknowledged order's identity and state at acknowledgement, as both sides hold it."""
    return tuple(order[key] for key in ACK_KEYS if key not in ("ev", "t"))


def prefix(client_order_id: str) -> str:
    return client_order_id.rpartition("-")[0]


def split_by_process(records: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """(the process's client_order_id prefix, its ack records, its cancel records)."""
    acks = [r for r in records if r["ev"] == "ack"]
    cancels = [r for r in records if r["ev"] == "cancel"]
    assert len(acks) + len(cancels) == len(records)
    assert all(tuple(r) == ACK_KEYS for r in acks) and all(tuple(r) == CANCEL_KEYS for r in cancels)
    prefixes = {prefix(r["client_order_id"]) for r in acks}
    assert len(prefixes) == 1, prefixes
    return prefixes.pop(), acks, cancels


@pytest.mark.slow
def test_distributed_run_ledgers_every_acknowledgement_once_per_worker(tmp_path: Path) -> None:
    ledger_dir = tmp_path / "ledger"
    with running_gateway(fail_every=10, slow_ms=0) as host:
        before = time.time()
        procs = distributed(tmp_path, host, run_s=4, ledger_dir=ledger_dir, users=20)
        outputs = finish(procs)
        after = time.time()
        gateway = acknowledged(host)
    for proc, stderr in zip(procs, outputs, strict=True):
        assert_clean_exit(proc, stderr)

    _master, *workers = procs
    # One file per worker, named after the worker's host:pid; the master placed no order and wrote none.
    assert sorted(ledger_dir.iterdir()) == sorted(ledger_path(ledger_dir, w) for w in workers)
    acks: list[dict[str, Any]] = []
    cancels: list[dict[str, Any]] = []
    prefixes = set()
    for worker in workers:
        records, tail = read_ledger(ledger_path(ledger_dir, worker))
        assert tail == b""
        worker_prefix, worker_acks, worker_cancels = split_by_process(records)
        assert worker_acks, "each worker placed orders"
        prefixes.add(worker_prefix)
        acks += worker_acks
        cancels += worker_cancels
        assert all(before <= r["t"] <= after for r in records)
    assert len(prefixes) == 2

    # Every 201 the gateway sent is in the ledger exactly once, as the gateway sent it, and nothing else.
    assert Counter(ack_fields(r) for r in acks) == Counter(ack_fields(o) for o in gateway["orders"])
    assert len({r["order_id"] for r in acks}) == len(acks)
    posts, post_failures = locust_final_totals(Path(f"{tmp_path / 'final'}.json"))["POST /orders"]
    assert post_failures > 0  # the 503s are not acknowledgements
    assert len(acks) == posts - post_failures
    # Every 200 on DELETE, and only those (404/409 count as Locust successes but are no cancel).
    assert Counter(r["order_id"] for r in cancels) == Counter(gateway["cancels"])
    assert cancels


@pytest.mark.slow
def test_a_sigkilled_worker_keeps_its_ledger_up_to_its_last_whole_line(tmp_path: Path) -> None:
    ledger_dir = tmp_path / "ledger"
    with running_gateway(fail_every=0, slow_ms=0) as host:
        # Market makers only, so both workers place orders fast.
        procs = distributed(
            tmp_path, host, run_s=6, ledger_dir=ledger_dir, users=2 * MM_PER_WORKER, classes=("MarketMaker",)
        )
        _master, victim, survivor = procs
        victim_file = ledger_path(ledger_dir, victim)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and victim.poll() is None:
                if victim_file.exists() and victim_file.read_bytes().count(b'"ev":"ack"') >= 100:
                    break
                time.sleep(0.05)
            assert victim.poll() is None, "the worker ended before it could be killed"
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(timeout=10)
            size_at_kill = victim_file.stat().st_size
        finally:
            outputs = finish(procs)
        gateway = acknowledged(host)
    assert victim.returncode == -signal.SIGKILL
    assert_clean_exit(survivor, outputs[2])

    assert sorted(ledger_dir.iterdir()) == sorted([victim_file, ledger_path(ledger_dir, survivor)])
    assert victim_file.stat().st_size == size_at_kill  # nobody else writes a process's file
    acked = {o["order_id"]: ack_fields(o) for o in gateway["orders"]}

    records, tail = read_ledger(victim_file)  # whole lines parse; at most a torn last line
    victim_prefix, victim_acks, victim_cancels = split_by_process(records)
    assert len(victim_acks) >= 100
    assert all(acked[r["order_id"]] == ack_fields(r) for r in victim_acks)  # it recorded only real 201s
    # It lost at most the 201s in flight when it died (a torn last line is one of them).
    sent = [o for o in gateway["orders"] if prefix(o["client_order_id"]) == victim_prefix]
    assert 0 <= len(sent) - len(victim_acks) <= MM_PER_WORKER
    assert {r["order_id"] for r in victim_acks} <= {o["order_id"] for o in sent}
    assert tail == b"" or tail.startswith(b'{"ev":') or b'{"ev":'.startswith(tail)

    # The survivor ran on to the end and recorded exactly the 201s it received.
    records, tail = read_ledger(ledger_path(ledger_dir, survivor))
    assert tail == b""
    survivor_prefix, survivor_acks, survivor_cancels = split_by_process(records)
    assert survivor_prefix != victim_prefix
    sent = [o for o in gateway["orders"] if prefix(o["client_order_id"]) == survivor_prefix]
    assert Counter(ack_fields(r) for r in survivor_acks) == Counter(ack_fields(o) for o in sent)
    assert max(r["t"] for r in survivor_acks) > max(r["t"] for r in victim_acks)  # it kept going after the kill

    ledgered = Counter(r["order_id"] for r in victim_cancels + survivor_cancels)
    assert not ledgered - Counter(gateway["cancels"])  # only real 200s
    assert (Counter(gateway["cancels"]) - ledgered).total() <= MM_PER_WORKER
