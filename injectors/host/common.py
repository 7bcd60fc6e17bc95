"""What the host network kinds share: the hosts of a process target, their peers, one nftables table per fault.

A host-level network fault needs no proxy in front of a link: it acts in the kernel of the host a process
runs on — this host, or the instance's `host` reached over SSH — with nftables (`clients/nft.py`). Each
fault is one table named after the run, the kind and a random token, written into the plan (and so into
the undo ledger) before anything is applied, with the exact ruleset. Resolving checks the ruleset with
`nft -c` on every host, so a host without nft, a user without CAP_NET_ADMIN or a kernel without a rule's
feature is refused at preflight, with nothing applied anywhere. Rollback deletes the table (one atomic
step, idempotent); verification proves it is absent. `chaos.py recover` needs only the plan: it names the
host and the table.

The traffic a fault matches: packets to and from the `peers` (the hosts of other process targets) and
`addresses`, limited to the far side's `ports` when given, in one direction or both. TCP to or from the
port the framework reaches a remote host on (its SSH port) is always exempt, so no fault can cut the
runner off a host it must undo the fault on.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import socket
import time
from abc import abstractmethod
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Annotated, ClassVar, Literal, Self, TypeVar

from pydantic import Field, JsonValue, model_validator

from clients.nft import Direction, LocalShell, Nft, Rule, Shell, chain_rules, networks, table_script
from clients.procs import MatchError, ProcessHosts, found_by_rule, role_of
from injectors.base import FaultPlan, FaultSpec, Injector, Outcome, RunContext, TargetRef
from injectors.errors import FaultStillPresentError, InjectionError, TargetNotFoundError
from injectors.process.common import process_target
from injectors.selection import Selection, select
from stackspec.targets import ProcessInstance, SshHost

Port = Annotated[int, Field(ge=1, le=65535)]
_LOCAL = "this host"


class HostNetSpec(FaultSpec):
    """Which traffic of the target's hosts the fault acts on: to and from peers, addresses and their ports."""

    peers: list[str] = Field(
        default_factory=list,
        description="Process targets on the far side: the hosts their instances run on (their `host.address`; "
        "127.0.0.1 for instances on this host, when the faulted host is this host too).",
    )
    addresses: list[str] = Field(
        default_factory=list, description="More far-side IP addresses or CIDR blocks, e.g. 10.0.3.0/24."
    )
    ports: list[Port] = Field(
        default_factory=list,
        description="Only traffic to (egress) or from (ingress) these TCP/UDP ports of the far side; "
        "empty: every port.",
    )
    direction: Direction = Field(
        default="both",
        description="`egress` (packets the host sends to the far side), `ingress` (packets it receives from it) "
        "or `both`.",
    )
    parallel: int = Field(default=16, ge=1, le=256, description="How many hosts are acted on at once.")

    @model_validator(mode="after")
    def _some_far_side(self) -> Self:
        if not (self.peers or self.addresses or self.ports):
            raise ValueError("name the far side: `peers`, `addresses` or `ports` (a fault on all traffic is refused)")
        try:
            networks(self.addresses)
        except ValueError as exc:
            raise ValueError(f"`addresses`: {exc}") from None
        return self


HostNetSpecT = TypeVar("HostNetSpecT", bound=HostNetSpec, covariant=True)


def host_key(instance: ProcessInstance) -> str:
    return instance.host.model_dump_json() if instance.host is not None else _LOCAL


