"""Network faults on named links of the stack, through the Toxiproxy API (embedded server or real Toxiproxy).

Each fault adds toxics under names of its own (recorded in the plan before injection), so rollback
removes exactly those and nothing else, and verification lists the proxy's toxics to prove they are
gone. `network.down` disables the proxy and restores the enabled state it found.
"""

from __future__ import annotations

import secrets
import socket
from typing import Any, ClassVar, Literal

from pydantic import Field

from clients.health import split_hostport
from clients.procs import role_of
from clients.toxiproxy import Stream, ToxiproxyClient
from injectors.base import FaultPlan, FaultSpec, Injector, RunContext, TargetRef
from injectors.errors import FaultStillPresentError, TargetNotFoundError
from injectors.registry import register
from injectors.selection import Selection, select
from stackspec.targets import LinkInstance, LinkTarget, ProcessTarget, ToxiproxyEndpoint

StreamChoice = Literal["downstream", "upstream", "both"]


def _link_target(target: str, ctx: RunContext) -> LinkTarget:
    group = ctx.stack.target(target)
    if not isinstance(group, LinkTarget):
        raise TargetNotFoundError(f"target {target!r} is not a network link (network faults act on links)")
    return group


def _endpoint(group: LinkTarget, ctx: RunContext) -> ToxiproxyEndpoint:
    endpoint = group.toxiproxy or ctx.stack.description.toxiproxy
    if endpoint is None:
        raise TargetNotFoundError("the stack description names no Toxiproxy endpoint (`toxiproxy: {url: ...}`)")
    return endpoint


def client_for(ref: TargetRef) -> ToxiproxyClient:
    """The Toxiproxy client for a planned link: the endpoint is part of the plan, so recovery needs no stack."""
    return ToxiproxyClient(str(ref.detail["toxiproxy_url"]), float(ref.detail.get("timeout_s", 2.0)))


def _end_roles(group: LinkTarget, ctx: RunContext) -> dict[str, str | None]:
    """Live role of each link's client (or server) process, for `select: {role: ...}` on links."""
    name = group.client_target if group.role_from == "client" else group.server_target
    if name is None:
        return {}
    ends = ctx.stack.target(name)
    if not isinstance(ends, ProcessTarget):
        return {}
    return {instance.name: role_of(instance) for instance in ends.instances}


def _end_of(link: LinkInstance, group: LinkTarget) -> str:
    return (link.client if group.role_from == "client" else link.server) or ""


def resolve_links(target: str, selection: Selection | None, ctx: RunContext) -> list[tuple[LinkInstance, TargetRef]]:
    group = _link_target(target, ctx)
    endpoint = _endpoint(group, ctx)
    roles = _end_roles(group, ctx) if selection is not None and selection.role is not None else {}
    chosen = select(
        group.instances,
        selection,
        ctx.rng,
        name_of=lambda link: link.name,
        role_of=lambda link: roles.get(_end_of(link, group)),
    )
    client = ToxiproxyClient(endpoint.url, endpoint.timeout_s)
    refs = []
    for link in chosen:
        proxy = client.proxy(link.proxy)  # the proxy must exist before anything is planned on it
        refs.append(
            (
                link,
                TargetRef(
                    id=link.name,
                    detail={
                        "proxy": link.proxy,
                        "listen": proxy.listen,
                        "toxiproxy_url": endpoint.url,
                        "timeout_s": endpoint.timeout_s,
                        "was_enabled": proxy.enabled,
                    },
                ),
            )
        )
    return refs


class _LinkSpec(FaultSpec):
    stream: StreamChoice = Field(
        default="downstream",
        description="Direction: downstream (server → client), upstream (client → server) or both.",
    )
    toxicity: float = Field(default=1.0, ge=0, le=1, description="Probability the toxic applies to a connection.")


