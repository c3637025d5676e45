"""What the rulebook reads of a scope, gathered once through the read tools, and the Kubernetes relations over it.

The analyzers are pure functions of a ``Snapshot``: every read happens here (``collect``), so the rulebook's I/O goes
only through ``ClusterTools`` and the analyzers can be tested on plain dicts. A read that fails leaves its part of the
snapshot empty and is noted in ``read_errors``; the rulebook then simply finds less, it never guesses.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from stratus.reasoning import ClusterTools, Obj
from stratus.severity import pod_problems

LOG_TAIL = 80
MAX_LOGGED_PODS = 80

NAMESPACED_KINDS = (
    "Pod",
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "Service",
    "Endpoints",
    "PersistentVolumeClaim",
    "ConfigMap",
)
CLUSTER_KINDS = ("PersistentVolume", "StorageClass", "Node")
OPTIONAL_KINDS = ("NetworkPolicy", "ResourceQuota", "LimitRange", "HorizontalPodAutoscaler", "Job", "CronJob")
"""Namespaced kinds some clusters do not serve: a failed read of them is not worth a note."""


def meta(obj: Obj) -> dict[str, Any]:
    m = obj.get("metadata")
    return m if isinstance(m, dict) else {}


def name_of(obj: Obj) -> str:
    return str(meta(obj).get("name", ""))


def spec(obj: Obj) -> dict[str, Any]:
    s = obj.get("spec")
    return s if isinstance(s, dict) else {}


def status(obj: Obj) -> dict[str, Any]:
    s = obj.get("status")
    return s if isinstance(s, dict) else {}


def labels_match(selector: dict[str, Any] | None, labels: dict[str, Any] | None) -> bool:
    """Whether an equality selector (a Service's ``selector`` or a ``matchLabels``) picks ``labels``."""
    if not selector:
        return False
    have = labels or {}
    return all(have.get(k) == v for k, v in selector.items())


def containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in pod_spec.get("containers") or [] if isinstance(c, dict)]


def revision(obj: Obj) -> int:
    try:
        return int((meta(obj).get("annotations") or {}).get("deployment.kubernetes.io/revision", 0))
    except (TypeError, ValueError):
        return 0


@dataclass
class Snapshot:
    """The objects, events, logs and traces of one namespace, plus the cluster-scoped objects it depends on."""

    namespace: str
    objects: dict[str, list[Obj]] = field(default_factory=dict)
    events: list[Obj] = field(default_factory=list)
    logs: dict[str, str] = field(default_factory=dict)
    """``pod`` or ``pod/container`` -> current log tail; ``...#previous`` -> the previous instance's."""
    traces: list[Obj] = field(default_factory=list)
    read_errors: list[str] = field(default_factory=list)

    def of(self, kind: str) -> list[Obj]:
        return self.objects.get(kind, [])

    def get(self, kind: str, name: str) -> Obj | None:
        return next((o for o in self.of(kind) if name_of(o) == name), None)

    # -- relations -----------------------------------------------------------------------------------------------
    def live_pods(self) -> list[Obj]:
        return [p for p in self.of("Pod") if not meta(p).get("deletionTimestamp")]

    def pods_selected_by(self, service: Obj) -> list[Obj]:
        sel = spec(service).get("selector")
        return [p for p in self.live_pods() if labels_match(sel, meta(p).get("labels"))]

    def services_selecting(self, labels: dict[str, Any] | None) -> list[Obj]:
        return [s for s in self.of("Service") if labels_match(spec(s).get("selector"), labels)]

    def owner_workload(self, pod: Obj) -> Obj | None:
        """The Deployment (through its ReplicaSet) or StatefulSet that owns a pod."""
        for ref in meta(pod).get("ownerReferences") or []:
            kind, owner = ref.get("kind"), str(ref.get("name", ""))
            if kind == "ReplicaSet":
                rs = self.get("ReplicaSet", owner)
                if rs is not None:
                    for rref in meta(rs).get("ownerReferences") or []:
                        if rref.get("kind") == "Deployment":
                            return self.get("Deployment", str(rref.get("name", "")))
            elif kind in ("StatefulSet", "Deployment"):
                return self.get(str(kind), owner)
        for kind in ("Deployment", "StatefulSet"):
            for w in self.of(kind):
                if labels_match((spec(w).get("selector") or {}).get("matchLabels"), meta(pod).get("labels")):
                    return w
        return None

    def pods_of(self, workload: Obj) -> list[Obj]:
        sel = (spec(workload).get("selector") or {}).get("matchLabels")
        return [p for p in self.live_pods() if labels_match(sel, meta(p).get("labels"))]

    def replicasets_of(self, deployment: Obj) -> list[Obj]:
        """The Deployment's ReplicaSets, newest revision first."""
        uid, dname = meta(deployment).get("uid"), name_of(deployment)
        out = []
        for rs in self.of("ReplicaSet"):
            refs = meta(rs).get("ownerReferences") or []
            if any(r.get("kind") == "Deployment" and (r.get("uid") == uid or r.get("name") == dname) for r in refs):
                out.append(rs)
        return sorted(out, key=revision, reverse=True)

    def component_of(self, workload: Obj) -> str:
        """The name a human (and AIOpsLab) uses for a workload: its Service's name when one Service selects it."""
        labels = (spec(workload).get("template") or {}).get("metadata", {}).get("labels")
        services = self.services_selecting(labels)
        if len(services) == 1:
            return name_of(services[0])
        return name_of(workload)

    def service_for_host(self, host: str) -> Obj | None:
        """The Service a DNS name or cluster IP designates in this namespace."""
        short = host.split(".")[0]
        svc = self.get("Service", short)
        if svc is not None and (host == short or host.startswith(f"{short}.{self.namespace}")):
            return svc
        for s in self.of("Service"):
            if spec(s).get("clusterIP") == host:
                return s
        return None

    def pod_for_ip(self, ip: str) -> Obj | None:
        return next((p for p in self.live_pods() if status(p).get("podIP") == ip), None)

    def ready_addresses(self, service: Obj) -> int:
        ep = self.get("Endpoints", name_of(service))
        if ep is None:
            return sum(1 for p in self.pods_selected_by(service) if not pod_problems(p))
        return sum(len(s.get("addresses") or []) for s in ep.get("subsets") or [])

    def pod_logs(self, pod: Obj) -> str:
        """Every log text read for a pod (all containers, current and previous instances)."""
        name = name_of(pod)
        return "\n".join(text for key, text in self.logs.items() if key.split("/")[0].split("#")[0] == name)

    def events_for(self, kind: str, name: str) -> list[Obj]:
        out = []
        for e in self.events:
            about = e.get("involvedObject") or {}
            if about.get("kind") == kind and about.get("name") == name:
                out.append(e)
        return out


