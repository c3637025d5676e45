"""Endpoints and EndpointSlices for every Service with a selector: ready pods as addresses, unready ones as
``notReadyAddresses``, each Service port resolved against the pod (a named ``targetPort`` looks up the container
port of that name; a pod without it is left out of that port set)."""

from __future__ import annotations

import copy
import json
import zlib
from typing import TYPE_CHECKING, Any

from arena.controllers.workloads import pod_ready
from arena.objects import is_terminating, owner_ref, safe_encode
from arena.resources import BY_KIND
from arena.store import Obj

if TYPE_CHECKING:
    from arena.cluster import Cluster

PODS = BY_KIND["Pod"]
SVC = BY_KIND["Service"]
EP = BY_KIND["Endpoints"]
SLICE = BY_KIND["EndpointSlice"]


def resolve_port(pod: Obj, target: Any) -> int | None:
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == target:
                return int(p["containerPort"])
    return None


class EndpointsController:
    watches = frozenset({"services", "pods", "endpoints", "endpointslices.discovery.k8s.io"})

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def reconcile(self, t: float) -> None:
        store = self.cluster.store
        services = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in store.list(SVC.key)}
        pods_by_ns: dict[str, list[Obj]] = {}
        for p in store.list(PODS.key):
            pods_by_ns.setdefault(p["metadata"].get("namespace") or "", []).append(p)
        for (ns, _name), svc in services.items():
            sel = (svc.get("spec") or {}).get("selector")
            if not sel or is_terminating(svc):
                continue
            pods = [
                p
                for p in pods_by_ns.get(ns, [])
                if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in sel.items())
                and (p.get("status") or {}).get("podIP")
                and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
            ]
            self._sync(svc, pods)
        for ep in store.list(EP.key):
            key = (ep["metadata"].get("namespace"), ep["metadata"]["name"])
            esvc = services.get(key)
            managed = (ep["metadata"].get("labels") or {}).get(
                "endpoints.kubernetes.io/managed-by"
            ) == "endpoint-controller"
            if managed and (esvc is None or not (esvc.get("spec") or {}).get("selector")):
                store.remove(EP.key, key[0], key[1])
        for sl in store.list(SLICE.key):
            labels = sl["metadata"].get("labels") or {}
            ssvc = services.get((sl["metadata"].get("namespace"), labels.get("kubernetes.io/service-name")))
            if ssvc is None or not (ssvc.get("spec") or {}).get("selector"):
                store.remove(SLICE.key, sl["metadata"].get("namespace"), sl["metadata"]["name"])

    def _sync(self, svc: Obj, pods: list[Obj]) -> None:
        store = self.cluster.store
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        sports = (svc.get("spec") or {}).get("ports") or []
        publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
        groups: dict[str, tuple[list[Obj], list[Obj], list[Obj], list[Obj]]] = {}
        for p in sorted(pods, key=lambda p: p["status"]["podIP"]):
            ports = []
            for sp in sports:
                port = resolve_port(p, sp.get("targetPort", sp.get("port")))
                if port is None:
                    continue
                ep: Obj = {"port": port, "protocol": sp.get("protocol", "TCP")}
                if sp.get("name"):
                    ep["name"] = sp["name"]
                if sp.get("appProtocol"):
                    ep["appProtocol"] = sp["appProtocol"]
                ports.append(ep)
            if sports and not ports:
                continue
            key = json.dumps(ports, sort_keys=True)
            g = groups.setdefault(key, ([], [], ports, []))
            addr = {
                "ip": p["status"]["podIP"],
                "nodeName": p["spec"].get("nodeName"),
                "targetRef": {
                    "kind": "Pod",
                    "namespace": ns,
                    "name": p["metadata"]["name"],
                    "uid": p["metadata"]["uid"],
                },
            }
            ready = pod_ready(p) and not is_terminating(p)
            (g[0] if ready or publish else g[1]).append(addr)
            g[3].append(p)
        subsets = []
        for ready_a, unready_a, ports, _ in groups.values():
            s: Obj = {}
            if ready_a:
                s["addresses"] = ready_a
            if unready_a:
                s["notReadyAddresses"] = unready_a
            if ports:
                s["ports"] = ports
            subsets.append(s)
        labels = dict(svc["metadata"].get("labels") or {})
        labels["endpoints.kubernetes.io/managed-by"] = "endpoint-controller"
        cur = store.get(EP.key, ns, name)
        if cur is None:
            self.cluster.rest.create(
                EP, ns, {"metadata": {"name": name, "namespace": ns, "labels": labels}, "subsets": subsets}
            )
        elif cur.get("subsets") != subsets or (cur["metadata"].get("labels") or {}) != labels:
            upd = copy.deepcopy(cur)
            upd["subsets"] = subsets
            upd["metadata"]["labels"] = labels
            if not subsets:
                upd.pop("subsets")
                if cur.get("subsets") is None and (cur["metadata"].get("labels") or {}) == labels:
                    return
            self.cluster.rest.write(EP, upd)
        # EndpointSlices (kubectl describe service reads these).
        wanted: dict[str, Obj] = {}
        for key, (ready_a, unready_a, ports, _) in (groups or {"[]": ([], [], [], [])}).items():
            sname = f"{name}-{safe_encode(zlib.crc32(key.encode()))[:5]}"
            endpoints = []
            for a, rd in [*((a, True) for a in ready_a), *((a, False) for a in unready_a)]:
                endpoints.append(
                    {
                        "addresses": [a["ip"]],
                        "conditions": {"ready": rd, "serving": rd, "terminating": False},
                        "nodeName": a["nodeName"],
                        "targetRef": a["targetRef"],
                    }
                )
            wanted[sname] = {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": sname,
                    "namespace": ns,
                    "labels": {
                        "kubernetes.io/service-name": name,
                        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                    },
                    "ownerReferences": [owner_ref(svc)],
                },
                "addressType": "IPv4",
                "endpoints": endpoints,
                "ports": [
                    {"name": p.get("name", ""), "port": p["port"], "protocol": p.get("protocol", "TCP")} for p in ports
                ],
            }
        for sl in store.list(SLICE.key, ns):
            if (sl["metadata"].get("labels") or {}).get("kubernetes.io/service-name") == name and sl["metadata"][
                "name"
            ] not in wanted:
                store.remove(SLICE.key, ns, sl["metadata"]["name"])
        for sname, want in wanted.items():
            cur = store.get(SLICE.key, ns, sname)
            if cur is None:
                self.cluster.rest.create(SLICE, ns, want)
            elif cur.get("endpoints") != want["endpoints"] or cur.get("ports") != want["ports"]:
                upd = copy.deepcopy(cur)
                upd["endpoints"] = want["endpoints"]
                upd["ports"] = want["ports"]
                self.cluster.rest.write(SLICE, upd)
