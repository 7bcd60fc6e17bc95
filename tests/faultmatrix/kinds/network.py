"""The fault matrix's network kinds: toxics and `network.down` on the gateway's link to a matching engine."""

from __future__ import annotations

from typing import Any

from injectors.base import FaultPlan
from tests.faultmatrix.checks import FAST_S, Check, Live, both, http_get
from tests.faultmatrix.kinds import Scenario

LINK = "gateway->matcher"  # the gateway's order entry: HTTP through the proxy shows the fault end to end
ONE_LINK = {"name": "gateway-1->matcher-1"}


def through(live: Live, plan: FaultPlan, timeout_s: float) -> list[float]:
    """GET /health on the service behind each planned link, through the link's proxy: seconds each took."""
    return [http_get(f"http://{live.link(plan.target, ref.id).listen}/health", timeout_s) for ref in plan.targets]


def toxics_in_place(live: Live, plan: FaultPlan) -> None:
    for ref in plan.targets:
        names = {t["name"] for t in live.proxy(ref.detail["proxy"])["toxics"]}
        ours = set(dict(ref.detail["toxics"]).values())
        assert ours <= names, f"toxics {sorted(ours - names)} are not on {ref.detail['proxy']}"


def link_broken(live: Live, plan: FaultPlan) -> None:
    """No answer comes through the link (held, cut, reset or refused)."""
    for ref in plan.targets:
        try:
            took = http_get(f"http://{live.link(plan.target, ref.id).listen}/health", timeout_s=0.5)
        except AssertionError:
            continue
        raise AssertionError(f"{ref.id} still answers through the fault ({took:.3f}s)")


def link_slower_than(seconds: float) -> Check:
    """Answers through each planned link take at least `seconds` (a healthy one takes a few ms)."""

    def check(live: Live, plan: FaultPlan) -> None:
        took = through(live, plan, timeout_s=5.0)
        assert min(took) >= seconds, f"answers through the link are not slowed down to {seconds}s: {took}"

    return check


def links_clean(live: Live, plan: FaultPlan) -> None:
    """Each planned link's proxy is enabled, carries no toxic at all, and answers fast through it."""
    for ref in plan.targets:
        proxy = live.proxy(ref.detail["proxy"])
        assert proxy["enabled"] is True, f"proxy {proxy['name']} is disabled"
        assert proxy["toxics"] == [], f"proxy {proxy['name']} still has toxics {proxy['toxics']}"
    took = through(live, plan, timeout_s=2.0)
    assert max(took) < FAST_S, f"answers through the links are slow: {took}"


def links_disabled(live: Live, plan: FaultPlan) -> None:
    for ref in plan.targets:
        proxy = live.proxy(ref.detail["proxy"])
        assert proxy["enabled"] is False, f"proxy {proxy['name']} is still enabled"


def toxic(effect: Check | None = None, **params: Any) -> Scenario:
    """A toxic on the gateway's link to matcher-1; while it is there, `effect` shows through the link."""
    present = both(toxics_in_place, effect) if effect is not None else toxics_in_place
    return Scenario(LINK, links_clean, present, params, ONE_LINK)


SCENARIOS: dict[str, Scenario] = {
    "network.latency": toxic(link_slower_than(0.3), latency_ms=400),
    "network.bandwidth": toxic(link_slower_than(0.08), rate_kb_per_s=1),
    "network.timeout": toxic(link_broken, timeout_ms=0),
    "network.reset_peer": toxic(link_broken, timeout_ms=0),
    "network.slicer": toxic(link_slower_than(0.2), average_size_bytes=8, delay_us=20_000),
    "network.limit_data": toxic(link_broken, limit_bytes=1),
    "network.slow_close": toxic(delay_ms=500),
    "network.down": Scenario(LINK, links_clean, both(links_disabled, link_broken), select=ONE_LINK),
}