def restarts(pod: Obj) -> int:
    return sum(int(cs.get("restartCount") or 0) for cs in status(pod).get("containerStatuses") or [])


def troubled(pod: Obj) -> bool:
    """A pod worth reading the logs of: unhealthy, or restarted at least once."""
    return bool(pod_problems(pod)) or restarts(pod) > 0


def _in_namespace(trace: Obj, namespace: str) -> bool:
    """Whether a trace belongs to the namespace (by its processes' ``k8s.namespace.name``; untagged traces do)."""
    seen = set()
    for proc in (trace.get("processes") or {}).values():
        for tag in proc.get("tags") or []:
            if tag.get("key") in ("k8s.namespace.name", "namespace"):
                seen.add(tag.get("value"))
    return not seen or namespace in seen


async def collect(
    tools: ClusterTools, namespace: str, *, with_traces: bool = True, log_tail: int = LOG_TAIL
) -> Snapshot:
    """Read the scope through the tools: objects, cluster-scoped dependencies, events, pod logs and traces."""
    snap = Snapshot(namespace=namespace)

    async def listing(kind: str, ns: str | None) -> None:
        try:
            snap.objects[kind] = list(await tools.list_objects(kind, ns))
        except Exception as exc:  # a kind the cluster does not serve, or a transient failure: read less
            snap.objects[kind] = []
            snap.read_errors.append(f"list {kind}: {exc}")

    async def optional(kind: str) -> None:
        try:
            snap.objects[kind] = list(await tools.list_objects(kind, namespace))
        except Exception:
            snap.objects[kind] = []

    await asyncio.gather(
        *(listing(k, namespace) for k in NAMESPACED_KINDS),
        *(listing(k, None) for k in CLUSTER_KINDS),
        *(optional(k) for k in OPTIONAL_KINDS),
    )
    try:
        snap.events = list(await tools.events(namespace))
    except Exception as exc:
        snap.read_errors.append(f"events: {exc}")

    async def read_logs(pod: Obj) -> None:
        pname = name_of(pod)
        cstatuses = {cs.get("name"): cs for cs in status(pod).get("containerStatuses") or []}
        for c in containers(spec(pod)):
            cname = str(c.get("name", ""))
            key = f"{pname}/{cname}"
            cs = cstatuses.get(cname) or {}
            state = cs.get("state") or {}
            # A container waiting to restart after a crash has no running instance, but its log is the crashed
            # one's (as ``kubectl logs`` shows it): the only account of the crash until the restart count moves.
            crashed = "terminated" in (cs.get("lastState") or {})
            try:
                if "running" in state or "terminated" in state or crashed:
                    snap.logs[key] = await tools.logs(namespace, pname, cname, log_tail, False)
                if int(cs.get("restartCount") or 0) > 0:
                    snap.logs[f"{key}#previous"] = await tools.logs(namespace, pname, cname, log_tail, True)
            except Exception as exc:  # no previous instance, or the container never started
                snap.read_errors.append(f"logs {key}: {exc}")

    pods = snap.live_pods()
    pods.sort(key=lambda p: (not troubled(p), name_of(p)))
    await asyncio.gather(*(read_logs(p) for p in pods[:MAX_LOGGED_PODS]))
    if with_traces:
        await read_traces(tools, snap)
    return snap


async def read_traces(tools: ClusterTools, snap: Snapshot) -> None:
    """Add the scope's recent traces to a snapshot (a failed read is noted, as every read of ``collect``)."""
    try:
        snap.traces = [t for t in await tools.traces(snap.namespace, None, 50) if _in_namespace(t, snap.namespace)]
    except Exception as exc:
        snap.read_errors.append(f"traces: {exc}")
