"""A fake Kubernetes API server at the HTTP level, for the pod/deployment/node injectors (no cluster runs here).

It serves the few endpoints the injectors use, on 127.0.0.1, with real Kubernetes JSON shapes: PodList,
Pod, Deployment, Scale, NodeList, Node and Status objects with apiVersion, kind and metadata (uid,
resourceVersion, labels, ownerReferences, deletionTimestamp). Label selectors (`a=b`, `a!=b`,
`a in (x,y)`, `a notin (x)`, `a`, `!a`) and the `spec.nodeName` field selector are parsed; `limit` and
`continue` page lists; unknown names answer a 404 Status.

A Deployment behaves like its controller: a deleted or evicted pod is replaced by a new one (new name,
same labels) after `replace_delay_s`, which becomes Ready after `ready_delay_s`; scaling creates or
terminates pods. A pod deleted with a grace period stays, terminating, for that long (capped at
`max_grace_s` so tests stay quick). State advances lazily, on every request and every inspection.
Every request is recorded (method, path, query, body) so tests can assert exactly which calls were made.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

POD_GRACE_S = 30


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- label and field selectors ---------------------------------------------------------------------

_REQUIREMENT = re.compile(
    r"^(?:(?P<not>!)\s*(?P<absent>[\w./-]+)"
    r"|(?P<key>[\w./-]+)\s*(?:(?P<op>==|!=|=)\s*(?P<value>[\w.-]*)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<values>[^()]*)\))?)$"
)


@dataclass(frozen=True)
class Requirement:
    """One term of a label selector: `op` is one of =, !=, in, notin, exists, !exists."""

    key: str
    op: str
    values: frozenset[str] = frozenset()

    def matches(self, labels: dict[str, str]) -> bool:
        value = labels.get(self.key)
        if self.op == "exists":
            return value is not None
        if self.op == "!exists":
            return value is None
        if self.op in ("=", "in"):
            return value in self.values
        return value not in self.values  # != and notin also match pods without the label, as in Kubernetes


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        current += char
    parts.append(current)
    return [part.strip() for part in parts]


def parse_label_selector(text: str) -> list[Requirement]:
    """The requirements of a label selector; raises ValueError like the API server's 400 answer."""
    if not text.strip():
        return []
    requirements = []
    for part in _split_top_level(text):
        match = _REQUIREMENT.match(part)
        if match is None:
            raise ValueError(f"unable to parse requirement: {part!r}")
        if match["absent"]:
            requirements.append(Requirement(match["absent"], "!exists"))
        elif match["op"]:
            op = "!=" if match["op"] == "!=" else "="
            requirements.append(Requirement(match["key"], op, frozenset([match["value"]])))
        elif match["setop"]:
            values = frozenset(v.strip() for v in match["values"].split(",") if v.strip())
            if not values:
                raise ValueError(f"unable to parse requirement: {part!r}: values set can't be empty")
            requirements.append(Requirement(match["key"], match["setop"], values))
        else:
            requirements.append(Requirement(match["key"], "exists"))
    return requirements


def selector_matches(requirements: list[Requirement], labels: dict[str, str]) -> bool:
    return all(requirement.matches(labels) for requirement in requirements)


def _parse_field_selector(text: str) -> list[tuple[str, bool, str]]:
    terms = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = re.match(r"^([\w.]+)\s*(==|!=|=)\s*(.*)$", part)
        if match is None or match[1] not in ("spec.nodeName", "metadata.name", "metadata.namespace", "status.phase"):
            raise ValueError(f"field label not supported: {part!r}")
        terms.append((match[1], match[2] != "!=", match[3]))
    return terms


# --- the objects -----------------------------------------------------------------------------------


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _not_found(kind: str, name: str, group: str = "") -> ApiError:
    details = {"name": name, "kind": kind, **({"group": group} if group else {})}
    resource = f"{kind}.{group}" if group else kind
    return ApiError(404, "NotFound", f'{resource} "{name}" not found', details)


