"""Paths of every odd kind a command-line argument can name: FIFO, devices, links that go nowhere, unreadable …"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

# Over every input-file limit (the largest, journals, is 128 MB) without using disk: a sparse file.
HUGE_BYTES = 200_000_000


def write_only_sysfs_attribute() -> Path | None:
    """A sysfs file that even root cannot open for reading (write-only attributes refuse it: EACCES)."""
    candidates = [Path("/sys/bus/pci/rescan"), Path("/sys/class/zram-control/hot_remove")]
    candidates += sorted(Path("/sys/devices").glob("pci*/*/rescan"))[:3]
    for path in candidates:
        try:
            os.close(os.open(path, os.O_RDONLY))
        except PermissionError:
            return path
        except OSError:
            continue
    return None


def unreadable(tmp: Path) -> Path | None:
    """A regular file this process cannot read: chmod 000 when not root; as root, a write-only sysfs file.

    chmod does not stop root (CAP_DAC_OVERRIDE), so as root only a file whose driver refuses reads works.
    """
    if os.geteuid() != 0:
        path = tmp / "unreadable.yaml"
        path.write_text("version: 1\n")
        path.chmod(0)
        return path
    return write_only_sysfs_attribute()


def make_fifo(tmp: Path) -> Path:
    path = tmp / "fifo.yaml"
    os.mkfifo(path)
    return path


def make_socket(tmp: Path) -> Path:
    path = tmp / "sock.yaml"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))  # the socket file stays after the socket is closed
    return path


def make_directory(tmp: Path) -> Path:
    path = tmp / "dir.yaml"
    path.mkdir()
    return path


def make_dangling_link(tmp: Path) -> Path:
    path = tmp / "dangling.yaml"
    path.symlink_to(tmp / "nothing-here.yaml")
    return path


def make_looping_link(tmp: Path) -> Path:
    first, second = tmp / "loop-a.yaml", tmp / "loop-b.yaml"
    first.symlink_to(second)
    second.symlink_to(first)
    return first


def make_huge(tmp: Path) -> Path:
    path = tmp / "huge.yaml"
    with path.open("wb") as handle:
        handle.truncate(HUGE_BYTES)
    return path


def make_non_utf8(tmp: Path) -> Path:
    path = tmp / "latin1.yaml"
    path.write_bytes(b"version: 1\ntitle: caf\xe9\n\xff\xfe{\n")
    return path


def make_empty(tmp: Path) -> Path:
    path = tmp / "empty.yaml"
    path.touch()
    return path


def make_missing(tmp: Path) -> Path:
    return tmp / "no-such-file.yaml"


def make_under_a_file(tmp: Path) -> Path:
    (tmp / "plain-file").write_text("x")
    return tmp / "plain-file" / "inside.yaml"


def make_proc_mem(tmp: Path) -> Path:
    """A regular file (st_size 0) whose read fails with EIO: /proc/self/mem at offset 0."""
    return Path("/proc/self/mem")


ODD_INPUTS: dict[str, Callable[[Path], Path | None]] = {
    "fifo": make_fifo,
    "socket": make_socket,
    "dev-zero": lambda tmp: Path("/dev/zero"),
    "dev-null": lambda tmp: Path("/dev/null"),
    "directory": make_directory,
    "dangling-link": make_dangling_link,
    "looping-link": make_looping_link,
    "unreadable": unreadable,
    "read-error": make_proc_mem,
    "huge-sparse": make_huge,
    "non-utf8": make_non_utf8,
    "empty": make_empty,
    "missing": make_missing,
    "under-a-file": make_under_a_file,
}


def immutable_dir(tmp: Path) -> Path | None:
    """A directory nobody may write in, root included (chattr +i); None where chattr is unavailable."""
    chattr = shutil.which("chattr")
    if chattr is None:
        return None
    path = tmp / "read-only"
    path.mkdir(exist_ok=True)
    result = subprocess.run([chattr, "+i", str(path)], capture_output=True, check=False)
    return path if result.returncode == 0 else None


def release_immutable(path: Path | None) -> None:
    chattr = shutil.which("chattr")
    if path is not None and chattr is not None:
        subprocess.run([chattr, "-i", str(path)], capture_output=True, check=False)


@contextlib.contextmanager
def read_only_dir(tmp: Path) -> Iterator[Path]:
    """A directory this process cannot create anything in: chattr +i as root, chmod 500 otherwise.

    Falls back to /sys (a filesystem where root cannot create files) when chattr is unavailable.
    """
    if os.geteuid() != 0:
        path = tmp / "read-only"
        path.mkdir(exist_ok=True)
        path.chmod(0o500)
        try:
            yield path
        finally:
            path.chmod(0o700)
        return
    locked = immutable_dir(tmp)
    try:
        yield locked if locked is not None else Path("/sys")
    finally:
        release_immutable(locked)


ODD_OUTPUT_DIRS: dict[str, Callable[[Path], Path]] = {
    "regular-file": lambda tmp: make_empty(tmp),
    "fifo": make_fifo,
    "dev-null": lambda tmp: Path("/dev/null"),
    "under-a-file": make_under_a_file,
    "dangling-link": make_dangling_link,
    "looping-link": make_looping_link,
    "sysfs": lambda tmp: Path("/sys/chaos-runs"),
    "procfs": lambda tmp: Path("/proc/chaos-runs"),
}
