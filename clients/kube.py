"""The one adapter through which injectors reach a Kubernetes API, with the official `kubernetes` client.

Every target gets its own `Configuration` and `ApiClient` (the client's process-wide default is never
touched), every call has a timeout (`_request_timeout`) and no silent retries, and answers are read
from the raw JSON into small records: fast for thousands of pods, and tolerant of fields that this
client version's models do not know. Every failure leaves this module as a KubeError.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from clients.errors import ClientError
from stackspec.targets import KubernetesAccess

PAGE_SIZE = 500
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


class KubeError(ClientError):
    """A Kubernetes API call failed: unreachable, timed out, refused, or the API could not be configured."""

    def __init__(self, message: str, status: int | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class PodInfo:
    namespace: str
    name: str
    uid: str
    labels: dict[str, str]
    node: str | None
    ready: bool
    terminating: bool
    controller: str | None  # "ReplicaSet/web-5d9c7b", "DaemonSet/agent", ... of the managing controller
    mirror: bool  # a static pod's mirror: the kubelet owns it, the API cannot evict it


@dataclass(frozen=True)
class DeploymentInfo:
    namespace: str
    name: str
    replicas: int
    selector: str
    generation: int
    observed_generation: int
    status_replicas: int
    ready: int


@dataclass(frozen=True)
class NodeInfo:
    name: str
    uid: str
    labels: dict[str, str]
    unschedulable: bool


def _pod(item: dict[str, Any]) -> PodInfo:
    meta, status = item.get("metadata", {}), item.get("status", {})
    conditions = status.get("conditions") or []
    owner = next((o for o in meta.get("ownerReferences") or [] if o.get("controller")), None)
    return PodInfo(
        namespace=meta.get("namespace", ""),
        name=meta["name"],
        uid=meta.get("uid", ""),
        labels=dict(meta.get("labels") or {}),
        node=(item.get("spec") or {}).get("nodeName"),
        ready=any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions),
        terminating=meta.get("deletionTimestamp") is not None,
        controller=f"{owner['kind']}/{owner['name']}" if owner else None,
        mirror="kubernetes.io/config.mirror" in (meta.get("annotations") or {}),
    )


def _node(item: dict[str, Any]) -> NodeInfo:
    meta = item.get("metadata", {})
    return NodeInfo(
        name=meta["name"],
        uid=meta.get("uid", ""),
        labels=dict(meta.get("labels") or {}),
        unschedulable=bool((item.get("spec") or {}).get("unschedulable", False)),
    )


def selector_string(selector: dict[str, Any]) -> str:
    """A LabelSelector object (matchLabels, matchExpressions) as the `labelSelector` query syntax."""
    terms = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], ",".join(expr.get("values") or [])
        as_text = {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": key}
        terms.append(as_text.get(op, f"!{key}"))  # DoesNotExist
    return ",".join(terms)


def configuration(access: KubernetesAccess, pool_size: int = 8) -> client.Configuration:
    """A client Configuration of its own for `access` (kubeconfig, in-cluster or explicit URL)."""
    cfg = client.Configuration()
    try:
        if access.in_cluster:
            config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        elif access.api_url is not None:
            cfg.host = access.api_url.rstrip("/")
            cfg.verify_ssl = access.verify_tls
            cfg.ssl_ca_cert = access.ca_file
            if access.token_env is not None:
                token = os.environ.get(access.token_env)
                if not token:
                    raise KubeError(
                        f"the environment variable {access.token_env} (the target's `token_env`) is not set; "
                        "export the bearer token in it"
                    )
                cfg.api_key = {"BearerToken": token}
                cfg.api_key_prefix = {"BearerToken": "Bearer"}
        else:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=access.kubeconfig,
                context=access.context,
                client_configuration=cfg,
                persist_config=False,
            )
    except ConfigException as exc:
        where = "in-cluster config" if access.in_cluster else f"kubeconfig {access.kubeconfig or '(default)'}"
        raise KubeError(
            f"cannot configure the Kubernetes client from the {where}: {exc}; set the target's `api` "
            "(`kubeconfig` and `context`, `in_cluster: true`, or `api_url`)"
        ) from exc
    except OSError as exc:
        raise KubeError(f"cannot read the Kubernetes client configuration: {exc}") from exc
    cfg.connection_pool_maxsize = pool_size
    # One retry, for connections that could not be opened (nothing was sent); a chaos tool must see the rest.
    cfg.retries = urllib3.Retry(total=1, connect=1, read=0, redirect=0, status=0, other=0)
    return cfg


class KubeApi:
    """The calls the Kubernetes injectors make, for one API endpoint; each gives up after `timeout_s`."""

    def __init__(self, access: KubernetesAccess, pool_size: int = 8) -> None:
        self._client = client.ApiClient(configuration(access, pool_size))
        self.host = str(self._client.configuration.host)
        self._core = client.CoreV1Api(self._client)
        self._apps = client.AppsV1Api(self._client)
        self._version = client.VersionApi(self._client)
        self._timeout = (access.timeout_s, access.timeout_s)

    def __repr__(self) -> str:
        return f"KubeApi({self.host!r})"

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]

    def _call(self, what: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            response = method(*args, _request_timeout=self._timeout, _preload_content=False, **kwargs)
            raw = response.data
            response.release_conn()
        except ApiException as exc:
            message = exc.reason or ""
            try:
                status = json.loads(exc.body or "")
                message = status.get("message") or message
                reason = status.get("reason") or exc.reason
            except (ValueError, AttributeError):
                reason = exc.reason
            raise KubeError(f"Kubernetes API {what} answered {exc.status}: {message}", exc.status, reason) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeError(f"Kubernetes API at {self.host} unreachable ({what}): {exc}") from exc
        try:
            return json.loads(raw) if raw else None
        except ValueError as exc:
            raise KubeError(f"Kubernetes API {what} answered something that is not JSON: {raw[:200]!r}") from exc

    def version(self) -> str:
        return str(self._call("GET /version", self._version.get_code).get("gitVersion", "?"))

    def _list(self, what: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = self._call(what, method, *args, limit=PAGE_SIZE, _continue=token, **kwargs)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items

    def list_pods(
        self, namespace: str | None, label_selector: str | None = None, field_selector: str | None = None
    ) -> list[PodInfo]:
        """Pods of a namespace (None: of every namespace) matching the selectors, terminating ones too."""
        kwargs = {"label_selector": label_selector, "field_selector": field_selector}
        if namespace is None:
            items = self._list("list pods", self._core.list_pod_for_all_namespaces, **kwargs)
        else:
            items = self._list(f"list pods in {namespace}", self._core.list_namespaced_pod, namespace, **kwargs)
        return [_pod(item) for item in items]

    def delete_pod(self, namespace: str, name: str, uid: str | None, grace_period_s: int | None) -> PodInfo | None:
        """Delete a pod (only if it still has `uid`); None when it is already gone."""
        options = client.V1DeleteOptions(
            grace_period_seconds=grace_period_s,
            preconditions=client.V1Preconditions(uid=uid) if uid else None,
        )
        try:
            item = self._call(
                f"delete pod {namespace}/{name}", self._core.delete_namespaced_pod, name, namespace, body=options
            )
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return _pod(item) if isinstance(item, dict) and item.get("kind") == "Pod" else None

    def evict_pod(self, namespace: str, name: str, grace_period_s: int | None) -> bool:
        """Evict a pod through the Eviction API (PodDisruptionBudgets apply); False when it is already gone.

        A budget that forbids the eviction now raises KubeError with status 429.
        """
        eviction = client.V1Eviction(
            api_version="policy/v1",
            kind="Eviction",
            metadata=client.V1ObjectMeta(name=name, namespace=namespace),
            delete_options=client.V1DeleteOptions(grace_period_seconds=grace_period_s),
        )
        try:
            self._call(
                f"evict pod {namespace}/{name}", self._core.create_namespaced_pod_eviction, name, namespace, eviction
            )
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def read_deployment(self, namespace: str, name: str) -> DeploymentInfo:
        item = self._call(f"read deployment {namespace}/{name}", self._apps.read_namespaced_deployment, name, namespace)
        meta, spec, status = item.get("metadata", {}), item.get("spec", {}), item.get("status") or {}
        return DeploymentInfo(
            namespace=namespace,
            name=name,
            replicas=int(spec.get("replicas", 1)),
            selector=selector_string(spec.get("selector") or {}),
            generation=int(meta.get("generation", 0)),
            observed_generation=int(status.get("observedGeneration", 0)),
            status_replicas=int(status.get("replicas", 0)),
            ready=int(status.get("readyReplicas", 0)),
        )

    def read_scale(self, namespace: str, name: str) -> int:
        """spec.replicas of a Deployment, through its scale subresource."""
        item = self._call(
            f"read scale of deployment {namespace}/{name}", self._apps.read_namespaced_deployment_scale, name, namespace
        )
        return int((item.get("spec") or {}).get("replicas", 0))

    def patch_scale(self, namespace: str, name: str, replicas: int) -> int:
        item = self._call(
            f"scale deployment {namespace}/{name}",
            self._apps.patch_namespaced_deployment_scale,
            name,
            namespace,
            {"spec": {"replicas": replicas}},
            _content_type=MERGE_PATCH,
        )
        return int((item.get("spec") or {}).get("replicas", 0))

    def list_nodes(self, label_selector: str | None = None) -> list[NodeInfo]:
        return [_node(item) for item in self._list("list nodes", self._core.list_node, label_selector=label_selector)]

    def read_node(self, name: str) -> NodeInfo:
        return _node(self._call(f"read node {name}", self._core.read_node, name))

    def set_unschedulable(self, name: str, unschedulable: bool) -> NodeInfo:
        """Cordon (True) or uncordon (False) a node, with the patch `kubectl cordon`/`uncordon` sends."""
        body = {"spec": {"unschedulable": True if unschedulable else None}}
        what = f"{'cordon' if unschedulable else 'uncordon'} node {name}"
        return _node(self._call(what, self._core.patch_node, name, body, _content_type=STRATEGIC_MERGE_PATCH))
