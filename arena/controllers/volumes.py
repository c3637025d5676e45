"""PersistentVolume / PersistentVolumeClaim binding, dynamic provisioning through StorageClasses, release, and the
pvc/pv-protection finalizers, with the persistentvolume-controller's events.

A PV released by a deleted claim keeps its ``claimRef`` (with the old claim's uid), so a new claim of the same name
does not bind it until an operator clears the ``claimRef``, as on a real cluster (reclaim policy Retain).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from arena.errors import ApiError
from arena.objects import is_terminating, parse_quantity
from arena.resources import BY_KIND
from arena.store import Obj

if TYPE_CHECKING:
    from arena.cluster import Cluster

PODS = BY_KIND["Pod"]
PV = BY_KIND["PersistentVolume"]
PVC = BY_KIND["PersistentVolumeClaim"]
SC_KEY = "storageclasses.storage.k8s.io"
NO_PROVISIONER = "kubernetes.io/no-provisioner"
COMPONENT = "persistentvolume-controller"


def _storage(obj: Obj, path: str) -> float:
    cur: object = obj
    for part in path.split("."):
        cur = (cur or {}).get(part) if isinstance(cur, dict) else None
    try:
        return parse_quantity(cur) if cur is not None else 0.0
    except ValueError:
        return 0.0


class VolumeController:
    watches = frozenset({"persistentvolumeclaims", "persistentvolumes", "storageclasses.storage.k8s.io", "pods"})

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def _emit(self, obj: Obj, type_: str, reason: str, msg: str) -> None:
        self.cluster.events.emit(obj, type_, reason, msg, COMPONENT, throttle=self.cluster.timing.pv_retry)

    def reconcile(self, t: float) -> None:
        store = self.cluster.store
        claims = {(c["metadata"]["namespace"], c["metadata"]["name"]): c for c in store.list(PVC.key)}
        used: set[tuple[str, str]] = set()
        for p in store.list(PODS.key):
            if (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            if not (p.get("spec") or {}).get("nodeName"):
                # the pvc-protection controller counts only scheduled pods: the kubelet refuses to start a pod whose
                # claim is being deleted, so an unscheduled pod can never come to use it
                continue
            for v in (p.get("spec") or {}).get("volumes") or []:
                cn = (v.get("persistentVolumeClaim") or {}).get("claimName")
                if cn:
                    used.add((p["metadata"]["namespace"], cn))
        # Volumes: release, recycle to Available, protection.
        for pv in store.list(PV.key):
            self._sync_pv(pv, claims)
        for key, pvc in claims.items():
            if is_terminating(pvc):
                if key not in used:
                    self.cluster.rest.finalize(PVC, pvc, "kubernetes.io/pvc-protection")
                continue
            self._sync_pvc(pvc)

    def _sync_pv(self, pv: Obj, claims: dict[tuple[str, str], Obj]) -> None:
        spec = pv.get("spec") or {}
        phase = (pv.get("status") or {}).get("phase")
        ref = spec.get("claimRef")
        if is_terminating(pv):
            if phase != "Bound":
                self.cluster.rest.finalize(PV, pv, "kubernetes.io/pv-protection")
            return
        want = phase
        if not ref:
            want = "Available"
        else:
            claim = claims.get((ref.get("namespace"), ref.get("name")))
            if claim is None or (ref.get("uid") and claim["metadata"]["uid"] != ref.get("uid")):
                if ref.get("uid"):
                    if phase == "Bound":
                        if spec.get("persistentVolumeReclaimPolicy") == "Delete":
                            self.cluster.rest.delete(PV, None, pv["metadata"]["name"])
                            self.cluster.rest.finalize(PV, pv, "kubernetes.io/pv-protection")
                            return
                        want = "Released"
                else:
                    want = "Available"
            elif (claim.get("spec") or {}).get("volumeName") == pv["metadata"]["name"]:
                want = "Bound"
            else:
                want = "Available" if not ref.get("uid") else phase
        if want and want != phase:
            upd = copy.deepcopy(pv)
            upd.setdefault("status", {})["phase"] = want
            upd["status"].pop("reason", None)
            if want == "Released":
                upd["status"]["lastPhaseTransitionTime"] = upd["metadata"].get("creationTimestamp")
            self.cluster.rest.write(PV, upd)

    def find_pv(self, pvc: Obj) -> Obj | None:
        spec = pvc.get("spec") or {}
        ns, name = pvc["metadata"]["namespace"], pvc["metadata"]["name"]
        want_class = spec.get("storageClassName") or ""
        want_size = _storage(pvc, "spec.resources.requests.storage")
        modes = set(spec.get("accessModes") or [])
        best: Obj | None = None
        for pv in self.cluster.store.list(PV.key):
            pspec = pv.get("spec") or {}
            if is_terminating(pv):
                continue
            ref = pspec.get("claimRef")
            if ref:
                if ref.get("namespace") != ns or ref.get("name") != name:
                    continue
                if ref.get("uid") and ref.get("uid") != pvc["metadata"]["uid"]:
                    continue
            elif (pv.get("status") or {}).get("phase") not in (None, "Available", "Pending"):
                continue
            if (pspec.get("storageClassName") or "") != want_class:
                continue
            if not modes <= set(pspec.get("accessModes") or []):
                continue
            if pspec.get("volumeMode", "Filesystem") != spec.get("volumeMode", "Filesystem"):
                continue
            size = _storage(pv, "spec.capacity.storage")
            if size < want_size:
                continue
            sel = spec.get("selector")
            if sel:
                from arena.selectors import label_selector_requirements, match_labels

                if not match_labels(label_selector_requirements(sel) or [], pv["metadata"].get("labels")):
                    continue
            if ref:
                return pv
            if best is None or size < _storage(best, "spec.capacity.storage"):
                best = pv
        return best

    def _sync_pvc(self, pvc: Obj) -> None:
        store = self.cluster.store
        spec = pvc.get("spec") or {}
        phase = (pvc.get("status") or {}).get("phase", "Pending")
        if phase == "Bound":
            vol = spec.get("volumeName")
            if vol and store.get(PV.key, None, vol) is None:
                upd = copy.deepcopy(pvc)
                upd["status"] = {"phase": "Lost"}
                self.cluster.rest.write(PVC, upd)
                self._emit(
                    pvc,
                    "Warning",
                    "ClaimLost",
                    "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
                )
            return
        if phase == "Lost":
            return
        if spec.get("volumeName"):
            pv = store.get(PV.key, None, spec["volumeName"])
            ref = ((pv or {}).get("spec") or {}).get("claimRef")
            if pv is not None and (
                not ref
                or (
                    ref.get("name") == pvc["metadata"]["name"]
                    and ref.get("namespace") == pvc["metadata"]["namespace"]
                    and ref.get("uid") in (None, pvc["metadata"]["uid"])
                )
            ):
                self._bind(pvc, pv)
            else:
                self._emit(
                    pvc,
                    "Warning",
                    "FailedBinding",
                    f'volume "{spec["volumeName"]}" already bound to a different claim.'
                    if pv
                    else f'volume "{spec["volumeName"]}" not found',
                )
            return
        pv = self.find_pv(pvc)
        if pv is not None:
            self._bind(pvc, pv)
            return
        class_name = spec.get("storageClassName")
        if not class_name:
            self._emit(
                pvc,
                "Normal",
                "FailedBinding",
                "no persistent volumes available for this claim and no storage class is set",
            )
            return
        sc = store.get(SC_KEY, None, class_name)
        if sc is None:
            self._emit(pvc, "Warning", "ProvisioningFailed", f'storageclass.storage.k8s.io "{class_name}" not found')
            return
        selected = (pvc["metadata"].get("annotations") or {}).get("volume.kubernetes.io/selected-node")
        if sc.get("volumeBindingMode") == "WaitForFirstConsumer" and not selected:
            self._emit(pvc, "Normal", "WaitForFirstConsumer", "waiting for first consumer to be created before binding")
            return
        provisioner = sc.get("provisioner", "")
        if provisioner == NO_PROVISIONER:
            if sc.get("volumeBindingMode") != "WaitForFirstConsumer":
                self._emit(
                    pvc,
                    "Normal",
                    "FailedBinding",
                    "no persistent volumes available for this claim and no storage class is set",
                )
            return
        self._provision(pvc, sc)

    def _provision(self, pvc: Obj, sc: Obj) -> None:
        spec = pvc.get("spec") or {}
        ns, name = pvc["metadata"]["namespace"], pvc["metadata"]["name"]
        pv_name = f"pvc-{pvc['metadata']['uid']}"
        provisioner = sc.get("provisioner", "")
        self._emit(
            pvc, "Normal", "Provisioning", f'External provisioner is provisioning volume for claim "{ns}/{name}"'
        )
        pv = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": pv_name, "annotations": {"pv.kubernetes.io/provisioned-by": provisioner}},
            "spec": {
                "capacity": {"storage": ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")},
                "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
                "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy", "Delete"),
                "storageClassName": sc["metadata"]["name"],
                "volumeMode": spec.get("volumeMode", "Filesystem"),
                "hostPath": {"path": f"/var/lib/arena/volumes/{pv_name}", "type": "DirectoryOrCreate"},
                "claimRef": {
                    "kind": "PersistentVolumeClaim",
                    "namespace": ns,
                    "name": name,
                    "uid": pvc["metadata"]["uid"],
                    "apiVersion": "v1",
                    "resourceVersion": pvc["metadata"]["resourceVersion"],
                },
            },
        }
        selected = (pvc["metadata"].get("annotations") or {}).get("volume.kubernetes.io/selected-node")
        if selected and sc.get("volumeBindingMode") == "WaitForFirstConsumer":
            # topology-aware provisioning (node-local provisioners such as hostpath): the volume lives on the node the
            # scheduler chose, and its node affinity keeps every later consumer there
            term = {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [selected]}]}
            pv["spec"]["nodeAffinity"] = {"required": {"nodeSelectorTerms": [term]}}
        try:
            created = self.cluster.rest.create(PV, None, pv)
        except ApiError as e:
            self._emit(pvc, "Warning", "ProvisioningFailed", e.message)
            return
        self._emit(pvc, "Normal", "ProvisioningSucceeded", f"Successfully provisioned volume {pv_name}")
        self._bind(pvc, created, by_controller=False)

    def _bind(self, pvc: Obj, pv: Obj, by_controller: bool = True) -> None:
        upd_pv = copy.deepcopy(pv)
        pspec = upd_pv.setdefault("spec", {})
        if not pspec.get("claimRef") or not pspec["claimRef"].get("uid"):
            pspec["claimRef"] = {
                "kind": "PersistentVolumeClaim",
                "namespace": pvc["metadata"]["namespace"],
                "name": pvc["metadata"]["name"],
                "uid": pvc["metadata"]["uid"],
                "apiVersion": "v1",
                "resourceVersion": pvc["metadata"]["resourceVersion"],
            }
            if by_controller:
                upd_pv["metadata"].setdefault("annotations", {})["pv.kubernetes.io/bound-by-controller"] = "yes"
        upd_pv.setdefault("status", {})["phase"] = "Bound"
        self.cluster.rest.write(PV, upd_pv)
        upd = copy.deepcopy(pvc)
        upd["spec"]["volumeName"] = pv["metadata"]["name"]
        ann = upd["metadata"].setdefault("annotations", {})
        ann["pv.kubernetes.io/bind-completed"] = "yes"
        if by_controller:
            ann["pv.kubernetes.io/bound-by-controller"] = "yes"
        upd["status"] = {
            "phase": "Bound",
            "accessModes": list(pv["spec"].get("accessModes") or []),
            "capacity": dict(pv["spec"].get("capacity") or {}),
        }
        self.cluster.rest.write(PVC, upd)
