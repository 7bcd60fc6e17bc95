"""Redis and Sentinel: one-shot commands, and the view of a Sentinel-watched set (primary, health, settling).

What "healthy" means for a set: exactly one node with role master, every other node an up-to-date
replica of it, and every Sentinel naming that primary, listing every replica as up, knowing all its
peers and agreeing on the configuration epoch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from clients.errors import ClientError, NotSettledError
from clients.poll import PollTimeout, poll_until, wait_stable
from clients.tcp import client_address, split_hostport
from stackspec.targets import ProcessInstance, RedisHealth


class NoPrimaryError(ClientError):
    """No majority of the Sentinels names one primary among the set's nodes."""


CALL_TIMEOUT_S = 1.0
POLL_S = 0.05
FAST_PING_S = 0.25
_DOWN_FLAGS = frozenset({"s_down", "o_down", "disconnected"})


def redis_call(address: str, *args: str | int | float, timeout_s: float = CALL_TIMEOUT_S) -> Any:
    """One command on a fresh connection, with connect and read timeouts and no retries."""
    host, port = split_hostport(address)
    client = Redis(
        host=host,
        port=port,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )
    try:
        return client.execute_command(*args)  # type: ignore[no-untyped-call]
    finally:
        client.close()


def pairs(reply: Any) -> dict[str, str]:
    """A SENTINEL MASTER (or SENTINEL REPLICAS entry) reply as a dict: a map in RESP3, flat pairs in RESP2."""
    if isinstance(reply, dict):
        return {str(key): str(value) for key, value in reply.items()}
    items = [str(item) for item in reply or []]
    return dict(zip(items[::2], items[1::2], strict=False))


def address_of(instance: ProcessInstance) -> str:
    """host:port of a Redis or Sentinel instance: its Redis health check, else its `client` port on loopback."""
    return client_address(instance, RedisHealth)


