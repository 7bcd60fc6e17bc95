"""nftables on a host, here or over SSH: one table per fault, written as one script and applied atomically.

A host-level network fault is a table of its own (`table inet NAME`, two base chains on the `output` and
`input` hooks), so putting it in place is one `nft -f -` transaction, undoing it is one `nft delete table`,
and "verified gone" means the table is absent from `nft list tables`. Nothing else on the host is touched:
rules of other tables (the host's own firewall) are neither read nor changed. Every rule carries a counter,
so the rollback can say how many packets the fault dropped or rejected.

Commands run through a `Shell`: `LocalShell` here, or an SSH session (`clients.ssh.SshSession.run` has
the same signature). No value is spliced into a shell string: the script goes over stdin.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from clients.errors import ClientError, NotFoundError

Direction = Literal["both", "egress", "ingress"]
CHAINS = {"egress": "output", "ingress": "input"}
# Where the nftables tools live on Debian and most distributions; a remote login's PATH may lack /usr/sbin.
_NFT = ["sh", "-c", 'PATH="$PATH:/usr/sbin:/sbin" exec "$0" "$@"']
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,200}$")
_COUNTER = re.compile(r"counter packets (\d+) bytes (\d+)")
TIMEOUT_S = 10.0


class NftError(ClientError):
    """nft is missing, refused us, or rejected a ruleset."""


class NftMissingError(NftError, NotFoundError):
    """The host has no `nft` program."""


class Shell(Protocol):
    """Runs an argv list on a host: this one, or one reached over SSH."""

    @property
    def label(self) -> str: ...

    def run(self, argv: list[str], *, stdin: str | None = None, timeout_s: float | None = None) -> tuple[int, str, str]:
        """(exit code, stdout, stderr); 127 when the program does not exist."""
        ...


class LocalShell:
    """This host: subprocess, no shell."""

    label = "this host"

    def run(self, argv: list[str], *, stdin: str | None = None, timeout_s: float | None = None) -> tuple[int, str, str]:
        try:
            done = subprocess.run(
                argv, input=stdin, capture_output=True, text=True, timeout=timeout_s or TIMEOUT_S, check=False
            )
        except FileNotFoundError:
            return 127, "", f"{argv[0]}: not found"
        except subprocess.TimeoutExpired:
            raise NftError(
                f"{self.label}: `{' '.join(argv)}` did not finish within {timeout_s or TIMEOUT_S:g}s"
            ) from None
        return done.returncode, done.stdout, done.stderr


@dataclass(frozen=True)
class Rule:
    """One verdict of a fault: `statement` (e.g. `drop`) for packets of `l4` (`tcp`, or None: any protocol)."""

    statement: str
    l4: Literal["tcp"] | None = None


def networks(addresses: Sequence[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The addresses (IPs or CIDR blocks) as networks; ValueError naming the first that is neither."""
    return [ipaddress.ip_network(address, strict=False) for address in addresses]


def _port_expr(l4: str | None, side: str, ports: Sequence[int]) -> str:
    listed = ", ".join(str(p) for p in sorted(set(ports)))
    if l4 is not None:
        return f"{l4} {side} {{ {listed} }}" if ports else f"meta l4proto {l4}"
    return f"meta l4proto {{ tcp, udp }} th {side} {{ {listed} }}" if ports else ""


def chain_rules(
    chain: Literal["egress", "ingress"],
    addresses: Sequence[str],
    ports: Sequence[int],
    rules: Sequence[Rule],
    keep_tcp_port: int | None = None,
) -> list[str]:
    """The rules of one chain: packets to (egress) or from (ingress) `addresses` and `ports` get `rules`.

    `keep_tcp_port` is the port the framework itself reaches the host on (SSH): TCP to or from it is accepted
    first, in both chains, so a fault never cuts the runner off the host it must later undo it on (even where
    the runner and the host share one kernel, as in the tests).
    """
    egress = chain == "egress"
    lines = [f"tcp sport {keep_tcp_port} accept", f"tcp dport {keep_tcp_port} accept"] if keep_tcp_port else []
    by_family: dict[str, list[str]] = {}
    for net in networks(addresses):
        by_family.setdefault("ip" if net.version == 4 else "ip6", []).append(str(net))
    address_exprs = [
        f"{family} {'daddr' if egress else 'saddr'} {{ {', '.join(nets)} }}" for family, nets in by_family.items()
    ] or [""]
    for address in address_exprs:
        for rule in rules:
            match = " ".join(
                part for part in (address, _port_expr(rule.l4, "dport" if egress else "sport", ports)) if part
            )
            lines.append(f"{match} {rule.statement}".strip())
    return lines


