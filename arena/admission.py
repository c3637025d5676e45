"""Defaulting and validation of objects on write, with kube-apiserver's field paths and messages."""

from __future__ import annotations

import json
import re
from typing import Any

from arena.errors import ApiError, bad_request
from arena.objects import parse_quantity
from arena.resources import ResourceType
from arena.selectors import label_selector_requirements, match_labels

Obj = dict[str, Any]
Cause = tuple[str, str, str]

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_IDENT = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end "
    "with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, "
    "and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is "
    "'[a-z]([-a-z0-9]*[a-z0-9])?')"
)
LABEL_NAME_KINDS = {"Namespace"}
DNS1035_KINDS = {"Service"}


def go_repr(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        inner = ", ".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in value.items())
        return "map[string]string{" + inner + "}"
    return str(value)


def invalid_value(path: str, value: Any, detail: str) -> Cause:
    return (path, "FieldValueInvalid", f"Invalid value: {go_repr(value)}: {detail}")


def required(path: str) -> Cause:
    return (path, "FieldValueRequired", "Required value")


# ---------------------------------------------------------------------------------------------------------- defaults


def _default_container(c: Obj) -> None:
    image = str(c.get("image") or "")
    if "imagePullPolicy" not in c and image:
        tag = image.rsplit("/", 1)[-1]
        c["imagePullPolicy"] = "Always" if ":" not in tag or tag.endswith(":latest") else "IfNotPresent"
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("resources", {})
    for p in c.get("ports") or []:
        if isinstance(p, dict):
            p.setdefault("protocol", "TCP")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        pr = c.get(probe)
        if isinstance(pr, dict):
            pr.setdefault("timeoutSeconds", 1)
            pr.setdefault("periodSeconds", 10)
            pr.setdefault("successThreshold", 1)
            pr.setdefault("failureThreshold", 3)


def default_pod_spec(spec: Obj) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    if "serviceAccountName" not in spec:
        spec["serviceAccountName"] = spec.get("serviceAccount") or "default"
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        if isinstance(c, dict):
            _default_container(c)


def default_template(tpl: Obj) -> None:
    tpl.setdefault("metadata", {})
    tpl["metadata"].setdefault("creationTimestamp", None)
    default_pod_spec(tpl.setdefault("spec", {}))


def apply_defaults(rt: ResourceType, obj: Obj) -> None:
    kind = rt.kind
    spec = obj.get("spec")
    if kind == "Pod" and isinstance(spec, dict):
        default_pod_spec(spec)
        spec.setdefault(
            "tolerations",
            [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
            ],
        )
        spec.setdefault("priority", 0)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        obj.setdefault("status", {}).setdefault("phase", "Pending")
    elif kind in ("Deployment", "ReplicaSet", "StatefulSet") and isinstance(spec, dict):
        if spec.get("replicas") is None:
            spec["replicas"] = 1
        if isinstance(spec.get("template"), dict):
            default_template(spec["template"])
        spec.setdefault("revisionHistoryLimit", 10)
        if kind == "Deployment":
            strategy = spec.setdefault("strategy", {})
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                ru = strategy.setdefault("rollingUpdate", {})
                ru.setdefault("maxUnavailable", "25%")
                ru.setdefault("maxSurge", "25%")
            spec.setdefault("progressDeadlineSeconds", 600)
        if kind == "ReplicaSet":
            spec.pop("revisionHistoryLimit", None)
        if kind == "StatefulSet":
            spec.setdefault("podManagementPolicy", "OrderedReady")
            spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
            spec.setdefault("persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"})
            for t in spec.get("volumeClaimTemplates") or []:
                t.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")
                t.setdefault("apiVersion", "v1")
                t.setdefault("kind", "PersistentVolumeClaim")
        obj.setdefault("status", {})
    elif kind == "Service" and isinstance(spec, dict):
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        for p in spec.get("ports") or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")
                if "targetPort" not in p and "port" in p:
                    p["targetPort"] = p["port"]
        obj.setdefault("status", {"loadBalancer": {}})
    elif kind == "PersistentVolumeClaim" and isinstance(spec, dict):
        spec.setdefault("volumeMode", "Filesystem")
        obj.setdefault("status", {"phase": "Pending"})
    elif kind == "PersistentVolume" and isinstance(spec, dict):
        spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
        spec.setdefault("volumeMode", "Filesystem")
        obj.setdefault("status", {"phase": "Pending"})
    elif kind == "StorageClass":
        obj.setdefault("reclaimPolicy", "Delete")
        obj.setdefault("volumeBindingMode", "Immediate")
    elif kind == "Namespace":
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj.setdefault("status", {"phase": "Active"})
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    elif kind == "Secret":
        obj.setdefault("type", "Opaque")
    elif kind == "Event":
        obj.setdefault("type", "Normal")


