"""The ready-capacity guard: refuse writes that would terminate Ready pods.

Why it exists: a failed transaction is undone by restoring object specs from their pre-images, and a spec is not a
process. If a write terminates a Ready pod while a dependency is broken, its replacement crash-loops, and restoring the
spec brings back a pod that crash-loops too: severity ends worse than before, whatever the undo does. So a write may
not terminate a Ready pod. Rolling updates are fine when they keep every Ready pod until its replacement is Ready
(a Deployment with maxUnavailable 0, a StatefulSet or DaemonSet with OnDelete): if the new pods never become Ready, the
old ones keep serving and the undo is exact. Scaling down is fine while the replicas left cover the Ready pods
(controllers remove pods that are not Ready first). Template changes are judged under the strategy of the write's
result and of the pre-image, because the undo rolls the template back under the pre-image's strategy.

``ready_capacity_loss`` is pure: it reads the live object (with its status) and the server's dry-run result.
"""

from __future__ import annotations

import math
from typing import Any

Obj = dict[str, Any]

SCALED_KINDS = frozenset({"Deployment", "ReplicaSet", "StatefulSet"})
WORKLOAD_KINDS = SCALED_KINDS | {"DaemonSet"}
UNDO_NOTE = "undo restores specs, not running processes"
ROLLING = "a rolling update keeps Ready pods until their replacements are Ready"


def ready_capacity_loss(verb: str, kind: str, pre: Obj | None, after: Obj | None) -> str | None:
    """Why the write ``verb`` on ``kind`` would terminate Ready pods, with what to do instead; None if it would not.

    ``pre`` is the live object before the write (None: it does not exist yet), ``after`` the server's dry-run result
    (for ``scale`` possibly a ``Scale`` object; ignored for ``delete``).
    """
    if pre is None:
        return None
    if kind == "Pod":
        return _pod_loss(verb, pre, after)
    if kind == "Node":
        return _node_loss(pre, after)
    if kind not in WORKLOAD_KINDS:
        return None
    ready = _ready(kind, pre)
    if ready <= 0:
        return None
    pods = _pods(ready)
    if verb == "delete":
        instead = "Restart its Deployment" if kind == "ReplicaSet" else "Restart it"
        return (
            f"it has {pods}, and deleting it terminates them; {UNDO_NOTE}. {instead} with `kubectl rollout restart` "
            f"instead ({ROLLING}), or delete only workloads that have no Ready pods."
        )
    if after is None:
        return None
    spec_after = after.get("spec") or {}
    deadline = _deadline(after)
    if deadline is not None and (_deadline(pre) is None or deadline < (_deadline(pre) or 0)):
        return (
            f"activeDeadlineSeconds {deadline} makes the kubelet kill each of its pods that long after it starts, "
            f"the {pods} included; {UNDO_NOTE}. Leave the pods' deadline as it is."
        )
    if kind in SCALED_KINDS:
        replicas = int(spec_after.get("replicas", 1))
        if replicas < ready:
            first = " (pods that are not Ready are removed first)" if kind != "StatefulSet" else ""
            return (
                f"scaling it to {_count(replicas, 'replica')} terminates some of its {pods}; {UNDO_NOTE}. "
                f"Keep at least {_count(ready, 'replica')}{first}."
            )
    if after.get("kind") == "Scale" or verb == "scale":
        return None
    template_before = (pre.get("spec") or {}).get("template")
    template_after = spec_after.get("template")
    if template_after is None or template_after == template_before:
        return None
    for spec in (spec_after, pre.get("spec") or {}):
        reason = _rollout_loss(kind, spec, pre, pods)
        if reason:
            return reason
    return None


def resolve_max_unavailable(
    rolling: Obj, replicas: int, *, default_surge: int | str = "25%", default_unavailable: int | str = "25%"
) -> int:
    """``maxUnavailable`` as Kubernetes resolves it: an int, or a percentage of the desired replicas rounded down
    (maxSurge's rounds up); when both come to 0, one pod may be unavailable."""
    surge = _resolve(rolling.get("maxSurge", default_surge), replicas, round_up=True)
    unavailable = _resolve(rolling.get("maxUnavailable", default_unavailable), replicas, round_up=False)
    return 1 if surge == 0 and unavailable == 0 else unavailable


