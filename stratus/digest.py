"""Normalised state digests of a scope: the yardstick of a faithful undo (TNR assumption A2).

Why it is shaped this way: after an abort the undoer must prove that the scope is back where the checkpoint found
it. Comparing raw objects would always fail, because the API server and the controllers rewrite fields on every
change (``resourceVersion``, ``generation``, ``managedFields``, ``status``, the Deployment revision annotation...).
So a digest keeps only what a writer *declares*:

- **Which objects.** Declared state only: Deployments, StatefulSets, DaemonSets, Services, ConfigMaps, Secrets, PVCs,
  NetworkPolicies, ServiceAccounts of a namespace; for the ``cluster`` scope PersistentVolumes, StorageClasses and the
  schedulability of Nodes (``spec.unschedulable``, taints). Pods, ReplicaSets, Endpoints and Events are *derived*
  state: controllers recreate them with new names, so they are excluded.
- **Which fields.** ``metadata`` keeps name, namespace, labels and annotations (minus the ones controllers write) and
  ownerReferences without uids; ``status`` is dropped; server-allocated spec fields (a Service's ``clusterIP``) and
  binding fields written by the PV controller (``pvc.spec.volumeName``, ``pv.spec.claimRef``) are dropped, because
  they are outcomes, not intent. Node taints in ``node.kubernetes.io/`` are the node controller's and are dropped.
- **Kept on purpose.** ``spec.template.metadata.annotations['kubectl.kubernetes.io/restartedAt']`` is a real change
  of the pod template (it is how ``rollout restart`` works); the undo of a restart restores the template pre-image,
  which removes or restores that annotation, so the digest matches again.
- **Secrets.** Secret values are replaced by their sha256 so a divergence report never prints a secret.

The digest is the sha256 of the canonical JSON (sorted keys) of the snapshot; ``diff_snapshots`` explains a mismatch
field by field, with paths like ``spec.template.spec.containers[name=app].image``.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from stratus.contracts import Divergence

NAMESPACED_DIGEST_KINDS = (
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "Service",
    "ConfigMap",
    "Secret",
    "PersistentVolumeClaim",
    "NetworkPolicy",
    "ServiceAccount",
)
CLUSTER_DIGEST_KINDS = ("PersistentVolume", "StorageClass", "Node")

NOISE_ANNOTATIONS = frozenset(
    {
        "deployment.kubernetes.io/revision",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "kubectl.kubernetes.io/last-applied-configuration",
        "deprecated.daemonset.template.generation",
        "pv.kubernetes.io/bind-completed",
        "pv.kubernetes.io/bound-by-controller",
        "pv.kubernetes.io/provisioned-by",
        "volume.beta.kubernetes.io/storage-provisioner",
        "volume.kubernetes.io/storage-provisioner",
        "volume.kubernetes.io/selected-node",
        "control-plane.alpha.kubernetes.io/leader",
        "node.alpha.kubernetes.io/ttl",
        "volumes.kubernetes.io/controller-managed-attach-detach",
        "endpoints.kubernetes.io/last-change-trigger-time",
    }
)
"""Annotations written by controllers, not by whoever declared the object."""

SERVER_METADATA = frozenset({"uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink"})
SERVER_METADATA |= {"deletionTimestamp", "deletionGracePeriodSeconds", "generateName"}


class StateDigest(BaseModel):
    """The digest of a scope's declared state and the snapshot it was computed from."""

    model_config = ConfigDict(frozen=True)

    scope: str = Field(description="Namespace, or 'cluster'.")
    digest: str = Field(description="sha256 hex of the canonical JSON of ``objects``.")
    objects: dict[str, dict[str, Any]] = Field(
        description="Normalised objects by key 'Kind/namespace/name' ('Kind/name' when cluster-scoped)."
    )


def object_key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    return "/".join([str(obj.get("kind")), *([namespace] if namespace else []), str(meta.get("name"))])


def _clean_meta(meta: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: v for k, v in meta.items() if k not in SERVER_METADATA}
    annotations = {k: v for k, v in (out.get("annotations") or {}).items() if k not in NOISE_ANNOTATIONS}
    out.pop("annotations", None)
    if annotations:
        out["annotations"] = annotations
    if not out.get("labels"):
        out.pop("labels", None)
    if out.get("ownerReferences"):
        out["ownerReferences"] = [{k: v for k, v in ref.items() if k != "uid"} for ref in out["ownerReferences"]]
    else:
        out.pop("ownerReferences", None)
    if not out.get("finalizers"):
        out.pop("finalizers", None)
    return out


