"""The scheduler: binds pending pods to nodes with kube-scheduler's filters (unschedulable nodes, taints and
tolerations, nodeSelector and required node affinity, CPU/memory/pod-count against allocatable, PVC binding) and
reports failures with its exact ``FailedScheduling`` wording."""

from __future__ import annotations

import copy
from collections import Counter
from typing import TYPE_CHECKING, Any

from arena.controllers import placement
from arena.objects import is_terminating, parse_quantity, set_condition
from arena.resources import BY_KIND
from arena.store import Obj

if TYPE_CHECKING:
    from arena.cluster import Cluster

PODS = BY_KIND["Pod"]
PVCS = BY_KIND["PersistentVolumeClaim"]
NO_PROVISIONER = "kubernetes.io/no-provisioner"


def tolerates(tolerations: list[Obj], taint: Obj) -> bool:
    for t in tolerations or []:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        op = t.get("operator", "Equal")
        if op == "Exists":
            if not t.get("key") or t.get("key") == taint.get("key"):
                return True
        elif t.get("key") == taint.get("key") and (t.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _expr_matches(expr: Obj, labels: dict[str, str]) -> bool:
    key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
    val = labels.get(key or "")
    if op == "In":
        return val in values
    if op == "NotIn":
        return val not in values
    if op == "Exists":
        return val is not None
    if op == "DoesNotExist":
        return val is None
    try:
        if op == "Gt":
            return val is not None and int(val) > int(values[0])
        if op == "Lt":
            return val is not None and int(val) < int(values[0])
    except (ValueError, IndexError):
        return False
    return False


def node_matches(pod: Obj, node: Obj) -> bool:
    spec = pod.get("spec") or {}
    labels = node["metadata"].get("labels") or {}
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    req = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = req.get("nodeSelectorTerms")
    if terms:
        fields = {"metadata.name": node["metadata"]["name"]}
        ok = False
        for term in terms:
            exprs = term.get("matchExpressions") or []
            fexprs = term.get("matchFields") or []
            if not exprs and not fexprs:
                continue
            if all(_expr_matches(e, labels) for e in exprs) and all(_expr_matches(e, fields) for e in fexprs):
                ok = True
                break
        if not ok:
            return False
    return True


def pod_requests(pod: Obj) -> dict[str, float]:
    out: dict[str, float] = {"cpu": 0.0, "memory": 0.0}
    for c in (pod.get("spec") or {}).get("containers") or []:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        for k in ("cpu", "memory"):
            v = req.get(k, lim.get(k))
            if v is not None:
                try:
                    out[k] += parse_quantity(v)
                except ValueError:
                    pass
    return out


def node_ready(node: Obj) -> bool:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


class Scheduler:
    watches = frozenset(
        {"pods", "nodes", "persistentvolumeclaims", "persistentvolumes", "storageclasses.storage.k8s.io"}
    )

    def next_due(self, t: float) -> float:
        return min(self.next_try.values(), default=float("inf"))

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.next_try: dict[str, float] = {}

    def reconcile(self, t: float) -> None:
        store = self.cluster.store
        pending = [
            p
            for p in store.list(PODS.key)
            if not (p.get("spec") or {}).get("nodeName")
            and not is_terminating(p)
            and (p.get("spec") or {}).get("schedulerName", "default-scheduler") == "default-scheduler"
            and (p.get("status") or {}).get("phase", "Pending") == "Pending"
        ]
        if not pending:
            self.next_try.clear()
            return
        live = set()
        nodes = sorted(store.list("nodes"), key=lambda n: n["metadata"]["name"])
        usage = self._usage(nodes)
        for pod in sorted(pending, key=lambda p: p["metadata"].get("creationTimestamp") or ""):
            uid = pod["metadata"]["uid"]
            live.add(uid)
            if t < self.next_try.get(uid, 0.0):
                continue
            self.next_try[uid] = t + self.cluster.timing.reschedule
            self._schedule(pod, nodes, usage)
        for uid in list(self.next_try):
            if uid not in live:
                del self.next_try[uid]

    def _usage(self, nodes: list[Obj]) -> dict[str, dict[str, float]]:
        usage: dict[str, dict[str, float]] = {
            n["metadata"]["name"]: {"cpu": 0.0, "memory": 0.0, "pods": 0.0} for n in nodes
        }
        for p in self.cluster.store.list(PODS.key):
            node = (p.get("spec") or {}).get("nodeName")
            if not node or node not in usage or (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            req = pod_requests(p)
            usage[node]["cpu"] += req["cpu"]
            usage[node]["memory"] += req["memory"]
            usage[node]["pods"] += 1
        return usage

    def _volumes_problem(self, pod: Obj) -> tuple[str | None, list[Obj]]:
        """(a pod-level failure message, the WaitForFirstConsumer claims still to provision)."""
        store = self.cluster.store
        ns = pod["metadata"].get("namespace")
        wffc: list[Obj] = []
        for v in (pod.get("spec") or {}).get("volumes") or []:
            claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
            if not claim:
                continue
            pvc = store.get(PVCS.key, ns, claim)
            if pvc is None:
                return f'persistentvolumeclaim "{claim}" not found', []
            if is_terminating(pvc):
                return f'persistentvolumeclaim "{claim}" is being deleted', []
            if (pvc.get("status") or {}).get("phase") == "Bound":
                continue
            sc_name = (pvc.get("spec") or {}).get("storageClassName")
            sc = store.get("storageclasses.storage.k8s.io", None, sc_name) if sc_name else None
            if sc is not None and sc.get("volumeBindingMode") == "WaitForFirstConsumer":
                wffc.append(pvc)
                continue
            return "pod has unbound immediate PersistentVolumeClaims", []
        return None, wffc

    def _schedule(self, pod: Obj, nodes: list[Obj], usage: dict[str, dict[str, float]]) -> None:
        n = len(nodes)
        problem, wffc = self._volumes_problem(pod)
        if problem is not None:
            self._fail(
                pod,
                f"0/{n} nodes are available: {problem}. preemption: 0/{n} nodes are available: "
                f"{n} Preemption is not helpful for scheduling.",
            )
            return
        spec = pod.get("spec") or {}
        tolerations = spec.get("tolerations") or []
        req = pod_requests(pod)
        reasons: Counter[str] = Counter()
        resource_fail = 0
        feasible: list[Obj] = []
        placed = placement.placed_pods(self.cluster.store)
        by_name = {nd["metadata"]["name"]: nd for nd in nodes}
        for node in nodes:
            name = node["metadata"]["name"]
            nspec = node.get("spec") or {}
            taints = list(nspec.get("taints") or [])
            if not node_ready(node):
                taints.append({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"})
            if spec.get("nodeName") and spec["nodeName"] != name:
                reasons["node(s) didn't match the requested node name"] += 1
                continue
            if nspec.get("unschedulable") and not tolerates(
                tolerations, {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
            ):
                reasons["node(s) were unschedulable"] += 1
                continue
            bad = next(
                (
                    tt
                    for tt in taints
                    if tt.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, tt)
                ),
                None,
            )
            if bad is not None:
                reasons[f"node(s) had untolerated taint {{{bad.get('key')}: {bad.get('value', '')}}}"] += 1
                continue
            if not node_matches(pod, node):
                reasons["node(s) didn't match Pod's node affinity/selector"] += 1
                continue
            alloc = (node.get("status") or {}).get("allocatable") or {}
            used = usage.get(name, {"cpu": 0.0, "memory": 0.0, "pods": 0.0})
            insufficient = []
            if used["pods"] + 1 > parse_quantity(alloc.get("pods", "110")):
                insufficient.append("Too many pods")
            if req["cpu"] and used["cpu"] + req["cpu"] > parse_quantity(alloc.get("cpu", "0")) + 1e-9:
                insufficient.append("Insufficient cpu")
            if req["memory"] and used["memory"] + req["memory"] > parse_quantity(alloc.get("memory", "0")):
                insufficient.append("Insufficient memory")
            if insufficient:
                for r in insufficient:
                    reasons[r] += 1
                resource_fail += 1
                continue
            placement_problem = (
                placement.host_ports(pod, node, placed)
                or placement.volume_node_affinity(pod, node, self.cluster.store)
                or placement.inter_pod_affinity(pod, node, by_name, placed)
            )
            if placement_problem:
                reasons[placement_problem] += 1
                continue
            if wffc and any(not self._wffc_possible(pvc, node) for pvc in wffc):
                reasons["node(s) didn't find available persistent volumes to bind"] += 1
                continue
            feasible.append(node)
        if not feasible:
            parts = sorted(f"{c} {r}" for r, c in reasons.items())
            pre = []
            if resource_fail:
                pre.append(f"{resource_fail} No preemption victims found for incoming pod")
            if n - resource_fail:
                pre.append(f"{n - resource_fail} Preemption is not helpful for scheduling")
            msg = (
                f"0/{n} nodes are available: {', '.join(parts)}. "
                f"preemption: 0/{n} nodes are available: {', '.join(pre)}."
            )
            if n == 0:
                msg = "no nodes available to schedule pods"
            self._fail(pod, msg)
            return
        best = min(feasible, key=lambda nd: (usage[nd["metadata"]["name"]]["pods"], nd["metadata"]["name"]))
        node_name = best["metadata"]["name"]
        if wffc:
            waiting = False
            for pvc in wffc:
                ann = pvc["metadata"].get("annotations") or {}
                if ann.get("volume.kubernetes.io/selected-node") != node_name:
                    new = copy.deepcopy(pvc)
                    new["metadata"].setdefault("annotations", {})["volume.kubernetes.io/selected-node"] = node_name
                    self.cluster.rest.write(PVCS, new)
                waiting = True
            if waiting:
                self.next_try[pod["metadata"]["uid"]] = 0.0
                return
        self.bind(pod, node_name)
        req_u = usage[node_name]
        req_u["pods"] += 1
        req_u["cpu"] += req["cpu"]
        req_u["memory"] += req["memory"]

    def _wffc_possible(self, pvc: Obj, node: Obj) -> bool:
        store = self.cluster.store
        sc = store.get("storageclasses.storage.k8s.io", None, str((pvc.get("spec") or {}).get("storageClassName")))
        if sc is not None and sc.get("provisioner") != NO_PROVISIONER:
            return True
        return self.cluster.volumes.find_pv(pvc) is not None

    def bind(self, pod: Obj, node_name: str) -> None:
        new = copy.deepcopy(pod)
        new["spec"]["nodeName"] = node_name
        st = new.setdefault("status", {})
        set_condition(st, "PodScheduled", "True", lastProbeTime=None)
        self.cluster.rest.write(PODS, new)
        self.cluster.events.emit(
            new,
            "Normal",
            "Scheduled",
            f"Successfully assigned {new['metadata'].get('namespace')}/{new['metadata']['name']} to {node_name}",
            "default-scheduler",
        )

    def _fail(self, pod: Obj, message: str) -> None:
        new = copy.deepcopy(pod)
        st = new.setdefault("status", {})
        st["phase"] = "Pending"
        set_condition(st, "PodScheduled", "False", "Unschedulable", message, lastProbeTime=None)
        self.cluster.rest.write(PODS, new)
        self.cluster.events.emit(new, "Warning", "FailedScheduling", message, "default-scheduler")


_ = Any
