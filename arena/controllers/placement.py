"""kube-scheduler's filters that look beyond the node itself: host ports (NodePorts), inter-pod affinity and
anti-affinity (required terms, by topology key), and the node affinity of bound PersistentVolumes (VolumeBinding).

Each filter returns the reason kube-scheduler counts in ``FailedScheduling`` ("0/3 nodes are available: 3 node(s)
didn't have free ports for the requested pod ports") or None when the node passes.
"""

from __future__ import annotations

from typing import Any

from arena.objects import is_terminating
from arena.selectors import label_selector_requirements, match_labels
from arena.store import Obj, Store

FREE_PORTS = "node(s) didn't have free ports for the requested pod ports"
ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
AFFINITY = "node(s) didn't match pod affinity rules"
VOLUME_AFFINITY = "node(s) had volume node affinity conflict"


def placed_pods(store: Store) -> list[Obj]:
    """Pods bound to a node that still hold its resources."""
    return [
        p
        for p in store.list("pods")
        if (p.get("spec") or {}).get("nodeName")
        and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        and not is_terminating(p)
    ]


def _host_ports(pod: Obj) -> set[tuple[str, int, str]]:
    out = set()
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                out.add((str(p.get("hostIP") or "0.0.0.0"), int(p["hostPort"]), str(p.get("protocol") or "TCP")))
    return out


def host_ports(pod: Obj, node: Obj, placed: list[Obj]) -> str | None:
    wanted = _host_ports(pod)
    if not wanted:
        return None
    name = node["metadata"]["name"]
    taken = set()
    for p in placed:
        if p["spec"].get("nodeName") == name and p["metadata"].get("uid") != pod["metadata"].get("uid"):
            taken |= _host_ports(p)
    for ip, port, proto in wanted:
        for tip, tport, tproto in taken:
            if port == tport and proto == tproto and (ip == tip or "0.0.0.0" in (ip, tip)):
                return FREE_PORTS
    return None


def _term_matches(term: Obj, pod: Obj, other: Obj) -> bool:
    namespaces = term.get("namespaces") or [pod["metadata"].get("namespace")]
    if other["metadata"].get("namespace") not in namespaces:
        return False
    reqs = label_selector_requirements(term.get("labelSelector") or {})
    return reqs is not None and match_labels(reqs, other["metadata"].get("labels") or {})


def inter_pod_affinity(pod: Obj, node: Obj, nodes: dict[str, Obj], placed: list[Obj]) -> str | None:
    aff = (pod.get("spec") or {}).get("affinity") or {}
    labels = node["metadata"].get("labels") or {}
    others = [p for p in placed if p["metadata"].get("uid") != pod["metadata"].get("uid")]

    def same_topology(other: Obj, key: str) -> bool:
        onode = nodes.get(str(other["spec"].get("nodeName")))
        value = ((onode or {}).get("metadata") or {}).get("labels", {}).get(key)
        return value is not None and value == labels.get(key)

    for term in (aff.get("podAntiAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or []:
        key = str(term.get("topologyKey") or "")
        if any(_term_matches(term, pod, o) and same_topology(o, key) for o in others):
            return ANTI_AFFINITY
    for term in (aff.get("podAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or []:
        key = str(term.get("topologyKey") or "")
        matching = [o for o in others if _term_matches(term, pod, o)]
        self_match = _term_matches(term, pod, pod)
        if matching and not any(same_topology(o, key) for o in matching):
            return AFFINITY
        if not matching and not self_match:
            return AFFINITY  # the first pod of a group may only land when it matches its own term
    return None


def volume_node_affinity(pod: Obj, node: Obj, store: Store) -> str | None:
    ns = pod["metadata"].get("namespace")
    for v in (pod.get("spec") or {}).get("volumes") or []:
        claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
        if not claim:
            continue
        pvc = store.get("persistentvolumeclaims", ns, claim)
        pv_name = ((pvc or {}).get("spec") or {}).get("volumeName")
        pv = store.get("persistentvolumes", None, pv_name) if pv_name else None
        terms = ((((pv or {}).get("spec") or {}).get("nodeAffinity") or {}).get("required") or {}).get(
            "nodeSelectorTerms"
        )
        if terms and not node_selector_terms_match(terms, node):
            return VOLUME_AFFINITY
    return None


def node_selector_terms_match(terms: list[Any], node: Obj) -> bool:
    """NodeSelectorTerms are ORed, the expressions of a term ANDed (as a PV's or a pod's required node affinity)."""
    from arena.controllers.scheduler import _expr_matches

    labels = node["metadata"].get("labels") or {}
    fields = {"metadata.name": node["metadata"]["name"]}
    for term in terms:
        exprs, fexprs = term.get("matchExpressions") or [], term.get("matchFields") or []
        matched = all(_expr_matches(e, labels) for e in exprs) and all(_expr_matches(e, fields) for e in fexprs)
        if (exprs or fexprs) and matched:
            return True
    return False
