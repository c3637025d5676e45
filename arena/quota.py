"""Namespace resource policy at pod admission: LimitRange (defaults, then per-container max) and ResourceQuota (every
container must declare what a quota constrains; the namespace's total may not exceed ``hard``).

Why here and in this order: the API server runs the LimitRanger admission plugin (it mutates: a container without a
request or limit gets the LimitRange's ``defaultRequest``/``default``) before the ResourceQuota plugin, so a
LimitRange default can make a pod admissible under a quota. A refusal is a 403 the ReplicaSet controller turns into a
``FailedCreate`` event, so a quota fault shows as a Deployment that never gets its pods, as on a cluster.
"""

from __future__ import annotations

from typing import Any

from arena.errors import forbidden
from arena.objects import parse_quantity
from arena.resources import BY_KIND, ResourceType
from arena.store import Obj, Store

PODS = BY_KIND["Pod"]
COMPUTE = ("cpu", "memory")


def _containers(spec: Obj) -> list[Obj]:
    return list(spec.get("containers") or [])


def _q(v: Any) -> float:
    try:
        return parse_quantity(v)
    except ValueError:
        return 0.0


def apply_limit_ranges(store: Store, rt: ResourceType, pod: Obj) -> None:
    """LimitRanger: defaults first, then each container's limits against ``max``; raises 403 on a violation."""
    ns = pod["metadata"].get("namespace")
    name = str(pod["metadata"].get("name") or "")
    spec = pod.get("spec") or {}
    for lr in store.list("limitranges", ns):
        for item in (lr.get("spec") or {}).get("limits") or []:
            if item.get("type", "Container") != "Container":
                continue
            for c in _containers(spec) + list(spec.get("initContainers") or []):
                res = c.setdefault("resources", {})
                for key, default in (("limits", item.get("default")), ("requests", item.get("defaultRequest"))):
                    for r, v in (default or {}).items():
                        if r not in (res.get(key) or {}):
                            res.setdefault(key, {})[r] = v
                for r, v in (res.get("limits") or {}).items():
                    if r not in (res.get("requests") or {}) and r in COMPUTE:
                        res.setdefault("requests", {})[r] = v  # a limit without a request defaults the request
            for c in _containers(spec):
                limits = (c.get("resources") or {}).get("limits") or {}
                for r, mx in (item.get("max") or {}).items():
                    if r in limits and _q(limits[r]) > _q(mx):
                        raise forbidden(rt, name, f"maximum {r} usage per Container is {mx}, but limit is {limits[r]}")


def _usage(pod: Obj) -> dict[str, float]:
    out = {"pods": 1.0}
    for c in _containers(pod.get("spec") or {}):
        res = c.get("resources") or {}
        for key in ("requests", "limits"):
            for r in COMPUTE:
                v = (res.get(key) or {}).get(r)
                if v is not None:
                    out[f"{key}.{r}"] = out.get(f"{key}.{r}", 0.0) + _q(v)
    for r in COMPUTE:
        if f"requests.{r}" in out:
            out[r] = out[f"requests.{r}"]
    return out


def _tracked(resource: str) -> tuple[str, str] | None:
    """(requests|limits, cpu|memory) a quota's ``hard`` key constrains per container, or None."""
    if resource in COMPUTE:
        return "requests", resource
    key, _, r = resource.partition(".")
    if key in ("requests", "limits") and r in COMPUTE:
        return key, r
    return None


def admit_pod_quota(store: Store, rt: ResourceType, pod: Obj) -> None:
    """ResourceQuota: each constrained resource must be declared by every container, and the namespace's usage plus
    this pod's must stay within ``hard``; raises 403 otherwise."""
    ns = pod["metadata"].get("namespace")
    name = str(pod["metadata"].get("name") or "")
    quotas = sorted(store.list("resourcequotas", ns), key=lambda q: q["metadata"]["name"])
    if not quotas:
        return
    mine = _usage(pod)
    used: dict[str, float] = {}
    for p in store.list(PODS.key, ns):
        if (p.get("status") or {}).get("phase") in ("Succeeded", "Failed") or p["metadata"].get("deletionTimestamp"):
            continue
        for k, v in _usage(p).items():
            used[k] = used.get(k, 0.0) + v
    for quota in quotas:
        hard = (quota.get("spec") or {}).get("hard") or {}
        qname = quota["metadata"]["name"]
        missing: dict[str, list[str]] = {}
        for resource in hard:
            tracked = _tracked(resource)
            if tracked is None:
                continue
            key, r = tracked
            for c in _containers(pod.get("spec") or {}):
                if r not in ((c.get("resources") or {}).get(key) or {}):
                    missing.setdefault(resource, []).append(str(c.get("name")))
        if missing:
            what = ",".join(sorted(missing))
            who = ",".join(sorted({n for names in missing.values() for n in names}))
            raise forbidden(rt, name, f"failed quota: {qname}: must specify {what} for: {who}")
        over = [r for r, limit in hard.items() if r in mine and used.get(r, 0.0) + mine[r] > _q(limit) + 1e-9]
        if over:
            req = ",".join(f"{r}={_fmt(r, mine[r])}" for r in sorted(over))
            use = ",".join(f"{r}={_fmt(r, used.get(r, 0.0))}" for r in sorted(over))
            lim = ",".join(f"{r}={hard[r]}" for r in sorted(over))
            raise forbidden(rt, name, f"exceeded quota: {qname}, requested: {req}, used: {use}, limited: {lim}")


def _fmt(resource: str, value: float) -> str:
    if resource.endswith("memory") or resource == "memory":
        for unit, size in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
            if value >= size and value % size == 0:
                return f"{int(value // size)}{unit}"
        return str(int(value))
    if resource == "pods":
        return str(int(value))
    return f"{round(value * 1000)}m" if value % 1 else str(int(value))
