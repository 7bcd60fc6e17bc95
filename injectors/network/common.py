"""What the network kinds share: resolving links to their proxies, and the toxic-based kinds' behaviour.

Links run through a server that speaks the Toxiproxy API (the embedded one, or a real Toxiproxy). Each
toxic fault adds toxics under names of its own (recorded in the plan before injection), so rollback
removes exactly those and nothing else, and verification lists the proxy's toxics to prove they are gone.
"""

from __future__ import annotations

import secrets
from abc import abstractmethod
from typing import ClassVar, Literal, TypeVar

from pydantic import Field, JsonValue

from clients.procs import role_of
from clients.toxiproxy import Stream, ToxiproxyClient
from injectors.base import FaultPlan, FaultSpec, Injector, Outcome, RunContext, TargetRef
from injectors.errors import FaultStillPresentError, TargetNotFoundError, absent_is_not_found
from injectors.selection import Selection, select
from stackspec.targets import LinkInstance, LinkTarget, ProcessTarget, ToxiproxyEndpoint

StreamChoice = Literal["downstream", "upstream", "both"]


def link_target(target: str, ctx: RunContext) -> LinkTarget:
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
    """The links `selection` picks, each with a reference recording its proxy, endpoint and enabled state."""
    group = link_target(target, ctx)
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
        with absent_is_not_found(f"proxy {link.proxy!r} of link {link.name!r} at {endpoint.url}"):
            proxy = client.proxy(link.proxy)  # the proxy must exist before anything is planned on it
        detail = {
            "proxy": link.proxy,
            "listen": proxy.listen,
            "toxiproxy_url": endpoint.url,
            "timeout_s": endpoint.timeout_s,
            "was_enabled": proxy.enabled,
        }
        refs.append((link, TargetRef(id=link.name, detail=detail)))
    return refs


class LinkSpec(FaultSpec):
    stream: StreamChoice = Field(
        default="downstream",
        description="Direction: downstream (server → client), upstream (client → server) or both.",
    )
    toxicity: float = Field(default=1.0, ge=0, le=1, description="Probability the toxic applies to a connection.")


LinkSpecT = TypeVar("LinkSpecT", bound=LinkSpec, covariant=True)


class ToxicInjector(Injector[LinkSpecT]):
    """Shared behaviour of the toxic-based faults: add named toxics, remove exactly them, prove it."""

    toxic_type: ClassVar[str]
    target_kinds: ClassVar[tuple[str, ...]] = ("link",)

    @abstractmethod
    def attributes(self) -> dict[str, JsonValue]:
        """The toxic's attributes in Toxiproxy's names and units."""

    def streams(self) -> list[Stream]:
        choice = self.spec.stream
        return ["downstream", "upstream"] if choice == "both" else [choice]

    def find_targets(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
        token = secrets.token_hex(3)
        refs = []
        for _, ref in resolve_links(target, select, ctx):
            # Names of our own, recorded in the plan: rollback removes exactly these toxics.
            ref.detail["toxics"] = {stream: f"chaos_{token}_{self.toxic_type}_{stream}" for stream in self.streams()}
            refs.append(ref)
        return refs

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        client = client_for(ref)
        added: list[JsonValue] = []
        for stream, name in dict(ref.detail["toxics"]).items():
            toxic = client.add_toxic(
                ref.detail["proxy"], name, self.toxic_type, self.attributes(), stream, self.spec.toxicity
            )
            added.append(toxic.model_dump(mode="json"))
        return Outcome(detail={"proxy": ref.detail["proxy"], "toxics": added})

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        client = client_for(ref)
        removed: list[JsonValue] = [
            name for name in dict(ref.detail["toxics"]).values() if client.remove_toxic(ref.detail["proxy"], name)
        ]
        return Outcome(detail={"proxy": ref.detail["proxy"], "removed": removed})

    def verify_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        ours = set(dict(ref.detail["toxics"]).values())
        present = sorted(ours & {t.name for t in client_for(ref).toxics(ref.detail["proxy"])})
        if present:
            raise FaultStillPresentError(f"toxic(s) {', '.join(present)} still on proxy {ref.detail['proxy']}")
        return Outcome(detail={"proxy": ref.detail["proxy"], "absent": sorted(ours)})