def table_script(name: str, chains: Mapping[str, Sequence[str]]) -> str:
    """`table inet NAME` with one base chain per direction in `chains` (egress: output hook, ingress: input)."""
    if not _TABLE_NAME.match(name):
        raise ValueError(f"{name!r} is not a valid nftables table name")
    lines = [f"table inet {name} {{"]
    for chain, rules in chains.items():
        lines.append(f"\tchain {chain} {{")
        lines.append(f"\t\ttype filter hook {CHAINS[chain]} priority filter - 10; policy accept;")
        lines += [f"\t\t{rule}" for rule in rules]
        lines.append("\t}")
    lines.append("}")
    return "\n".join(lines) + "\n"


class Nft:
    """The `nft` program on one host."""

    def __init__(self, shell: Shell, program: str = "nft", timeout_s: float = TIMEOUT_S) -> None:
        self.shell = shell
        self.program = program
        self.timeout_s = timeout_s

    def _run(self, args: list[str], stdin: str | None = None) -> tuple[int, str, str]:
        code, out, err = self.shell.run([*_NFT, self.program, *args], stdin=stdin, timeout_s=self.timeout_s)
        if code == 127:
            raise NftMissingError(
                f"{self.shell.label} has no `{self.program}` (nftables): install it (Debian: apt-get install nftables)"
            )
        return code, out, err

    def _failed(self, what: str, code: int, err: str) -> NftError:
        said = " ".join(err.split()) or f"exit code {code}"
        if "Operation not permitted" in err or "Permission denied" in err:
            return NftError(f"{self.shell.label}: {what}: {said} — the user needs CAP_NET_ADMIN there (log in as root)")
        return NftError(f"{self.shell.label}: {what}: {said}")

    def tables(self) -> list[str]:
        """Names of the `inet` tables on the host."""
        code, out, err = self._run(["list", "tables"])
        if code != 0:
            raise self._failed("cannot list nftables tables", code, err)
        return [
            line.split()[2] for line in out.splitlines() if line.startswith("table inet ") and len(line.split()) > 2
        ]

    def exists(self, name: str) -> bool:
        return name in self.tables()

    def check(self, script: str) -> None:
        """Have the kernel check `script` without applying it (`nft -c`): unsupported rules fail here."""
        code, _, err = self._run(["-c", "-f", "-"], stdin=script)
        if code != 0:
            raise self._failed("nftables refuses the fault's rules", code, err)

    def apply(self, script: str) -> None:
        """Apply `script` as one transaction: all of it is in place, or none of it."""
        code, _, err = self._run(["-f", "-"], stdin=script)
        if code != 0:
            raise self._failed("applying the fault's rules failed", code, err)

    def counters(self, name: str) -> dict[str, int]:
        """Packets counted by the table's rules, per chain (the accepted SSH packets are not counted)."""
        code, out, err = self._run(["list", "table", "inet", name])
        if code != 0:
            raise self._failed(f"cannot list table {name}", code, err)
        counts: dict[str, int] = {}
        chain = None
        for line in out.splitlines():
            words = line.split()
            if words[:1] == ["chain"] and len(words) > 1:
                chain = words[1]
            elif chain is not None and (found := _COUNTER.search(line)):
                counts[chain] = counts.get(chain, 0) + int(found.group(1))
        return counts

    def delete(self, name: str) -> bool:
        """Delete the table in one step: True when it was there, False when it was already gone."""
        code, _, err = self._run(["delete", "table", "inet", name])
        if code == 0:
            return True
        if not self.exists(name):
            return False
        raise self._failed(f"cannot delete table {name}", code, err)
