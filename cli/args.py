"""Typed validators for chaos.py's arguments: text to value or a one-line refusal, and checks of the paths they name."""

from __future__ import annotations

import argparse
import errno
import ipaddress
import os
import re
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import NoReturn

from engine.durations import parse_duration
from engine.errors import ChaosError, ExitCode, InvalidInputError, Problem
from engine.files import LIMITS, InputFileError, check_file, check_sqlite, kind_of, os_reason

MAX_PORT = 65535
MAX_COUNT = 1_000_000  # --max-runs: more drill runs than anyone schedules, still a plain integer
MAX_SEED = 2**63 - 1  # seeds are journaled and stored in the drill history's SQLite INTEGER column
MAX_TEXT = 200  # characters of a free-text option (--by, --drill, STEP, --image)
_HOST_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_K8S_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_INT = re.compile(r"[+-]?\d{1,20}")


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line, naming where to read more; exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(ExitCode.INVALID_INPUT, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


class OutputDirError(ChaosError):
    """An output directory (--runs-dir, --out, --dir) cannot be created or written: nothing was started."""

    exit_code = ExitCode.CANNOT_RUN


def _refuse(text: str, reason: str, fix: str) -> NoReturn:
    shown = text if len(text) <= MAX_TEXT else text[:40] + "…"
    raise argparse.ArgumentTypeError(f"{shown!r}: {reason}; {fix}")


def _integer(text: str, low: int, high: int, noun: str, fix: str) -> int:
    if not _INT.fullmatch(text.strip()):
        _refuse(text, f"not a whole number, expected {noun}", fix)
    value = int(text)
    if not low <= value <= high:
        _refuse(text, f"out of range: {noun} is {low} to {high}", fix)
    return value


def duration(text: str) -> float:
    """A positive duration with a unit ("30s", "10m", "1h30m"), at most a week."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:  # its message names the fix
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        _refuse(text, "the duration must be longer than zero", "use e.g. 30s, 10m, 8h")
    return seconds


def port(text: str) -> int:
    """A TCP port to bind, 1-65535."""
    return _integer(text, 1, MAX_PORT, "a port", "use e.g. 8080")


def port_or_any(text: str) -> int:
    """A TCP port to bind, 0-65535, where 0 means any free port."""
    return _integer(text, 0, MAX_PORT, "a port", "use e.g. 8474, or 0 for any free port")


def count(text: str) -> int:
    """A positive count (--max-runs)."""
    return _integer(text, 1, MAX_COUNT, "a count", "use e.g. 10")


def seed(text: str) -> int:
    """A random seed: 0 ≤ seed < 2⁶³ (it is journaled and stored in the drill history)."""
    return _integer(text, 0, MAX_SEED, "a seed", "use e.g. 42")


def host(text: str) -> str:
    """An IP address or a syntactically valid host name to bind (RFC 1123; the last label not all digits)."""
    name = text.strip()
    fix = "use an IP address such as 127.0.0.1 or ::1, or a host name such as localhost"
    try:
        return str(ipaddress.ip_address(name.strip("[]")))
    except ValueError:
        pass
    labels = name.rstrip(".").split(".")
    if not name or len(name) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        _refuse(text, "not an IP address or a valid host name", fix)
    if labels[-1].isdigit():  # 999.1.1.1 looks like IPv4 but is not one; no top-level domain is numeric
        _refuse(text, "not a valid IPv4 address (four numbers 0-255)", fix)
    return name


def listen(text: str) -> tuple[str, int]:
    """HOST:PORT to serve on (an IPv6 address in brackets: [::1]:9464); port 0 means any free port."""
    address, sep, number = text.strip().rpartition(":")
    if not sep or not address or (":" in address and not address.startswith("[")):
        _refuse(text, "expected HOST:PORT", "use e.g. 127.0.0.1:9464, [::1]:9464, or 127.0.0.1:0 for any free port")
    return host(address), port_or_any(number)


def name_port(text: str) -> tuple[str, int]:
    """NAME=PORT for a fixed port of the reference stack (the names are checked against the profile)."""
    name, sep, number = text.partition("=")
    if not sep or not name.strip():
        _refuse(text, "expected NAME=PORT", "use e.g. gateway=8080")
    return name.strip(), port(number)


def ssh_target(text: str) -> tuple[str, str, int]:
    """USER@HOST[:PORT] (an IPv6 address in brackets: USER@[::1]:22) → (user, host, port); port 22 by default."""
    fix = "use e.g. root@10.0.0.5, deploy@db-1:2222 or admin@[fd00::5]:22"
    user, at, rest = text.strip().partition("@")
    if not at or not user or any(c in user for c in " :/@"):
        _refuse(text, "expected USER@HOST[:PORT]", fix)
    if rest.startswith("["):
        address, bracket, tail = rest[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            _refuse(text, "an IPv6 address goes in brackets, then :PORT", fix)
        number = tail[1:] if tail else ""
    else:
        address, _, number = rest.partition(":")
    if not address:
        _refuse(text, "no host after the @", fix)
    return user, host(address), port(number) if number else 22


def usage_error(prog: str, message: str) -> InvalidInputError:
    """An argument refused after parsing (when it depends on another one): exit 2, one line."""
    return InvalidInputError([Problem(prog, None, None, message)])


def check_port_names(pairs: Iterable[tuple[str, int]], known: list[str], profile: str) -> None:
    """Refuse --port names the stack profile does not have, listing the ones it has."""
    unknown = sorted({name for name, _ in pairs} - set(known))
    if unknown:
        raise usage_error(
            "chaos.py stack up",
            f"--port: unknown name(s) {', '.join(map(repr, unknown))} for profile {profile}; known: {', '.join(known)}",
        )


def label(text: str) -> str:
    """A short one-line text (a name, a step id, an image reference)."""
    if not text.strip() or len(text) > MAX_TEXT or any(ord(c) < 32 or ord(c) == 127 for c in text):
        _refuse(text, f"expected a non-empty single line of at most {MAX_TEXT} characters", "check the value")
    return text.strip()


def k8s_name(text: str) -> str:
    """A Kubernetes object name (DNS-1123 label: lower-case letters, digits and '-', at most 63)."""
    if not _K8S_LABEL.fullmatch(text):
        _refuse(text, "not a Kubernetes name", "use lower-case letters, digits and '-', e.g. chaos-runs")
    return text


def path(text: str) -> Path:
    """A non-empty path; what it must be is checked where it is used."""
    if not text.strip():
        _refuse(text, "an empty path", "give a file or directory")
    return Path(text)


def _refused_file(exc: InputFileError) -> InvalidInputError:
    return InvalidInputError([Problem(str(exc.path), None, None, exc.reason)])


def input_file(file: Path, kind: str) -> None:
    """Refuse (exit 2) unless `file` is an existing, readable, regular file of `kind` within its size limit.

    Nothing is read: the file is stat'ed, and opened non-blocking and closed again (a FIFO or a device
    is refused by the stat, before any open could block).
    """
    limit = LIMITS[kind]
    what = f"an {kind} file" if kind[0] in "aeiou" else f"a {kind} file"
    try:
        info = check_file(file, what)
        if info.st_size > limit:
            raise InputFileError(file, f"file is {info.st_size:,} bytes; the limit is {limit:,} for {what}")
        os.close(os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC))
    except InputFileError as exc:
        raise _refused_file(exc) from None
    except OSError as exc:
        raise _refused_file(InputFileError(file, os_reason(exc, file))) from None


def file_or_dir(found: Path) -> None:
    """Refuse (exit 2) unless `found` is an existing regular file or directory (`drill schedule FILE|DIR`)."""
    try:
        info = os.stat(found)
    except OSError as exc:
        raise _refused_file(InputFileError(found, os_reason(exc, found))) from None
    except ValueError as exc:  # a NUL byte in the name
        raise _refused_file(InputFileError(found, f"not a usable path ({exc})")) from None
    if not (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)):
        raise _refused_file(InputFileError(found, f"is {kind_of(info.st_mode)}, expected a drill file or directory"))


def history_file(db: Path) -> None:
    """Refuse (exit 2) unless `db` is an existing drill history database (SQLite) to read."""
    if not os.path.lexists(db):
        raise _refused_file(InputFileError(db, "no such drill history database"))
    try:
        check_sqlite(db)
    except InputFileError as exc:
        raise _refused_file(exc) from None


def _fail(option: str, where: Path, reason: str) -> NoReturn:
    raise OutputDirError(f"{option} {where}: {reason}; choose a directory you can write to")


def writable_dir(where: Path, option: str) -> None:
    """Refuse (exit 4) unless `where` is a directory we can write in, or one we can create.

    Checked before anything starts, by creating and removing a temporary directory in `where` or in
    its nearest existing ancestor — the only test that is true for root on a read-only mount or an
    immutable directory, where permission bits say nothing.
    """
    probe = Path(os.path.abspath(where))
    while True:
        try:
            info = os.stat(probe)
            break
        except (FileNotFoundError, NotADirectoryError):
            if os.path.islink(probe):
                _fail(option, where, f"{probe} is a dangling symbolic link")
            if probe.parent == probe:
                _fail(option, where, "no part of the path exists")
            probe = probe.parent
        except OSError as exc:  # a link loop, a directory we may not enter
            reason = os_reason(exc, probe) if exc.errno == errno.ELOOP else f"cannot reach {probe} ({exc.strerror})"
            _fail(option, where, reason)
        except ValueError as exc:  # a NUL byte in the name
            _fail(option, where, f"not a usable path ({exc})")
    if not stat.S_ISDIR(info.st_mode):
        kind = kind_of(info.st_mode) or "a file"
        _fail(option, where, f"{probe} is {kind}, not a directory")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".chaos-write-check-", dir=probe))
    except OSError as exc:
        _fail(option, where, f"cannot create anything in {probe} ({exc.strerror or exc})")


def writable_history(db: Path, option: str = "--history") -> None:
    """The drill history a drill run adds to: an SQLite file we can write, or one we can create."""
    if os.path.lexists(db):
        history_file(db)
        try:
            os.close(os.open(db, os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC))
        except OSError as exc:
            _fail(option, db, f"cannot write the database ({exc.strerror or exc})")
    writable_dir(db.parent, option)
