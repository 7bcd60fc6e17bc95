"""Bounded reads of input files: regular files only (never a FIFO or device), never past a size limit."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

# Size limits per kind of input file; nothing is ever read into memory beyond its limit (+1 byte, to
# tell "over"). Hand-written files are small: a 1 MB experiment or drill is a mistake (or an attack),
# never a scenario. Stack descriptions may list many generated instances. A journal grows with its
# per-second samples, about 2.5 MB an hour of load with the reference locustfile's five request
# names, so 128 MB holds two days of continuous load; a drill record holds steps and summaries only.
MB = 1_000_000
LIMITS: dict[str, int] = {
    "experiment": 1 * MB,
    "drill": 1 * MB,
    "stack": 4 * MB,
    "journal": 128 * MB,
    "drill record": 16 * MB,
    "proxy config": 1 * MB,
}

SQLITE_HEADER = b"SQLite format 3\x00"


class InputFileError(ValueError):
    """An input file cannot be read as given; `reason` says why (and how to fix it) without the path."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def kind_of(mode: int) -> str | None:
    """What a non-regular file is, in words ("a FIFO (named pipe)"); None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def os_reason(exc: OSError, path: Path) -> str:
    """An OSError on `path` in words, naming the case (dangling or looping link, missing directory)."""
    code = exc.errno
    if code == errno.ENOENT:
        if os.path.islink(path):
            return f"is a dangling symbolic link (to {os.readlink(path)!r}, which does not exist)"
        return "no such file"
    if code == errno.ELOOP:
        return "is a symbolic link loop (the links point at each other)"
    if code == errno.ENOTDIR:
        return "a part of the path is a file, not a directory"
    if code == errno.ENAMETOOLONG:
        return "the path is too long"
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied: cannot read the file"
    return f"cannot read: {exc.strerror or exc}"


def check_file(path: Path, what: str) -> os.stat_result:
    """stat `path` (following links) and refuse anything but an existing regular file."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise InputFileError(path, os_reason(exc, path)) from None
    except ValueError as exc:  # a NUL byte in the name
        raise InputFileError(path, f"not a usable path: {exc}") from None
    kind = kind_of(info.st_mode)
    if kind is not None:
        raise InputFileError(path, f"is {kind}, expected {what}")
    return info


def read_bytes(path: Path, limit: int, what: str) -> bytes:
    """The content of the regular file `path`, at most `limit` bytes; InputFileError says what is wrong.

    The file is checked with stat before it is opened, and opened non-blocking, so a FIFO or a device
    is refused at once instead of blocking or streaming forever; fstat after open closes the race
    of a file swapped in between.
    """
    info = check_file(path, what)
    if info.st_size > limit:
        raise InputFileError(path, f"file is {info.st_size:,} bytes; the limit is {limit:,} for {what}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise InputFileError(path, os_reason(exc, path)) from None
    try:
        kind = kind_of(os.fstat(fd).st_mode)
        if kind is not None:
            raise InputFileError(path, f"is {kind}, expected {what}")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise InputFileError(path, f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if size > limit:  # st_size can be 0 for files whose content is generated (/proc, /sys)
        raise InputFileError(path, f"more than {limit:,} bytes; the limit is {limit:,} for {what}")
    return b"".join(chunks)


def read_json(path: Path, limit: int, what: str, label: str) -> Any:
    """The JSON content of the regular file `path` (read as `read_bytes` reads it); ValueError
    "<path>: not a readable <label>: <why>" when it cannot be read or is not JSON."""
    try:
        return json.loads(read_bytes(path, limit, what))
    except InputFileError as exc:  # missing, a FIFO or device, unreadable, over the limit: never read
        raise ValueError(f"{path}: not a readable {label}: {exc.reason}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable {label}: {exc}") from exc


def check_sqlite(path: Path, what: str = "a drill history (SQLite database)") -> None:
    """Refuse `path` unless it is a regular file that is empty or starts with SQLite's header."""
    check_file(path, what)
    head = _head(path, what)  # read even when st_size says 0: /proc and /sys files say so too
    if head and head != SQLITE_HEADER:
        raise InputFileError(path, f"is not an SQLite database, expected {what}")


def _head(path: Path, what: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise InputFileError(path, os_reason(exc, path)) from None
    try:
        return os.read(fd, len(SQLITE_HEADER))
    except OSError as exc:
        raise InputFileError(path, f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