class _ToxicInjector(Injector[Any]):
    """Shared behaviour of the toxic-based faults: add named toxics, remove exactly them, prove it."""

    toxic_type: ClassVar[str]
    target_kinds: ClassVar[tuple[str, ...]] = ("link",)

    def attributes(self) -> dict[str, Any]:
        raise NotImplementedError

    def streams(self) -> list[Stream]:
        choice = self.spec.stream
        return ["downstream", "upstream"] if choice == "both" else [choice]

    def resolve(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
        token = secrets.token_hex(3)
        refs = []
        for _, ref in resolve_links(target, select, ctx):
            # Names of our own, recorded in the plan: rollback removes exactly these toxics.
            ref.detail["toxics"] = {stream: f"chaos_{token}_{self.toxic_type}_{stream}" for stream in self.streams()}
            refs.append(ref)
        return refs

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        client = client_for(ref)
        added = []
        for stream, name in dict(ref.detail["toxics"]).items():
            toxic = client.add_toxic(
                ref.detail["proxy"], name, self.toxic_type, self.attributes(), stream, self.spec.toxicity
            )
            added.append(toxic.model_dump())
        return {"proxy": ref.detail["proxy"], "toxics": added}

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        client = client_for(ref)
        removed = [
            name for name in dict(ref.detail["toxics"]).values() if client.remove_toxic(ref.detail["proxy"], name)
        ]
        return {"proxy": ref.detail["proxy"], "removed": removed}

    def verify_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        ours = set(dict(ref.detail["toxics"]).values())
        present = sorted(ours & {t.name for t in client_for(ref).toxics(ref.detail["proxy"])})
        if present:
            raise FaultStillPresentError(f"toxic(s) {', '.join(present)} still on proxy {ref.detail['proxy']}")
        return {"proxy": ref.detail["proxy"], "absent": sorted(ours)}


class NetworkLatencySpec(_LinkSpec):
    """Delay data on the link; `jitter_ms` varies each delay by up to that much either way."""

    latency_ms: int = Field(gt=0, description="Added delay per chunk of data.")
    jitter_ms: int = Field(default=0, ge=0, description="Random variation of the delay, ±.")


@register
class NetworkLatencyInjector(_ToxicInjector):
    kind: ClassVar[str] = "network.latency"
    spec_type: ClassVar[type[FaultSpec]] = NetworkLatencySpec
    summary: ClassVar[str] = "Add latency (and jitter) to a link."
    toxic_type: ClassVar[str] = "latency"

    def attributes(self) -> dict[str, Any]:
        return {"latency": self.spec.latency_ms, "jitter": self.spec.jitter_ms}


class NetworkBandwidthSpec(_LinkSpec):
    rate_kb_per_s: int = Field(
        gt=0, description="Bandwidth limit in KB/s (at least 1: Toxiproxy treats 0 as no limit)."
    )


@register
class NetworkBandwidthInjector(_ToxicInjector):
    kind: ClassVar[str] = "network.bandwidth"
    spec_type: ClassVar[type[FaultSpec]] = NetworkBandwidthSpec
    summary: ClassVar[str] = "Limit a link's bandwidth."
    toxic_type: ClassVar[str] = "bandwidth"

    def attributes(self) -> dict[str, Any]:
        return {"rate": self.spec.rate_kb_per_s}


class NetworkTimeoutSpec(_LinkSpec):
    timeout_ms: int = Field(ge=0, description="Stop all data, close the connection after this long; 0 = hold it open.")


@register
class NetworkTimeoutInjector(_ToxicInjector):
    kind: ClassVar[str] = "network.timeout"
    spec_type: ClassVar[type[FaultSpec]] = NetworkTimeoutSpec
    summary: ClassVar[str] = "Black-hole a link's data, then close its connections after a timeout (0: never)."
    toxic_type: ClassVar[str] = "timeout"

    def attributes(self) -> dict[str, Any]:
        return {"timeout": self.spec.timeout_ms}


class NetworkResetPeerSpec(_LinkSpec):
    timeout_ms: int = Field(default=0, ge=0, description="Reset connections after this long (0: at once).")


@register
class NetworkResetPeerInjector(_ToxicInjector):
    kind: ClassVar[str] = "network.reset_peer"
    spec_type: ClassVar[type[FaultSpec]] = NetworkResetPeerSpec
    summary: ClassVar[str] = "Reset a link's connections (TCP RST)."
    toxic_type: ClassVar[str] = "reset_peer"

    def attributes(self) -> dict[str, Any]:
        return {"timeout": self.spec.timeout_ms}


class NetworkSlicerSpec(_LinkSpec):
    average_size_bytes: int = Field(gt=0, description="Average size of the slices data is cut into.")
    size_variation_bytes: int = Field(default=0, ge=0, description="Random variation of the slice size, ±.")
    delay_us: int = Field(default=0, ge=0, description="Delay between slices, in microseconds.")


@register
class NetworkSlicerInjector(_ToxicInjector):
    kind: ClassVar[str] = "network.slicer"
    spec_type: ClassVar[type[FaultSpec]] = NetworkSlicerSpec
    summary: ClassVar[str] = "Cut a link's data into small delayed pieces (fragmented packets)."
    toxic_type: ClassVar[str] = "slicer"

    def attributes(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "average_size": spec.average_size_bytes,
            "size_variation": spec.size_variation_bytes,
            "delay": spec.delay_us,
        }


class NetworkLimitDataSpec(_LinkSpec):
    limit_bytes: int = Field(gt=0, description="Close each connection once this many bytes went through.")


@register
class NetworkLimitDataInjector(_ToxicInjector):
    kind: ClassVar[str] = "network.limit_data"
    spec_type: ClassVar[type[FaultSpec]] = NetworkLimitDataSpec
    summary: ClassVar[str] = "Close a link's connections after a number of bytes."
    toxic_type: ClassVar[str] = "limit_data"

    def attributes(self) -> dict[str, Any]:
        return {"bytes": self.spec.limit_bytes}


class NetworkSlowCloseSpec(_LinkSpec):
    delay_ms: int = Field(gt=0, description="Delay before a closed connection is closed on the other side.")


@register
class NetworkSlowCloseInjector(_ToxicInjector):
    kind: ClassVar[str] = "network.slow_close"
    spec_type: ClassVar[type[FaultSpec]] = NetworkSlowCloseSpec
    summary: ClassVar[str] = "Delay the closing of a link's connections."
    toxic_type: ClassVar[str] = "slow_close"

    def attributes(self) -> dict[str, Any]:
        return {"delay": self.spec.delay_ms}


class NetworkDownSpec(FaultSpec):
    """Take the link down: new connections are refused and open ones are cut (a partition of that link)."""

    connect_timeout_s: float = Field(
        default=1.0, gt=0, description="Verification: how long the restored link may take to accept a connection."
    )


@register
class NetworkDownInjector(Injector[NetworkDownSpec]):
    kind: ClassVar[str] = "network.down"
    spec_type: ClassVar[type[FaultSpec]] = NetworkDownSpec
    summary: ClassVar[str] = "Take a link down (partition): refuse new connections and cut open ones."
    target_kinds: ClassVar[tuple[str, ...]] = ("link",)

    def resolve(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
        return [ref for _, ref in resolve_links(target, select, ctx)]

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        proxy = client_for(ref).set_enabled(ref.detail["proxy"], False)
        return {"proxy": proxy.name, "enabled": proxy.enabled}

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        # Restore what was found: a link that was already down before the fault stays down.
        wanted = bool(ref.detail.get("was_enabled", True))
        proxy = client_for(ref).set_enabled(ref.detail["proxy"], wanted)
        return {"proxy": proxy.name, "enabled": proxy.enabled}

    def verify_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        wanted = bool(ref.detail.get("was_enabled", True))
        proxy = client_for(ref).proxy(ref.detail["proxy"])
        if proxy.enabled != wanted:
            raise FaultStillPresentError(f"proxy {proxy.name} is {'enabled' if proxy.enabled else 'disabled'}")
        if wanted:
            host, port = split_hostport(proxy.listen)
            try:
                with socket.create_connection((host, port), timeout=self.spec.connect_timeout_s):
                    pass
            except OSError as exc:
                raise FaultStillPresentError(
                    f"link {ref.id} does not accept connections at {proxy.listen}: {exc}"
                ) from exc
        return {"proxy": proxy.name, "enabled": proxy.enabled}
