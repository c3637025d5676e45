"""An incident's normalised signature, read from the scope, and how close two signatures are.

Everything in a signature is free of the incident's accidents: no namespace, no pod-name hash, no address, no
count. Two incidents with the same failure on the same components compare (near) equal; the same failure on another
component still shares its kinds, reasons, events and templates, and so ranks close but below.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from stratus.contracts import IncidentSignature
from stratus.memory.templates import mine
from stratus.reasoners.bootstrap import build_call_graph
from stratus.reasoners.rulebook.snapshot import Snapshot, name_of, spec, status
from stratus.severity import pod_problems

WEIGHTS: dict[str, float] = {
    "unhealthy": 3.0,
    "objects": 1.0,
    "event_reasons": 1.0,
    "log_templates": 2.0,
    "failing_edges": 2.0,
    "changes": 2.0,
}
MAX_LOG_LINES = 2000
_FAILURE_WORDS = re.compile(
    r"(?i)\b(error|err|fatal|panic|exception|fail(ed|ure)?|refused|denied|unauthori[sz]ed|timeout|timed out|"
    r"unreachable|killed|no such|not found|cannot|can't|unable)\b"
)
_WORD = re.compile(r"[A-Za-z][A-Za-z_.-]+")
MAX_TEMPLATES = 20


def _reason(problem: str) -> str:
    """``"web CrashLoopBackOff"`` -> ``"CrashLoopBackOff"`` (the container's name is the component's business)."""
    return problem.split()[-1] if " " in problem and problem != "not Ready" else problem


def signature_of(snap: Snapshot, changes: Iterable[str] = ()) -> IncidentSignature:
    unhealthy: set[str] = set()
    objects: set[str] = set()
    troubled_pods = []
    for pod in snap.live_pods():
        problems = pod_problems(pod)
        if not problems:
            continue
        troubled_pods.append(pod)
        for p in problems:
            unhealthy.add(f"Pod:{_reason(p)}")
        owner = snap.owner_workload(pod)
        if owner is not None:
            objects.add(f"{owner.get('kind', 'Deployment')}/{name_of(owner)}")
    for kind in ("Deployment", "StatefulSet"):
        for w in snap.of(kind):
            desired = spec(w).get("replicas", 1)
            available = status(w).get("availableReplicas") or 0
            if desired == 0 and snap.services_selecting(
                (spec(w).get("template") or {}).get("metadata", {}).get("labels")
            ):
                unhealthy.add(f"{kind}:ScaledToZero")
                objects.add(f"{kind}/{name_of(w)}")
            elif desired is not None and available < desired:
                unhealthy.add(f"{kind}:Unavailable")
                objects.add(f"{kind}/{name_of(w)}")
    for svc in snap.of("Service"):
        if spec(svc).get("selector") and spec(svc).get("type") != "ExternalName" and snap.ready_addresses(svc) == 0:
            unhealthy.add("Service:NoEndpoints")
            objects.add(f"Service/{name_of(svc)}")
    for pvc in snap.of("PersistentVolumeClaim"):
        if status(pvc).get("phase") != "Bound":
            unhealthy.add(f"PersistentVolumeClaim:{status(pvc).get('phase') or 'Pending'}")
            objects.add(f"PersistentVolumeClaim/{name_of(pvc)}")
    for node in snap.of("Node"):
        conditions = status(node).get("conditions") or []
        if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            unhealthy.add("Node:NotReady")
    reasons = {
        str(e.get("reason")) for e in snap.events if e.get("reason") and (e.get("type") or "Warning") == "Warning"
    }
    troubled_names = {name_of(p) for p in troubled_pods}
    lines: list[str] = []
    for key, text in sorted(snap.logs.items()):
        logged = key.split("/")[0].split("#")[0]
        whole = key.endswith("#previous") or logged in troubled_names  # a crashed or failing instance: all of it
        lines.extend(line for line in text.splitlines()[-200:] if whole or _FAILURE_WORDS.search(line))
        if len(lines) >= MAX_LOG_LINES:
            break
    edges: set[str] = set()
    if snap.traces:
        graph = build_call_graph(snap.traces)
        edges = {f"{e.caller}->{e.callee}" for e in graph.edges if e.errors}
        # where failures start (a failing callee, or one inferred from its callers' spans) is implicated too, by
        # its Service and workload
        starts = {e.callee for e in graph.edges if e.errors} | {h.service for h in graph.hypotheses}
        for name in starts:
            for kind in ("Service", "Deployment", "StatefulSet"):
                if snap.get(kind, name) is not None:
                    objects.add(f"{kind}/{name}")
    return IncidentSignature(
        unhealthy=sorted(unhealthy),
        objects=sorted(objects),
        event_reasons=sorted(reasons),
        log_templates=mine(lines[:MAX_LOG_LINES], MAX_TEMPLATES),
        failing_edges=sorted(edges),
        changes=sorted(set(changes)),
    )


def features(sig: IncidentSignature) -> dict[str, set[str]]:
    return {name: set(getattr(sig, name)) for name in WEIGHTS}


def _words(template: str) -> frozenset[str]:
    return frozenset(w.lower() for w in _WORD.findall(template))


def _soft_overlap(a: list[str], b: list[str]) -> float:
    """Log templates that differ in a name (``user "x"`` / ``user "y"``) still match: each template counts with its
    best word overlap on the other side, averaged both ways."""
    wa, wb = [_words(t) for t in a], [_words(t) for t in b]

    def best(xs: list[frozenset[str]], ys: list[frozenset[str]]) -> float:
        return sum(max((len(x & y) / len(x | y) for y in ys if x | y), default=0.0) for x in xs) / len(xs)

    return (best(wa, wb) + best(wb, wa)) / 2


def similarity(a: IncidentSignature, b: IncidentSignature) -> float:
    """Weighted Jaccard over the signature's parts (soft for log templates), counting only the parts either side
    has (0..1)."""
    fa, fb = features(a), features(b)
    total = weight = 0.0
    for name, w in WEIGHTS.items():
        union = fa[name] | fb[name]
        if not union:
            continue
        if name == "log_templates" and fa[name] and fb[name]:
            total += w * _soft_overlap(a.log_templates, b.log_templates)
        else:
            total += w * len(fa[name] & fb[name]) / len(union)
        weight += w
    return total / weight if weight else 0.0
