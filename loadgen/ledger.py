"""The acknowledgement ledger: every order and cancel the gateway acknowledged, as append-only JSON Lines.

After a chaos run the engine checks that every order the gateway acknowledged (201) still exists as
acknowledged. The load generator is the only party that knows what the gateway promised, so each Locust
process that places orders appends what it was told to its own file. The format is section 4 of
docs/contracts.md.

Enabled by the environment variable ``CHAOS_LEDGER_DIR`` (a directory, created if missing); without it
every method returns at once. Each process writes ``<dir>/<source_id>.jsonl``, ``source_id`` being
``hostname:pid`` exactly as the ``src`` of the metrics stream (loadgen/metrics_plugin.py). The file is
opened on the first record, so a process that places no orders (a Locust master) leaves no file, and it
is reopened after a fork (``locust --processes``), so no two processes share a file.

Durability: each record is one ``os.write`` of one whole line on an ``O_APPEND`` descriptor; nothing is
buffered in the process. A process killed with SIGKILL leaves only whole lines, except at worst a torn
last line (a write the kernel had not finished), and every line written before is in the kernel's page
cache, so it survives the process (not a power cut: the file is never fsynced). Several greenlets or
threads may record at once: an ``O_APPEND`` write to a regular local file moves the file offset and
writes its bytes as one step, so lines never interleave. Records in one file are in the order their
acknowledgements were processed.

A locustfile of your own records what your system acknowledged with the two module functions,
``acknowledged(order_id, account=..., ...)`` and ``cancelled(order_id)`` (docs/integrity.md, "Integrity on
your own system"): they write through one ledger per process, opened on first use from
``$CHAOS_LEDGER_DIR``, so they cost one ``os.write`` each and nothing when no run set the directory. Fields
you do not know are left out: the ledger records them as null and the reports show "—".

This module must stay free of Locust and gevent: the engine imports it to read the format back
(`read_ledger_dir`).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ACK",
    "ACK_KEYS",
    "CANCEL",
    "CANCEL_KEYS",
    "LEDGER_DIR_ENV",
    "Ack",
    "Acknowledgements",
    "Ledger",
    "acknowledged",
    "cancelled",
    "default_ledger",
    "read_ledger_dir",
    "source_id",
]

LEDGER_DIR_ENV = "CHAOS_LEDGER_DIR"
ACK = "ack"
CANCEL = "cancel"
ACK_KEYS = (
    "ev",
    "t",
    "order_id",
    "client_order_id",
    "account",
    "symbol",
    "side",
    "qty",
    "price",
    "status",
    "filled_qty",
    "ack_at",
)
CANCEL_KEYS = ("ev", "t", "order_id")
UNKNOWN_STATUS = "unknown"  # only if a 201 answer lacks "status" (a gateway outside the contract)


def source_id() -> str:
    """Return ``hostname:pid`` of this process, the same as ``loadgen.metrics_plugin.source_id()``.

    Not imported from there: loaded by Locust as a locustfile, the plugin is the module ``metrics_plugin``,
    and importing it again as ``loadgen.metrics_plugin`` would register its Locust listeners twice.
    """
    return f"{socket.gethostname()}:{os.getpid()}"


class Ledger:
    """Appends ``ack`` and ``cancel`` records to this process's ledger file; a no-op without a directory."""

    def __init__(self, directory: str | os.PathLike[str] | None, clock: Callable[[], float] = time.time) -> None:
        self.directory = os.fspath(directory) if directory else None
        self._clock = clock
        self._fd: int | None = None
        self._pid = 0  # the process that opened _fd: a forked child opens its own file
        self._path: str | None = None
        self._lock = threading.Lock()  # guards opening only; writes need no lock

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Ledger:
        """Return a ledger writing under ``$CHAOS_LEDGER_DIR``, or a disabled one when it is unset or empty."""
        return cls((os.environ if environ is None else environ).get(LEDGER_DIR_ENV))

    @property
    def enabled(self) -> bool:
        return self.directory is not None

    @property
    def path(self) -> str | None:
        """This process's ledger file once it has written a record, else None."""
        return self._path if self._fd is not None and self._pid == os.getpid() else None

    def ack(self, answer: Mapping[str, Any], request: Mapping[str, Any], t: float | None = None) -> None:
        """Record an acknowledged order: ``answer`` is the 201's JSON object, ``request`` the body sent.

        ``t`` is when the 201 arrived (default: now). Values come from the answer, else from the request;
        an answer without ``order_id`` cannot be checked later and raises ValueError.
        """
        if self.directory is None:
            return
        order_id = answer.get("order_id")
        if order_id is None:
            raise ValueError(f"a 201 answer without order_id cannot go into the ledger: {dict(answer)!r}")

        def value(key: str, default: Any = None) -> Any:
            found = answer.get(key)
            return found if found is not None else request.get(key, default)

        ack_at = answer.get("ack_at")
        self.acknowledged(
            order_id,
            t=t,
            client_order_id=value("client_order_id"),
            account=value("account"),
            symbol=value("symbol"),
            side=value("side"),
            qty=value("qty"),
            price=value("price"),
            status=answer.get("status") or UNKNOWN_STATUS,
            filled_qty=answer.get("filled_qty") or 0,
            ack_at=None if ack_at is None else float(ack_at),
        )

    def acknowledged(
        self,
        order_id: Any,
        *,
        t: float | None = None,
        client_order_id: Any = None,
        account: Any = None,
        symbol: Any = None,
        side: Any = None,
        qty: Any = None,
        price: Any = None,
        status: Any = None,
        filled_qty: Any = None,
        ack_at: float | None = None,
    ) -> None:
        """Record one acknowledged order by its id; every other field is optional (None: not recorded).

        ``qty`` must be a whole number and ``price`` a number when given (ValueError otherwise), so that
        the record reads back as written; ``t`` is when the acknowledgement arrived (default: now).
        """
        if self.directory is None:
            return
        if order_id is None or str(order_id) == "":
            raise ValueError("an acknowledgement without an order id cannot go into the ledger")
        self._write(
            {
                "ev": ACK,
                "t": self._clock() if t is None else float(t),
                "order_id": str(order_id),
                "client_order_id": _text(client_order_id),
                "account": _text(account),
                "symbol": _text(symbol),
                "side": _text(side),
                "qty": None if qty is None else int(qty),
                "price": None if price is None else float(price),
                "status": str(status or UNKNOWN_STATUS),
                "filled_qty": int(filled_qty or 0),
                "ack_at": ack_at,
            }
        )

    def cancel(self, order_id: str, t: float | None = None) -> None:
        """Record an acknowledged cancel (200 on DELETE /orders/{order_id}); ``t``: when it arrived."""
        if self.directory is None:
            return
        self._write({"ev": CANCEL, "t": self._clock() if t is None else t, "order_id": str(order_id)})

    cancelled = cancel  # the same name as the module function and as `acknowledged`

    def close(self) -> None:
        """Close this process's file (a later record opens it again)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _write(self, record: dict[str, Any]) -> None:
        fd = self._fd if self._pid == os.getpid() else None
        if fd is None:
            fd = self._open()
        data = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        written = os.write(fd, data)
        while written < len(data):  # only on a full disk or a signal: the line may then be torn
            written += os.write(fd, data[written:])

    def _open(self) -> int:
        with self._lock:
            pid = os.getpid()
            if self._fd is not None and self._pid == pid:
                return self._fd
            if self._fd is not None:  # inherited across a fork: the parent keeps writing to it
                os.close(self._fd)
                self._fd = None
            assert self.directory is not None
            os.makedirs(self.directory, exist_ok=True)
            path = os.path.join(self.directory, f"{source_id()}.jsonl")
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            self._pid, self._path = pid, path
            return self._fd


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


_DEFAULT: Ledger | None = None
_DEFAULT_LOCK = threading.Lock()


def default_ledger() -> Ledger:
    """This process's ledger under ``$CHAOS_LEDGER_DIR`` (read once, on first use); disabled without it."""
    global _DEFAULT
    if _DEFAULT is None:
        with _DEFAULT_LOCK:
            if _DEFAULT is None:
                _DEFAULT = Ledger.from_env()
    return _DEFAULT


