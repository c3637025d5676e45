"""Type checks of incoming objects, standing in for the apiserver's decoding into Go structs.

A real apiserver rejects ``"replicas": "3"`` or ``"taints": "x"`` while decoding (400, ``json: cannot unmarshal
string into Go struct field ...``); the arena stores JSON as given, so without this check a malformed object would
reach the controllers. The schema covers the fields the arena's controllers and printers read; other fields pass.
"""

from __future__ import annotations

from typing import Any

from arena.errors import bad_request
from arena.resources import ResourceType

Shape = Any  # a type name (str), a dict of field -> Shape, or a one-item list [Shape] for arrays

META = {
    "name": "str",
    "generateName": "str",
    "namespace": "str",
    "labels": "map",
    "annotations": "map",
    "finalizers": ["str"],
    "ownerReferences": [{"kind": "str", "name": "str", "uid": "str", "apiVersion": "str", "controller": "bool"}],
    "resourceVersion": "str",
    "uid": "str",
}
SELECTOR = {"matchLabels": "map", "matchExpressions": [{"key": "str", "operator": "str", "values": ["str"]}]}
CONTAINER = {
    "name": "str",
    "image": "str",
    "command": ["str"],
    "args": ["str"],
    "workingDir": "str",
    "ports": [{"containerPort": "int", "name": "str", "protocol": "str", "hostPort": "int"}],
    "env": [{"name": "str", "value": "str", "valueFrom": "obj"}],
    "envFrom": ["obj"],
    "resources": {"requests": "qtymap", "limits": "qtymap"},
    "volumeMounts": [{"name": "str", "mountPath": "str", "readOnly": "bool"}],
    "readinessProbe": "obj",
    "livenessProbe": "obj",
    "startupProbe": "obj",
    "imagePullPolicy": "str",
}
POD_SPEC = {
    "containers": [CONTAINER],
    "initContainers": [CONTAINER],
    "volumes": [{"name": "str", "persistentVolumeClaim": {"claimName": "str"}, "configMap": "obj", "secret": "obj"}],
    "nodeSelector": "map",
    "nodeName": "str",
    "restartPolicy": "str",
    "serviceAccountName": "str",
    "tolerations": [{"key": "str", "operator": "str", "value": "str", "effect": "str", "tolerationSeconds": "int"}],
    "affinity": "obj",
    "terminationGracePeriodSeconds": "int",
    "hostname": "str",
    "subdomain": "str",
    "schedulerName": "str",
    "readinessGates": ["obj"],
}
TEMPLATE = {"metadata": META, "spec": POD_SPEC}
PVC_SPEC = {
    "accessModes": ["str"],
    "storageClassName": "str",
    "volumeName": "str",
    "volumeMode": "str",
    "resources": {"requests": "qtymap", "limits": "qtymap"},
    "selector": SELECTOR,
}
SHAPES: dict[str, dict[str, Shape]] = {
    "Pod": {"spec": POD_SPEC, "status": "obj"},
    "Deployment": {
        "spec": {
            "replicas": "int",
            "selector": SELECTOR,
            "template": TEMPLATE,
            "minReadySeconds": "int",
            "revisionHistoryLimit": "int",
            "paused": "bool",
            "progressDeadlineSeconds": "int",
            "strategy": {"type": "str", "rollingUpdate": {"maxSurge": "ios", "maxUnavailable": "ios"}},
        },
        "status": "obj",
    },
    "ReplicaSet": {
        "spec": {"replicas": "int", "selector": SELECTOR, "template": TEMPLATE, "minReadySeconds": "int"},
        "status": "obj",
    },
    "StatefulSet": {
        "spec": {
            "replicas": "int",
            "selector": SELECTOR,
            "template": TEMPLATE,
            "serviceName": "str",
            "podManagementPolicy": "str",
            "updateStrategy": "obj",
            "volumeClaimTemplates": [{"metadata": META, "spec": PVC_SPEC}],
        },
        "status": "obj",
    },
    "Service": {
        "spec": {
            "type": "str",
            "selector": "map",
            "clusterIP": "str",
            "externalName": "str",
            "publishNotReadyAddresses": "bool",
            "ports": [{"name": "str", "port": "int", "targetPort": "ios", "protocol": "str", "nodePort": "int"}],
        }
    },
    "PersistentVolumeClaim": {"spec": PVC_SPEC, "status": "obj"},
    "PersistentVolume": {
        "spec": {
            "capacity": "qtymap",
            "accessModes": ["str"],
            "storageClassName": "str",
            "claimRef": {"name": "str", "namespace": "str", "uid": "str"},
            "persistentVolumeReclaimPolicy": "str",
            "volumeMode": "str",
        },
        "status": "obj",
    },
    "Node": {
        "spec": {"unschedulable": "bool", "taints": [{"key": "str", "value": "str", "effect": "str"}]},
        "status": "obj",
    },
    "ConfigMap": {"data": "map", "binaryData": "map", "immutable": "bool"},
    "Secret": {"data": "map", "stringData": "map", "type": "str", "immutable": "bool"},
    "StorageClass": {
        "provisioner": "str",
        "parameters": "map",
        "reclaimPolicy": "str",
        "volumeBindingMode": "str",
        "allowVolumeExpansion": "bool",
    },
    "Namespace": {"spec": {"finalizers": ["str"]}, "status": "obj"},
    "Endpoints": {"subsets": ["obj"]},
    "Event": {"involvedObject": "obj", "reason": "str", "message": "str", "count": "int", "type": "str"},
}
GO_TYPES = {
    "str": "string",
    "int": "int32",
    "bool": "bool",
    "map": "map[string]string",
    "obj": "struct",
    "ios": "intstr.IntOrString",
    "qtymap": "v1.ResourceList",
    "list": "[]",
    "dict": "struct",
}


