"""The API's verbs over the store, independent of HTTP: what the HTTP handlers, the controllers and in-process code
(tests, the applications half, fault injection) all use, so that every write gets the same defaults, validation,
resourceVersion checks, generation bookkeeping, deletion semantics (graceful pods, finalizers, propagation policy)
and dry run.

It must be called on the arena's event-loop thread (``Cluster.call`` gets there from other threads).
"""

from __future__ import annotations

import copy
import ipaddress
import json
import uuid
from collections.abc import Callable
from typing import Any

from arena import admission, podsecurity, quota, webhooks
from arena.errors import ApiError, already_exists, bad_request, conflict, forbidden, invalid, not_found
from arena.objects import is_terminating, now, random_suffix
from arena.patch import JsonPatchError, json_patch, merge_patch, strategic_merge
from arena.resources import BY_KIND, ResourceType, by_kind
from arena.selectors import match_labels, parse_fields, parse_labels
from arena.shapes import check_shape
from arena.store import Obj, Store

PATCH_TYPES = {
    "application/strategic-merge-patch+json": "strategic",
    "application/merge-patch+json": "merge",
    "application/json-patch+json": "json",
    "application/apply-patch+yaml": "apply",
}
SPEC_KINDS = {"Deployment", "ReplicaSet", "StatefulSet", "Pod", "Service", "PersistentVolumeClaim", "NetworkPolicy"}
PROTECTED_NAMESPACES = {"default", "kube-system", "kube-public", "kube-node-lease"}


def _content(obj: Obj) -> Obj:
    """What counts as a change: everything but resourceVersion and managed fields."""
    m = {k: v for k, v in obj.get("metadata", {}).items() if k not in ("resourceVersion", "managedFields")}
    return {**obj, "metadata": m}