def _hash(value: Any) -> str:
    return "sha256:" + hashlib.sha256(str(value).encode()).hexdigest()


def normalise(obj: dict[str, Any]) -> dict[str, Any]:
    """The declared, comparable part of one object (see the module docstring for what is dropped and why)."""
    kind = obj.get("kind")
    out: dict[str, Any] = {k: copy.deepcopy(v) for k, v in obj.items() if k not in ("status", "metadata")}
    out["metadata"] = _clean_meta(copy.deepcopy(obj.get("metadata") or {}))
    spec = out.get("spec")
    if kind == "Service" and isinstance(spec, dict):
        spec.pop("clusterIP", None)
        spec.pop("clusterIPs", None)
    elif kind == "PersistentVolumeClaim" and isinstance(spec, dict):
        spec.pop("volumeName", None)
    elif kind == "PersistentVolume" and isinstance(spec, dict):
        spec.pop("claimRef", None)
    elif kind == "Node":
        node_spec = spec if isinstance(spec, dict) else {}
        taints = [
            t for t in node_spec.get("taints") or [] if not str(t.get("key", "")).startswith("node.kubernetes.io/")
        ]
        kept: dict[str, Any] = {"unschedulable": bool(node_spec.get("unschedulable", False))}
        if taints:
            kept["taints"] = [{k: v for k, v in t.items() if k != "timeAdded"} for t in taints]
        out = {"apiVersion": obj.get("apiVersion"), "kind": kind, "metadata": {"name": out["metadata"].get("name")}}
        out["spec"] = kept
    elif kind == "Secret":
        for field in ("data", "stringData"):
            if isinstance(out.get(field), dict):
                out[field] = {k: _hash(_secret_value(v, field)) for k, v in out[field].items()}
    return out


def _secret_value(value: Any, field: str) -> str:
    if field == "data" and isinstance(value, str):
        try:
            return base64.b64decode(value).decode("utf-8", "replace")
        except ValueError:
            return value
    return str(value)


def digest_of(scope: str, objects: list[dict[str, Any]]) -> StateDigest:
    """Normalise ``objects`` (raw API objects, each with kind and apiVersion) and hash the snapshot."""
    snapshot = {object_key(o): normalise(o) for o in objects}
    canonical = json.dumps(snapshot, sort_keys=True, separators=(",", ":"), default=str)
    return StateDigest(scope=scope, digest=hashlib.sha256(canonical.encode()).hexdigest(), objects=snapshot)


def _list_index(items: list[Any]) -> dict[str, Any] | None:
    """Lists of named objects (containers, env, ports, volumes) compare by name, not position."""
    if items and all(isinstance(i, dict) and "name" in i for i in items):
        names = [str(i["name"]) for i in items]
        if len(set(names)) == len(names):
            return {f"[name={n}]": i for n, i in zip(names, items, strict=True)}
    return None


def _diff(obj: str, path: str, expected: Any, found: Any, out: list[Divergence]) -> None:
    if expected == found:
        return
    if isinstance(expected, dict) and isinstance(found, dict):
        for key in sorted(set(expected) | set(found), key=str):
            sub = f"{path}.{key}" if path else str(key)
            _diff(obj, sub, expected.get(key), found.get(key), out)
        return
    if isinstance(expected, list) and isinstance(found, list):
        ei, fi = _list_index(expected), _list_index(found)
        if ei is not None and fi is not None:
            for key in list(ei) + [k for k in fi if k not in ei]:
                _diff(obj, f"{path}{key}", ei.get(key), fi.get(key), out)
            return
        if len(expected) == len(found):
            for i, (e, f) in enumerate(zip(expected, found, strict=True)):
                _diff(obj, f"{path}[{i}]", e, f, out)
            return
    out.append(Divergence(object=obj, field=path or "(object)", expected=expected, found=found))


def diff_snapshots(expected: dict[str, dict[str, Any]], found: dict[str, dict[str, Any]]) -> list[Divergence]:
    """Field-by-field differences between two snapshots; a missing object is field ``(object)`` with None."""
    out: list[Divergence] = []
    for key in sorted(set(expected) | set(found)):
        if key not in found:
            out.append(Divergence(object=key, field="(object)", expected="present", found=None))
        elif key not in expected:
            out.append(Divergence(object=key, field="(object)", expected=None, found="present"))
        else:
            _diff(key, "", expected[key], found[key], out)
    return out
