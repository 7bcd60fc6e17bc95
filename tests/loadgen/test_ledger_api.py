"""The ledger API for a locustfile of one's own: real processes write it, the engine's reader reads it back."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.integrity_lookup import run_lookup
from engine.integrity_spec import LookupCheck
from loadgen.ledger import LEDGER_DIR_ENV, read_ledger_dir
from tests.support.helpers import ROOT
from tests.support.order_service import order_service

WRITER = """\
import os, sys
from loadgen import ledger
ledger.acknowledged("A-1", account="ACC1", symbol="AAA", side="buy", qty=200, price=10.5, t=100.0)
ledger.acknowledged(42, t=101.0)  # only the id known
ledger.cancelled("A-1", t=102.0)
if sys.argv[1:] == ["fork"]:
    pid = os.fork()
    if pid == 0:
        ledger.acknowledged("child-1", t=103.0)
        os._exit(0)
    os.waitpid(pid, 0)
    ledger.acknowledged("parent-2", t=104.0)
"""


def run_writer(tmp_path: Path, *args: str, ledger_dir: Path | None) -> None:
    env = {k: v for k, v in os.environ.items() if k != LEDGER_DIR_ENV}
    if ledger_dir is not None:
        env[LEDGER_DIR_ENV] = str(ledger_dir)
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    result = subprocess.run(
        [sys.executable, str(script), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_the_module_functions_write_what_the_engine_reads(tmp_path: Path) -> None:
    run_writer(tmp_path, ledger_dir=tmp_path / "ledger")
    found = read_ledger_dir(tmp_path / "ledger")
    assert len(found.files) == 1 and found.unreadable_lines == 0
    full, bare = found.acks
    assert (full.order_id, full.account, full.symbol, full.side, full.qty, full.price, full.t) == (
        "A-1",
        "ACC1",
        "AAA",
        "buy",
        200,
        10.5,
        100.0,
    )
    assert (bare.order_id, bare.account, bare.symbol, bare.side, bare.qty, bare.price) == ("42", *[None] * 5)
    assert found.cancels == {"A-1": 102.0}


def test_outside_a_run_the_calls_do_nothing(tmp_path: Path) -> None:
    run_writer(tmp_path, ledger_dir=None)
    assert list(tmp_path.iterdir()) == [tmp_path / "writer.py"]


def test_a_forked_worker_writes_its_own_file(tmp_path: Path) -> None:
    run_writer(tmp_path, "fork", ledger_dir=tmp_path / "ledger")
    files = sorted((tmp_path / "ledger").glob("*.jsonl"))
    assert len(files) == 2
    by_file = {f.name: [line for line in f.read_text().splitlines()] for f in files}
    assert sorted(len(lines) for lines in by_file.values()) == [1, 4]
    assert sorted(a.order_id for a in read_ledger_dir(tmp_path / "ledger").acks) == ["42", "A-1", "child-1", "parent-2"]


def test_a_bad_quantity_is_refused_not_recorded(tmp_path: Path) -> None:
    script = tmp_path / "bad.py"
    script.write_text("from loadgen import ledger\nledger.acknowledged('x', qty='many')\n")
    env = {**os.environ, LEDGER_DIR_ENV: str(tmp_path / "ledger")}
    result = subprocess.run(
        [sys.executable, str(script)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0 and "ValueError" in result.stderr
    assert read_ledger_dir(tmp_path / "ledger").acks == []


@pytest.mark.slow
def test_the_example_locustfile_records_every_order_the_service_acknowledged(tmp_path: Path) -> None:
    """loadgen/own_orders_example.py under real Locust against a real order service; then the lookup."""
    ledger_dir = tmp_path / "ledger"
    with order_service() as service:
        env = {**os.environ, LEDGER_DIR_ENV: str(ledger_dir)}
        argv = [sys.executable, "-m", "locust", "-f", str(ROOT / "loadgen" / "own_orders_example.py")]
        argv += ["--headless", "-u", "4", "-r", "4", "-t", "3s", "--host", service.url, "--only-summary"]
        result = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=90)
        assert result.returncode == 0, result.stderr[-2000:]
        found = read_ledger_dir(ledger_dir)
        assert len(found.acks) >= 10 and found.unreadable_lines == 0
        assert {a.order_id for a in found.acks} <= set(service.orders) | set(found.cancels)
        assert all(a.account and a.qty for a in found.acks)
        spec = LookupCheck(check="acknowledged_found_by_url", url=service.url + "/orders/{id}", compare={"qty": "qty"})
        lost, clashes, coverage = run_lookup(spec, found.acks, found.cancels, lambda name: name)
        assert (lost, clashes, coverage.complete) == ([], [], True)
        gone = [a.order_id for a in found.acks if a.order_id not in found.cancels][:3]
        service.lose(gone)
        lost, _, coverage = run_lookup(spec, found.acks, found.cancels, lambda name: name)
        assert sorted(o.order_id for o in lost) == sorted(gone) and coverage.complete


def test_the_example_locustfile_says_how_it_is_used() -> None:
    text = (ROOT / "loadgen" / "own_orders_example.py").read_text()
    doc = textwrap.dedent(text.split('"""')[1])
    assert "ledger.acknowledged" in doc and "acknowledged_found_by_url" in doc