class Rest:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._ips = ipaddress.ip_network("10.96.0.0/16")
        self._next_ip = 10
        self._next_node_port = 30000
        self.on_create: list[Callable[[ResourceType, Obj], None]] = []

    # ---------------------------------------------------------------------------------------------------------- reads

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        obj = self.store.get(rt.key, namespace if rt.namespaced else None, name)
        if obj is None:
            raise not_found(rt, name)
        return obj

    def find(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        rt = by_kind(kind)
        return self.store.get(rt.key, namespace if rt.namespaced else None, name)

    def list(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[Obj]:
        items = self.store.list(rt.key, namespace if rt.namespaced else None)
        if label_selector:
            reqs = parse_labels(label_selector)
            items = [o for o in items if match_labels(reqs, o["metadata"].get("labels"))]
        if field_selector:
            pred = parse_fields(field_selector)
            items = [o for o in items if pred(o)]
        items.sort(key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"]))
        return items

    # --------------------------------------------------------------------------------------------------------- create

    def create(self, rt: ResourceType, namespace: str | None, body: Obj, dry_run: bool = False) -> Obj:
        check_shape(rt, body)
        obj = copy.deepcopy(body)
        obj["apiVersion"] = rt.api_version
        obj["kind"] = rt.kind
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if rt.namespaced:
            ns = namespace or meta.get("namespace") or "default"
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
            ns = None
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + random_suffix()
        name = str(meta.get("name") or "")
        if rt.namespaced and ns is not None:
            nsobj = self.store.get("namespaces", None, ns)
            if nsobj is None:
                raise not_found(BY_KIND["Namespace"], ns)
            if is_terminating(nsobj):
                raise forbidden(
                    rt, name, f"unable to create new content in namespace {ns} because it is being terminated"
                )
        for k in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(k, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        if rt.kind in SPEC_KINDS or rt.kind == "Namespace":
            meta["generation"] = 1
        admission.apply_defaults(rt, obj)
        self._admit_create(rt, obj)
        if rt.kind == "Pod":
            webhooks.admit_pod(self.store, obj)  # mutating (then validating) webhooks, before validation
        admission.check_invalid(rt, name, admission.validate(rt, obj))
        if rt.kind == "Pod":
            podsecurity.admit_pod(self.store, rt, obj)
            quota.apply_limit_ranges(self.store, rt, obj)
            quota.admit_pod_quota(self.store, rt, obj)
        if self.store.get(rt.key, ns, name) is not None:
            raise already_exists(rt, name)
        if rt.kind == "Pod":
            obj.setdefault("status", {}).setdefault("qosClass", _qos(obj.get("spec") or {}))
        if dry_run:
            return obj
        if rt.kind == "Service":
            self._allocate_service(obj)
        stored = self.store.put(rt.key, obj)
        for hook in self.on_create:
            hook(rt, stored)
        return stored

    def _admit_create(self, rt: ResourceType, obj: Obj) -> None:
        meta = obj["metadata"]
        if rt.kind == "PersistentVolumeClaim":
            spec = obj.setdefault("spec", {})
            if "storageClassName" not in spec:
                for sc in self.store.list("storageclasses.storage.k8s.io"):
                    ann = sc["metadata"].get("annotations") or {}
                    if ann.get("storageclass.kubernetes.io/is-default-class") == "true":
                        spec["storageClassName"] = sc["metadata"]["name"]
                        break
            fins = meta.setdefault("finalizers", [])
            if "kubernetes.io/pvc-protection" not in fins:
                fins.append("kubernetes.io/pvc-protection")
        elif rt.kind == "PersistentVolume":
            fins = meta.setdefault("finalizers", [])
            if "kubernetes.io/pv-protection" not in fins:
                fins.append("kubernetes.io/pv-protection")

    def _allocate_service(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if spec.get("type") == "ExternalName":
            return
        if not spec.get("clusterIP"):
            used = {s.get("spec", {}).get("clusterIP") for s in self.store.list("services")}
            while True:
                ip = str(self._ips[self._next_ip])
                self._next_ip += 1
                if ip not in used:
                    break
            spec["clusterIP"] = ip
        spec["clusterIPs"] = [spec["clusterIP"]]
        if spec.get("type") in ("NodePort", "LoadBalancer"):
            for p in spec.get("ports") or []:
                if not p.get("nodePort"):
                    p["nodePort"] = self._next_node_port
                    self._next_node_port += 1

    # --------------------------------------------------------------------------------------------------------- update

    def update(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        body: Obj,
        dry_run: bool = False,
        subresource: str | None = None,
    ) -> Obj:
        check_shape(rt, body)
        ns = namespace if rt.namespaced else None
        old = self.get(rt, ns, name)
        new = copy.deepcopy(body)
        meta = new.setdefault("metadata", {})
        if meta.get("name") and meta["name"] != name:
            raise bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != ns:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        rv = meta.get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise conflict(rt, name)
        return self._replace(rt, old, new, dry_run, subresource)

    def _replace(self, rt: ResourceType, old: Obj, new: Obj, dry_run: bool, subresource: str | None) -> Obj:
        name = old["metadata"]["name"]
        new["apiVersion"] = rt.api_version
        new["kind"] = rt.kind
        meta = new.setdefault("metadata", {})
        ometa = old["metadata"]
        if subresource == "status":
            merged = copy.deepcopy(old)
            merged["status"] = new.get("status", {})
            new = merged
            meta = new["metadata"]
        else:
            for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
                if k in ometa:
                    meta[k] = ometa[k]
                else:
                    meta.pop(k, None)
            meta["name"] = name
            if rt.namespaced:
                meta["namespace"] = ometa.get("namespace")
            if rt.has_status and "status" in old and rt.kind not in ("Namespace",):
                new["status"] = copy.deepcopy(old["status"])
            elif rt.kind == "Namespace":
                new["status"] = copy.deepcopy(old.get("status", {}))
            admission.apply_defaults(rt, new)
            admission.check_invalid(rt, name, admission.validate(rt, new) + admission.validate_update(rt, old, new))
            if rt.kind == "Service":
                ospec, nspec = old.get("spec") or {}, new.setdefault("spec", {})
                for k in ("clusterIP", "clusterIPs"):
                    if k in ospec and not nspec.get(k):
                        nspec[k] = ospec[k]
            if "generation" in ometa and _spec_of(old) != _spec_of(new):
                meta["generation"] = int(ometa["generation"]) + 1
        meta["resourceVersion"] = ometa["resourceVersion"]
        if dry_run:
            return new
        if _content(new) == _content(old):
            return old
        if is_terminating(new) and not meta.get("finalizers"):
            return self._remove(rt, new)
        return self.store.put(rt.key, new)

    # ---------------------------------------------------------------------------------------------------------- patch

    def patch(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        patch_type: str,
        patch: Any,
        dry_run: bool = False,
        subresource: str | None = None,
    ) -> Obj:
        """``patch_type``: strategic, merge or json; ``patch`` the decoded body."""
        ns = namespace if rt.namespaced else None
        old = self.get(rt, ns, name)
        if patch_type == "strategic":
            if not isinstance(patch, dict):
                raise bad_request("json: cannot unmarshal array into Go value of type map[string]interface {}")
            new = strategic_merge(old, patch)
        elif patch_type == "merge":
            if not isinstance(patch, dict):
                raise bad_request("json: cannot unmarshal array into Go value of type map[string]interface {}")
            new = merge_patch(old, patch)
        elif patch_type == "json":
            try:
                new = json_patch(old, patch)
            except JsonPatchError as exc:
                raise ApiError(
                    422, "Invalid", f"the server rejected our request due to an error in our request: {exc}", {}
                ) from exc
        else:
            raise ApiError(
                415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {patch_type}"
            )
        check_shape(rt, new)
        new = copy.deepcopy(new)
        meta = new.setdefault("metadata", {})
        if meta.get("name") != name:
            raise bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        if meta.get("resourceVersion") != old["metadata"]["resourceVersion"]:
            raise conflict(rt, name)
        if meta.get("uid") != old["metadata"].get("uid"):
            raise conflict(rt, name)
        if subresource == "status":
            return self._replace(rt, old, new, dry_run, "status")
        if rt.has_status and "status" in new and new.get("status") != old.get("status"):
            new["status"] = copy.deepcopy(old.get("status"))
        return self._replace(rt, old, new, dry_run, None)

    def server_side_apply(
        self, rt: ResourceType, namespace: str | None, name: str, applied: Any, dry_run: bool = False
    ) -> Obj:
        """``kubectl apply --server-side``, approximated: create the object, or strategic-merge the applied
        configuration into it (fields the configuration omits are kept; there is no field ownership)."""
        check_shape(rt, applied)
        meta = applied.setdefault("metadata", {})
        if meta.get("name") and meta["name"] != name:
            raise bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
        meta["name"] = name
        ns = namespace if rt.namespaced else None
        if self.store.get(rt.key, ns, name) is None:
            return self.create(rt, ns, applied, dry_run)
        body = {k: v for k, v in applied.items() if k not in ("apiVersion", "kind", "status")}
        body["metadata"] = {k: v for k, v in meta.items() if k in ("labels", "annotations", "name")}
        return self.patch(rt, ns, name, "strategic", body, dry_run)

    # --------------------------------------------------------------------------------------------------------- delete

    def delete(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        propagation: str | None = None,
        grace: int | None = None,
        dry_run: bool = False,
        preconditions: Obj | None = None,
    ) -> Obj:
        ns = namespace if rt.namespaced else None
        old = self.get(rt, ns, name)
        pre = preconditions or {}
        if pre.get("uid") and pre["uid"] != old["metadata"].get("uid"):
            raise conflict(rt, name)
        if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"].get("resourceVersion"):
            raise conflict(rt, name)
        if rt.kind == "Namespace" and name in PROTECTED_NAMESPACES:
            raise forbidden(rt, name, "this namespace may not be deleted")
        if dry_run:
            return old
        obj = copy.deepcopy(old)
        meta = obj["metadata"]
        fins: list[str] = list(meta.get("finalizers") or [])
        if propagation is None:
            propagation = "Background"
        if propagation == "Foreground" and "foregroundDeletion" not in fins:
            fins.append("foregroundDeletion")
        elif propagation == "Orphan" and "orphan" not in fins:
            fins.append("orphan")
        if rt.kind == "Namespace":
            if not is_terminating(obj):
                meta["deletionTimestamp"] = now()
                meta["deletionGracePeriodSeconds"] = 0
                obj.setdefault("status", {})["phase"] = "Terminating"
                return self.store.put(rt.key, obj)
            return old
        graceful = rt.kind == "Pod" and (obj.get("spec") or {}).get("nodeName") and grace != 0
        if rt.kind == "Pod" and (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            graceful = False
        if graceful:
            g = grace if grace is not None else int((obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
            if is_terminating(obj) and int(meta.get("deletionGracePeriodSeconds") or 0) <= g:
                return old
            meta["deletionGracePeriodSeconds"] = g
            meta["deletionTimestamp"] = now()
            if fins:
                meta["finalizers"] = fins
            return self.store.put(rt.key, obj)
        if fins:
            meta["finalizers"] = fins
            if not is_terminating(obj):
                meta["deletionTimestamp"] = now()
                meta["deletionGracePeriodSeconds"] = 0
            if _content(obj) == _content(old):
                return old
            return self.store.put(rt.key, obj)
        return self._remove(rt, obj)

    def _remove(self, rt: ResourceType, obj: Obj) -> Obj:
        meta = obj["metadata"]
        gone = self.store.remove(rt.key, meta.get("namespace"), meta["name"])
        return gone or obj

    def finalize(self, rt: ResourceType, obj: Obj, finalizer: str) -> None:
        """Remove ``finalizer``; a terminating object with no finalizers left is removed."""
        cur = self.store.get(rt.key, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if cur is None or finalizer not in (cur["metadata"].get("finalizers") or []):
            return
        new = copy.deepcopy(cur)
        new["metadata"]["finalizers"] = [f for f in new["metadata"]["finalizers"] if f != finalizer]
        if not new["metadata"]["finalizers"]:
            new["metadata"].pop("finalizers")
            if is_terminating(new):
                self._remove(rt, new)
                return
        self.store.put(rt.key, new)

    def force_remove(self, rt: ResourceType, namespace: str | None, name: str) -> None:
        """Remove an object now, whatever its finalizers (the kubelet's final delete of a terminated pod)."""
        self.store.remove(rt.key, namespace if rt.namespaced else None, name)

    # ----------------------------------------------------------------------------------------------------- for code

    def write(self, rt: ResourceType, obj: Obj) -> Obj:
        """Store a controller's change to ``obj`` (spec, metadata or status) if it differs from the stored one."""
        meta = obj["metadata"]
        cur = self.store.get(rt.key, meta.get("namespace") if rt.namespaced else None, meta["name"])
        if cur is None:
            return obj
        if cur["metadata"].get("uid") != meta.get("uid"):
            return cur
        if _content(cur) == _content(obj):
            return cur
        if "generation" in cur["metadata"] and _spec_of(cur) != _spec_of(obj):
            meta["generation"] = int(cur["metadata"]["generation"]) + 1
        return self.store.put(rt.key, obj)


def _spec_of(obj: Obj) -> Any:
    if obj.get("kind") in ("ConfigMap", "Secret"):
        return json.dumps([obj.get("data"), obj.get("binaryData")], sort_keys=True)
    if obj.get("kind") == "StorageClass":
        return None
    return obj.get("spec")


def _qos(spec: Obj) -> str:
    containers = spec.get("containers") or []
    reqs = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in reqs):
        return "BestEffort"
    for r in reqs:
        lim = r.get("limits") or {}
        req = r.get("requests") or lim
        if (
            not (lim.get("cpu") and lim.get("memory"))
            or req != {k: lim[k] for k in req if k in lim}
            or set(req) - set(lim)
        ):
            return "Burstable"
    return "Guaranteed"


__all__ = ["PATCH_TYPES", "Rest", "invalid"]