def _ips(address: str) -> list[str]:
    """The IP addresses `address` (an IP or a host name, resolved here on the runner) stands for."""
    try:
        return [str(ipaddress.ip_address(address))]
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(address, None, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise TargetNotFoundError(f"cannot resolve peer host {address!r}: {exc}") from None
    return sorted({str(info[4][0]) for info in found})


def peer_addresses(spec: HostNetSpec, faulted: SshHost | None, ctx: RunContext) -> list[str]:
    """The far side's addresses as the faulted host sees them: its peers' hosts, then `addresses`."""
    found: list[str] = []
    own = set(_ips(faulted.address)) if faulted is not None else set()  # resolved once, not once a peer
    for name in spec.peers:
        for instance in process_target(name, ctx).instances:
            if instance.host is not None:
                ips = _ips(instance.host.address)
            elif faulted is None:
                ips = ["127.0.0.1"]
            else:
                raise TargetNotFoundError(
                    f"peer {instance.name} of {name!r} runs on the runner's host, whose address {faulted.label} "
                    "would see is unknown: give it in `addresses`"
                )
            found += [ip for ip in ips if ip not in own]
    found += spec.addresses
    return list(dict.fromkeys(found))


def table_name(run_id: str, kind: str) -> str:
    """chaos_<run>_<action>_<token>: whose it is can be read off `nft list tables` on the host."""
    run = re.sub(r"[^A-Za-z0-9]+", "_", run_id).strip("_")[:120]
    return f"chaos_{run}_{kind.rpartition('.')[2]}_{secrets.token_hex(3)}"


class HostNetFault(Injector[HostNetSpecT]):
    """One nftables table per host of the chosen instances; rollback deletes it, verification proves it absent."""

    target_kinds: ClassVar[tuple[str, ...]] = ("process",)
    max_parallel: ClassVar[int] = 16

    def __init__(self, spec: HostNetSpecT) -> None:
        super().__init__(spec)
        self.hosts = ProcessHosts()

    @classmethod
    def referenced_targets(cls, spec: FaultSpec) -> dict[str, str]:
        if not isinstance(spec, HostNetSpec):
            return {}
        return {f"peers.{i}": name for i, name in enumerate(spec.peers)}

    @abstractmethod
    def rules(self) -> list[Rule]:
        """What happens to a matching packet, e.g. `counter drop`."""

    def session(self) -> AbstractContextManager[object]:
        return self.hosts  # closes the step's SSH connections at its end

    def parallelism(self) -> int:
        return self.spec.parallel

    def shell(self, ssh: SshHost | None) -> Shell:
        return LocalShell() if ssh is None else self.hosts.remote(ssh).session

    def script(self, name: str, faulted: SshHost | None, ctx: RunContext) -> tuple[str, list[str]]:
        """The table's ruleset for one host, and the far-side addresses it names."""
        addresses = peer_addresses(self.spec, faulted, ctx)
        if self.spec.peers and not addresses and not self.spec.ports:
            raise TargetNotFoundError(
                f"the peers {self.spec.peers} leave no far side for {faulted.label if faulted else _LOCAL}"
            )
        if faulted is None and not self.spec.ports and any(net.is_loopback for net in networks(addresses)):
            raise InjectionError(
                "on this host the far side includes loopback, which the runner itself talks over: "
                "limit the fault with `ports`"
            )
        keep = faulted.port if faulted is not None else None
        wanted: list[Literal["egress", "ingress"]] = (
            ["egress", "ingress"] if self.spec.direction == "both" else [self.spec.direction]
        )
        chains: dict[str, list[str]] = {
            chain: chain_rules(chain, addresses, self.spec.ports, self.rules(), keep) for chain in wanted
        }
        return table_script(name, chains), addresses

    def find_targets(self, target: str, select_: Selection | None, ctx: RunContext) -> list[TargetRef]:
        instances = process_target(target, ctx).instances
        if select_ is not None and select_.role is not None:
            instances = [self._found(instance) for instance in instances]
        chosen = select(
            instances, select_, ctx.rng, name_of=lambda i: i.name, role_of=lambda i: role_of(i, hosts=self.hosts)
        )
        by_host: dict[str, list[ProcessInstance]] = {}
        for instance in chosen:
            by_host.setdefault(host_key(instance), []).append(instance)
        name = table_name(ctx.run_id, self.kind)
        groups = list(by_host.values())
        # Every host's check at once, `parallel` at a time: nothing is applied anywhere unless every host accepts it.
        with ThreadPoolExecutor(max_workers=max(1, min(self.spec.parallel, len(groups)))) as pool:
            return list(pool.map(lambda group: self._checked_ref(name, group, ctx), groups))

    def _checked_ref(self, name: str, group: list[ProcessInstance], ctx: RunContext) -> TargetRef:
        """One host's target: its table's ruleset, checked with `nft -c` on that host."""
        faulted = group[0].host
        script, addresses = self.script(name, faulted, ctx)
        Nft(self.shell(faulted)).check(script)
        detail: dict[str, JsonValue] = {
            "host": faulted.label if faulted is not None else _LOCAL,
            "ssh": faulted.model_dump(mode="json") if faulted is not None else None,
            "instances": list[JsonValue](i.name for i in group),
            "table": name,
            "far_side": list[JsonValue](addresses),
            "ports": list[JsonValue](self.spec.ports),
            "script": script,
        }
        return TargetRef(id=str(detail["host"]), detail=detail)

    def _found(self, instance: ProcessInstance) -> ProcessInstance:
        """The instance with the PID its `match` rule finds, so its role can be asked; as it is when none."""
        try:
            return found_by_rule(self.hosts.of(instance), instance)
        except MatchError:
            return instance

    def _nft(self, ref: TargetRef) -> Nft:
        ssh = ref.detail.get("ssh")
        return Nft(self.shell(SshHost.model_validate(ssh) if ssh is not None else None))

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        nft, table = self._nft(ref), str(ref.detail["table"])
        started = time.monotonic()
        nft.apply(str(ref.detail["script"]))
        applied = time.monotonic() - started
        if not nft.exists(table):
            raise InjectionError(f"table inet {table} is not on {ref.id} after nft applied it")
        return Outcome(detail={"table": table, "host": ref.id}, measured={"applied_after_s": round(applied, 4)})

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        nft, table = self._nft(ref), str(ref.detail["table"])
        matched: dict[str, JsonValue] = {}
        if nft.exists(table):
            matched = {f"{chain}_packets": count for chain, count in nft.counters(table).items()}
        started = time.monotonic()
        removed = nft.delete(table)
        took = time.monotonic() - started
        return Outcome(
            detail={"table": table, "host": ref.id, "removed": removed, **matched},
            measured={"removed_after_s": round(took, 4)},
        )

    def verify_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        table = str(ref.detail["table"])
        if self._nft(ref).exists(table):
            raise FaultStillPresentError(f"nftables table inet {table} is still on {ref.id}")
        return Outcome(detail={"table": table, "host": ref.id, "absent": True})