@dataclass
class Pod:
    namespace: str
    name: str
    labels: dict[str, str]
    uid: str
    resource_version: int
    created_at: float
    ready_at: float
    node: str | None = None
    owner: tuple[str, str, str] | None = None  # (kind, name, uid) of the controller
    deployment: str | None = None
    deleted_at: float | None = None
    grace_s: int | None = None

    def ready(self, now: float) -> bool:
        return self.deleted_at is None and now >= self.ready_at

    def to_json(self, now: float) -> dict[str, Any]:
        ready = now >= self.ready_at
        meta: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "uid": self.uid,
            "resourceVersion": str(self.resource_version),
            "creationTimestamp": _stamp(self.created_at),
            "labels": dict(self.labels),
        }
        if self.owner is not None:
            kind, name, uid = self.owner
            meta["ownerReferences"] = [
                {
                    "apiVersion": "apps/v1",
                    "kind": kind,
                    "name": name,
                    "uid": uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ]
        if self.deleted_at is not None:
            meta["deletionTimestamp"] = _stamp(self.deleted_at + (self.grace_s or 0))
            meta["deletionGracePeriodSeconds"] = self.grace_s
        spec: dict[str, Any] = {
            "containers": [{"name": "app", "image": "registry.example/app:1"}],
            "terminationGracePeriodSeconds": POD_GRACE_S,
            "restartPolicy": "Always",
        }
        if self.node is not None:
            spec["nodeName"] = self.node
        condition = "True" if ready else "False"
        status = {
            "phase": "Running" if ready else "Pending",
            "conditions": [
                {"type": "Ready", "status": condition, "lastTransitionTime": _stamp(self.ready_at)},
                {"type": "ContainersReady", "status": condition, "lastTransitionTime": _stamp(self.ready_at)},
            ],
            "containerStatuses": [
                {
                    "name": "app",
                    "image": "registry.example/app:1",
                    "imageID": "registry.example/app@sha256:" + "0" * 64,
                    "containerID": "containerd://" + self.uid.replace("-", ""),
                    "ready": ready,
                    "started": ready,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": _stamp(self.created_at)}},
                }
            ],
        }
        return {"metadata": meta, "spec": spec, "status": status}


@dataclass
class Deployment:
    namespace: str
    name: str
    labels: dict[str, str]
    replicas: int
    uid: str
    resource_version: int
    created_at: float
    replica_set: str
    replica_set_uid: str
    generation: int = 1
    pods: set[str] = field(default_factory=set)  # every owned pod, terminating ones too
    active: set[str] = field(default_factory=set)  # owned pods that are not terminating
    pending: list[float] = field(default_factory=list)  # due times of replacement pods

    @property
    def selector(self) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted(self.labels.items()))


