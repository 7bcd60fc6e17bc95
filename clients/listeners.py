"""The processes listening on TCP ports of a host, here or over SSH, with their command lines.

One POSIX sh script reads the kernel's TCP tables (/proc/net/tcp, /proc/net/tcp6) and the socket inodes
of every process's open files (/proc/PID/fd), and is run the same way on both kinds of host: through a
`Shell` (`clients.nft.LocalShell`, or an SSH session), on stdin. A listening socket whose process cannot
be read (another user's, when not run as root) is counted, never guessed at.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from clients.errors import ClientError
from clients.nft import Shell
from clients.proc_match import exe_path

TIMEOUT_S = 60.0
_LISTEN = "0A"
_SOCKET = re.compile(r"socket:\[(\d+)\]")

# "T<TAB>line" per TCP table line; then for each process holding a socket:
# "P<TAB>pid<TAB>ppid<TAB>exe<TAB>socket inodes, space separated<TAB>argv joined by 0x1f (newline as 0x1e)".
SCRIPT = r"""for t in /proc/net/tcp /proc/net/tcp6; do [ -r "$t" ] && sed 's/^/T\t/' "$t"; done
for d in /proc/[0-9]*; do
  s=$(ls -l "$d/fd" 2>/dev/null | sed -n 's/.*socket:\[\([0-9]*\)\].*/\1/p' | tr '\n' ' ')
  [ -n "$s" ] || continue
  c=$(tr '\000\n' '\037\036' <"$d/cmdline" 2>/dev/null) || continue
  [ -n "$c" ] || continue
  e=$(readlink "$d/exe" 2>/dev/null)
  pp=$(sed -n 's/^PPid:[[:space:]]*//p' "$d/status" 2>/dev/null)
  printf 'P\t%s\t%s\t%s\t%s\t%s\n' "${d#/proc/}" "$pp" "$e" "$s" "$c"
done
"""


class ListenersError(ClientError):
    """The host's processes and sockets could not be listed."""


@dataclass(frozen=True)
class Socket:
    """One listening TCP socket: the address it is bound to and its port."""

    address: str  # 0.0.0.0, ::, 127.0.0.1 ...
    port: int
    inode: int


@dataclass(frozen=True)
class Listener:
    """One process that listens, with every TCP port it listens on."""

    pid: int
    ppid: int
    exe: str | None
    argv: tuple[str, ...]
    sockets: tuple[Socket, ...]

    @property
    def ports(self) -> list[int]:
        return sorted({s.port for s in self.sockets})


@dataclass(frozen=True)
class HostListeners:
    """What a host listens on: the processes that could be read, and how many sockets had no readable owner."""

    host: str
    listeners: list[Listener]
    unowned_ports: list[int]


def _address(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    # /proc/net/tcp6: four 32-bit words, each in host (little-endian) order
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    address = ipaddress.IPv6Address(words)
    return str(address.ipv4_mapped or address)


def listening_sockets(tables: list[str]) -> dict[int, Socket]:
    """inode → listening socket, from lines of /proc/net/tcp and /proc/net/tcp6."""
    found: dict[int, Socket] = {}
    for line in tables:
        fields = line.split()
        if len(fields) < 10 or fields[3] != _LISTEN or ":" not in fields[1]:
            continue
        try:
            hex_address, hex_port = fields[1].rsplit(":", 1)
            socket = Socket(_address(hex_address), int(hex_port, 16), int(fields[9]))
        except ValueError:
            continue  # the header line
        if socket.inode:
            found[socket.inode] = socket
    return found


def parse(host: str, output: str, skip: frozenset[int] = frozenset()) -> HostListeners:
    """What `SCRIPT` printed, as listeners; a socket shared by a parent and its children (a pre-forking
    server's workers) belongs to the parent alone. PIDs in `skip` (the runner's own) are left out."""
    tables: list[str] = []
    processes: list[tuple[int, int, str | None, set[int], tuple[str, ...]]] = []
    for line in output.split("\n"):  # not splitlines(): it also splits at 0x1e, our newline stand-in
        tag, _, rest = line.partition("\t")
        if tag == "T":
            tables.append(rest)
        elif tag == "P":
            parts = rest.split("\t", 4)
            if len(parts) == 5 and parts[0].isdigit():
                pid_text, ppid_text, exe_text, inodes, cmd = parts
                argv_read = tuple(cmd.rstrip("\x1f").replace("\x1e", "\n").split("\x1f"))
                inodes_read = {int(i) for i in inodes.split() if i.isdigit()}
                ppid_read = int(ppid_text) if ppid_text.isdigit() else 0
                processes.append((int(pid_text), ppid_read, exe_path(exe_text or None), inodes_read, argv_read))
    sockets = listening_sockets(tables)
    holders: dict[int, set[int]] = {}
    for pid, _, _, owned, _ in processes:
        for inode in owned & set(sockets):
            holders.setdefault(inode, set()).add(pid)
    by_pid = {p[0]: p for p in processes}
    listeners = []
    for pid, ppid, exe, owned, argv in processes:
        mine = [
            sockets[i] for i in sorted(owned & set(sockets)) if not any(by_pid[pid][1] == h for h in holders[i] - {pid})
        ]
        if mine and pid not in skip:
            listeners.append(Listener(pid, ppid, exe, argv, tuple(sorted(mine, key=lambda s: (s.port, s.address)))))
    unowned = sorted({s.port for inode, s in sockets.items() if inode not in holders})
    return HostListeners(host, sorted(listeners, key=lambda listener: listener.pid), unowned)


def listeners_on(shell: Shell, skip: frozenset[int] = frozenset()) -> HostListeners:
    """The listening processes of the host `shell` runs on; ListenersError (or the shell's own) when it cannot."""
    code, out, err = shell.run(["sh", "-s"], stdin=SCRIPT, timeout_s=TIMEOUT_S)
    if code != 0 and "T\t" not in out:
        said = " ".join(err.split())[:300] or f"exit code {code}"
        raise ListenersError(f"cannot list the listening processes on {shell.label}: {said}")
    return parse(shell.label, out, skip)
