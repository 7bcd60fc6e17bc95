"""ZooKeeper through its four-letter words: a server's mode (`srvr`), and the view of an ensemble."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clients.errors import NotSettledError
from clients.poll import PollTimeout, wait_stable
from clients.tcp import client_address, exchange
from stackspec.targets import ProcessInstance, ZooKeeperHealth

SRVR_TIMEOUT_S = 1.0
POLL_S = 0.1
# The modes in which a server answers clients (a "looking" one, between elections, does not).
ZK_SERVING_MODES = ("standalone", "leader", "follower", "observer")


def parse_srvr_mode(text: str) -> str | None:
    """The Mode line of a `srvr` answer ("Mode: follower" → "follower"); None when there is none (e.g. "This
    ZooKeeper instance is not currently serving requests")."""
    for line in text.splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip() or None
    return None


def srvr_mode(address: str, timeout_s: float = SRVR_TIMEOUT_S) -> str | None:
    """The Mode a server reports to `srvr` (leader, follower, standalone, observer); None when it does not serve."""
    try:
        text = exchange(address, b"srvr", timeout_s).decode(errors="replace")
    except (OSError, ValueError):
        return None
    return parse_srvr_mode(text)


def address_of(instance: ProcessInstance) -> str:
    """host:port of a server's client port: its ZooKeeper health check, else its `client` port on loopback."""
    return client_address(instance, ZooKeeperHealth)


@dataclass(frozen=True)
class Ensemble:
    """The servers of a ZooKeeper target: instance name → client address."""

    nodes: dict[str, str]
    instances: dict[str, ProcessInstance] = field(default_factory=dict)

    def modes(self, names: list[str] | None = None) -> dict[str, str | None]:
        """What each server (all, or `names`) answers to `srvr`: its Mode, or None when not serving."""
        return {name: srvr_mode(self.nodes[name]) for name in names or self.nodes}

    def leader(self, names: list[str] | None = None) -> str | None:
        """The one server (among `names`) reporting Mode leader, else None."""
        leaders = [name for name, mode in self.modes(names).items() if mode == "leader"]
        return leaders[0] if len(leaders) == 1 else None

    def look(self) -> tuple[str | None, str | None]:
        """(None, the leader) when every server serves as leader or follower with exactly one leader,
        else (what is wrong, None)."""
        modes = self.modes()
        shown = ", ".join(f"{name}={mode or 'not serving'}" for name, mode in modes.items())
        if any(mode not in ("leader", "follower") for mode in modes.values()):
            return f"not every server serves as leader or follower ({shown})", None
        leaders = [name for name, mode in modes.items() if mode == "leader"]
        if len(leaders) != 1:
            return f"expected exactly one leader ({shown})", None
        return None, leaders[0]

    def problem(self) -> str | None:
        """None when every server serves as leader or follower with exactly one leader, else what is wrong."""
        return self.look()[0]

    def wait_healthy(self, timeout_s: float, stable: bool = True) -> dict[str, Any]:
        """Poll until healthy — with `stable`, the same leader for STABLE_WINDOW_S — and return the leader and
        the seconds waited; else NotSettledError with the last reason."""
        try:
            if stable:
                leader, waited = wait_stable(self.look, timeout_s)
            else:
                leader, waited = wait_stable(self.look, timeout_s, window_s=0.0, poll_s=POLL_S, looks=1)
        except PollTimeout as exc:
            raise NotSettledError(f"the ZooKeeper ensemble did not recover: {exc}") from exc
        return {"leader": leader, "healthy_after_s": waited}