def _json_type(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _ok(shape: str, v: Any) -> bool:
    if shape == "str":
        return isinstance(v, str)
    if shape == "int":
        return isinstance(v, int) and not isinstance(v, bool)
    if shape == "bool":
        return isinstance(v, bool)
    if shape == "map":
        return isinstance(v, dict) and all(isinstance(x, str) for x in v.values())
    if shape == "qtymap":
        return isinstance(v, dict) and all(
            isinstance(x, str | int | float) and not isinstance(x, bool) for x in v.values()
        )
    if shape == "ios":
        return isinstance(v, str | int) and not isinstance(v, bool)
    if shape == "obj":
        return isinstance(v, dict)
    return True


def _check(shape: Shape, v: Any, path: str, fail: Any) -> None:
    if v is None:
        return
    if isinstance(shape, dict):
        if not isinstance(v, dict):
            fail(path, v, "struct")
            return
        for k, sub in shape.items():
            if k in v:
                _check(sub, v[k], f"{path}.{k}" if path else k, fail)
    elif isinstance(shape, list):
        if not isinstance(v, list):
            fail(path, v, "[]" + ("struct" if isinstance(shape[0], dict) else GO_TYPES.get(shape[0], "")))
            return
        for item in v:
            _check(shape[0], item, path, fail)
    elif not _ok(shape, v):
        fail(path, v, GO_TYPES.get(shape, shape))


def check_shape(rt: ResourceType, obj: Any) -> None:
    """Raise 400 BadRequest, worded like the apiserver's decoder, when a field has the wrong JSON type."""

    def fail(path: str, v: Any, go: str) -> None:
        raise bad_request(
            f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: json: cannot unmarshal '
            f"{_json_type(v)} into Go struct field {rt.kind}.{path} of type {go}"
        )

    if not isinstance(obj, dict):
        raise bad_request(
            f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: json: cannot '
            f"unmarshal {_json_type(obj)} into Go value of type struct"
        )
    _check({"metadata": META, **SHAPES.get(rt.kind, {})}, obj, "", fail)
