"""The HorizontalPodAutoscaler controller's status (autoscaling/v2, CPU utilisation): what ``kubectl describe hpa``
shows. Utilisation is a share of the containers' CPU requests, so a target whose containers request no CPU cannot be
measured (``ScalingActive=False``, ``FailedGetResourceMetric``: missing request for cpu), exactly as on a cluster.
Usage comes from the nominal per-pod CPU the arena's metrics report; replicas are not changed (the arena's load does
not drive CPU), so the status is the fault's evidence and the fix's proof."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from arena.objects import now, parse_quantity
from arena.resources import BY_KIND
from arena.store import Obj

if TYPE_CHECKING:
    from arena.cluster import Cluster

HPA = BY_KIND["HorizontalPodAutoscaler"]
NOMINAL_CPU = 0.01
"""CPU cores a pod uses at the arena's background load (10m)."""


def _cond(kind: str, status: str, reason: str, message: str) -> Obj:
    return {"type": kind, "status": status, "reason": reason, "message": message}


def hpa_status(hpa: Obj, target: Obj | None, pods: list[Obj]) -> Obj:
    spec = hpa.get("spec") or {}
    ref = spec.get("scaleTargetRef") or {}
    current = int(((target or {}).get("status") or {}).get("replicas") or 0)
    if target is None:
        msg = (
            "the HPA controller was unable to get the target's current scale: "
            f'deployments/scale "{ref.get("name")}" not found'
        )
        return {
            "currentReplicas": 0,
            "desiredReplicas": 0,
            "conditions": [_cond("AbleToScale", "False", "FailedGetScale", msg)],
        }
    able = _cond(
        "AbleToScale", "True", "SucceededGetScale", "the HPA controller was able to get the target's current scale"
    )
    status: Obj = {"currentReplicas": current, "desiredReplicas": current}
    cpu = next(
        (
            m
            for m in spec.get("metrics") or []
            if m.get("type") == "Resource" and (m.get("resource") or {}).get("name") == "cpu"
        ),
        None,
    )
    missing = [
        (c.get("name"), p["metadata"]["name"])
        for p in pods
        for c in (p.get("spec") or {}).get("containers") or []
        if "cpu" not in ((c.get("resources") or {}).get("requests") or {})
    ]
    if cpu is None or not pods:
        why = "no metrics" if cpu is None else "no pods"
        status["conditions"] = [able, _cond("ScalingActive", "False", "FailedGetResourceMetric", why)]
        return status
    if missing:
        container, pod = missing[0]
        msg = (
            "the HPA was unable to compute the replica count: failed to get cpu utilization: missing request for "
            f"cpu in container {container} of Pod {pod}"
        )
        status["currentMetrics"] = None
        status["conditions"] = [able, _cond("ScalingActive", "False", "FailedGetResourceMetric", msg)]
        return status
    requested = sum(
        parse_quantity(((c.get("resources") or {}).get("requests") or {}).get("cpu"))
        for p in pods
        for c in (p.get("spec") or {}).get("containers") or []
    )
    used = NOMINAL_CPU * len(pods)
    utilization = round(100 * used / requested) if requested else 0
    status["currentMetrics"] = [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "current": {"averageUtilization": utilization, "averageValue": f"{round(used / len(pods) * 1000)}m"},
            },
        }
    ]
    lo, hi = int(spec.get("minReplicas") or 1), int(spec.get("maxReplicas") or 1)
    limited = current <= lo or current >= hi
    status["conditions"] = [
        able,
        _cond(
            "ScalingActive",
            "True",
            "ValidMetricFound",
            "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage "
            "of request)",
        ),
        _cond(
            "ScalingLimited",
            "True" if limited else "False",
            "TooFewReplicas" if current <= lo else ("TooManyReplicas" if current >= hi else "DesiredWithinRange"),
            "the desired replica count is less than the minimum replica count"
            if current <= lo
            else "the desired count is within the acceptable range",
        ),
    ]
    return status


class HorizontalPodAutoscalerController:
    watches = frozenset({"horizontalpodautoscalers.autoscaling", "pods", "deployments.apps"})

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def reconcile(self, t: float) -> None:
        store = self.cluster.store
        for hpa in store.list(HPA.key):
            ns = hpa["metadata"].get("namespace")
            ref: Any = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
            target = (
                store.get("deployments.apps", ns, str(ref.get("name") or ""))
                if ref.get("kind") == "Deployment"
                else None
            )
            selector = (((target or {}).get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
            pods = [
                p
                for p in store.list("pods", ns)
                if target is not None
                and (p.get("status") or {}).get("phase") == "Running"
                and not p["metadata"].get("deletionTimestamp")
                and all((p["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
            ]
            status = hpa_status(hpa, target, pods)
            old = hpa.get("status") or {}
            if _without_times(old) == _without_times(status):
                continue
            stamp = now()
            for c in status.get("conditions") or []:
                prev = next((o for o in old.get("conditions") or [] if o.get("type") == c["type"]), None)
                same = prev is not None and prev.get("status") == c["status"]
                c["lastTransitionTime"] = prev.get("lastTransitionTime") if same and prev else stamp
            new = copy.deepcopy(hpa)
            new["status"] = status
            self.cluster.rest.write(HPA, new)


def _without_times(status: Obj) -> Obj:
    out = copy.deepcopy(status)
    for c in out.get("conditions") or []:
        c.pop("lastTransitionTime", None)
    return out
