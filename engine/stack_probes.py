"""`stack check` for the targets that are not processes: links, containers, Kubernetes objects, endpoints.

Each looks only: a proxy's state on its Toxiproxy API, a container's on its engine, the Kubernetes API's
version, an endpoint's answer. Nothing is created, changed or restarted.
"""

from __future__ import annotations

import socket

from clients import http
from clients.container_engine import engine
from clients.errors import ClientError
from clients.tcp import split_hostport
from clients.toxiproxy import ToxiproxyClient
from engine.stack_rows import Row
from stackspec.targets import ContainerTarget, KubernetesTarget, LinkTarget, ToxiproxyEndpoint

ENDPOINT_TIMEOUT_S = 3.0


def link_rows(name: str, group: LinkTarget, default: ToxiproxyEndpoint | None) -> list[Row]:
    """One row per link: its proxy exists on the API, is enabled and carries no leftover toxic."""
    api = group.toxiproxy or default or ToxiproxyEndpoint()
    client = ToxiproxyClient(api.url, api.timeout_s)
    try:
        proxies = client.proxies()
    except ClientError as exc:
        return [
            Row(name, "link", i.name, api.url, {"proxy": "not checked"}, [f"{i.name}: {exc}"]) for i in group.instances
        ]
    rows = []
    for link in group.instances:
        row = Row(name, "link", link.name, api.url)
        proxy = proxies.get(link.proxy)
        if proxy is None:
            row.fields["proxy"] = f"{link.proxy}: missing"
            row.problems.append(f"{link.name}: no proxy {link.proxy!r} on the Toxiproxy API at {api.url}")
        else:
            toxics = [t.name for t in proxy.toxics]
            state = "enabled" if proxy.enabled else "DISABLED"
            row.fields["proxy"] = f"{link.proxy}: {state}, {len(toxics)} toxic(s)"
            if not proxy.enabled:
                row.problems.append(f"{link.name}: proxy {link.proxy!r} is disabled (a fault left in place?)")
            if toxics:
                row.problems.append(
                    f"{link.name}: proxy {link.proxy!r} carries toxics {toxics} (a fault left in place?)"
                )
        rows.append(row)
    return rows


def container_rows(name: str, group: ContainerTarget) -> list[Row]:
    """One row per listed container (running?), one for a label selector (how many carry the labels)."""
    where = group.engine_url or "$DOCKER_HOST"
    try:
        with engine(group.engine_url, group.timeout_s) as client:
            client.ping()
            rows = []
            for listed in group.containers:
                ref = listed.container or listed.name
                row = Row(name, "container", listed.name, where)
                try:
                    state = client.inspect(ref)
                    row.fields["state"] = state.status + ("" if state.health is None else f", {state.health}")
                    if not state.up:
                        row.problems.append(f"{listed.name}: container {ref} is {state.status}, not running")
                except ClientError as exc:
                    row.fields["state"] = "missing"
                    row.problems.append(f"{listed.name}: {exc}")
                rows.append(row)
            if group.labels:
                found = client.find(group.labels)
                label = ",".join(f"{k}={v}" for k, v in sorted(group.labels.items()))
                row = Row(name, "container", f"labels {label}", where, {"matches": str(len(found))})
                if not found:
                    row.problems.append(f"{name}: no container on the engine carries the labels {label}")
                rows.append(row)
            return rows
    except ClientError as exc:
        return [Row(name, "container", "(engine)", where, {"engine": "unreachable"}, [f"{name}: {exc}"])]


def kubernetes_rows(name: str, group: KubernetesTarget) -> list[Row]:
    """One row: the API answers (its version); the objects themselves are only known at resolve time."""
    what = group.deployment or group.label_selector or group.resource
    try:
        from clients.kube import KubeApi  # the kubernetes package is loaded only when a stack names a cluster

        api = KubeApi(group.api, pool_size=1)
        try:
            version = api.version()
            where = api.host
        finally:
            api.close()
    except (ClientError, ImportError) as exc:
        return [Row(name, "kubernetes", what, "Kubernetes API", {"api": "unreachable"}, [f"{name}: {exc}"])]
    return [Row(name, "kubernetes", what, where, {"api": f"reachable, {version}"})]


def endpoint_rows(endpoints: dict[str, str]) -> list[Row]:
    """One row per named endpoint: an http URL answers (any status), a host:port accepts a connection."""
    rows = []
    for name, address in endpoints.items():
        row = Row("(endpoints)", "endpoint", name, http.split_credentials(address)[0])
        try:
            if "://" in address:
                status, _ = http.get(address, ENDPOINT_TIMEOUT_S)
                row.fields["answer"] = f"HTTP {status}"
            else:
                with socket.create_connection(split_hostport(address), timeout=ENDPOINT_TIMEOUT_S):
                    row.fields["answer"] = "accepts TCP"
        except (OSError, ValueError) as exc:
            row.fields["answer"] = "unreachable"
            row.problems.append(f"endpoint {name} ({row.where}): {type(exc).__name__}: {exc}")
        rows.append(row)
    return rows
