"""Chaos Toolkit `python` providers with a mapping (Kubernetes pod termination and Deployment scaling, idling);
every other module is refused by name — imported code is never executed."""

from __future__ import annotations

from typing import Any

from importers.ctk_document import Context, Loc
from importers.ctk_items import FaultItem, Item, UndoItem, WaitItem
from importers.ctk_options import ConvertOptions
from importers.ctk_targets import StackInfo, normalized_selector

TERMINATE_PODS = "chaosk8s.pod.actions.terminate_pods"
SCALE_DEPLOYMENT = "chaosk8s.deployment.actions.scale_deployment"
IDLE_FOR = "chaosaddons.utils.idle.idle_for"
MAPPED = (TERMINATE_PODS, SCALE_DEPLOYMENT, IDLE_FOR)
_TERMINATE_ARGS = {"label_selector", "name_pattern", "all", "rand", "mode", "qty", "grace_period", "ns", "order"}


def read_only_probe(module: str) -> str | None:
    """What a known read-only probe module reads, or None when the module is not known to be read-only."""
    if module.startswith("chaosk8s") and (module.endswith(".probes") or ".probes." in module):
        return "Kubernetes state"
    if module.startswith("chaosprometheus.probes"):
        return "Prometheus"
    return None


def refuse_unmapped(ctx: Context, loc: Loc, module: str, func: str) -> None:
    ctx.refuse(
        (*loc, "provider", "module"),
        f"python provider {module}.{func} has no mapping onto this framework, and imported code is never executed "
        f"(mapped: {', '.join(MAPPED)})",
    )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _mapped_target(ctx: Context, loc: Loc, keys: list[str | None], stack: StackInfo, options: ConvertOptions) -> str:
    for key in keys:
        if key is not None and key in options.targets:
            target = options.targets[key].partition("/")[0]
            if stack.kinds.get(target) != "kubernetes":
                ctx.refuse(loc, f"--target {key}={target}: {stack.label} has no kubernetes target {target!r}")
                return ""
            ctx.decide(loc, f"stack target {target!r}, by the option --target {key}={target}")
            return target
    return ""


def _kube_target(
    ctx: Context, loc: Loc, name: str, found: list[str], what: str, stack: StackInfo, options: ConvertOptions
) -> str | None:
    if len(found) == 1:
        ctx.decide(loc, f"stack target {found[0]!r}: the kubernetes target of {what}")
        return found[0]
    known = ", ".join(f"{k.target} ({k.resource} in {k.namespace})" for k in stack.kube) or "none"
    if found:
        ctx.refuse(
            loc,
            f"several kubernetes targets are {what} ({', '.join(found)}); choose one with `--target '{name}=TARGET'`",
        )
    else:
        ctx.refuse(
            loc,
            f"{stack.label} has no kubernetes target that is {what} (its kubernetes targets: {known}); "
            f"add one to the stack description, or choose one with `--target '{name}=TARGET'`",
        )
    return None


def _pod_select(ctx: Context, loc: Loc, args: dict[str, Any]) -> dict[str, Any] | None:
    if args.get("all") is True:
        ctx.decide((*loc, "all"), "every matching pod → select: {all: true}")
        return {"all": True}
    mode, qty = args.get("mode", "fixed"), _int(args.get("qty", 1))
    if qty is None or qty < 0:
        ctx.refuse((*loc, "qty"), "qty must be a whole number")
        return None
    if qty == 0:
        ctx.refuse((*loc, "qty"), "qty 0 deletes no pod: there is nothing to inject")
        return None
    if mode == "fixed":
        select: dict[str, Any] = {"count": qty}
    elif mode == "percentage" and qty <= 100:
        select = {"percent": qty}
    else:
        ctx.refuse((*loc, "mode"), "mode must be 'fixed' or 'percentage' (with qty 1-100)")
        return None
    if args.get("rand") is True:
        ctx.decide((*loc, "rand"), "random pods, chosen with the run's recorded seed")
    else:
        order = args.get("order", "alphabetic")
        ctx.decide(
            loc,
            f"Chaos Toolkit deletes the first pods in {order} order; here they are chosen at random with "
            "the run's recorded seed — how many is kept, which ones is not",
        )
    ctx.decide(
        loc, f"{select}: Chaos Toolkit caps qty at the pods it finds; here fewer pods than asked fail the injection"
    )
    return select


