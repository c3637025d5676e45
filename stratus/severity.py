"""Severity ``mu(s) = w1*|A| + w2*|V| + w3*|L|`` of a scope, from three oracles.

- A, firing alerts in scope: Alertmanager's API (``/api/v2/alerts``), when configured.
- V, SLO violations: HTTP probes (a URL that must answer 2xx within a latency budget) and, when configured,
  Prometheus queries whose non-empty result is a violation.
- L, unhealthy capacity, from the Kubernetes API: pods not Ready or waiting in a bad state, Deployments/StatefulSets
  with fewer available replicas than desired, Services whose selector finds no ready endpoint, unbound PVCs,
  HorizontalPodAutoscalers that cannot scale their target (capacity that can no longer grow), NotReady or
  unschedulable nodes, and objects whose deletion has waited on their finalizers longer than ``stuck_deletion_s``
  (Kubernetes deletes an object only once every finalizer is removed: one left means a controller that cannot or
  will not finish, and whatever waits on the name or the resource waits with it).
- Optionally, latency regressions from traces (``stratus.latency``): V gains one violation per service whose latest
  requests take far longer than they did while the scope was healthy, even under the probes' budget.

``mu = inf`` when the API cannot be read or every workload in scope is down: an action that takes the whole scope
down must never look like an improvement. The computation (``assess``) is pure; ``SeverityMeter`` does the I/O.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from stratus.contracts import Severity
from stratus.settings import SeveritySettings

if TYPE_CHECKING:
    from stratus.latency import LatencyOracle

log = logging.getLogger(__name__)
Obj = dict[str, Any]
MAX_QUERY_BYTES = 1_000_000
"""A Prometheus answer larger than this is not parsed (counted as a violation: the query asks for too much)."""
FINALIZED_KINDS = ("ConfigMap", "Secret", "ServiceAccount", "ReplicaSet", "Job")
"""Kinds read only for stuck deletions (the kinds mu already reads are checked too)."""

BAD_WAITING = {
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "RunContainerError",
}


class ObjectLister(Protocol):
    async def list_objects(self, kind: str, namespace: str | None) -> list[Obj]:
        """Objects of ``kind`` (Pod, Deployment, ...) as JSON-shaped dicts; cluster-scoped kinds take None."""
        ...


@dataclass(frozen=True)
class Weights:
    alerts: float = 1.0
    violations: float = 1.0
    unhealthy: float = 1.0


@dataclass(frozen=True)
class Probe:
    """An HTTP SLO: ``url`` answers 2xx within ``max_latency_s``."""

    name: str
    url: str
    max_latency_s: float = 2.0


@dataclass
class Snapshot:
    """What the oracles read for one scope."""

    pods: list[Obj] = field(default_factory=list)
    deployments: list[Obj] = field(default_factory=list)
    statefulsets: list[Obj] = field(default_factory=list)
    services: list[Obj] = field(default_factory=list)
    endpoints: list[Obj] = field(default_factory=list)
    pvcs: list[Obj] = field(default_factory=list)
    autoscalers: list[Obj] = field(default_factory=list)
    nodes: list[Obj] = field(default_factory=list)
    others: list[tuple[str, Obj]] = field(default_factory=list)
    """(kind, object) of ``FINALIZED_KINDS``, read for stuck deletions only."""
    alerts: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    now: float = field(default_factory=time.time)
    stuck_deletion_s: float = 0.0
    """0: stuck deletions are not counted."""


def _name(obj: Obj) -> str:
    return str(obj.get("metadata", {}).get("name", "?"))


def pod_problems(pod: Obj) -> list[str]:
    """Why a pod counts as unhealthy capacity (empty when it is fine or has completed)."""
    status = pod.get("status") or {}
    phase = status.get("phase")
    if phase == "Succeeded" or pod.get("metadata", {}).get("deletionTimestamp"):
        return []
    problems: list[str] = []
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in BAD_WAITING:
            problems.append(f"{cs.get('name')} {waiting['reason']}")
    if phase == "Pending" and not problems:
        problems.append("Pending")
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    if not ready and not problems:
        problems.append("not Ready")
    return problems


def autoscaler_problem(hpa: Obj) -> str | None:
    """Why a HorizontalPodAutoscaler cannot do its job, from the conditions its controller reports: it cannot read
    or change its target's scale (``AbleToScale=False``), or it cannot compute a replica count from its metrics
    (``ScalingActive=False``, e.g. ``FailedGetResourceMetric`` when a container has no request for the resource).
    ``ScalingActive=False`` with reason ``ScalingDisabled`` is the target scaled to 0 on purpose: not a problem."""
    for cond in (hpa.get("status") or {}).get("conditions") or []:
        kind, reason = cond.get("type"), str(cond.get("reason") or "")
        if cond.get("status") != "False" or kind not in ("AbleToScale", "ScalingActive"):
            continue
        if kind == "ScalingActive" and reason == "ScalingDisabled":
            continue
        return f"{kind}=False ({reason or 'no reason'})"
    return None


def _epoch(stamp: object) -> float | None:
    if not isinstance(stamp, str) or len(stamp) > 64:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def stuck_deletion(obj: Obj, now: float, after_s: float) -> str | None:
    """Why an object's deletion is stuck: ``deletionTimestamp`` set more than ``after_s`` ago and finalizers still
    present (the API server removes the object only when its last finalizer is gone). None when it is not."""
    meta = obj.get("metadata") or {}
    finalizers = meta.get("finalizers") or []
    since = _epoch(meta.get("deletionTimestamp"))
    if after_s <= 0 or since is None or not isinstance(finalizers, list) or not finalizers:
        return None
    waited = now - since
    if waited <= after_s:
        return None
    names = ", ".join(str(f)[:100] for f in finalizers[:3]) + (", ..." if len(finalizers) > 3 else "")
    return f"deletion stuck {waited:.0f}s on finalizers [{names}]"


def _available_short(workload: Obj) -> str | None:
    desired = (workload.get("spec") or {}).get("replicas", 1)
    available = (workload.get("status") or {}).get("availableReplicas") or 0
    if desired is not None and available < desired:
        return f"{available}/{desired} available"
    return None


def _service_without_endpoints(svc: Obj, endpoints: dict[str, Obj]) -> bool:
    spec = svc.get("spec") or {}
    if not spec.get("selector") or spec.get("type") == "ExternalName":
        return False
    ep = endpoints.get(_name(svc)) or {}
    return not any(subset.get("addresses") for subset in ep.get("subsets") or [])


def assess(snap: Snapshot, weights: Weights = Weights()) -> Severity:
    unhealthy: list[str] = []
    for pod in snap.pods:
        problems = pod_problems(pod)
        if problems:
            unhealthy.append(f"pod/{_name(pod)}: {', '.join(problems)}")
    workloads = [("deployment", d) for d in snap.deployments] + [("statefulset", s) for s in snap.statefulsets]
    up = 0
    for kind, w in workloads:
        short = _available_short(w)
        if short:
            unhealthy.append(f"{kind}/{_name(w)}: {short}")
        if ((w.get("status") or {}).get("availableReplicas") or 0) > 0:
            up += 1
    eps = {_name(e): e for e in snap.endpoints}
    for svc in snap.services:
        if _service_without_endpoints(svc, eps):
            unhealthy.append(f"service/{_name(svc)}: no ready endpoints")
    for pvc in snap.pvcs:
        phase = (pvc.get("status") or {}).get("phase")
        if phase != "Bound":
            unhealthy.append(f"pvc/{_name(pvc)}: {phase or 'Pending'}")
    for hpa in snap.autoscalers:
        problem = autoscaler_problem(hpa)
        if problem:
            unhealthy.append(f"hpa/{_name(hpa)}: {problem}")
    for node in snap.nodes:
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (node.get("status") or {}).get("conditions") or []
        )
        if not ready:
            unhealthy.append(f"node/{_name(node)}: NotReady")
    if snap.stuck_deletion_s > 0:
        listed: list[tuple[str, Obj]] = [(k.lower(), w) for k, w in workloads]
        listed += [("pod", p) for p in snap.pods] + [("service", s) for s in snap.services]
        listed += [("pvc", p) for p in snap.pvcs] + [(k.lower(), o) for k, o in snap.others]
        for kind, obj in listed:
            stuck = stuck_deletion(obj, snap.now, snap.stuck_deletion_s)
            if stuck:
                unhealthy.append(f"{kind}/{_name(obj)}: {stuck}")
    crashed = bool(workloads) and up == 0
    if crashed:
        return Severity(mu=math.inf, alerts=snap.alerts, violations=snap.violations, unhealthy=unhealthy, crashed=True)
    mu = weights.alerts * len(snap.alerts) + weights.violations * len(snap.violations)
    mu += weights.unhealthy * len(unhealthy)
    return Severity(mu=mu, alerts=snap.alerts, violations=snap.violations, unhealthy=unhealthy)


class SeverityMeter:
    """Reads the three oracles for a scope and returns ``Severity``."""

    def __init__(
        self,
        lister: ObjectLister,
        *,
        weights: Weights = Weights(),
        alertmanager_url: str | None = None,
        prometheus_url: str | None = None,
        slo_queries: Sequence[tuple[str, str]] = (),
        probes: Callable[[str], Sequence[Probe]] = lambda scope: (),
        http: httpx.AsyncClient | None = None,
        stuck_deletion_s: float = 0.0,
        latency: LatencyOracle | None = None,
    ) -> None:
        self.lister = lister
        self.stuck_deletion_s = stuck_deletion_s
        self.latency = latency
        self.weights = weights
        self.alertmanager_url = alertmanager_url.rstrip("/") if alertmanager_url else None
        self.prometheus_url = prometheus_url.rstrip("/") if prometheus_url else None
        self.slo_queries = slo_queries
        self.probes = probes
        self.http = http or httpx.AsyncClient(timeout=5.0)

    @classmethod
    def from_settings(
        cls, settings: SeveritySettings, lister: ObjectLister, latency: LatencyOracle | None = None
    ) -> SeverityMeter:
        probes = {
            scope: [Probe(name=url, url=url, max_latency_s=settings.slo_max_latency_s) for url in urls]
            for scope, urls in settings.slo_probes.items()
        }
        return cls(
            lister,
            weights=Weights(settings.mu_w_alerts, settings.mu_w_violations, settings.mu_w_unhealthy),
            alertmanager_url=str(settings.alertmanager_url) if settings.alertmanager_url else None,
            prometheus_url=str(settings.prometheus_url) if settings.prometheus_url else None,
            probes=lambda scope: probes.get(scope, []),
            slo_queries=sorted(settings.slo_queries.items()),
            stuck_deletion_s=settings.stuck_deletion_s,
            latency=latency,
        )

    async def measure(self, scope: str) -> Severity:
        ns = None if scope == "cluster" else scope
        try:
            snap = await self._read_cluster(ns)
        except Exception as exc:  # the API itself is unreachable: the worst state there is
            return Severity(mu=math.inf, unhealthy=[f"api: unreachable ({exc!r})"], crashed=True)
        snap.alerts, snap.violations = await asyncio.gather(self._alerts(scope), self._violations(scope))
        if self.latency is not None:  # after the probes, so their requests are the latest spans
            snap.violations = sorted([*snap.violations, *await self.latency.violations(scope)])
        snap.stuck_deletion_s = self.stuck_deletion_s
        return assess(snap, self.weights)

    async def learn(self, scope: str, severity: Severity) -> None:
        """A probe of ``scope`` found it healthy (mu 0): its latencies become a healthy sample (at most one per
        ``latency_learn_interval_s``). Never raises."""
        if self.latency is None or severity.mu != 0 or severity.crashed:
            return
        try:
            await self.latency.learn(scope)
        except Exception:
            log.warning("healthy latency of %s not recorded", scope, exc_info=True)

    async def _read_cluster(self, ns: str | None) -> Snapshot:
        kinds = ("Pod", "Deployment", "StatefulSet", "Service", "Endpoints", "PersistentVolumeClaim")
        if ns is None:
            nodes = await self.lister.list_objects("Node", None)
            return Snapshot(nodes=nodes)
        results, hpas, others = await asyncio.gather(
            asyncio.gather(*(self.lister.list_objects(k, ns) for k in kinds)),
            self._autoscalers(ns),
            self._finalized(ns),
        )
        pods, deps, sts, svcs, eps, pvcs = results
        return Snapshot(
            pods=pods,
            deployments=deps,
            statefulsets=sts,
            services=svcs,
            endpoints=eps,
            pvcs=pvcs,
            autoscalers=hpas,
            others=others,
        )

    async def _finalized(self, ns: str) -> list[tuple[str, Obj]]:
        """The scope's objects of ``FINALIZED_KINDS`` that are being deleted; a kind that cannot be read is skipped
        (stuck deletions add evidence, they never make the API look unreadable). Read beside the other kinds, not
        after them; none when the term is off."""
        if self.stuck_deletion_s <= 0:
            return []

        async def one(kind: str) -> list[tuple[str, Obj]]:
            try:
                objs = await self.lister.list_objects(kind, ns)
            except Exception:
                return []
            return [(kind, o) for o in objs if (o.get("metadata") or {}).get("deletionTimestamp")]

        found = await asyncio.gather(*(one(k) for k in FINALIZED_KINDS))
        return [item for items in found for item in items]

    async def _autoscalers(self, ns: str) -> list[Obj]:
        """The scope's HPAs; a cluster that does not serve them (or a reader not allowed to list them) has none,
        rather than an unreadable API (which would make mu infinite)."""
        try:
            return await self.lister.list_objects("HorizontalPodAutoscaler", ns)
        except Exception:
            return []

    async def _alerts(self, scope: str) -> list[str]:
        if not self.alertmanager_url:
            return []
        try:
            resp = await self.http.get(
                f"{self.alertmanager_url}/api/v2/alerts", params={"active": "true", "silenced": "false"}
            )
            resp.raise_for_status()
        except httpx.HTTPError as exc:
            return [f"alertmanager unreachable: {exc!r}"]
        out = []
        for alert in resp.json():
            labels = alert.get("labels", {})
            if (alert.get("status") or {}).get("state") == "active" and labels.get("namespace", "cluster") == scope:
                out.append(f"{labels.get('alertname', '?')}{{{_label_text(labels)}}}")
        return sorted(out)

    async def _violations(self, scope: str) -> list[str]:
        checks: list[Awaitable[str | None]] = [self._probe(p) for p in self.probes(scope)]
        quoted = scope.replace("\\", "").replace('"', "")
        checks += [self._query(name, q.replace("$scope", quoted)) for name, q in self.slo_queries]
        results = await asyncio.gather(*checks)
        return sorted(r for r in results if r)

    async def _probe(self, probe: Probe) -> str | None:
        start = time.monotonic()
        try:
            resp = await self.http.get(probe.url, timeout=probe.max_latency_s + 1)
        except httpx.HTTPError as exc:
            return f"{probe.name}: {type(exc).__name__}"
        took = time.monotonic() - start
        if resp.status_code >= 300:
            return f"{probe.name}: HTTP {resp.status_code}"
        if took > probe.max_latency_s:
            return f"{probe.name}: {took:.1f}s > {probe.max_latency_s:.1f}s"
        return None

    async def _query(self, name: str, query: str) -> str | None:
        if not self.prometheus_url:
            return f"{name}: no Prometheus configured (STRATUS_PROMETHEUS_URL)"
        try:
            async with self.http.stream("GET", f"{self.prometheus_url}/api/v1/query", params={"query": query}) as resp:
                resp.raise_for_status()
                body = b""
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_QUERY_BYTES:
                        return f"{name}: answer over {MAX_QUERY_BYTES} bytes"
            data = json.loads(body)
            result = (data.get("data") or {}).get("result", []) if isinstance(data, dict) else None
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            return f"{name}: prometheus unreachable ({type(exc).__name__})"
        if not isinstance(result, list):
            return f"{name}: unexpected answer"
        return f"{name}: {len(result)} series" if result else None

    async def aclose(self) -> None:
        await self.http.aclose()


def _label_text(labels: dict[str, str]) -> str:
    keep = ("service", "pod", "deployment", "persistentvolumeclaim")
    return ",".join(f"{k}={labels[k]}" for k in keep if k in labels)