def acknowledged(
    order_id: Any,
    *,
    account: Any = None,
    symbol: Any = None,
    side: Any = None,
    qty: Any = None,
    price: Any = None,
    client_order_id: Any = None,
    t: float | None = None,
) -> None:
    """Record that your system acknowledged order ``order_id`` (call it on the success answer).

    Give what you know of the order; what you leave out is recorded as not known (null) and never compared.
    ``t``: when the acknowledgement arrived (default: now). A no-op outside a chaos run.
    """
    default_ledger().acknowledged(
        order_id,
        t=t,
        client_order_id=client_order_id,
        account=account,
        symbol=symbol,
        side=side,
        qty=qty,
        price=price,
    )


def cancelled(order_id: Any, *, t: float | None = None) -> None:
    """Record that your system acknowledged the cancel of order ``order_id``; a no-op outside a chaos run."""
    default_ledger().cancel(str(order_id), t)


@dataclass(frozen=True)
class Ack:
    """One order acknowledgement read back from a ledger; None: the locustfile did not record that field."""

    order_id: str
    client_order_id: str | None
    account: str | None
    symbol: str | None
    side: str | None
    qty: int | None
    price: float | None
    t: float
    filled_qty: int = 0


@dataclass
class Acknowledgements:
    """What the ledger files of a run hold: acknowledged orders (by time), cancels, and what could not be read."""

    acks: list[Ack] = field(default_factory=list)
    cancels: dict[str, float] = field(default_factory=dict)  # order id → when its cancel was acknowledged
    files: list[str] = field(default_factory=list)
    unreadable_lines: int = 0


def _ack(entry: dict[str, Any]) -> Ack:
    return Ack(
        order_id=str(entry["order_id"]),
        client_order_id=_text(entry.get("client_order_id")),
        account=_text(entry.get("account")),
        symbol=_text(entry.get("symbol")),
        side=_text(entry.get("side")),
        qty=None if entry.get("qty") is None else int(entry["qty"]),
        price=None if entry.get("price") is None else float(entry["price"]),
        t=float(entry["t"]),
        filled_qty=int(entry.get("filled_qty") or 0),
    )


def read_ledger_dir(directory: Path) -> Acknowledgements:
    """Every ledger file in `directory`; a line that is not a whole record (a killed process) is counted, skipped."""
    found = Acknowledgements()
    files = sorted(directory.glob("*.jsonl")) if directory.is_dir() else []
    found.files = [f.name for f in files]
    for path in files:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(line)
                if entry["ev"] == ACK:
                    found.acks.append(_ack(entry))
                elif entry["ev"] == CANCEL:
                    found.cancels[str(entry["order_id"])] = float(entry["t"])
            except (ValueError, KeyError, TypeError):
                found.unreadable_lines += 1
    found.acks.sort(key=lambda a: a.t)
    return found