def terminate_pods(
    ctx: Context, loc: Loc, name: str, args: dict[str, Any], stack: StackInfo, options: ConvertOptions
) -> list[Item] | None:
    """chaosk8s terminate_pods → pod.delete on the kubernetes target with the same namespace and label selector."""
    aloc: Loc = (*loc, "provider", "arguments")
    for key in args:
        if key not in _TERMINATE_ARGS and key != "secrets":
            ctx.refuse((*aloc, key), f"terminate_pods has no argument {key!r}")
            return None
    if args.get("name_pattern"):
        ctx.refuse(
            (*aloc, "name_pattern"),
            "a regular expression on pod names cannot be expressed (pods are chosen "
            "among a target's label selector): narrow the label selector instead",
        )
        return None
    ns, selector = args.get("ns", "default"), args.get("label_selector")
    target = _mapped_target(ctx, aloc, [name, selector], stack, options)
    if not target:
        if not selector:
            ctx.refuse(
                aloc,
                f"no label_selector: Chaos Toolkit picks among every pod of namespace {ns!r}; choose the "
                f"stack target with `--target '{name}=TARGET'`",
            )
            return None
        wanted = normalized_selector(selector)
        found = [
            k.target
            for k in stack.kube
            if k.resource == "pods" and k.namespace == ns and normalized_selector(k.label_selector) == wanted
        ]
        what = f"the pods {selector!r} in namespace {ns!r}"
        target = _kube_target(ctx, aloc, name, found, what, stack, options) or ""
    select = _pod_select(ctx, aloc, args)
    if not target or select is None:
        return None
    params: dict[str, Any] = {}
    grace = _int(args.get("grace_period", -1))
    if grace is None:
        ctx.refuse((*aloc, "grace_period"), "grace_period must be a whole number of seconds")
        return None
    if grace >= 0:
        params["grace_period_s"] = grace
    if args.get("secrets") is not None or "secrets" in ctx.source.data:
        ctx.decide(
            aloc,
            "the cluster is reached through the stack target's `api` (its kubeconfig or token_env), "
            "not through the experiment's secrets",
        )
    what = f"pod.delete on {target!r}: delete {select} of its pods; the rollback waits until the controller has "
    what += "replaced them and verifies every replica ready"
    return [FaultItem("pod.delete", target, select, params, frozenset({f"pods:{target}"}), what)]


def scale_deployment(
    ctx: Context,
    loc: Loc,
    name: str,
    args: dict[str, Any],
    stack: StackInfo,
    options: ConvertOptions,
    open_keys: set[str],
) -> list[Item] | None:
    """chaosk8s scale_deployment → deployment.scale; a later one of the same Deployment undoes it."""
    aloc: Loc = (*loc, "provider", "arguments")
    deployment, ns, replicas = args.get("name"), args.get("ns", "default"), _int(args.get("replicas"))
    if not isinstance(deployment, str) or replicas is None or replicas < 0:
        ctx.refuse(aloc, "scale_deployment needs `name` (the Deployment) and `replicas` (a whole number)")
        return None
    target = _mapped_target(ctx, aloc, [name, deployment], stack, options)
    if not target:
        found = [
            k.target
            for k in stack.kube
            if k.resource == "deployment" and k.deployment == deployment and k.namespace == ns
        ]
        target = _kube_target(ctx, aloc, name, found, f"Deployment {deployment!r} in {ns!r}", stack, options) or ""
    if not target:
        return None
    key = f"scale:{target}"
    if key in open_keys:
        what = (
            f"scales {deployment!r} back to {replicas}: undone by the automatic rollback of the earlier "
            "deployment.scale, which restores the replica count found before the fault and verifies it ready"
        )
        return [UndoItem(frozenset({key}), what)]
    what = f"deployment.scale of {target!r} to {replicas} replicas; its rollback restores the count found before"
    return [FaultItem("deployment.scale", target, None, {"replicas": replicas}, frozenset({key}), what)]


def idle_for(ctx: Context, loc: Loc, args: dict[str, Any]) -> list[Item] | None:
    duration = args.get("duration")
    if not isinstance(duration, int | float) or isinstance(duration, bool) or duration < 0:
        ctx.refuse((*loc, "provider", "arguments", "duration"), "idle_for needs a duration in seconds")
        return None
    ctx.decide((*loc, "provider"), f"idle_for({duration:g}) only waits: {duration:g}s pass on the timeline")
    return [WaitItem(float(duration))]