@dataclass(frozen=True)
class RedisSet:
    """The Redis nodes of a target (instance name → host:port) and the Sentinels that watch them."""

    nodes: dict[str, str]
    sentinels: tuple[str, ...]
    master: str
    instances: dict[str, ProcessInstance] = field(default_factory=dict)

    def name_of(self, address: str | None) -> str | None:
        """The node at `address`: the same host:port, else the only node on that port (Sentinel may spell
        the host differently from the stack description)."""
        if address is None:
            return None
        exact = [name for name, addr in self.nodes.items() if addr == address]
        port = split_hostport(address)[1]
        by_port = [name for name, addr in self.nodes.items() if split_hostport(addr)[1] == port]
        return exact[0] if exact else by_port[0] if len(by_port) == 1 else None

    def sentinel_view(self) -> tuple[str | None, dict[str, str | None]]:
        """The primary (host:port) a majority of the Sentinels name, or None, and each Sentinel's answer."""
        answers: dict[str, str | None] = {}
        for sentinel in self.sentinels:
            try:
                reply = redis_call(sentinel, "SENTINEL", "get-master-addr-by-name", self.master)
            except (RedisError, OSError):
                reply = None
            answers[sentinel] = f"{reply[0]}:{reply[1]}" if reply else None
        counts = Counter(answer for answer in answers.values() if answer is not None).most_common(1)
        if counts and counts[0][1] > len(self.sentinels) // 2:
            return counts[0][0], answers
        return None, answers

    def primary(self) -> str:
        """The instance name of the primary the Sentinels agree on; raises NoPrimaryError when they do not."""
        address, answers = self.sentinel_view()
        name = self.name_of(address)
        if name is None:
            seen = ", ".join(f"{s}: {a or 'no answer'}" for s, a in answers.items())
            raise NoPrimaryError(
                f"no majority of Sentinels names a primary of {self.master!r} among {sorted(self.nodes)} ({seen})"
            )
        return name

    def promoted_from(self, old: str) -> Callable[[], str | None]:
        """A probe for ChangeWatch: the new primary's name once a majority of Sentinels name another node."""

        def probe() -> str | None:
            name = self.name_of(self.sentinel_view()[0])
            return name if name is not None and name != old else None

        return probe

    def problem(self) -> str | None:
        """None when the set is healthy (see the module docstring), else the first thing found wrong."""
        return self.look()[0]

    def look(self) -> tuple[str | None, tuple[str, int] | None]:
        """One look for `wait_stable`: (None, (primary, Sentinel config epoch)) when healthy, else (why not, None)."""
        infos: dict[str, dict[str, Any]] = {}
        for name, address in self.nodes.items():
            try:
                infos[name] = dict(redis_call(address, "INFO", "replication"))
            except (RedisError, OSError) as exc:
                return f"{name} ({address}) does not answer: {exc}", None
        masters = sorted(name for name, info in infos.items() if info.get("role") == "master")
        if len(masters) != 1:
            return f"expected exactly one node with role master, found {masters or 'none'}", None
        primary = masters[0]
        reported, answers = self.sentinel_view()
        if self.name_of(reported) != primary:
            return f"{primary} is the master but the Sentinels name {reported or 'no majority'} ({answers})", None
        port = split_hostport(self.nodes[primary])[1]
        replicas = [name for name in self.nodes if name != primary]
        for name in replicas:
            info = infos[name]
            if (info.get("role"), int(info.get("master_port", 0)), info.get("master_link_status")) != (
                "slave",
                port,
                "up",
            ):
                return (
                    f"{name} is not an up-to-date replica of {primary} (role {info.get('role')}, "
                    f"master port {info.get('master_port')}, link {info.get('master_link_status')})"
                ), None
        epochs = set()
        for sentinel in self.sentinels:
            reason, epoch = self._sentinel_look(sentinel, primary, replicas)
            if reason is not None:
                return reason, None
            epochs.add(epoch)
        if len(epochs) != 1:  # a Sentinel that has not caught up with the last failover yet
            return f"the Sentinels' configuration epochs differ ({sorted(epochs)})", None
        return None, (primary, epochs.pop())

    def _sentinel_look(self, sentinel: str, primary: str, replicas: list[str]) -> tuple[str | None, int]:
        try:
            master = pairs(redis_call(sentinel, "SENTINEL", "MASTER", self.master))
            listed = [pairs(r) for r in redis_call(sentinel, "SENTINEL", "REPLICAS", self.master)]
        except (RedisError, OSError) as exc:
            return f"sentinel {sentinel} does not answer about {self.master!r}: {exc}", 0
        epoch = int(master.get("config-epoch", 0))
        if self.name_of(f"{master.get('ip')}:{master.get('port')}") != primary or master.get("flags") != "master":
            return f"sentinel {sentinel} sees {master.get('ip')}:{master.get('port')} ({master.get('flags')})", epoch
        others = int(master.get("num-other-sentinels", 0))
        if others < len(self.sentinels) - 1:
            return f"sentinel {sentinel} knows {others} other Sentinels, expected {len(self.sentinels) - 1}", epoch
        seen = {self.name_of(f"{r.get('ip')}:{r.get('port')}"): r for r in listed}
        for name in replicas:
            entry = seen.get(name)
            if entry is None:
                return f"sentinel {sentinel} does not list {name} among the replicas", epoch
            # Not its cached master-link-status: Sentinel refreshes a replica's INFO only every 10 s.
            if set(entry.get("flags", "").split(",")) & _DOWN_FLAGS:
                return f"sentinel {sentinel} sees replica {name} as {entry.get('flags')}", epoch
        return None, epoch

    def failover_problem(self, node: str) -> str | None:
        """Before `node` comes back: None while `node` is still the primary, or once the Sentinels have settled
        on another primary; else what is still going on.

        Settled means: every Sentinel names the new primary, flags it plain `master`, has its PING answered,
        and no longer holds its peers' "master is down" answers. Sentinel (7.0) keeps those answers for 5 s
        after the last one and counts them for the *new* primary too, whose first PING can stay unanswered
        for the whole down-after (1,000 ms here) while the Sentinel reconnects: in that window one
        Sentinel's doubt is a quorum at once and it fails over again — to `node`, if it has rejoined as a
        replica by then. Seen here: +sdown of the new primary 1.005 s after +switch-master, -sdown 93 ms
        later, +odown "#quorum 3/2" although no other Sentinel had it down, and the old primary promoted back.
        """
        address, answers = self.sentinel_view()
        if address is None:
            return f"no majority of Sentinels names a primary ({answers})"
        primary = self.name_of(address)
        if primary == node:
            # Still the primary: nothing was promoted, and bringing it back is what ends the outage (a
            # failover still under way against it can only demote it later, never promote it back).
            return None
        for sentinel in self.sentinels:
            try:
                master = pairs(redis_call(sentinel, "SENTINEL", "MASTER", self.master))
                peers = [pairs(p) for p in redis_call(sentinel, "SENTINEL", "SENTINELS", self.master)]
            except (RedisError, OSError) as exc:
                return f"sentinel {sentinel} does not answer about {self.master!r}: {exc}"
            flags = set(master.get("flags", "").split(","))
            if flags & {"o_down", "failover_in_progress"}:
                return f"sentinel {sentinel} is failing over ({master.get('flags')})"
            if self.name_of(f"{master.get('ip')}:{master.get('port')}") != primary:
                return f"sentinel {sentinel} still names {master.get('ip')}:{master.get('port')}"
            if flags != {"master"} or int(master.get("last-ping-sent", 0)) > FAST_PING_S * 1000:
                return f"sentinel {sentinel} has not seen {primary} answer yet ({master.get('flags')})"
            doubting = [p.get("name", "?") for p in peers if "master_down" in p.get("flags", "").split(",")]
            if doubting:
                return f"sentinel {sentinel} still counts {len(doubting)} peer(s) saying the primary is down"
        return None

    def wait_failover_settled(self, node: str, timeout_s: float) -> dict[str, Any]:
        """Poll `failover_problem` for at most `timeout_s`; never raises (a rollback goes on either way)."""
        try:
            _, waited = poll_until(
                lambda: (self.failover_problem(node), None), timeout_s, POLL_S * 2, "settled after the failover"
            )
        except PollTimeout as exc:
            return {"failover_settled": False, "failover_unsettled": exc.last}
        return {"failover_settled_after_s": round(waited, 3)}

    def wait_settled(self, timeout_s: float) -> dict[str, Any]:
        """Poll until healthy and unchanged for STABLE_WINDOW_S; the primary and seconds waited, else
        NotSettledError with the last reason."""
        try:
            settled, waited = wait_stable(self.look, timeout_s, poll_s=POLL_S * 4)
        except PollTimeout as exc:
            raise NotSettledError(f"the Redis set did not settle: {exc}") from exc
        assert settled is not None  # a look without a problem always names the primary
        primary, epoch = settled
        return {"primary": primary, "config_epoch": epoch, "settled_after_s": waited}
