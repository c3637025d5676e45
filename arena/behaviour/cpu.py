"""CPU inside a container: busy threads a code path started, the CFS quota of the container's CPU limit, and what
that does to the requests the process serves.

Why it is shaped this way: a container's CPU limit is a CFS quota per 100 ms period. Busy threads that want more
than the quota exhaust it early in every period and the whole cgroup is throttled until the next one, so a request
arriving meanwhile waits for the next period and then shares the quota with the busy threads. Without a limit the
threads take spare node CPU and requests are barely affected. The counters are cAdvisor's
(``container_cpu_usage_seconds_total``, ``container_cpu_cfs_periods_total``,
``container_cpu_cfs_throttled_periods_total``), kept on the arena's clock and exported only for containers that
have had busy threads (the others would be flat lines).
"""

from __future__ import annotations

from typing import Any

from arena.behaviour.world import World, meta, pod_key
from arena.hooks import ClusterView, Obj
from arena.objects import parse_quantity

PERIOD_MS = 100.0
IDLE_CORES = 0.005


def limit_cores(container: Obj) -> float | None:
    raw = ((container.get("resources") or {}).get("limits") or {}).get("cpu")
    if raw is None:
        return None
    try:
        return max(float(parse_quantity(raw)), 0.001)
    except ValueError:
        return None


def _key(world: World, pod: Obj, container: Obj) -> tuple[str, str, int]:
    name = str(container.get("name"))
    return (pod_key(pod), name, world.rt.instance(pod, name))


def set_burners(world: World, pod: Obj, container: Obj, threads: int, log: str | None) -> None:
    """Start (threads > 0) or stop the busy threads of this container instance; logs when they start."""
    key = _key(world, pod, container)
    before = world.rt.burners.get(key, 0)
    if before == threads:
        return
    account(world.rt, key, pod, container)  # close the interval at the old demand
    world.rt.burners[key] = threads
    if threads and not before and log:
        world.rt.log(pod, str(container.get("name")), log)


def stretch(world: World, pod: Obj, container: Obj, work_ms: float) -> float:
    """How long ``work_ms`` of CPU takes in this container now (real ms)."""
    busy = world.rt.burners.get(_key(world, pod, container), 0)
    if not busy:
        return work_ms
    limit = limit_cores(container)
    if limit is None or busy + IDLE_CORES <= limit:
        return work_ms
    share_ms = PERIOD_MS * limit / (busy + 1)  # the request's thread gets its share of each period's quota
    periods = work_ms / share_ms
    wait = PERIOD_MS * (1 - limit / (busy + 1)) * world.rt.rng.random()  # the rest of the throttled period
    return wait + periods * PERIOD_MS


def account(rt: Any, key: tuple[str, str, int], pod: Obj, container: Obj) -> list[float]:
    """Advance this container's counters to now: [last time, usage seconds, periods, throttled periods]."""
    now = rt.clock()
    acc: list[float] = rt.cpu_acc.setdefault(key, [now, 0.0, 0.0, 0.0])
    dt = max(now - acc[0], 0.0)
    demand = rt.burners.get(key, 0) + IDLE_CORES
    limit = limit_cores(container)
    used = demand if limit is None else min(demand, limit)
    periods = dt * 1000.0 / PERIOD_MS
    acc[0] = now
    acc[1] += used * dt
    acc[2] += periods
    if limit is not None and demand > limit:
        acc[3] += periods
    return acc


def cpu_metrics(view: ClusterView, rt: Any) -> list[str]:
    """cAdvisor's CPU series for the containers that have had busy threads (labelled like the kubelet's)."""
    rows: dict[str, list[str]] = {
        "container_cpu_usage_seconds_total": [],
        "container_cpu_cfs_periods_total": [],
        "container_cpu_cfs_throttled_periods_total": [],
    }
    for pod in view.list("Pod"):
        for c in (pod.get("spec") or {}).get("containers") or []:
            name = str(c.get("name"))
            key = (pod_key(pod), name, rt.instances.get((pod_key(pod), name), 0))
            if key not in rt.burners:
                continue
            acc = account(rt, key, pod, c)
            labels = f'namespace="{meta(pod).get("namespace")}",pod="{meta(pod).get("name")}",container="{name}"'
            rows["container_cpu_usage_seconds_total"].append(f"{{{labels}}} {acc[1]:.6f}")
            if limit_cores(c) is not None:
                rows["container_cpu_cfs_periods_total"].append(f"{{{labels}}} {int(acc[2])}")
                rows["container_cpu_cfs_throttled_periods_total"].append(f"{{{labels}}} {int(acc[3])}")
    lines: list[str] = []
    for metric, samples in rows.items():
        if samples:
            lines += [f"# TYPE {metric} counter", *(metric + s for s in samples)]
    return lines
