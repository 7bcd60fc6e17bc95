"""Find the processes a `match` rule (stackspec.match.ProcessMatch) names, on this host or over SSH.

Both hosts are read the same way — every PID's command line and executable, the socket inodes of its
open files when a port is asked for, the kernel's TCP tables — and judged by one pure function
(`matching`), so a rule means the same on a remote host as here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from stackspec.match import ProcessMatch

_LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp{,6}
_SOCKET = re.compile(r"^socket:\[(\d+)\]$")
_TCP_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")


@dataclass(frozen=True)
class Seen:
    """One live process as a rule sees it."""

    pid: int
    argv: tuple[str, ...]
    exe: str | None
    sockets: frozenset[int] = field(default_factory=frozenset)

    @property
    def cmdline(self) -> str:
        return " ".join(self.argv)


def listening_inodes(tables: Iterable[str]) -> dict[int, set[int]]:
    """port → inodes of the sockets listening on it, from the text of /proc/net/tcp and /proc/net/tcp6."""
    found: dict[int, set[int]] = {}
    for table in tables:
        for line in table.splitlines():
            fields = line.split()
            # sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
            if len(fields) < 10 or fields[3] != _LISTEN or ":" not in fields[1]:
                continue
            try:
                port, inode = int(fields[1].rsplit(":", 1)[1], 16), int(fields[9])
            except ValueError:
                continue  # the header line
            found.setdefault(port, set()).add(inode)
    return found


def exe_path(link: str | None) -> str | None:
    """The executable a /proc/PID/exe link names; an upgraded binary still running shows " (deleted)"."""
    return link.removesuffix(" (deleted)") if link else None


def matching(
    rule: ProcessMatch, seen: Iterable[Seen], listening: dict[int, set[int]], pidfile_pid: int | None
) -> list[int]:
    """PIDs of the processes that satisfy every rule given, in PID order."""
    pattern = re.compile(rule.cmdline) if rule.cmdline is not None else None
    ports = listening.get(rule.listen_port, set()) if rule.listen_port is not None else set()
    found = []
    for process in seen:
        if pattern is not None and not pattern.search(process.cmdline):
            continue
        if rule.exe is not None and process.exe != rule.exe:
            continue
        if rule.pidfile is not None and process.pid != pidfile_pid:
            continue
        if rule.listen_port is not None and not process.sockets & ports:
            continue
        found.append(process.pid)
    return sorted(found)


def parse_pidfile(text: str | None) -> int | None:
    """The PID a pid file holds (its first word), or None when it holds none."""
    words = (text or "").split()
    return int(words[0]) if words and words[0].isdigit() else None


# ----- this host -----


def _local_seen(with_sockets: bool) -> Iterator[Seen]:
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "cmdline").read_bytes()
        except OSError:
            continue  # gone while we looked
        if not raw:
            continue  # a kernel thread or a zombie: nothing to match, nothing to restart
        argv = tuple(raw.rstrip(b"\0").decode(errors="replace").split("\0"))
        try:
            exe = exe_path(os.readlink(Path(entry.path, "exe")))
        except OSError:
            exe = None  # another user's process: its executable cannot be read
        yield Seen(int(entry.name), argv, exe, _local_sockets(entry.path) if with_sockets else frozenset())


def _local_sockets(proc_dir: str) -> frozenset[int]:
    inodes = set()
    try:
        fds = os.listdir(Path(proc_dir, "fd"))
    except OSError:
        return frozenset()  # not ours to read, or gone
    for fd in fds:
        try:
            if m := _SOCKET.match(os.readlink(Path(proc_dir, "fd", fd))):
                inodes.add(int(m.group(1)))
        except OSError:
            continue
    return frozenset(inodes)


def local_matches(rule: ProcessMatch) -> list[int]:
    """PIDs on this host that satisfy `rule`."""
    tables = []
    if rule.listen_port is not None:
        for path in _TCP_TABLES:
            try:
                tables.append(Path(path).read_text())
            except OSError:
                continue  # no IPv6 here
    pidfile = None
    if rule.pidfile is not None:
        try:
            pidfile = parse_pidfile(Path(rule.pidfile).expanduser().read_text())
        except OSError:
            pidfile = None
    return matching(rule, _local_seen(rule.listen_port is not None), listening_inodes(tables), pidfile)


# ----- a host reached over SSH -----

# One POSIX sh script, given on stdin: "P<TAB>pid<TAB>exe<TAB>argv joined by 0x1f" a process (a newline
# inside an argument sent as 0x1e, so one process is one line), then with
# SOCKETS=1 "S<TAB>pid<TAB>socket:[inode]" an open socket, then "T<TAB>" + each TCP table line, then
# "F<TAB>" + the pid file's first line. No argv byte passes through a shell word.
REMOTE_SCRIPT = r"""for d in /proc/[0-9]*; do
  p=${d#/proc/}
  c=$(tr '\000\n' '\037\036' <"$d/cmdline" 2>/dev/null) || continue
  [ -n "$c" ] || continue
  e=$(readlink "$d/exe" 2>/dev/null)
  printf 'P\t%s\t%s\t%s\n' "$p" "$e" "$c"
  if [ "$SOCKETS" = 1 ]; then
    for f in "$d"/fd/*; do
      l=$(readlink "$f" 2>/dev/null) || continue
      case $l in socket:*) printf 'S\t%s\t%s\n' "$p" "$l";; esac
    done
  fi
done
if [ "$SOCKETS" = 1 ]; then cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | sed 's/^/T\t/'; fi
if [ -n "$PIDFILE" ]; then head -n 1 "$PIDFILE" 2>/dev/null | sed 's/^/F\t/'; fi
"""


def remote_script(rule: ProcessMatch) -> str:
    """The script for `rule`, with its two settings assigned first (the pid file path single-quoted)."""
    pidfile = (rule.pidfile or "").replace("'", "'\\''")
    return f"SOCKETS={1 if rule.listen_port is not None else 0}\nPIDFILE='{pidfile}'\n{REMOTE_SCRIPT}"


def remote_matches(rule: ProcessMatch, output: str) -> list[int]:
    """PIDs satisfying `rule`, from what `remote_script(rule)` printed on the remote host."""
    argvs: dict[int, tuple[tuple[str, ...], str | None]] = {}
    sockets: dict[int, set[int]] = {}
    tables: list[str] = []
    pidfile: int | None = None
    for line in output.split("\n"):  # not splitlines(): it also splits at 0x1e, our newline stand-in
        tag, _, rest = line.partition("\t")
        if tag == "P":
            pid, exe, cmd = [*rest.split("\t", 2), "", ""][:3]
            if pid.isdigit() and cmd:
                argv = cmd.rstrip("\x1f").replace("\x1e", "\n").split("\x1f")
                argvs[int(pid)] = (tuple(argv), exe_path(exe or None))
        elif tag == "S":
            pid, _, link = rest.partition("\t")
            if pid.isdigit() and (m := _SOCKET.match(link)):
                sockets.setdefault(int(pid), set()).add(int(m.group(1)))
        elif tag == "T":
            tables.append(rest)
        elif tag == "F":
            pidfile = parse_pidfile(rest)
    seen = [Seen(pid, argv, exe, frozenset(sockets.get(pid, ()))) for pid, (argv, exe) in argvs.items()]
    return matching(rule, seen, listening_inodes(["\n".join(tables)]), pidfile)