# -------------------------------------------------------------------------------------------------------- validation


def validate_name(rt: ResourceType, name: str) -> list[Cause]:
    if not name:
        return [("metadata.name", "FieldValueRequired", "Required value: name or generateName is required")]
    if rt.kind in LABEL_NAME_KINDS:
        ok, msg = bool(_LABEL.match(name)) and len(name) <= 63, LABEL_MSG
    elif rt.kind in DNS1035_KINDS:
        ok, msg = bool(_DNS1035.match(name)) and len(name) <= 63, DNS1035_MSG
    elif rt.kind == "Event":
        ok, msg = True, ""
    else:
        ok, msg = bool(_SUBDOMAIN.match(name)) and len(name) <= 253, SUBDOMAIN_MSG
    return [] if ok else [invalid_value("metadata.name", name, msg)]


def _validate_quantities(path: str, res: Obj) -> None:
    for section in ("requests", "limits"):
        for k, v in (res.get(section) or {}).items():
            try:
                parse_quantity(v)
            except ValueError:
                raise bad_request(
                    f"quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$' "
                    f"({path}.{section}[{k}]: {v!r})"
                ) from None


def validate_pod_spec(spec: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    containers = spec.get("containers")
    if not containers:
        return [required(f"{path}.containers")]
    seen: set[str] = set()
    for group in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(group) or []):
            p = f"{path}.{group}[{i}]"
            if not isinstance(c, dict):
                causes.append(invalid_value(p, str(c), "must be an object"))
                continue
            name = c.get("name")
            if not name:
                causes.append(required(f"{p}.name"))
            elif not _LABEL.match(name):
                causes.append(invalid_value(f"{p}.name", name, LABEL_MSG))
            elif name in seen:
                causes.append((f"{p}.name", "FieldValueDuplicate", f'Duplicate value: "{name}"'))
            else:
                seen.add(name)
            if not c.get("image"):
                causes.append(required(f"{p}.image"))
            for j, port in enumerate(c.get("ports") or []):
                cp = port.get("containerPort")
                if not isinstance(cp, int) or not 1 <= cp <= 65535:
                    causes.append(
                        invalid_value(f"{p}.ports[{j}].containerPort", cp, "must be between 1 and 65535, inclusive")
                    )
            for j, env in enumerate(c.get("env") or []):
                if not env.get("name"):
                    causes.append(required(f"{p}.env[{j}].name"))
            _validate_quantities(f"{p}.resources", c.get("resources") or {})
    rp = spec.get("restartPolicy")
    if rp not in (None, "Always", "OnFailure", "Never"):
        causes.append(
            (
                f"{path}.restartPolicy",
                "FieldValueNotSupported",
                f'Unsupported value: "{rp}": supported values: "Always", "OnFailure", "Never"',
            )
        )
    return causes


def _validate_workload(rt: ResourceType, obj: Obj) -> list[Cause]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    causes: list[Cause] = []
    replicas = spec.get("replicas")
    if not isinstance(replicas, int) or replicas < 0:
        causes.append(invalid_value("spec.replicas", replicas, "must be greater than or equal to 0"))
    selector = spec.get("selector")
    tpl = spec.get("template")
    if not isinstance(selector, dict) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        causes.append(required("spec.selector"))
        if rt.kind != "StatefulSet":
            causes.append(invalid_value("spec.selector", {}, "empty selector is invalid for deployment"))
    if not isinstance(tpl, dict):
        causes.append(required("spec.template"))
        return causes
    tlabels = (tpl.get("metadata") or {}).get("labels") or {}
    if isinstance(selector, dict):
        reqs = label_selector_requirements(selector)
        if reqs and not match_labels(reqs, tlabels):
            causes.append(
                invalid_value("spec.template.metadata.labels", tlabels, "`selector` does not match template `labels`")
            )
    tspec = tpl.get("spec")
    if not isinstance(tspec, dict):
        causes.append(required("spec.template.spec"))
    else:
        causes += validate_pod_spec(tspec, "spec.template.spec")
        rp = tspec.get("restartPolicy")
        if rp not in (None, "Always") and not any(c[0].endswith("restartPolicy") for c in causes):
            causes.append(
                (
                    "spec.template.spec.restartPolicy",
                    "FieldValueNotSupported",
                    f'Unsupported value: "{rp}": supported values: "Always"',
                )
            )
    if rt.kind == "Deployment":
        ru = (spec.get("strategy") or {}).get("rollingUpdate") or {}
        for f in ("maxSurge", "maxUnavailable"):
            v = ru.get(f)
            if isinstance(v, int) and v < 0:
                causes.append(
                    invalid_value(f"spec.strategy.rollingUpdate.{f}", v, "must be greater than or equal to 0")
                )
    return causes


