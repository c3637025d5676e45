"""Prometheus text exposition: the applications' request metrics and kube-state-metrics-style series.

Kube-state series are computed from the cluster's objects at scrape time (as kube-state-metrics does from its
informers), so they are never stale and need no bookkeeping.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

from arena.hooks import ClusterView, Obj

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
NAMESPACES_KINDS = ("Pod", "Deployment", "PersistentVolumeClaim")


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_esc(str(v))}"' for k, v in labels.items()) + "}"


def _num(v: float) -> str:
    return repr(float(v)) if v != int(v) else str(int(v))


class AppMetrics:
    """Counters and histograms of server spans: ``arena_requests_total`` and ``arena_request_duration_seconds``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.totals: dict[tuple[str, str, str, str], int] = defaultdict(int)
        self.hist: dict[tuple[str, str, str], list[float]] = {}

    def observe(self, namespace: str, service: str, operation: str, code: str, seconds: float) -> None:
        with self.lock:
            self.totals[(namespace, service, operation, code)] += 1
            h = self.hist.setdefault((namespace, service, operation), [0.0] * (len(BUCKETS) + 2))
            for i, b in enumerate(BUCKETS):
                if seconds <= b:
                    h[i] += 1
            h[-2] += 1
            h[-1] += seconds

    def render(self) -> list[str]:
        with self.lock:
            totals, hist = dict(self.totals), {k: list(v) for k, v in self.hist.items()}
        lines = [
            "# HELP arena_requests_total Requests served, by service, operation and result code.",
            "# TYPE arena_requests_total counter",
        ]
        for (ns, svc, op, code), n in sorted(totals.items()):
            lines.append(f"arena_requests_total{_labels(dict(namespace=ns, service=svc, operation=op, code=code))} {n}")
        lines += [
            "# HELP arena_request_duration_seconds Server-side latency of requests.",
            "# TYPE arena_request_duration_seconds histogram",
        ]
        for (ns, svc, op), h in sorted(hist.items()):
            base = dict(namespace=ns, service=svc, operation=op)
            for i, b in enumerate(BUCKETS):
                lines.append(f"arena_request_duration_seconds_bucket{_labels({**base, 'le': repr(b)})} {_num(h[i])}")
            lines.append(f"arena_request_duration_seconds_bucket{_labels({**base, 'le': '+Inf'})} {_num(h[-2])}")
            lines.append(f"arena_request_duration_seconds_count{_labels(base)} {_num(h[-2])}")
            lines.append(f"arena_request_duration_seconds_sum{_labels(base)} {h[-1]:.6f}")
        return lines


