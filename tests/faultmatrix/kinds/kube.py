"""The fault matrix's Kubernetes kinds: their scenarios on the fake cluster, checked with raw HTTP to its API."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from injectors.base import FaultPlan
from stackspec.targets import KubernetesTarget
from tests.faultmatrix.checks import Check, Live, both
from tests.faultmatrix.kinds import Scenario

WEB_REPLICAS = 6  # the fake cluster's Deployment `web`, spread over four nodes


def kube_get(live: Live, target: str, path: str, **query: str) -> dict[str, Any] | None:
    """GET `path` on the target's API server (its `token_env` token, if any); None on 404."""
    group = live.state.targets[target]
    assert isinstance(group, KubernetesTarget) and group.api.api_url is not None, f"{target}: no api_url"
    url = group.api.api_url.rstrip("/") + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
    request = urllib.request.Request(url)
    if group.api.token_env is not None:
        request.add_header("Authorization", f"Bearer {os.environ[group.api.token_env]}")
    try:
        with urllib.request.urlopen(request, timeout=2) as answer:
            body: dict[str, Any] = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise AssertionError(f"GET {url} answered {exc.code}") from exc
    return body


def _active(pod: dict[str, Any]) -> bool:
    return "deletionTimestamp" not in pod["metadata"]


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return _active(pod) and any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def deployment_state(live: Live, target: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The Deployment of a `deployment` target and the pods its selector matches."""
    group = live.state.targets[target]
    assert isinstance(group, KubernetesTarget) and group.deployment is not None
    ns = group.namespace
    deployment = kube_get(live, target, f"/apis/apps/v1/namespaces/{ns}/deployments/{group.deployment}")
    assert deployment is not None, f"deployment {ns}/{group.deployment} is gone"
    labels = deployment["spec"]["selector"]["matchLabels"]
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    pods = kube_get(live, target, f"/api/v1/namespaces/{ns}/pods", labelSelector=selector)
    assert pods is not None
    return deployment, list(pods["items"])


def deployment_whole(target: str, replicas: int) -> Check:
    """The Deployment wants `replicas` (its count before the fault), reports them all ready, and exactly that
    many of its pods are Ready and not terminating."""

    def check(live: Live, plan: FaultPlan) -> None:
        deployment, pods = deployment_state(live, target)
        name, status = deployment["metadata"]["name"], deployment.get("status") or {}
        assert deployment["spec"]["replicas"] == replicas, f"{name} wants {deployment['spec']['replicas']} replicas"
        seen = (status.get("replicas"), status.get("readyReplicas"))
        assert seen == (replicas, replicas), f"{name} reports (replicas, ready) {seen}, not {replicas}"
        ready = sum(1 for p in pods if _ready(p))
        assert ready == replicas, f"{ready} of {name}'s pods are ready, not {replicas}"

    return check


def scaled_to(target: str, replicas: int) -> Check:
    def check(live: Live, plan: FaultPlan) -> None:
        deployment, pods = deployment_state(live, target)
        assert deployment["spec"]["replicas"] == replicas, f"wants {deployment['spec']['replicas']} replicas"
        active = sum(1 for p in pods if _active(p))
        assert active == replicas, f"{active} pods are not terminating, not {replicas}"

    return check


def pods_deleted(live: Live, plan: FaultPlan) -> None:
    """Every planned pod is gone or terminating (a successor under its name would have another uid)."""
    for ref in plan.targets:
        pod = kube_get(live, plan.target, f"/api/v1/namespaces/{ref.detail['namespace']}/pods/{ref.id}")
        if pod is not None and pod["metadata"]["uid"] == ref.detail["uid"]:
            assert not _active(pod), f"pod {ref.id} is still there, not terminating"


def _node(live: Live, plan: FaultPlan, name: str) -> dict[str, Any]:
    node = kube_get(live, plan.target, f"/api/v1/nodes/{name}")
    assert node is not None, f"node {name} is gone"
    return node


def nodes_cordoned(live: Live, plan: FaultPlan) -> None:
    for ref in plan.targets:
        assert _node(live, plan, ref.id)["spec"].get("unschedulable") is True, f"node {ref.id} is schedulable"


def nodes_drained(live: Live, plan: FaultPlan) -> None:
    """Cordoned, and no pod a controller owns runs on the node any more."""
    nodes_cordoned(live, plan)
    for ref in plan.targets:
        pods = kube_get(live, plan.target, "/api/v1/pods", fieldSelector=f"spec.nodeName={ref.id}")
        assert pods is not None
        left = [p["metadata"]["name"] for p in pods["items"] if _active(p) and p["metadata"].get("ownerReferences")]
        assert not left, f"pods still on node {ref.id}: {left}"


def nodes_schedulable(live: Live, plan: FaultPlan) -> None:
    """Every planned node is schedulable again: no `spec.unschedulable`, no unschedulable taint."""
    for ref in plan.targets:
        spec = _node(live, plan, ref.id)["spec"]
        assert not spec.get("unschedulable"), f"node {ref.id} is still cordoned"
        taints = [t["key"] for t in spec.get("taints") or []]
        assert "node.kubernetes.io/unschedulable" not in taints, f"node {ref.id} still has taints {taints}"


def kube(target: str, gone: Check, present: Check, **fields: Any) -> Scenario:
    return Scenario(target, gone, present, stack="kube", **fields)


WEB_WHOLE = deployment_whole("web", WEB_REPLICAS)

SCENARIOS: dict[str, Scenario] = {
    "pod.delete": kube(
        "web-pods", WEB_WHOLE, pods_deleted, params={"grace_period_s": 0, "replace_timeout_s": 30}, select={"count": 2}
    ),
    "deployment.scale": kube("web", WEB_WHOLE, scaled_to("web", 1), params={"replicas": 1, "ready_timeout_s": 30}),
    "node.cordon": kube("workers", both(nodes_schedulable, WEB_WHOLE), nodes_cordoned, select={"name": "node-0"}),
    # Rollback uncordons; the evicted pods are the controller's to replace (docs/injectors.md, node.drain).
    "node.drain": kube(
        "workers",
        nodes_schedulable,
        nodes_drained,
        params={"grace_period_s": 0, "evict_timeout_s": 10},
        select={"name": "node-1"},
    ),
}
