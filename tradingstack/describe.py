"""`python -m tradingstack describe --profile P`: the stack description `up` would write, without starting anything.

The names and kinds of the targets and the endpoints are those of a started stack of that profile (the
engine validates experiments against them before any stack runs); ports, paths, PIDs and container
ids are placeholders, chosen or left out as a start would choose them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from stackspec.targets import ProcessTarget, SshHost, StackDescription
from tradingstack import containers, hosts_launch, topology
from tradingstack.processes import NAMED_ONLY

DEFAULT_MATCHERS = 2
SESSION_TIMEOUT_S = 2.0


def describe(profile: str, matchers: int = DEFAULT_MATCHERS) -> StackDescription:
    """The whole description of a stack of `profile`, every target as `start_stack` adds it, in start order."""
    if profile == "hosts":
        return _hosts()
    # The layout writes config files: into a directory of its own, never a stack's (one may be running there).
    with tempfile.TemporaryDirectory(prefix="tradingstack-describe-") as scratch:
        plan = topology.lay_out(Path(scratch), profile, matchers, {}, SESSION_TIMEOUT_S, programs=NAMED_ONLY)
    description = plan.description
    for target, summary, instances in plan.middleware:
        description.targets[target] = ProcessTarget(description=summary, instances=instances)
    description.targets["toxiproxy"] = ProcessTarget(description=topology.TOXIPROXY_SUMMARY, instances=[plan.toxiproxy])
    if profile == "containers":
        description.targets["matcher"] = containers.described(
            plan.matchers, "matcher", topology.CONTAINER_MATCHER_SUMMARY
        )
    else:
        description.targets["matcher"] = ProcessTarget(description=topology.MATCHER_SUMMARY, instances=plan.matchers)
    description.targets["gateway"] = ProcessTarget(description=topology.GATEWAY_SUMMARY, instances=plan.gateways)
    return description


def _hosts() -> StackDescription:
    """The hosts profile: its hosts' addresses (placeholders here) come from the /24 a start picks."""
    address = {name: f"10.200.0.{10 + n}" for n, name in enumerate(hosts_launch.HOST_NAMES)}
    ssh = {
        name: SshHost(address=a, user="root", key_file="hosts/key", known_hosts="hosts/known_hosts")
        for name, a in address.items()
    }
    with tempfile.TemporaryDirectory(prefix="tradingstack-describe-") as scratch:
        plan = hosts_launch.lay_out(Path(scratch), address, ssh, SESSION_TIMEOUT_S, programs=NAMED_ONLY)
    for target, summary, instances in plan.middleware + plan.services:
        plan.description.targets[target] = ProcessTarget(description=summary, instances=instances)
    return plan.description