def _validate_service(obj: Obj) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes: list[Cause] = []
    ports = spec.get("ports")
    stype = spec.get("type", "ClusterIP")
    if stype not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
        causes.append(
            (
                "spec.type",
                "FieldValueNotSupported",
                f'Unsupported value: "{stype}": supported values: "ClusterIP", "ExternalName", "LoadBalancer", '
                '"NodePort"',
            )
        )
    if not ports and stype != "ExternalName" and spec.get("clusterIP") != "None":
        causes.append(required("spec.ports"))
    names: set[str] = set()
    for i, p in enumerate(ports or []):
        port = p.get("port")
        if not isinstance(port, int) or not 1 <= port <= 65535:
            causes.append(invalid_value(f"spec.ports[{i}].port", port, "must be between 1 and 65535, inclusive"))
        tp = p.get("targetPort")
        if isinstance(tp, int) and not 1 <= tp <= 65535:
            causes.append(invalid_value(f"spec.ports[{i}].targetPort", tp, "must be between 1 and 65535, inclusive"))
        if len(ports or []) > 1 and not p.get("name"):
            causes.append(required(f"spec.ports[{i}].name"))
        if p.get("name"):
            if p["name"] in names:
                causes.append((f"spec.ports[{i}].name", "FieldValueDuplicate", f'Duplicate value: "{p["name"]}"'))
            names.add(p["name"])
    return causes


def _validate_pvc(obj: Obj, path: str = "spec") -> list[Cause]:
    spec = obj.get("spec") or {}
    causes: list[Cause] = []
    if not spec.get("accessModes"):
        causes.append(
            (f"{path}.accessModes", "FieldValueRequired", "Required value: at least 1 access mode is required")
        )
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    if storage is None:
        causes.append(required(f"{path}.resources[storage]"))
    else:
        try:
            if parse_quantity(storage) <= 0:
                causes.append(invalid_value(f"{path}.resources[storage]", storage, "must be greater than zero"))
        except ValueError:
            raise bad_request(
                "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
            ) from None
    return causes


