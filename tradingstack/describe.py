"""`python -m tradingstack describe --profile P`: the stack description `up` would write, without starting anything.

The names and kinds of the targets and the endpoints are those of a started stack of that profile (the
engine validates experiments against them before any stack runs); ports, paths, PIDs and container
ids are placeholders, chosen or left out as a start would choose them.

`metrics_urls` names the Prometheus endpoints of a description (started or described): every gateway
and matching engine serves `GET /metrics` on the port of its `/health`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from stackspec.targets import ContainerTarget, HttpHealth, ProcessTarget, SshHost, StackDescription
from tradingstack import containers, hosts_launch, topology
from tradingstack.metrics import METRICS_PATH
from tradingstack.processes import NAMED_ONLY

DEFAULT_MATCHERS = 2
SESSION_TIMEOUT_S = 2.0
# The targets whose instances serve Prometheus metrics (tradingstack.metrics), in scrape-config order.
METRICS_TARGETS = ("gateway", "matcher")


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


def metrics_urls(description: StackDescription) -> dict[str, dict[str, str]]:
    """Target → instance name → URL of its `GET /metrics`, for the gateway and the matching engines.

    The URL is the instance's HTTP health URL with the path `/metrics`: each service serves both on one
    port. An instance without an HTTP health check has no known address and is left out.
    """
    urls: dict[str, dict[str, str]] = {}
    for name in METRICS_TARGETS:
        target = description.targets.get(name)
        if isinstance(target, ProcessTarget):
            members = [(i.name, i.health) for i in target.instances]
        elif isinstance(target, ContainerTarget):
            members = [(c.name, c.health) for c in target.containers]
        else:
            continue
        for instance, health in members:
            if isinstance(health, HttpHealth):
                scheme, netloc, _, _, _ = urlsplit(health.http)
                urls.setdefault(name, {})[instance] = urlunsplit((scheme, netloc, METRICS_PATH, "", ""))
    return urls
