"""Decoding of the Kubernetes protobuf envelope for request bodies.

kubectl's typed commands (``kubectl create deployment``, ``create namespace``, ``create configmap``...) send their
bodies as ``application/vnd.kubernetes.protobuf`` (magic ``k8s\\0`` + ``runtime.Unknown``), and a real apiserver
accepts it. The arena serves JSON only, so it decodes these bodies into JSON-shaped dicts with a small schema of the
messages those commands produce (field numbers from k8s.io/api ``generated.proto``). Fields outside the schema are
dropped, which for these generators loses nothing they set.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from arena.errors import ApiError

MAGIC = b"k8s\x00"

S, I32, I64, B, BY = "string", "int32", "int64", "bool", "bytes"
MSS, MSB, MSQ, TIME, IOS, QTY = "map_ss", "map_sb", "map_sq", "time", "ios", "quantity"

# message -> field number -> (json name, type or message, repeated)
SCHEMA: dict[str, dict[int, tuple[str, str, bool]]] = {
    "Unknown": {
        1: ("typeMeta", "TypeMeta", False),
        2: ("raw", BY, False),
        3: ("contentEncoding", S, False),
        4: ("contentType", S, False),
    },
    "TypeMeta": {1: ("apiVersion", S, False), 2: ("kind", S, False)},
    "ObjectMeta": {
        1: ("name", S, False),
        2: ("generateName", S, False),
        3: ("namespace", S, False),
        5: ("uid", S, False),
        6: ("resourceVersion", S, False),
        7: ("generation", I64, False),
        8: ("creationTimestamp", TIME, False),
        11: ("labels", MSS, False),
        12: ("annotations", MSS, False),
        13: ("ownerReferences", "OwnerReference", True),
        14: ("finalizers", S, True),
    },
    "OwnerReference": {
        1: ("kind", S, False),
        3: ("name", S, False),
        4: ("uid", S, False),
        5: ("apiVersion", S, False),
        6: ("controller", B, False),
        7: ("blockOwnerDeletion", B, False),
    },
    "LabelSelector": {1: ("matchLabels", MSS, False), 2: ("matchExpressions", "LabelSelectorRequirement", True)},
    "LabelSelectorRequirement": {1: ("key", S, False), 2: ("operator", S, False), 3: ("values", S, True)},
    "Deployment": {
        1: ("metadata", "ObjectMeta", False),
        2: ("spec", "DeploymentSpec", False),
        3: ("status", "Empty", False),
    },
    "DeploymentSpec": {
        1: ("replicas", I32, False),
        2: ("selector", "LabelSelector", False),
        3: ("template", "PodTemplateSpec", False),
        4: ("strategy", "DeploymentStrategy", False),
        5: ("minReadySeconds", I32, False),
        6: ("revisionHistoryLimit", I32, False),
        7: ("paused", B, False),
        9: ("progressDeadlineSeconds", I32, False),
    },
    "DeploymentStrategy": {1: ("type", S, False), 2: ("rollingUpdate", "RollingUpdateDeployment", False)},
    "RollingUpdateDeployment": {1: ("maxUnavailable", IOS, False), 2: ("maxSurge", IOS, False)},
    "PodTemplateSpec": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "PodSpec", False)},
    "PodSpec": {
        2: ("containers", "Container", True),
        3: ("restartPolicy", S, False),
        4: ("terminationGracePeriodSeconds", I64, False),
        6: ("dnsPolicy", S, False),
        7: ("nodeSelector", MSS, False),
        8: ("serviceAccountName", S, False),
        10: ("nodeName", S, False),
        14: ("securityContext", "Empty", False),
        19: ("schedulerName", S, False),
        20: ("initContainers", "Container", True),
    },
    "Container": {
        1: ("name", S, False),
        2: ("image", S, False),
        3: ("command", S, True),
        4: ("args", S, True),
        5: ("workingDir", S, False),
        6: ("ports", "ContainerPort", True),
        7: ("env", "EnvVar", True),
        8: ("resources", "ResourceRequirements", False),
        13: ("terminationMessagePath", S, False),
        14: ("imagePullPolicy", S, False),
        16: ("stdin", B, False),
        18: ("tty", B, False),
        20: ("terminationMessagePolicy", S, False),
    },
    "ContainerPort": {
        1: ("name", S, False),
        2: ("hostPort", I32, False),
        3: ("containerPort", I32, False),
        4: ("protocol", S, False),
        5: ("hostIP", S, False),
    },
    "EnvVar": {1: ("name", S, False), 2: ("value", S, False)},
    "ResourceRequirements": {1: ("limits", MSQ, False), 2: ("requests", MSQ, False)},
    "Pod": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "PodSpec", False), 3: ("status", "Empty", False)},
    "Namespace": {
        1: ("metadata", "ObjectMeta", False),
        2: ("spec", "NamespaceSpec", False),
        3: ("status", "Empty", False),
    },
    "NamespaceSpec": {1: ("finalizers", S, True)},
    "ConfigMap": {
        1: ("metadata", "ObjectMeta", False),
        2: ("data", MSS, False),
        3: ("binaryData", MSB, False),
        4: ("immutable", B, False),
    },
    "Secret": {
        1: ("metadata", "ObjectMeta", False),
        2: ("data", MSB, False),
        3: ("type", S, False),
        4: ("stringData", MSS, False),
        5: ("immutable", B, False),
    },
    "ServiceAccount": {1: ("metadata", "ObjectMeta", False), 4: ("automountServiceAccountToken", B, False)},
    "Service": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "ServiceSpec", False), 3: ("status", "Empty", False)},
    "ServiceSpec": {
        1: ("ports", "ServicePort", True),
        2: ("selector", MSS, False),
        3: ("clusterIP", S, False),
        4: ("type", S, False),
        5: ("externalIPs", S, True),
        7: ("sessionAffinity", S, False),
        10: ("externalName", S, False),
    },
    "ServicePort": {
        1: ("name", S, False),
        2: ("protocol", S, False),
        3: ("port", I32, False),
        4: ("targetPort", IOS, False),
        5: ("nodePort", I32, False),
    },
    "IntOrString": {1: ("type", I64, False), 2: ("intVal", I32, False), 3: ("strVal", S, False)},
    "Quantity": {1: ("string", S, False)},
    "Time": {1: ("seconds", I64, False), 2: ("nanos", I32, False)},
    "Empty": {},
}
POINTERS = {"replicas", "terminationGracePeriodSeconds", "revisionHistoryLimit", "progressDeadlineSeconds"}
KINDS = {"Pod", "Deployment", "Namespace", "ConfigMap", "Secret", "ServiceAccount", "Service"}


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int, Any]]:
    out: list[tuple[int, int, Any]] = []
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        val: Any
        if wt == 0:
            val, i = _varint(buf, i)
        elif wt == 2:
            ln, i = _varint(buf, i)
            val, i = buf[i : i + ln], i + ln
        elif wt == 1:
            val, i = buf[i : i + 8], i + 8
        elif wt == 5:
            val, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wt}")
        out.append((num, wt, val))
    return out


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _scalar(kind: str, val: Any) -> Any:
    if kind == S:
        return bytes(val).decode()
    if kind in (I32, I64):
        return _signed(int(val))
    if kind == B:
        return bool(val)
    if kind == BY:
        return bytes(val)
    if kind == TIME:
        t = decode_message("Time", val)
        if not t.get("seconds"):
            return None
        return dt.datetime.fromtimestamp(t["seconds"], dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if kind == IOS:
        x = decode_message("IntOrString", val)
        return x.get("strVal", "") if x.get("type") == 1 else x.get("intVal", 0)
    if kind == QTY:
        return decode_message("Quantity", val).get("string", "0")
    return decode_message(kind, val)


def decode_message(name: str, buf: bytes) -> dict[str, Any]:
    schema = SCHEMA[name]
    out: dict[str, Any] = {}
    for num, _wt, val in _fields(buf):
        if num not in schema:
            continue
        jname, kind, repeated = schema[num]
        if kind in (MSS, MSB, MSQ):
            entry = {n: v for n, _, v in _fields(val)}
            k = bytes(entry.get(1, b"")).decode()
            raw = entry.get(2, b"")
            if kind == MSS:
                v: Any = bytes(raw).decode()
            elif kind == MSB:
                v = base64.b64encode(bytes(raw)).decode()
            else:
                v = decode_message("Quantity", raw).get("string", "0")
            out.setdefault(jname, {})[k] = v
            continue
        value = _scalar(kind, val)
        if not repeated and (
            value == "" or value is False or (value == 0 and kind in (I32, I64) and jname not in POINTERS)
        ):
            continue  # gogo-protobuf writes every non-pointer field; JSON omits the empty ones
        if repeated:
            out.setdefault(jname, []).append(value)
        else:
            out[jname] = value
    return out


def decode(body: bytes) -> dict[str, Any]:
    """A protobuf-encoded object as a JSON-shaped dict; ApiError 415 for kinds outside the schema."""
    if not body.startswith(MAGIC):
        raise ApiError(400, "BadRequest", "the body of the request was in an unknown format: missing protobuf magic")
    try:
        env = decode_message("Unknown", body[len(MAGIC) :])
        tm = env.get("typeMeta") or {}
        kind = tm.get("kind", "")
        if kind not in KINDS:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types include: application/json "
                f"(protobuf is not supported by the arena for kind {kind!r})",
            )
        obj = decode_message(kind, env.get("raw", b""))
    except (ValueError, UnicodeDecodeError, KeyError) as exc:
        raise ApiError(400, "BadRequest", f"error decoding protobuf body: {exc}") from exc
    obj["apiVersion"] = tm.get("apiVersion", "v1")
    obj["kind"] = kind
    obj.pop("status", None)
    return obj
