"""Which unhealthy capacity is a Deployment converging, not a failure (pure; no I/O here).

Why: mu counts every pod that is not Ready and every Deployment short of its replicas, which is right for TNR (a
transaction must never hide capacity it took away) but wrong for opening an incident. A rolling restart, a scale-up,
a config reload or a pod deleted and recreated by its ReplicaSet all show, for as long as a container takes to start,
a Pending or not-Ready pod and a Deployment "1/2 available". On a real cluster that lasts seconds to minutes, longer
than the detector's confirmation, so routine changes would open incidents.

Kubernetes' own semantics separate the two. A pod is *starting*, not failing, when all of these hold:
- it belongs (ownerReferences) to a ReplicaSet of a Deployment that still serves (availableReplicas >= 1) and whose
  ``Progressing`` condition is not False (the controller has not reported ``ProgressDeadlineExceeded``);
- the scheduler placed it (no ``PodScheduled=False``): an unschedulable pod is a failure, not a start;
- no container of it has restarted, terminated or waits in a bad state (CrashLoopBackOff, ErrImagePull, ...);
- it is younger than the startup grace (a pod that never becomes Ready is a failure once the grace has passed).
A Deployment short of replicas is converging when it still serves and every missing replica is a starting pod of its
own. Nothing here names an object: only ownership, conditions, container states and ages are read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stratus.contracts import Severity
from stratus.severity import BAD_WAITING, pod_problems

Obj = dict[str, Any]

STARTING_PROBLEMS = frozenset({"Pending", "not Ready"})


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _controller(obj: Obj, kind: str) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == kind and ref.get("controller", True):
            return str(ref.get("name"))
    return None


def _age_s(obj: Obj, now: datetime) -> float | None:
    stamp = (obj.get("metadata") or {}).get("creationTimestamp")
    if not stamp:
        return None
    try:
        created = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return None
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return (now - created).total_seconds()


def _condition(obj: Obj, ctype: str) -> Obj:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return dict(c)
    return {}


def serving(deployment: Obj) -> bool:
    """The Deployment still has an available replica and its controller has not given up progressing."""
    available = int((deployment.get("status") or {}).get("availableReplicas") or 0)
    return available >= 1 and _condition(deployment, "Progressing").get("status") != "False"


def restarted(pod: Obj) -> bool:
    status = pod.get("status") or {}
    return any(
        int(cs.get("restartCount") or 0) > 0
        for cs in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
    )


def starting(pod: Obj, now: datetime, grace_s: float) -> bool:
    """A pod on its way to Ready (see the module docstring), judged from its own status alone."""
    if set(pod_problems(pod)) - STARTING_PROBLEMS or not pod_problems(pod):
        return False
    if _condition(pod, "PodScheduled").get("status") == "False":
        return False
    status = pod.get("status") or {}
    for cs in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        state = cs.get("state") or {}
        if int(cs.get("restartCount") or 0) > 0 or ((state.get("waiting") or {}).get("reason")) in BAD_WAITING:
            return False
        if "terminated" in state and (state.get("terminated") or {}).get("reason") != "Completed":
            return False
    age = _age_s(pod, now)
    return age is not None and 0 <= age <= grace_s


def converging(
    pods: list[Obj], replicasets: list[Obj], deployments: list[Obj], now: datetime, grace_s: float
) -> set[str]:
    """The items (``pod/NAME``, ``deployment/NAME``, as ``stratus.severity.assess`` names them) that are a serving
    Deployment converging: its pods starting, or, since the severity was measured a moment before these objects
    were read, already Ready, terminating or replaced; the Deployment itself when every missing replica is one of
    those starting pods, or it is whole again."""
    rs_owner = {_name(rs): _controller(rs, "Deployment") for rs in replicasets}
    by_name = {_name(d): d for d in deployments}
    out: set[str] = set()
    starting_of: dict[str, int] = {}
    for pod in pods:
        rs = _controller(pod, "ReplicaSet")
        dep_name = rs_owner.get(rs) if rs else None
        dep = by_name.get(dep_name) if dep_name else None
        if dep is None or dep_name is None or not serving(dep):
            continue
        if (pod.get("metadata") or {}).get("deletionTimestamp") or (not pod_problems(pod) and not restarted(pod)):
            out.add(f"pod/{_name(pod)}")
        elif starting(pod, now, grace_s):
            out.add(f"pod/{_name(pod)}")
            starting_of[dep_name] = starting_of.get(dep_name, 0) + 1
    for name, dep in by_name.items():
        desired = int((dep.get("spec") or {}).get("replicas", 1) or 0)
        available = int((dep.get("status") or {}).get("availableReplicas") or 0)
        if available >= desired or (serving(dep) and starting_of.get(name, 0) >= desired - available):
            out.add(f"deployment/{name}")
    return out


def gone(severity: Severity, pods: list[Obj]) -> set[str]:
    """Pods the severity counted that no longer exist (deleted and replaced between the two reads)."""
    present = {f"pod/{_name(p)}" for p in pods}
    return {key for u in severity.unhealthy if (key := u.split(":", 1)[0]).startswith("pod/") and key not in present}


def without_converging(severity: Severity, excused: set[str], w_unhealthy: float) -> Severity:
    """The severity the detector decides on: the unhealthy items that are only convergence taken out (alerts and SLO
    violations always stay; a crashed scope stays crashed)."""
    if severity.crashed or not excused:
        return severity
    kept = [u for u in severity.unhealthy if u.split(":", 1)[0] not in excused]
    removed = len(severity.unhealthy) - len(kept)
    if not removed:
        return severity
    return severity.model_copy(update={"unhealthy": kept, "mu": max(0.0, severity.mu - w_unhealthy * removed)})