def _rollout_loss(kind: str, spec: Obj, pre: Obj, pods: str) -> str | None:
    """Whether rolling a new template out under ``spec``'s strategy may terminate Ready pods first."""
    if kind == "Deployment":
        strategy = spec.get("strategy") or {}
        if strategy.get("type") == "Recreate":
            return (
                f"it uses strategy Recreate, so a pod template change (or its undo) first terminates its {pods}; "
                f"{UNDO_NOTE}. In a separate write, set spec.strategy to RollingUpdate with maxUnavailable: 0 and "
                f"maxSurge: 1 ({ROLLING}), then change the template."
            )
        replicas = int(spec.get("replicas", 1))
        unavailable = resolve_max_unavailable(strategy.get("rollingUpdate") or {}, replicas)
        if unavailable > 0:
            return (
                f"its rolling update may take down {unavailable} of its {pods} before their replacements are Ready "
                f"(maxUnavailable resolves to {unavailable} of {replicas} replicas); {UNDO_NOTE}. In a separate "
                f"write, set spec.strategy.rollingUpdate to maxUnavailable: 0 and maxSurge: 1 ({ROLLING}), then "
                "change the template."
            )
        return None
    if kind in ("StatefulSet", "DaemonSet"):
        strategy = spec.get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") != "RollingUpdate":
            return None
        if kind == "DaemonSet":
            desired = int((pre.get("status") or {}).get("desiredNumberScheduled") or 0)
            rolling = strategy.get("rollingUpdate") or {}
            if resolve_max_unavailable(rolling, desired, default_surge=0, default_unavailable=1) == 0:
                return None
        return (
            f"its RollingUpdate strategy terminates each Ready pod before its replacement runs, so a pod template "
            f"change (or its undo) takes down its {pods}; {UNDO_NOTE}. In a separate write, set "
            "spec.updateStrategy.type to OnDelete, then change the template: it applies to pods as they are "
            "recreated, and pods that are not Ready may be deleted."
        )
    return None  # a ReplicaSet's template applies only to pods it creates from now on


def _pod_loss(verb: str, pre: Obj, after: Obj | None) -> str | None:
    if not _pod_is_ready(pre):
        return None
    if verb == "delete":
        return (
            f"the pod is Ready, and {UNDO_NOTE}. Restart its workload with `kubectl rollout restart` ({ROLLING}), "
            "or act on pods that are not Ready."
        )
    if after is not None and "spec" in after and _images(after) != _images(pre):
        return (
            f"the pod is Ready and changing an image restarts its container, and {UNDO_NOTE}. Change the image in its "
            f"workload's pod template instead ({ROLLING}), or act on pods that are not Ready."
        )
    return None


def _deadline(obj: Obj) -> int | None:
    spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    value = spec.get("activeDeadlineSeconds") if isinstance(spec, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _node_loss(pre: Obj, after: Obj | None) -> str | None:
    """A taint with effect NoExecute evicts every pod on the node that does not tolerate it, whatever its namespace
    (the taint manager), Ready or not; NoSchedule and cordoning keep the running pods."""
    new = sorted(_no_execute(after) - _no_execute(pre)) if isinstance(after, dict) else []
    if not new:
        return None
    taints = ", ".join(f"{key}={value or ''}:NoExecute" for key, value in new)
    return (
        f"the taint {taints} would evict every pod on the node that does not tolerate it, in every namespace; "
        f"{UNDO_NOTE}. Cordon the node instead (`kubectl cordon`, or a NoSchedule taint): no new pods are scheduled "
        "there and the running ones keep serving."
    )


def _no_execute(node: Obj) -> set[tuple[str, str]]:
    taints = (node.get("spec") or {}).get("taints") if isinstance(node.get("spec"), dict) else None
    return {
        (str(t.get("key") or ""), str(t.get("value") or ""))
        for t in taints or []
        if isinstance(t, dict) and t.get("effect") == "NoExecute"
    }


def _pod_is_ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _images(pod: Obj) -> list[tuple[str, Any, Any]]:
    spec = pod.get("spec") or {}
    return [
        (group, c.get("name"), c.get("image"))
        for group in ("initContainers", "containers")
        for c in spec.get(group) or []
    ]


def _ready(kind: str, obj: Obj) -> int:
    status = obj.get("status") or {}
    return int(status.get("numberReady" if kind == "DaemonSet" else "readyReplicas") or 0)


def _pods(n: int) -> str:
    return _count(n, "Ready pod")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _resolve(value: Any, total: int, *, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        fraction = int(value[:-1]) * total / 100
        return math.ceil(fraction) if round_up else math.floor(fraction)
    return int(value)