@dataclass
class Node:
    name: str
    labels: dict[str, str]
    uid: str
    resource_version: int
    created_at: float
    unschedulable: bool = False

    def to_json(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"podCIDR": "10.244.0.0/24"}
        if self.unschedulable:
            spec["unschedulable"] = True
            spec["taints"] = [
                {
                    "key": "node.kubernetes.io/unschedulable",
                    "effect": "NoSchedule",
                    "timeAdded": _stamp(self.created_at),
                }
            ]
        return {
            "metadata": {
                "name": self.name,
                "uid": self.uid,
                "resourceVersion": str(self.resource_version),
                "creationTimestamp": _stamp(self.created_at),
                "labels": dict(self.labels),
            },
            "spec": spec,
            "status": {
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                "nodeInfo": {"kubeletVersion": "v1.30.0-fake"},
            },
        }


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    content_type: str | None
    authorization: str | None


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 merge patch (strategic merge behaves the same on the scalar fields served here)."""
    merged = dict(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _json_patch(target: dict[str, Any], ops: list[Any]) -> dict[str, Any]:
    """RFC 6902 add/replace/remove on object paths (enough for /spec/replicas and /spec/unschedulable)."""
    result = json.loads(json.dumps(target))
    for op in ops:
        if not isinstance(op, dict) or op.get("op") not in ("add", "replace", "remove"):
            raise ApiError(422, "Invalid", f"unsupported json patch operation: {op!r}")
        *parents, last = str(op.get("path", "")).strip("/").split("/")
        node = result
        for key in parents:
            node = node.setdefault(key, {})
        if op["op"] == "remove":
            if last not in node:
                raise ApiError(
                    422, "Invalid", f"jsonpatch remove operation does not apply: doc is missing key: {op['path']}"
                )
            del node[last]
        else:
            node[last] = op.get("value")
    return dict(result)


def _apply_patch(current: dict[str, Any], body: Any, content_type: str | None) -> dict[str, Any]:
    kind = (content_type or "").split(";")[0].strip()
    if kind in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
        if not isinstance(body, dict):
            raise ApiError(
                400, "BadRequest", "json: cannot unmarshal array into Go value of type map[string]interface {}"
            )
        return _merge(current, body)
    if kind == "application/json-patch+json":
        if not isinstance(body, list):
            raise ApiError(
                400, "BadRequest", "json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp"
            )
        return _json_patch(current, body)
    raise ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format ({kind!r}) - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json",
    )


class FakeKube:
    """The fake cluster's state and its HTTP server (start with `start()` or `with FakeKube() as kube:`)."""

    def __init__(
        self,
        *,
        replace_delay_s: float = 0.05,
        ready_delay_s: float = 0.05,
        max_grace_s: float = 0.2,
        token: str | None = None,
        latency_s: float = 0.0,
    ) -> None:
        self.replace_delay_s = replace_delay_s
        self.ready_delay_s = ready_delay_s
        self.max_grace_s = max_grace_s
        self.token = token
        self.latency_s = latency_s  # added to every answer, like a real API server's round trip
        self.requests: list[Recorded] = []
        self.failures: dict[tuple[str, str], int] = {}  # (method, path) → status to answer instead
        self._lock = threading.RLock()
        self._rv = itertools.count(1000)
        self._names = itertools.count(1)
        self._pods: dict[str, dict[str, Pod]] = {}  # namespace → name → pod
        self._deployments: dict[tuple[str, str], Deployment] = {}
        self._nodes: dict[str, Node] = {}
        self._next_node = itertools.count()
        self._terminating: list[tuple[float, str, str, str]] = []  # heap of (gone at, namespace, name, uid)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "FakeKube is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeKube:
        fake = self

        class Handler(_Handler):
            kube = fake

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.request_queue_size = 128
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="fake-kube", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeKube:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- set-up and inspection (tests) -----------------------------------------------------------

    def add_node(self, name: str, labels: dict[str, str] | None = None, unschedulable: bool = False) -> None:
        with self._lock:
            labels = {"kubernetes.io/hostname": name, **(labels or {})}
            self._nodes[name] = Node(name, labels, str(uuid.uuid4()), next(self._rv), time.time(), unschedulable)

    def add_deployment(self, namespace: str, name: str, replicas: int, labels: dict[str, str] | None = None) -> None:
        """A Deployment whose `replicas` pods exist and are Ready at once."""
        with self._lock:
            now = time.time()
            rs = f"{name}-{uuid.uuid4().hex[:10]}"
            dep = Deployment(
                namespace,
                name,
                labels or {"app": name},
                replicas,
                str(uuid.uuid4()),
                next(self._rv),
                now,
                rs,
                str(uuid.uuid4()),
            )
            self._deployments[(namespace, name)] = dep
            for _ in range(replicas):
                self._create_pod(dep, now, ready_at=now)

    def add_pod(self, namespace: str, name: str, labels: dict[str, str], node: str | None = None) -> None:
        """A bare pod that no controller owns (deleting it is for good)."""
        with self._lock:
            now = time.time()
            self._pods.setdefault(namespace, {})[name] = Pod(
                namespace, name, dict(labels), str(uuid.uuid4()), next(self._rv), now, now, node
            )

    def pods(self, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        with self._lock:
            now = self._tick()
            requirements = parse_label_selector(selector)
            return [
                p.to_json(now)
                for p in sorted(self._pods.get(namespace, {}).values(), key=lambda p: p.name)
                if selector_matches(requirements, p.labels)
            ]

    def deployment(self, namespace: str, name: str) -> dict[str, Any]:
        with self._lock:
            return self._deployment_json(self._deployment(namespace, name), self._tick())

    def node(self, name: str) -> dict[str, Any]:
        with self._lock:
            self._tick()
            return self._node(name).to_json()

    def set_replicas(self, namespace: str, name: str, replicas: int) -> None:
        """Change a Deployment's replicas behind the injectors' back (another actor, e.g. an autoscaler)."""
        with self._lock:
            self._scale(self._deployment(namespace, name), replicas)

    def calls(self, method: str | None = None, prefix: str = "") -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if (method is None or r.method == method) and r.path.startswith(prefix)]

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # --- the controller --------------------------------------------------------------------------

    def _create_pod(self, dep: Deployment, now: float, ready_at: float | None = None) -> None:
        name = f"{dep.replica_set}-{next(self._names):05x}"
        node = self._place()
        pod = Pod(
            dep.namespace,
            name,
            dict(dep.labels),
            str(uuid.uuid4()),
            next(self._rv),
            now,
            now + self.ready_delay_s if ready_at is None else ready_at,
            node,
            ("ReplicaSet", dep.replica_set, dep.replica_set_uid),
            dep.name,
        )
        self._pods.setdefault(dep.namespace, {})[name] = pod
        dep.pods.add(name)
        dep.active.add(name)

    def _place(self) -> str | None:
        schedulable = [n for n in self._nodes.values() if not n.unschedulable]
        if not schedulable:
            return None
        return sorted(schedulable, key=lambda n: n.name)[next(self._next_node) % len(schedulable)].name

    def _terminate(self, pod: Pod, grace_s: int, now: float) -> None:
        if pod.deleted_at is not None and (pod.grace_s or 0) <= grace_s:
            return  # already terminating with a grace period no longer than this one
        pod.deleted_at, pod.grace_s = now, grace_s
        pod.resource_version = next(self._rv)
        if pod.deployment is not None:
            dep = self._deployments.get((pod.namespace, pod.deployment))
            if dep is not None:
                dep.active.discard(pod.name)
        heapq.heappush(self._terminating, (now + min(grace_s, self.max_grace_s), pod.namespace, pod.name, pod.uid))
        if grace_s == 0:
            self._remove(pod)

    def _remove(self, pod: Pod) -> None:
        self._pods.get(pod.namespace, {}).pop(pod.name, None)
        if pod.deployment is not None:
            dep = self._deployments.get((pod.namespace, pod.deployment))
            if dep is not None:
                dep.pods.discard(pod.name)
                dep.active.discard(pod.name)

    def _scale(self, dep: Deployment, replicas: int) -> None:
        dep.replicas = replicas
        dep.generation += 1
        dep.resource_version = next(self._rv)
        self._tick()

    def _tick(self) -> float:
        now = time.time()
        while self._terminating and self._terminating[0][0] <= now:
            _, namespace, name, uid = heapq.heappop(self._terminating)
            pod = self._pods.get(namespace, {}).get(name)
            if pod is not None and pod.uid == uid:
                self._remove(pod)
        for dep in self._deployments.values():
            missing = dep.replicas - len(dep.active) - len(dep.pending)
            if missing > 0:
                dep.pending.extend([now + self.replace_delay_s] * missing)
            elif missing < 0:
                surplus = -missing
                drop = min(surplus, len(dep.pending))
                del dep.pending[len(dep.pending) - drop :]
                surplus -= drop
                pods = self._pods[dep.namespace]
                # Like the ReplicaSet controller: not-ready pods go first, then the newest.
                order = sorted(dep.active, key=lambda n: (pods[n].ready(now), -pods[n].created_at, n))
                for name in order[:surplus]:
                    self._terminate(pods[name], POD_GRACE_S, now)
            while dep.pending and dep.pending[0] <= now:
                dep.pending.pop(0)
                self._create_pod(dep, now)
        return now

    # --- the API ---------------------------------------------------------------------------------

    def _deployment(self, namespace: str, name: str) -> Deployment:
        dep = self._deployments.get((namespace, name))
        if dep is None:
            raise _not_found("deployments", name, "apps")
        return dep

    def _node(self, name: str) -> Node:
        node = self._nodes.get(name)
        if node is None:
            raise _not_found("nodes", name)
        return node

    def _pod(self, namespace: str, name: str) -> Pod:
        pod = self._pods.get(namespace, {}).get(name)
        if pod is None:
            raise _not_found("pods", name)
        return pod

    def _deployment_json(self, dep: Deployment, now: float) -> dict[str, Any]:
        pods = self._pods.get(dep.namespace, {})
        ready = sum(1 for name in dep.active if pods[name].ready(now))
        status: dict[str, Any] = {
            "observedGeneration": dep.generation,
            "replicas": len(dep.active),
            "updatedReplicas": len(dep.active),
        }
        # The API server leaves zero counts out, as the real one does.
        if ready:
            status["readyReplicas"] = status["availableReplicas"] = ready
        if len(dep.active) - ready > 0:
            status["unavailableReplicas"] = len(dep.active) - ready
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": self._meta(dep.name, dep.namespace, dep.uid, dep.resource_version, dep.created_at)
            | {"generation": dep.generation, "labels": dict(dep.labels)},
            "spec": {
                "replicas": dep.replicas,
                "selector": {"matchLabels": dict(dep.labels)},
                "template": {
                    "metadata": {"labels": dict(dep.labels)},
                    "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]},
                },
                "strategy": {"type": "RollingUpdate"},
            },
            "status": status,
        }

    @staticmethod
    def _meta(name: str, namespace: str | None, uid: str, rv: int, created: float) -> dict[str, Any]:
        meta = {"name": name, "uid": uid, "resourceVersion": str(rv), "creationTimestamp": _stamp(created)}
        if namespace is not None:
            meta["namespace"] = namespace
        return meta

    def _scale_json(self, dep: Deployment) -> dict[str, Any]:
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": self._meta(dep.name, dep.namespace, dep.uid, dep.resource_version, dep.created_at),
            "spec": {"replicas": dep.replicas},
            "status": {"replicas": len(dep.active), "selector": dep.selector},
        }

    def _list(self, kind: str, items: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
        meta: dict[str, Any] = {"resourceVersion": str(next(self._rv))}
        start = int(base64.b64decode(query["continue"]).decode()) if query.get("continue") else 0
        limit = int(query.get("limit") or 0)
        if limit > 0 and start + limit < len(items):
            meta["continue"] = base64.b64encode(str(start + limit).encode()).decode()
            meta["remainingItemCount"] = len(items) - start - limit
            items = items[start : start + limit]
        else:
            items = items[start:]
        return {"kind": kind, "apiVersion": "v1", "metadata": meta, "items": items}

    def handle(
        self, method: str, path: str, query: dict[str, str], body: Any, content_type: str | None
    ) -> tuple[int, Any]:
        """Answer one request: (status code, JSON body)."""
        with self._lock:
            now = self._tick()
            routes: list[tuple[str, str, Callable[..., tuple[int, Any]]]] = [
                ("GET", r"/version/?", self._version),
                ("GET", r"/api/?", self._api_versions),
                ("GET", r"/api/v1/namespaces/([^/]+)/pods", self._list_pods),
                ("GET", r"/api/v1/pods", self._list_pods),
                ("GET", r"/api/v1/namespaces/([^/]+)/pods/([^/]+)", self._read_pod),
                ("DELETE", r"/api/v1/namespaces/([^/]+)/pods/([^/]+)", self._delete_pod),
                ("POST", r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/eviction", self._evict_pod),
                ("GET", r"/apis/apps/v1/namespaces/([^/]+)/deployments/([^/]+)", self._read_deployment),
                ("GET", r"/apis/apps/v1/namespaces/([^/]+)/deployments/([^/]+)/scale", self._read_scale),
                ("PATCH", r"/apis/apps/v1/namespaces/([^/]+)/deployments/([^/]+)/scale", self._patch_scale),
                ("GET", r"/api/v1/nodes", self._list_nodes),
                ("GET", r"/api/v1/nodes/([^/]+)", self._read_node),
                ("PATCH", r"/api/v1/nodes/([^/]+)", self._patch_node),
            ]
            allowed = False
            for route_method, pattern, handler in routes:
                match = re.fullmatch(pattern, path)
                if match is None:
                    continue
                allowed = True
                if route_method == method:
                    answer = handler(*match.groups(), query=query, body=body, content_type=content_type, now=now)
                    self._tick()  # the controller reacts at once to what the request changed
                    return answer
            if allowed:
                raise ApiError(
                    405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
                )
            raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def _version(self, **_: Any) -> tuple[int, Any]:
        return 200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0-fake", "platform": "linux/amd64"}

    def _api_versions(self, **_: Any) -> tuple[int, Any]:
        return 200, {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
        }

    def _list_pods(
        self, namespace: str | None = None, *, query: dict[str, str], now: float, **_: Any
    ) -> tuple[int, Any]:
        try:
            requirements = parse_label_selector(query.get("labelSelector", ""))
            fields = _parse_field_selector(query.get("fieldSelector", ""))
        except ValueError as exc:
            raise ApiError(400, "BadRequest", str(exc)) from None
        namespaces = [namespace] if namespace is not None else sorted(self._pods)
        items = []
        for ns in namespaces:
            for pod in sorted(self._pods.get(ns, {}).values(), key=lambda p: p.name):
                values = {"spec.nodeName": pod.node or "", "metadata.name": pod.name, "metadata.namespace": ns}
                values["status.phase"] = "Running" if now >= pod.ready_at else "Pending"
                if selector_matches(requirements, pod.labels) and all(
                    (values[key] == value) == equal for key, equal, value in fields
                ):
                    items.append(pod.to_json(now))
        return 200, self._list("PodList", items, query)

    def _read_pod(self, namespace: str, name: str, *, now: float, **_: Any) -> tuple[int, Any]:
        return 200, {"apiVersion": "v1", "kind": "Pod", **self._pod(namespace, name).to_json(now)}

    def _grace(self, query: dict[str, str], body: Any) -> int:
        if isinstance(body, dict):
            options = body.get("deleteOptions", body)
            if isinstance(options, dict) and options.get("gracePeriodSeconds") is not None:
                return int(options["gracePeriodSeconds"])
        if query.get("gracePeriodSeconds"):
            return int(query["gracePeriodSeconds"])
        return POD_GRACE_S

    def _delete_pod(
        self, namespace: str, name: str, *, query: dict[str, str], body: Any, now: float, **_: Any
    ) -> tuple[int, Any]:
        pod = self._pod(namespace, name)
        uid = ((body or {}).get("preconditions") or {}).get("uid") if isinstance(body, dict) else None
        if uid is not None and uid != pod.uid:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on Pod "{name}": Precondition failed: UID in precondition: '
                f"{uid}, UID in object meta: {pod.uid}",
                {"name": name, "kind": "Pod"},
            )
        grace = self._grace(query, body)
        if grace < 0:
            raise ApiError(422, "Invalid", f"gracePeriodSeconds must be >= 0, got {grace}")
        self._terminate(pod, grace, now)
        return 200, {"apiVersion": "v1", "kind": "Pod", **pod.to_json(now)}

    def _evict_pod(
        self, namespace: str, name: str, *, query: dict[str, str], body: Any, now: float, **_: Any
    ) -> tuple[int, Any]:
        if not isinstance(body, dict) or body.get("kind") != "Eviction":
            raise ApiError(400, "BadRequest", "the body must be a policy/v1 Eviction")
        pod = self._pod(namespace, name)
        self._terminate(pod, self._grace({}, body), now)
        return 201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

    def _read_deployment(self, namespace: str, name: str, *, now: float, **_: Any) -> tuple[int, Any]:
        return 200, self._deployment_json(self._deployment(namespace, name), now)

    def _read_scale(self, namespace: str, name: str, **_: Any) -> tuple[int, Any]:
        return 200, self._scale_json(self._deployment(namespace, name))

    def _patch_scale(
        self, namespace: str, name: str, *, body: Any, content_type: str | None, **_: Any
    ) -> tuple[int, Any]:
        dep = self._deployment(namespace, name)
        patched = _apply_patch(self._scale_json(dep), body, content_type)
        replicas = patched.get("spec", {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise ApiError(
                422, "Invalid", f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value: {replicas!r}'
            )
        if replicas != dep.replicas:
            self._scale(dep, replicas)
        return 200, self._scale_json(dep)

    def _list_nodes(self, *, query: dict[str, str], **_: Any) -> tuple[int, Any]:
        try:
            requirements = parse_label_selector(query.get("labelSelector", ""))
        except ValueError as exc:
            raise ApiError(400, "BadRequest", str(exc)) from None
        nodes = [
            n.to_json()
            for n in sorted(self._nodes.values(), key=lambda n: n.name)
            if selector_matches(requirements, n.labels)
        ]
        return 200, self._list("NodeList", nodes, query)

    def _read_node(self, name: str, **_: Any) -> tuple[int, Any]:
        return 200, {"apiVersion": "v1", "kind": "Node", **self._node(name).to_json()}

    def _patch_node(self, name: str, *, body: Any, content_type: str | None, **_: Any) -> tuple[int, Any]:
        node = self._node(name)
        patched = _apply_patch(node.to_json(), body, content_type)
        unschedulable = patched.get("spec", {}).get("unschedulable", False)
        if not isinstance(unschedulable, bool):
            raise ApiError(400, "BadRequest", f"spec.unschedulable: expected a boolean, got {unschedulable!r}")
        if unschedulable != node.unschedulable:
            node.unschedulable = unschedulable
            node.resource_version = next(self._rv)
        return 200, {"apiVersion": "v1", "kind": "Node", **node.to_json()}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    kube: FakeKube

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        content_type = self.headers.get("Content-Type")
        authorization = self.headers.get("Authorization")
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            body = raw.decode(errors="replace")
        kube = self.kube
        with kube._lock:
            kube.requests.append(Recorded(self.command, parts.path, query, body, content_type, authorization))
            injected = kube.failures.get((self.command, parts.path))
        try:
            if kube.token is not None and authorization != f"Bearer {kube.token}":
                raise ApiError(401, "Unauthorized", "Unauthorized")
            if injected is not None:
                reason = {429: "TooManyRequests", 403: "Forbidden", 409: "Conflict"}.get(injected, "InternalError")
                raise ApiError(injected, reason, f"injected failure for {self.command} {parts.path}")
            status, answer = kube.handle(self.command, parts.path, query, body, content_type)
        except ApiError as exc:
            status, answer = exc.code, exc.status()
        data = json.dumps(answer).encode()
        if kube.latency_s > 0:
            time.sleep(kube.latency_s)  # outside the lock: requests in flight overlap, as on a real server
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_DELETE = do_POST = do_PATCH = do_PUT = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    """Serve a populated fake cluster in its own process (bench/k8s_fanout.py) until stdin closes."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--namespace", default="bench")
    parser.add_argument("--pods", type=int, default=1000, help="replicas of the Deployment `web`")
    parser.add_argument("--nodes", type=int, default=0)
    parser.add_argument("--replace-delay-s", type=float, default=0.05)
    parser.add_argument("--ready-delay-s", type=float, default=0.05)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every answer")
    args = parser.parse_args()
    with FakeKube(
        replace_delay_s=args.replace_delay_s, ready_delay_s=args.ready_delay_s, latency_s=args.latency_ms / 1000
    ) as kube:
        for i in range(args.nodes):
            kube.add_node(f"node-{i:04d}", {"pool": "bench"})
        kube.add_deployment(args.namespace, "web", args.pods, {"app": "web"})
        print(f"listening on {kube.url}", flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