class _Family:
    def __init__(self, name: str, kind: str, help_: str) -> None:
        self.name, self.kind, self.help = name, kind, help_
        self.samples: list[tuple[dict[str, str], float]] = []

    def add(self, labels: dict[str, str], value: float) -> None:
        self.samples.append((labels, value))

    def render(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        out += [f"{self.name}{_labels(lbl)} {_num(v)}" for lbl, v in self.samples]
        return out


def kube_state(view: ClusterView) -> list[str]:
    fam = {
        name: _Family(name, kind, help_)
        for name, kind, help_ in [
            ("kube_pod_info", "gauge", "Information about pod."),
            ("kube_pod_status_phase", "gauge", "The pods current phase."),
            ("kube_pod_status_ready", "gauge", "Describes whether the pod is ready to serve requests."),
            ("kube_pod_container_status_ready", "gauge", "Describes whether the containers readiness check succeeded."),
            ("kube_pod_container_status_running", "gauge", "Describes whether the container is currently running."),
            ("kube_pod_container_status_waiting", "gauge", "Describes whether the container is currently waiting."),
            (
                "kube_pod_container_status_waiting_reason",
                "gauge",
                "Describes the reason the container is currently in waiting state.",
            ),
            (
                "kube_pod_container_status_terminated_reason",
                "gauge",
                "Describes the reason the container is currently in terminated state.",
            ),
            (
                "kube_pod_container_status_last_terminated_reason",
                "gauge",
                "Describes the last reason the container was in terminated state.",
            ),
            ("kube_pod_container_status_restarts_total", "counter", "The number of container restarts."),
            ("kube_deployment_spec_replicas", "gauge", "Number of desired pods for a deployment."),
            ("kube_deployment_status_replicas_available", "gauge", "The number of available replicas per deployment."),
            ("kube_deployment_status_replicas_unavailable", "gauge", "The number of unavailable replicas."),
            ("kube_persistentvolumeclaim_status_phase", "gauge", "The phase the persistent volume claim is in."),
            ("kube_persistentvolume_status_phase", "gauge", "The phase indicates if a volume is available or bound."),
            ("kube_node_status_condition", "gauge", "The condition of a cluster node."),
            ("kube_node_spec_unschedulable", "gauge", "Whether a node can schedule new pods."),
        ]
    }
    for pod in view.list("Pod"):
        m, st = pod.get("metadata") or {}, pod.get("status") or {}
        ns, name, uid = str(m.get("namespace")), str(m.get("name")), str(m.get("uid", ""))
        base = {"namespace": ns, "pod": name, "uid": uid}
        fam["kube_pod_info"].add(
            {**base, "node": str((pod.get("spec") or {}).get("nodeName", "")), "pod_ip": str(st.get("podIP", ""))}, 1
        )
        phase = st.get("phase", "Pending")
        for p in ("Pending", "Running", "Succeeded", "Failed", "Unknown"):
            fam["kube_pod_status_phase"].add({**base, "phase": p}, 1 if p == phase else 0)
        ready = next((c.get("status") for c in st.get("conditions") or [] if c.get("type") == "Ready"), "Unknown")
        for cond in ("true", "false", "unknown"):
            fam["kube_pod_status_ready"].add({**base, "condition": cond}, 1 if str(ready).lower() == cond else 0)
        for cs in st.get("containerStatuses") or []:
            cb = {**base, "container": str(cs.get("name"))}
            state: dict[str, Any] = cs.get("state") or {}
            fam["kube_pod_container_status_ready"].add(cb, 1 if cs.get("ready") else 0)
            fam["kube_pod_container_status_running"].add(cb, 1 if "running" in state else 0)
            fam["kube_pod_container_status_waiting"].add(cb, 1 if "waiting" in state else 0)
            if "waiting" in state:
                reason = str((state["waiting"] or {}).get("reason", ""))
                fam["kube_pod_container_status_waiting_reason"].add({**cb, "reason": reason}, 1)
            if "terminated" in state:
                reason = str((state["terminated"] or {}).get("reason", ""))
                fam["kube_pod_container_status_terminated_reason"].add({**cb, "reason": reason}, 1)
            last = (cs.get("lastState") or {}).get("terminated")
            if last:
                fam["kube_pod_container_status_last_terminated_reason"].add(
                    {**cb, "reason": str(last.get("reason", ""))}, 1
                )
            fam["kube_pod_container_status_restarts_total"].add(cb, float(cs.get("restartCount", 0)))
    for d in view.list("Deployment"):
        m, st = d.get("metadata") or {}, d.get("status") or {}
        base = {"namespace": str(m.get("namespace")), "deployment": str(m.get("name"))}
        fam["kube_deployment_spec_replicas"].add(base, float((d.get("spec") or {}).get("replicas", 1)))
        fam["kube_deployment_status_replicas_available"].add(base, float(st.get("availableReplicas", 0) or 0))
        fam["kube_deployment_status_replicas_unavailable"].add(base, float(st.get("unavailableReplicas", 0) or 0))
    for pvc in view.list("PersistentVolumeClaim"):
        m = pvc.get("metadata") or {}
        phase = (pvc.get("status") or {}).get("phase", "Pending")
        for p in ("Lost", "Bound", "Pending"):
            fam["kube_persistentvolumeclaim_status_phase"].add(
                {"namespace": str(m.get("namespace")), "persistentvolumeclaim": str(m.get("name")), "phase": p},
                1 if p == phase else 0,
            )
    for pv in view.list("PersistentVolume"):
        phase = (pv.get("status") or {}).get("phase", "Pending")
        for p in ("Pending", "Available", "Bound", "Released", "Failed"):
            fam["kube_persistentvolume_status_phase"].add(
                {"persistentvolume": str((pv.get("metadata") or {}).get("name")), "phase": p}, 1 if p == phase else 0
            )
    for node in view.list("Node"):
        name = str((node.get("metadata") or {}).get("name"))
        fam["kube_node_spec_unschedulable"].add(
            {"node": name}, 1 if (node.get("spec") or {}).get("unschedulable") else 0
        )
        for cond in (node.get("status") or {}).get("conditions") or []:
            for s in ("true", "false", "unknown"):
                fam["kube_node_status_condition"].add(
                    {"node": name, "condition": str(cond.get("type")), "status": s},
                    1 if str(cond.get("status")).lower() == s else 0,
                )
    lines: list[str] = []
    for f in fam.values():
        lines += f.render()
    return lines


def exposition(app: AppMetrics, view: ClusterView | None) -> str:
    lines = app.render()
    if view is not None:
        lines += kube_state(view)
    return "\n".join(lines) + "\n"


__all__ = ["AppMetrics", "Obj", "exposition", "kube_state"]
