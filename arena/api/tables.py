"""Server-side printing: the ``meta.k8s.io/v1 Table`` that ``kubectl get`` asks for, with the columns and cell
formats of kube-apiserver's printers (READY 1/1, STATUS CrashLoopBackOff, RESTARTS ``3 (12s ago)``, AGE ``5m``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from arena.objects import age, human_duration, parse_time
from arena.selectors import selector_string

Obj = dict[str, Any]
Col = tuple[str, str, int]  # name, type, priority


def _col(name: str, typ: str = "string", priority: int = 0, fmt: str = "") -> Obj:
    return {"name": name, "type": typ, "format": fmt, "description": name, "priority": priority}


def pod_status_reason(pod: Obj) -> str:
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Pending"
    init_statuses = status.get("initContainerStatuses") or []
    initializing = False
    n_init = len((pod.get("spec") or {}).get("initContainers") or [])
    restartable = {
        c.get("name") for c in (pod.get("spec") or {}).get("initContainers") or [] if c.get("restartPolicy") == "Always"
    }
    for i, cs in enumerate(init_statuses):
        st = cs.get("state") or {}
        if cs.get("name") in restartable and cs.get("started"):
            continue  # a native sidecar that has started no longer holds the pod in Init
        term = st.get("terminated")
        if term and term.get("exitCode") == 0:
            continue
        if term:
            reason = "Init:" + (term.get("reason") or f"ExitCode:{term.get('exitCode')}")
        elif (st.get("waiting") or {}).get("reason") and st["waiting"]["reason"] != "PodInitializing":
            reason = "Init:" + st["waiting"]["reason"]
        else:
            reason = f"Init:{i}/{n_init}"
        initializing = True
        break
    if not initializing:
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            st = cs.get("state") or {}
            if (st.get("waiting") or {}).get("reason"):
                reason = st["waiting"]["reason"]
            elif (st.get("terminated") or {}).get("reason"):
                reason = st["terminated"]["reason"]
            elif st.get("terminated"):
                reason = f"ExitCode:{st['terminated'].get('exitCode')}"
            elif st.get("running") and cs.get("ready"):
                has_running = True
        if reason == "Completed" and has_running:
            reason = (
                "Running"
                if any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
                else "NotReady"
            )
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        reason = "Terminating"
    return str(reason)


def _pod_row(pod: Obj) -> list[Any]:
    status = pod.get("status") or {}
    css = status.get("containerStatuses") or []
    spec = pod.get("spec") or {}
    sidecars = {c.get("name") for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"}
    total = len(spec.get("containers") or []) + len(sidecars)  # native sidecars count, as kubectl counts them
    ready = sum(1 for c in css if c.get("ready")) + sum(
        1 for c in status.get("initContainerStatuses") or [] if c.get("name") in sidecars and c.get("ready")
    )
    restarts = sum(int(c.get("restartCount") or 0) for c in [*css, *(status.get("initContainerStatuses") or [])])
    last = None
    for c in css:
        t = parse_time(((c.get("lastState") or {}).get("terminated") or {}).get("finishedAt"))
        if t and (last is None or t > last):
            last = t
    restart_cell: Any = restarts
    if restarts and last is not None:
        restart_cell = f"{restarts} ({age(last.strftime('%Y-%m-%dT%H:%M:%SZ'))} ago)"
    gates = (pod.get("spec") or {}).get("readinessGates") or []
    return [
        pod["metadata"]["name"],
        f"{ready}/{total}",
        pod_status_reason(pod),
        restart_cell,
        age(pod["metadata"].get("creationTimestamp")),
        status.get("podIP") or "<none>",
        (pod.get("spec") or {}).get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        f"0/{len(gates)}" if gates else "<none>",
    ]


POD_COLS = [
    _col("Name", fmt="name"),
    _col("Ready"),
    _col("Status"),
    _col("Restarts", "string"),
    _col("Age"),
    _col("IP", priority=1),
    _col("Node", priority=1),
    _col("Nominated Node", priority=1),
    _col("Readiness Gates", priority=1),
]


def _containers(tpl: Obj) -> tuple[str, str]:
    cs = ((tpl or {}).get("spec") or {}).get("containers") or []
    return ",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs)


def _deploy_row(o: Obj) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    names, images = _containers(spec.get("template") or {})
    return [
        o["metadata"]["name"],
        f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
        st.get("updatedReplicas", 0),
        st.get("availableReplicas", 0),
        age(o["metadata"].get("creationTimestamp")),
        names,
        images,
        selector_string(spec.get("selector")),
    ]


def _rs_row(o: Obj) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    names, images = _containers(spec.get("template") or {})
    return [
        o["metadata"]["name"],
        spec.get("replicas", 0),
        st.get("replicas", 0),
        st.get("readyReplicas", 0),
        age(o["metadata"].get("creationTimestamp")),
        names,
        images,
        selector_string(spec.get("selector")),
    ]


def _sts_row(o: Obj) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    names, images = _containers(spec.get("template") or {})
    return [
        o["metadata"]["name"],
        f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
        age(o["metadata"].get("creationTimestamp")),
        names,
        images,
    ]


def _job_row(o: Obj) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    conds = {c.get("type") for c in st.get("conditions") or [] if c.get("status") == "True"}
    status = next((c for c in ("Complete", "Failed", "Suspended") if c in conds), None)
    if status is None:
        status = "Suspended" if spec.get("suspend") else "Running"
    start, end = parse_time(st.get("startTime")), parse_time(st.get("completionTime"))
    if start is None:
        duration = ""
    elif end is None:
        duration = age(st.get("startTime"))
    else:
        duration = human_duration(max(0, int((end - start).total_seconds())))
    names, images = _containers(spec.get("template") or {})
    return [
        o["metadata"]["name"],
        status,
        f"{st.get('succeeded', 0)}/{spec.get('completions', 1)}",
        duration,
        age(o["metadata"].get("creationTimestamp")),
        names,
        images,
        selector_string(spec.get("selector") or {}),
    ]


def _cronjob_row(o: Obj) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    tpl = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
    names, images = _containers(tpl)
    last = st.get("lastScheduleTime")
    return [
        o["metadata"]["name"],
        spec.get("schedule", ""),
        spec.get("timeZone") or "<none>",
        str(bool(spec.get("suspend"))),
        len(st.get("active") or []),
        age(last) if last else "<none>",
        age(o["metadata"].get("creationTimestamp")),
        names,
        images,
        "<none>",
    ]


def _ports(spec: Obj) -> str:
    out = []
    for p in spec.get("ports") or []:
        s = str(p.get("port"))
        if p.get("nodePort"):
            s += f":{p['nodePort']}"
        out.append(f"{s}/{p.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def _svc_row(o: Obj) -> list[Any]:
    spec = o.get("spec") or {}
    ext = spec.get("externalName") or ",".join(spec.get("externalIPs") or [])
    if spec.get("type") == "LoadBalancer":
        ing = ((o.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        ext = ",".join(i.get("ip") or i.get("hostname", "") for i in ing) or "<pending>"
    sel = spec.get("selector")
    return [
        o["metadata"]["name"],
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP") or "<none>",
        ext or "<none>",
        _ports(spec),
        age(o["metadata"].get("creationTimestamp")),
        ",".join(f"{k}={v}" for k, v in sorted(sel.items())) if sel else "<none>",
    ]


def _node_row(o: Obj) -> list[Any]:
    conds = {c.get("type"): c.get("status") for c in (o.get("status") or {}).get("conditions") or []}
    status = "Ready" if conds.get("Ready") == "True" else "NotReady" if "Ready" in conds else "Unknown"
    if (o.get("spec") or {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    labels = o["metadata"].get("labels") or {}
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/"))
    info = (o.get("status") or {}).get("nodeInfo") or {}
    addrs = {a.get("type"): a.get("address") for a in (o.get("status") or {}).get("addresses") or []}
    return [
        o["metadata"]["name"],
        status,
        ",".join(roles) or "<none>",
        age(o["metadata"].get("creationTimestamp")),
        info.get("kubeletVersion", ""),
        addrs.get("InternalIP", "<none>"),
        addrs.get("ExternalIP", "<none>"),
        info.get("osImage", ""),
        info.get("kernelVersion", ""),
        info.get("containerRuntimeVersion", ""),
    ]


_MODES = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}


def _modes(modes: list[str] | None) -> str:
    return ",".join(_MODES.get(m, m) for m in modes or [])


def _pvc_row(o: Obj) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    phase = "Terminating" if o["metadata"].get("deletionTimestamp") else st.get("phase", "Pending")
    return [
        o["metadata"]["name"],
        phase,
        spec.get("volumeName", ""),
        (st.get("capacity") or {}).get("storage", ""),
        _modes(st.get("accessModes")),
        spec.get("storageClassName") or "",
        spec.get("volumeAttributesClassName") or "<unset>",
        age(o["metadata"].get("creationTimestamp")),
        spec.get("volumeMode", "Filesystem"),
    ]


def _pv_row(o: Obj) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    ref = spec.get("claimRef") or {}
    claim = f"{ref.get('namespace')}/{ref.get('name')}" if ref else ""
    phase = "Terminating" if o["metadata"].get("deletionTimestamp") else st.get("phase", "Pending")
    return [
        o["metadata"]["name"],
        (spec.get("capacity") or {}).get("storage", ""),
        _modes(spec.get("accessModes")),
        spec.get("persistentVolumeReclaimPolicy", "Retain"),
        phase,
        claim,
        spec.get("storageClassName") or "",
        spec.get("volumeAttributesClassName") or "<unset>",
        st.get("reason", ""),
        age(o["metadata"].get("creationTimestamp")),
        spec.get("volumeMode", "Filesystem"),
    ]


def _sc_row(o: Obj) -> list[Any]:
    name = o["metadata"]["name"]
    if (o["metadata"].get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class") == "true":
        name += " (default)"
    return [
        name,
        o.get("provisioner", ""),
        o.get("reclaimPolicy", "Delete"),
        o.get("volumeBindingMode", "Immediate"),
        bool(o.get("allowVolumeExpansion", False)),
        age(o["metadata"].get("creationTimestamp")),
    ]


def _ep_row(o: Obj) -> list[Any]:
    eps = []
    for s in o.get("subsets") or []:
        for a in s.get("addresses") or []:
            for p in s.get("ports") or [{}]:
                eps.append(f"{a.get('ip')}:{p.get('port')}" if p else a.get("ip"))
    text = ",".join(eps[:3]) + (f" + {len(eps) - 3} more..." if len(eps) > 3 else "")
    return [o["metadata"]["name"], text or "<none>", age(o["metadata"].get("creationTimestamp"))]


def _event_row(o: Obj) -> list[Any]:
    inv = o.get("involvedObject") or {}
    last = o.get("lastTimestamp") or o.get("eventTime") or o["metadata"].get("creationTimestamp")
    src = o.get("source") or {}
    return [
        age(last),
        o.get("type", ""),
        o.get("reason", ""),
        f"{str(inv.get('kind', '')).lower()}/{inv.get('name', '')}",
        o.get("message", ""),
        inv.get("fieldPath", ""),
        ", ".join(x for x in (src.get("component"), src.get("host")) if x),
        age(o.get("firstTimestamp") or o["metadata"].get("creationTimestamp")),
        o.get("count", 1),
        o["metadata"]["name"],
    ]


def _simple(*extra: Callable[[Obj], Any]) -> Callable[[Obj], list[Any]]:
    def row(o: Obj) -> list[Any]:
        return [o["metadata"]["name"], *(f(o) for f in extra), age(o["metadata"].get("creationTimestamp"))]

    return row


PRINTERS: dict[str, tuple[list[Obj], Callable[[Obj], list[Any]]]] = {
    "Pod": (POD_COLS, _pod_row),
    "Deployment": (
        [
            _col("Name", fmt="name"),
            _col("Ready"),
            _col("Up-to-date", "integer"),
            _col("Available", "integer"),
            _col("Age"),
            _col("Containers", priority=1),
            _col("Images", priority=1),
            _col("Selector", priority=1),
        ],
        _deploy_row,
    ),
    "ReplicaSet": (
        [
            _col("Name", fmt="name"),
            _col("Desired", "integer"),
            _col("Current", "integer"),
            _col("Ready", "integer"),
            _col("Age"),
            _col("Containers", priority=1),
            _col("Images", priority=1),
            _col("Selector", priority=1),
        ],
        _rs_row,
    ),
    "Job": (
        [
            _col("Name", fmt="name"),
            _col("Status"),
            _col("Completions"),
            _col("Duration"),
            _col("Age"),
            _col("Containers", priority=1),
            _col("Images", priority=1),
            _col("Selector", priority=1),
        ],
        _job_row,
    ),
    "CronJob": (
        [
            _col("Name", fmt="name"),
            _col("Schedule"),
            _col("Timezone"),
            _col("Suspend", "boolean"),
            _col("Active", "integer"),
            _col("Last Schedule"),
            _col("Age"),
            _col("Containers", priority=1),
            _col("Images", priority=1),
            _col("Selector", priority=1),
        ],
        _cronjob_row,
    ),
    "StatefulSet": (
        [
            _col("Name", fmt="name"),
            _col("Ready"),
            _col("Age"),
            _col("Containers", priority=1),
            _col("Images", priority=1),
        ],
        _sts_row,
    ),
    "Service": (
        [
            _col("Name", fmt="name"),
            _col("Type"),
            _col("Cluster-IP"),
            _col("External-IP"),
            _col("Port(s)"),
            _col("Age"),
            _col("Selector", priority=1),
        ],
        _svc_row,
    ),
    "Node": (
        [
            _col("Name", fmt="name"),
            _col("Status"),
            _col("Roles"),
            _col("Age"),
            _col("Version"),
            _col("Internal-IP", priority=1),
            _col("External-IP", priority=1),
            _col("OS-Image", priority=1),
            _col("Kernel-Version", priority=1),
            _col("Container-Runtime", priority=1),
        ],
        _node_row,
    ),
    "Namespace": (
        [_col("Name", fmt="name"), _col("Status"), _col("Age")],
        lambda o: [
            o["metadata"]["name"],
            (o.get("status") or {}).get("phase", "Active"),
            age(o["metadata"].get("creationTimestamp")),
        ],
    ),
    "PersistentVolumeClaim": (
        [
            _col("Name", fmt="name"),
            _col("Status"),
            _col("Volume"),
            _col("Capacity"),
            _col("Access Modes"),
            _col("StorageClass"),
            _col("VolumeAttributesClass"),
            _col("Age"),
            _col("VolumeMode", priority=1),
        ],
        _pvc_row,
    ),
    "PersistentVolume": (
        [
            _col("Name", fmt="name"),
            _col("Capacity"),
            _col("Access Modes"),
            _col("Reclaim Policy"),
            _col("Status"),
            _col("Claim"),
            _col("StorageClass"),
            _col("VolumeAttributesClass"),
            _col("Reason"),
            _col("Age"),
            _col("VolumeMode", priority=1),
        ],
        _pv_row,
    ),
    "StorageClass": (
        [
            _col("Name", fmt="name"),
            _col("Provisioner"),
            _col("ReclaimPolicy"),
            _col("VolumeBindingMode"),
            _col("AllowVolumeExpansion"),
            _col("Age"),
        ],
        _sc_row,
    ),
    "ConfigMap": (
        [_col("Name", fmt="name"), _col("Data", "integer"), _col("Age")],
        _simple(lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {})),
    ),
    "Secret": (
        [_col("Name", fmt="name"), _col("Type"), _col("Data", "integer"), _col("Age")],
        _simple(lambda o: o.get("type", "Opaque"), lambda o: len(o.get("data") or {})),
    ),
    "ServiceAccount": (
        [_col("Name", fmt="name"), _col("Secrets", "integer"), _col("Age")],
        _simple(lambda o: len(o.get("secrets") or [])),
    ),
    "Endpoints": ([_col("Name", fmt="name"), _col("Endpoints"), _col("Age")], _ep_row),
    "Event": (
        [
            _col("Last Seen"),
            _col("Type"),
            _col("Reason"),
            _col("Object"),
            _col("Message"),
            _col("Subobject", priority=1),
            _col("Source", priority=1),
            _col("First Seen", priority=1),
            _col("Count", "integer", 1),
            _col("Name", priority=1),
        ],
        _event_row,
    ),
    "NetworkPolicy": (
        [_col("Name", fmt="name"), _col("Pod-Selector"), _col("Age")],
        _simple(lambda o: selector_string((o.get("spec") or {}).get("podSelector")) or "<none>"),
    ),
    "ControllerRevision": (
        [_col("Name", fmt="name"), _col("Controller"), _col("Revision", "integer"), _col("Age")],
        _simple(
            lambda o: next(
                (f"{r['kind'].lower()}.apps/{r['name']}" for r in o["metadata"].get("ownerReferences") or []), "<none>"
            ),
            lambda o: o.get("revision", 0),
        ),
    ),
}
DEFAULT = ([_col("Name", fmt="name"), _col("Age")], _simple())


def partial(obj: Obj) -> Obj:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}


def table(
    kind: str, items: list[Obj], resource_version: str, include_object: str = "Metadata", columns: bool = True
) -> Obj:
    cols, row = PRINTERS.get(kind, DEFAULT)
    rows = []
    for o in items:
        r: Obj = {"cells": row(o)}
        if include_object == "Object":
            r["object"] = o
        elif include_object != "None":
            r["object"] = partial(o)
        rows.append(r)
    out: Obj = {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": cols if columns else None,
        "rows": rows,
    }
    return out


def wants_table(accept: str) -> bool:
    return "as=Table" in accept