def validate(rt: ResourceType, obj: Obj) -> list[Cause]:
    """Field errors of ``obj`` (already defaulted); empty when valid."""
    meta = obj.get("metadata") or {}
    causes = validate_name(rt, str(meta.get("name") or ""))
    for k in meta.get("labels") or {}:
        if not re.match(r"^([a-z0-9.-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$", k):
            causes.append(invalid_value("metadata.labels", k, "name part must consist of alphanumeric characters"))
    for v in (meta.get("labels") or {}).values():
        if (
            not isinstance(v, str)
            or (v and not re.match(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$", v))
            or len(v) > 63
        ):
            causes.append(
                invalid_value(
                    "metadata.labels",
                    v,
                    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                    "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
                    "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
                )
            )
    kind = rt.kind
    if kind == "Pod":
        spec = obj.get("spec")
        causes += validate_pod_spec(spec, "spec") if isinstance(spec, dict) else [required("spec")]
    elif kind in ("Deployment", "ReplicaSet", "StatefulSet"):
        causes += _validate_workload(rt, obj)
    elif kind == "Service":
        causes += _validate_service(obj)
    elif kind == "PersistentVolumeClaim":
        causes += _validate_pvc(obj)
    elif kind == "PersistentVolume":
        spec = obj.get("spec") or {}
        if not (spec.get("capacity") or {}).get("storage"):
            causes.append(required("spec.capacity"))
        if not spec.get("accessModes"):
            causes.append(required("spec.accessModes"))
    elif kind == "StorageClass":
        if not obj.get("provisioner"):
            causes.append(required("provisioner"))
        mode = obj.get("volumeBindingMode")
        if mode not in ("Immediate", "WaitForFirstConsumer"):
            causes.append(
                (
                    "volumeBindingMode",
                    "FieldValueNotSupported",
                    f'Unsupported value: "{mode}": supported values: "Immediate", "WaitForFirstConsumer"',
                )
            )
    elif kind == "ConfigMap":
        for k in obj.get("data") or {}:
            if not re.match(r"^[-._a-zA-Z0-9]+$", k):
                causes.append(
                    invalid_value(
                        f"data[{k}]", k, "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
                    )
                )
    return causes


def _without(d: Obj, *keys: str) -> Obj:
    return {k: v for k, v in d.items() if k not in keys}


def validate_update(rt: ResourceType, old: Obj, new: Obj) -> list[Cause]:
    """Errors for changes to immutable fields."""
    causes: list[Cause] = []
    kind = rt.kind
    if kind == "Pod":
        os_, ns_ = old.get("spec") or {}, new.get("spec") or {}

        def strip(spec: Obj) -> Obj:
            s: Obj = json.loads(json.dumps(spec))
            for group in ("containers", "initContainers"):
                for c in s.get(group) or []:
                    c.pop("image", None)
            for k in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds", "nodeName"):
                s.pop(k, None)
            return s

        if strip(os_) != strip(ns_):
            causes.append(
                (
                    "spec",
                    "FieldValueForbidden",
                    "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
                    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions "
                    "to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
                    "previously negative)",
                )
            )
        if os_.get("nodeName") and os_.get("nodeName") != ns_.get("nodeName"):
            causes.append(("spec.nodeName", "FieldValueForbidden", "Forbidden: field is immutable"))
    elif kind in ("Deployment", "ReplicaSet", "StatefulSet"):
        if (old.get("spec") or {}).get("selector") != (new.get("spec") or {}).get("selector"):
            causes.append(invalid_value("spec.selector", (new.get("spec") or {}).get("selector"), "field is immutable"))
    elif kind == "Service":
        oip, nip = (old.get("spec") or {}).get("clusterIP"), (new.get("spec") or {}).get("clusterIP")
        if oip and nip and oip != nip:
            causes.append(invalid_value("spec.clusterIPs[0]", nip, "may not change once set"))
    elif kind == "PersistentVolumeClaim":
        os_, ns_ = old.get("spec") or {}, new.get("spec") or {}

        def pvc_strip(s: Obj) -> Obj:
            s = _without(s, "volumeName", "volumeAttributesClassName")
            r = dict(s.get("resources") or {})
            r.pop("requests", None)
            s["resources"] = r
            return s

        if pvc_strip(os_) != pvc_strip(ns_) or (
            os_.get("volumeName") and os_.get("volumeName") != ns_.get("volumeName")
        ):
            causes.append(
                (
                    "spec",
                    "FieldValueForbidden",
                    "Forbidden: spec is immutable after creation except resources.requests and "
                    "volumeAttributesClassName for bound claims",
                )
            )
    elif kind == "StorageClass":
        if old.get("parameters") != new.get("parameters"):
            causes.append(("parameters", "FieldValueForbidden", "Forbidden: updates to parameters are forbidden."))
        if old.get("provisioner") != new.get("provisioner"):
            causes.append(("provisioner", "FieldValueForbidden", "Forbidden: updates to provisioner are forbidden."))
        if old.get("volumeBindingMode") != new.get("volumeBindingMode"):
            causes.append(invalid_value("volumeBindingMode", new.get("volumeBindingMode"), "field is immutable"))
    elif kind in ("ConfigMap", "Secret") and old.get("immutable") and old.get("data") != new.get("data"):
        causes.append(("data", "FieldValueForbidden", "Forbidden: field is immutable when `immutable` is set"))
    return causes


def check_invalid(rt: ResourceType, name: str, causes: list[Cause]) -> None:
    if causes:
        from arena.errors import invalid

        raise invalid(rt, name, causes)


__all__ = ["ApiError", "apply_defaults", "check_invalid", "validate", "validate_update"]
