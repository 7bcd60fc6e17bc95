"""The fault matrix's host network kinds: nftables tables on this host, cutting the way to one matching engine's
HTTP port (its leadership, held over ZooKeeper on other ports, is untouched); checked with `nft` and HTTP."""

from __future__ import annotations

import subprocess
from typing import Any

from injectors.base import FaultPlan
from tests.faultmatrix.checks import Check, Live, http_get
from tests.faultmatrix.kinds import Scenario

ENGINE = "matcher-1"


def _tables() -> list[str]:
    listed = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, timeout=10, check=True)
    return [line.split()[2] for line in listed.stdout.splitlines() if line.startswith("table inet ")]


def _health_url(live: Live) -> str:
    return f"http://127.0.0.1:{live.instance('matcher', ENGINE).ports['http']}/health"


def table_present(live: Live, plan: FaultPlan) -> None:
    for ref in plan.targets:
        assert ref.detail["table"] in _tables(), f"table {ref.detail['table']} is not on {ref.id}"


def engine_unreachable(live: Live, plan: FaultPlan) -> None:
    table_present(live, plan)
    try:
        took = http_get(_health_url(live), timeout_s=0.5)
    except AssertionError:
        return
    raise AssertionError(f"{ENGINE} still answers through the fault ({took:.3f}s)")


def table_gone(live: Live, plan: FaultPlan) -> None:
    """No table of the plan is left, and the engine answers on its port again."""
    left = [str(ref.detail["table"]) for ref in plan.targets if ref.detail["table"] in _tables()]
    assert not left, f"tables still there: {left}"
    http_get(_health_url(live))


def engine_port(live: Live) -> dict[str, Any]:
    return {"ports": [live.instance("matcher", ENGINE).ports["http"]]}


def host_fault(present: Check, **params: Any) -> Scenario:
    return Scenario(
        "matcher",
        table_gone,
        present,
        params={"addresses": ["127.0.0.1"], **params},
        params_from=engine_port,
        select={"name": "matcher-2"},
    )


SCENARIOS: dict[str, Scenario] = {
    "host.partition": host_fault(engine_unreachable),
    "host.reject": host_fault(engine_unreachable, direction="egress"),
    "host.packet_loss": host_fault(engine_unreachable, percent=100),
    "host.bandwidth": host_fault(table_present, rate_kbytes_per_s=64),
}
