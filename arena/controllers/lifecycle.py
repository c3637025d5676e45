"""Namespace termination, garbage collection through ownerReferences (background, foreground, orphan), node taints
for cordoned nodes, node leases, and each namespace's default ServiceAccount and root CA ConfigMap."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from arena.errors import ApiError
from arena.objects import is_terminating, now
from arena.resources import BY_KIND, RESOURCES, ResourceType
from arena.store import Obj

if TYPE_CHECKING:
    from arena.cluster import Cluster

NS = BY_KIND["Namespace"]
UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
NAMESPACED = [r for r in RESOURCES if r.namespaced]
OWNED_KINDS = [
    r
    for r in NAMESPACED
    if r.kind
    in (
        "Pod",
        "ReplicaSet",
        "EndpointSlice",
        "ControllerRevision",
        "PersistentVolumeClaim",
        "Deployment",
        "StatefulSet",
        "ConfigMap",
        "Secret",
        "Service",
    )
]


class NamespaceController:
    watches = frozenset({"namespaces", "serviceaccounts", "configmaps"})

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.terminating = False

    def next_due(self, t: float) -> float:
        return t + self.cluster.timing.tick if self.terminating else float("inf")

    def reconcile(self, t: float) -> None:
        store = self.cluster.store
        rest = self.cluster.rest
        self.terminating = False
        for ns in store.list(NS.key):
            name = ns["metadata"]["name"]
            if is_terminating(ns):
                self.terminating = True
            if not is_terminating(ns):
                self._defaults(name)
                continue
            remaining = 0
            for rt in NAMESPACED:
                for obj in store.list(rt.key, name):
                    remaining += 1
                    if rt.kind == "Event":
                        store.remove(rt.key, name, obj["metadata"]["name"])
                        continue
                    if not is_terminating(obj):
                        try:
                            rest.delete(rt, name, obj["metadata"]["name"])
                        except ApiError:
                            pass
            if remaining == 0:
                store.remove(NS.key, None, name)

    def _defaults(self, ns: str) -> None:
        store = self.cluster.store
        rest = self.cluster.rest
        if store.get("serviceaccounts", ns, "default") is None:
            rest.create(BY_KIND["ServiceAccount"], ns, {"metadata": {"name": "default"}})
        if store.get("configmaps", ns, "kube-root-ca.crt") is None:
            rest.create(
                BY_KIND["ConfigMap"],
                ns,
                {
                    "metadata": {
                        "name": "kube-root-ca.crt",
                        "annotations": {
                            "kubernetes.io/description": "Contains a CA bundle that can be used to verify the "
                            "kube-apiserver when using internal endpoints such as the internal service IP or "
                            "kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes "
                            "clusters."
                        },
                    },
                    "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\nMIIarena\n-----END CERTIFICATE-----\n"},
                },
            )


class GarbageCollector:
    watches: frozenset[str] = frozenset()
    structural = True
    """Runs when an object was deleted, started terminating or changed owners (and on resync)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def reconcile(self, t: float) -> None:
        store = self.cluster.store
        rest = self.cluster.rest
        uids: dict[str, tuple[ResourceType, Obj]] = {}
        dependents: dict[str, list[tuple[ResourceType, Obj]]] = {}
        for rt in RESOURCES:
            if rt.kind == "Event":
                continue
            for obj in store.list(rt.key):
                uids[obj["metadata"]["uid"]] = (rt, obj)
                for ref in obj["metadata"].get("ownerReferences") or []:
                    dependents.setdefault(ref.get("uid", ""), []).append((rt, obj))
        # Dependents whose owners are all gone are deleted (background cascade).
        for owner_uid, deps in dependents.items():
            if owner_uid in uids:
                continue
            for rt, obj in deps:
                refs = obj["metadata"].get("ownerReferences") or []
                if all(r.get("uid") not in uids for r in refs) and not is_terminating(obj):
                    try:
                        rest.delete(rt, obj["metadata"].get("namespace"), obj["metadata"]["name"])
                    except ApiError:
                        pass
        # Owners being deleted in the foreground or orphaning their dependents.
        for uid, (rt, obj) in list(uids.items()):
            fins = obj["metadata"].get("finalizers") or []
            if not is_terminating(obj):
                continue
            deps = dependents.get(uid, [])
            if "orphan" in fins:
                for drt, dep in deps:
                    cur = store.get(drt.key, dep["metadata"].get("namespace"), dep["metadata"]["name"])
                    if cur is None:
                        continue
                    upd = copy.deepcopy(cur)
                    upd["metadata"]["ownerReferences"] = [
                        r for r in upd["metadata"].get("ownerReferences") or [] if r.get("uid") != uid
                    ]
                    if not upd["metadata"]["ownerReferences"]:
                        upd["metadata"].pop("ownerReferences")
                    rest.write(drt, upd)
                rest.finalize(rt, obj, "orphan")
            elif "foregroundDeletion" in fins:
                if not deps:
                    rest.finalize(rt, obj, "foregroundDeletion")
                    continue
                for drt, dep in deps:
                    if not is_terminating(dep):
                        try:
                            rest.delete(
                                drt, dep["metadata"].get("namespace"), dep["metadata"]["name"], propagation="Foreground"
                            )
                        except ApiError:
                            pass


class NodeController:
    watches = frozenset({"nodes", "namespaces"})

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def reconcile(self, t: float) -> None:
        store = self.cluster.store
        for node in store.list("nodes"):
            spec = node.get("spec") or {}
            taints = list(spec.get("taints") or [])
            has = any(x.get("key") == UNSCHEDULABLE_TAINT["key"] for x in taints)
            if spec.get("unschedulable") and not has:
                taints.append({**UNSCHEDULABLE_TAINT, "timeAdded": now()})
            elif not spec.get("unschedulable") and has:
                taints = [x for x in taints if x.get("key") != UNSCHEDULABLE_TAINT["key"]]
            else:
                taints = None  # type: ignore[assignment]
            if taints is not None:
                upd = copy.deepcopy(node)
                if taints:
                    upd["spec"]["taints"] = taints
                else:
                    upd["spec"].pop("taints", None)
                self.cluster.rest.write(BY_KIND["Node"], upd)
            name = node["metadata"]["name"]
            if store.get("leases.coordination.k8s.io", "kube-node-lease", name) is None and store.get(
                "namespaces", None, "kube-node-lease"
            ):
                self.cluster.rest.create(
                    BY_KIND["Lease"],
                    "kube-node-lease",
                    {
                        "metadata": {
                            "name": name,
                            "ownerReferences": [
                                {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node["metadata"]["uid"]}
                            ],
                        },
                        "spec": {
                            "holderIdentity": name,
                            "leaseDurationSeconds": 40,
                            "renewTime": now().replace("Z", ".000000Z"),
                        },
                    },
                )
