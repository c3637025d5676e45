"""Analyzers of Kubernetes relations: what the API's own semantics say cannot work, whatever the application.

Each one checks one relation the cluster relies on and reports where it is broken, with the evidence a human can
verify and, when the fix follows from the objects alone, the facts a recipe needs:

- a Service whose selector picks no pod while a workload's pods differ from it in some labels;
- a probe aimed at a port the container does not declare;
- resource requests larger than any node can allocate ("Insufficient cpu");
- pods that no node accepts because nodes are cordoned or carry taints the pods do not tolerate;
- a NetworkPolicy that denies all traffic to pods that Services route to, while their callers fail;
- a quota, a LimitRange or an admission webhook that refuses pod creation (reported; the fix is an operator's);
- objects stuck deleting on a finalizer, init containers that fail, containers of one pod that claim one port;
- a Service with ``internalTrafficPolicy: Local`` whose clients run on nodes without a local endpoint;
- a container that declares one env name twice (the later value shadows the declared one);
- a RollingUpdate that may take every pod down at once, on a Deployment left with no available pod;
- an env address ``service:port`` on a port the Service does not expose;
- a liveness probe that keeps killing pods, changed since an older revision of the Deployment.

Several analyzers may report on one object (a workload can both request too much CPU and not tolerate a taint):
each finding has its own mechanism and fix. Nothing here is keyed to a scenario's, a problem's or an application's
name; a unit test scans this source to keep it so.
"""

from __future__ import annotations

import re
from typing import Any

from stratus.kubevalues import quantity as kube_quantity
from stratus.kubevalues import selector_matches
from stratus.reasoners.rulebook.analyzers import (
    Analyzer,
    Finding,
    _log_excerpt,
    _node_matches,
    _term_matches,
    connection_targets,
)
from stratus.reasoners.rulebook.snapshot import (
    Snapshot,
    containers,
    labels_match,
    meta,
    name_of,
    restarts,
    revision,
    spec,
    status,
)
from stratus.reasoning import Obj
from stratus.severity import pod_problems

WORKLOAD_KINDS = ("Deployment", "StatefulSet")
PROBES = ("readinessProbe", "livenessProbe", "startupProbe")
RESERVED_TAINT_PREFIXES = ("node.kubernetes.io/", "node.cloudprovider.kubernetes.io/")
"""Taints the node lifecycle sets and clears itself: never tolerated or removed by a recipe."""


def _workloads(snap: Snapshot) -> list[Obj]:
    return [w for kind in WORKLOAD_KINDS for w in snap.of(kind)]


def _kind(w: Obj) -> str:
    return str(w.get("kind") or "Deployment")


def _template(w: Obj) -> Obj:
    return spec(w).get("template") or {}


def _pod_spec(w: Obj) -> Obj:
    return _template(w).get("spec") or {}


def _template_labels(w: Obj) -> dict[str, Any]:
    return (_template(w).get("metadata") or {}).get("labels") or {}


def _pending(snap: Snapshot, w: Obj) -> list[Obj]:
    return [p for p in snap.pods_of(w) if status(p).get("phase") == "Pending" and not spec(p).get("nodeName")]


def _scheduling_events(snap: Snapshot, pods: list[Obj]) -> list[str]:
    return [
        str(e.get("message", ""))
        for p in pods
        for e in snap.events_for("Pod", name_of(p))
        if e.get("reason") == "FailedScheduling"
    ]


# -- Services -------------------------------------------------------------------------------------------------------


def service_selects_nothing(snap: Snapshot) -> list[Finding]:
    """A Service whose selector picks no pod, while one workload's pods carry all but some of its labels."""
    out: list[Finding] = []
    for svc in snap.of("Service"):
        selector = spec(svc).get("selector") or {}
        if not selector or spec(svc).get("type") == "ExternalName" or snap.pods_selected_by(svc):
            continue
        targets = {p.get("targetPort", p.get("port")) for p in spec(svc).get("ports") or []}
        scored: list[tuple[tuple[int, bool], Obj]] = []
        for w in _workloads(snap):
            labels = _template_labels(w)
            if labels_match(selector, labels):
                scored = []  # a workload the selector does match (scaled down, or not created yet): not this fault
                break
            same = sum(1 for k, v in selector.items() if labels.get(k) == v)
            # The pods the Service is meant for also listen where it sends: a declared port equal to a targetPort.
            serves = any(
                p.get("containerPort") in targets or p.get("name") in targets
                for c in containers(_pod_spec(w))
                for p in c.get("ports") or []
            )
            if same or (serves and all(k in labels for k in selector)):
                scored.append(((same, serves), w))
        if not scored:
            continue
        best = max(n for n, _ in scored)
        closest = [w for n, w in scored if n == best]
        svc_name = name_of(svc)
        w = closest[0]
        labels = _template_labels(w)
        wanted = {k: labels[k] for k in selector if k in labels}
        differs = ", ".join(f"{k}={v}" for k, v in selector.items() if labels.get(k) != v)
        evidence = [
            f"Service/{svc_name} selects {_labels(selector)}, which no pod carries ({differs} matches nothing)",
            f"{_kind(w)}/{name_of(w)} pods carry {_labels(labels)}",
        ]
        fix = len(closest) == 1 and bool(wanted) and wanted != selector
        out.append(
            Finding(
                analyzer="service_selects_nothing",
                mechanism="service_selector_mismatch",
                component=svc_name,
                target=f"Service/{svc_name}",
                confidence=0.86 if fix else 0.6,
                evidence=evidence,
                facts={"service": svc_name, "old": selector, "new": wanted if fix else None},
            )
        )
    return out


def foreign_pods(snap: Snapshot, svc: Obj) -> tuple[list[Obj], list[Obj]]:
    """The workloads a Service selects that declare its targetPort, and those that do not (they cannot serve it)."""
    targets = {p.get("targetPort", p.get("port")) for p in spec(svc).get("ports") or []}
    owners: dict[str, Obj] = {}
    for pod in snap.pods_selected_by(svc):
        owner = snap.owner_workload(pod)
        if owner is not None:
            owners.setdefault(f"{_kind(owner)}/{name_of(owner)}", owner)
    serving: list[Obj] = []
    foreign: list[Obj] = []
    for w in owners.values():
        ports = [p for c in containers(_pod_spec(w)) for p in c.get("ports") or []]
        declared = any(p.get("containerPort") in targets or p.get("name") in targets for p in ports)
        (serving if declared else foreign).append(w)
    return serving, foreign


def service_selects_foreign_pods(snap: Snapshot) -> list[Finding]:
    """A Service whose selector also picks another workload's pods, which declare none of its target ports."""
    out: list[Finding] = []
    for svc in snap.of("Service"):
        selector = spec(svc).get("selector") or {}
        if not selector:
            continue
        serving, foreign = foreign_pods(snap, svc)
        if len(serving) != 1 or not foreign:
            continue
        own = _template_labels(serving[0])
        others = [_template_labels(w) for w in foreign]
        extra = sorted((k, v) for k, v in own.items() if k not in selector and all(o.get(k) != v for o in others))
        wanted = {**selector, extra[0][0]: extra[0][1]} if extra else None
        svc_name = name_of(svc)
        out.append(
            Finding(
                analyzer="service_selects_foreign_pods",
                mechanism="service_selects_foreign_pods",
                component=svc_name,
                target=f"Service/{svc_name}",
                confidence=0.84 if wanted else 0.6,
                evidence=[
                    f"Service/{svc_name} selects {_labels(selector)}, which also picks the pods of "
                    f"{', '.join(f'{_kind(w)}/{name_of(w)}' for w in foreign)}: they declare none of its target ports",
                    f"only {_kind(serving[0])}/{name_of(serving[0])} serves it",
                ],
                facts={"service": svc_name, "old": selector, "new": wanted},
            )
        )
    return out


def _labels(labels: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "(nothing)"


# -- probes ---------------------------------------------------------------------------------------------------------


def _probe_port(probe: Obj) -> tuple[str, Any] | None:
    for handler in ("httpGet", "tcpSocket", "grpc"):
        if isinstance(probe.get(handler), dict) and "port" in probe[handler]:
            return handler, probe[handler]["port"]
    return None


def probe_port_mismatch(snap: Snapshot) -> list[Finding]:
    """A probe aimed at a port the container does not declare, while its pods are not Ready or restart."""
    out: list[Finding] = []
    for w in _workloads(snap):
        pods = snap.pods_of(w)
        suffering = [p for p in pods if pod_problems(p) or any(cs.get("restartCount") for cs in _cstatuses(p))]
        if not suffering:
            continue
        for i, c in enumerate(containers(_pod_spec(w))):
            ports = [p for p in c.get("ports") or [] if isinstance(p.get("containerPort"), int)]
            if not ports:
                continue
            numbers = {p["containerPort"] for p in ports}
            names = {str(p["name"]): p["containerPort"] for p in ports if p.get("name")}
            for kind in PROBES:
                probe = c.get(kind)
                found = _probe_port(probe) if isinstance(probe, dict) else None
                if found is None:
                    continue
                handler, port = found
                if (isinstance(port, int) and port in numbers) or (isinstance(port, str) and port in names):
                    continue
                if isinstance(port, str) and port.isdigit() and int(port) in numbers:
                    continue
                to = next(iter(numbers)) if len(numbers) == 1 else None
                events = [
                    str(e.get("message", ""))
                    for p in suffering
                    for e in snap.events_for("Pod", name_of(p))
                    if e.get("reason") == "Unhealthy"
                ]
                evidence = [
                    f"{_kind(w)}/{name_of(w)} container {c.get('name')} has a {kind} on port {port!r}, but declares "
                    f"containerPorts {sorted(numbers)}",
                    f"its pods are unhealthy: {', '.join(f'{name_of(p)} ({_words(p)})' for p in suffering[:2])}",
                    *events[:1],
                ]
                out.append(
                    Finding(
                        analyzer="probe_port_mismatch",
                        mechanism="probe_port_mismatch",
                        component=snap.component_of(w),
                        target=f"{_kind(w)}/{name_of(w)}",
                        confidence=0.84 if to is not None else 0.6,
                        evidence=evidence,
                        facts={
                            "kind": _kind(w),
                            "name": name_of(w),
                            "path": f"/spec/template/spec/containers/{i}/{kind}/{handler}/port",
                            "from": port,
                            "to": to,
                        },
                    )
                )
    return out


def _cstatuses(pod: Obj) -> list[Obj]:
    return list(status(pod).get("containerStatuses") or [])


def _words(pod: Obj) -> str:
    return ", ".join(pod_problems(pod)) or "restarting"


# -- scheduling -----------------------------------------------------------------------------------------------------


def quantity(value: Any) -> float | None:
    """A Kubernetes resource quantity as a number (cores for cpu, bytes for memory); None when unreadable."""
    q = kube_quantity(value)
    return float(q) if q is not None else None


def _pod_requests(pod_spec: Obj) -> dict[str, float]:
    """What a pod requests: the sum over containers (a limit stands in for a missing request), max with inits."""
    total: dict[str, float] = {}
    for c in containers(pod_spec):
        for res, v in _container_requests(c).items():
            total[res] = total.get(res, 0.0) + v
    for c in pod_spec.get("initContainers") or []:
        for res, v in _container_requests(c).items():
            total[res] = max(total.get(res, 0.0), v)
    return total


def _container_requests(c: Obj) -> dict[str, float]:
    res = c.get("resources") or {}
    out: dict[str, float] = {}
    for name in ("cpu", "memory"):
        raw = (res.get("requests") or {}).get(name, (res.get("limits") or {}).get(name))
        q = quantity(raw) if raw is not None else None
        if q is not None:
            out[name] = q
    return out


def resources_exceed_nodes(snap: Snapshot) -> list[Finding]:
    """A pod template requesting more cpu or memory than any node can allocate: its pods can never be scheduled."""
    out: list[Finding] = []
    nodes = snap.of("Node")
    if not nodes:
        return out
    capacity: dict[str, float] = {}
    for n in nodes:
        for res in ("cpu", "memory"):
            q = quantity((status(n).get("allocatable") or {}).get(res, "0"))
            if q is not None:
                capacity[res] = max(capacity.get(res, 0.0), q)
    for w in _workloads(snap):
        requests = _pod_requests(_pod_spec(w))
        over = {res: v for res, v in requests.items() if res in capacity and v > capacity[res]}
        if not over:
            continue
        pending = _pending(snap, w)
        events = [m for m in _scheduling_events(snap, pending) if "Insufficient" in m]
        fields = []
        for i, c in enumerate(containers(_pod_spec(w))):
            resources = c.get("resources") or {}
            for part in ("requests", "limits"):
                for res in over:
                    value = (resources.get(part) or {}).get(res)
                    if value is not None and (quantity(value) or 0.0) > capacity[res]:
                        path = f"/spec/template/spec/containers/{i}/resources/{part}/{res}"
                        fields.append({"path": path, "old": value})
        evidence = [
            f"{_kind(w)}/{name_of(w)} pods request "
            + ", ".join(f"{res} {_fmt(v, res)}" for res, v in over.items())
            + ", more than any node can allocate (largest: "
            + ", ".join(f"{res} {_fmt(capacity[res], res)}" for res in over)
            + ")",
        ]
        if pending:
            evidence.append(f"pods Pending: {', '.join(name_of(p) for p in pending[:3])}")
        evidence += [f"FailedScheduling: {m}" for m in events[:1]]
        out.append(
            Finding(
                analyzer="resources_exceed_nodes",
                mechanism="resources_exceed_nodes",
                component=snap.component_of(w),
                target=f"{_kind(w)}/{name_of(w)}",
                confidence=0.87 if pending else 0.7,
                evidence=evidence,
                facts={
                    "kind": _kind(w),
                    "name": name_of(w),
                    "fields": fields,
                    "revision": _fitting_revision(snap, w, capacity),
                },
            )
        )
    return out


def _fmt(v: float, res: str) -> str:
    return f"{v:g}" if res == "cpu" else f"{v / 1024**2:.0f}Mi"


def _fitting_revision(snap: Snapshot, w: Obj, capacity: dict[str, float]) -> int | None:
    """The newest earlier revision of a Deployment whose pods fit on a node (to roll back to)."""
    if _kind(w) != "Deployment":
        return None
    for rs in snap.replicasets_of(w)[1:]:
        requests = _pod_requests((spec(rs).get("template") or {}).get("spec") or {})
        if all(v <= capacity.get(res, float("inf")) for res, v in requests.items()) and revision(rs):
            return revision(rs)
    return None


def _tolerates(tolerations: list[Obj], taint: Obj) -> bool:
    for t in tolerations:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        if t.get("operator") == "Exists":
            if not t.get("key") or t.get("key") == taint.get("key"):
                return True
        elif t.get("key") == taint.get("key") and (t.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _blocking_taints(node: Obj, tolerations: list[Obj]) -> list[Obj]:
    return [
        t
        for t in spec(node).get("taints") or []
        if t.get("effect") in ("NoSchedule", "NoExecute")
        and not str(t.get("key", "")).startswith(RESERVED_TAINT_PREFIXES)
        and not _tolerates(tolerations, t)
    ]


def _placement_ok(node: Obj, pod_spec: Obj) -> bool:
    selector = pod_spec.get("nodeSelector") or {}
    if selector and not _node_matches(node, selector):
        return False
    required = (
        ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        or {}
    ).get("nodeSelectorTerms") or []
    return not required or any(_term_matches(node, t) for t in required)


def nodes_refuse_pods(snap: Snapshot) -> list[Finding]:
    """Pods waiting to be scheduled because every node that would take them is cordoned or carries a taint they do
    not tolerate. Two findings, two fixes: tolerate the taints (the workload), uncordon the nodes (the cluster)."""
    out: list[Finding] = []
    nodes = snap.of("Node")
    if not nodes:
        return out
    for w in _workloads(snap):
        pending = _pending(snap, w)
        if not pending:
            continue
        pod_spec = _pod_spec(w)
        tolerations = list(pod_spec.get("tolerations") or [])
        placed = [n for n in nodes if _placement_ok(n, pod_spec)]
        if not placed:
            continue  # no node satisfies the placement rules: another analyzer's finding
        free = [n for n in placed if not spec(n).get("unschedulable") and not _blocking_taints(n, tolerations)]
        if free:
            continue
        cordoned = [name_of(n) for n in placed if spec(n).get("unschedulable")]
        taints: dict[str, Obj] = {}
        tainted: list[str] = []
        for n in placed:
            for t in _blocking_taints(n, tolerations):
                taints.setdefault(f"{t.get('key')}={t.get('value', '')}:{t.get('effect')}", t)
                if name_of(n) not in tainted:
                    tainted.append(name_of(n))
        events = _scheduling_events(snap, pending)
        head = [
            f"{_kind(w)}/{name_of(w)} pods wait to be scheduled: {', '.join(name_of(p) for p in pending[:2])}",
            *[f"FailedScheduling: {m}" for m in events[:1]],
        ]
        component = snap.component_of(w)
        if taints:
            untainted_would_do = all(not spec(n).get("unschedulable") for n in placed) or not cordoned
            out.append(
                Finding(
                    analyzer="nodes_refuse_pods",
                    mechanism="untolerated_taints",
                    component=component,
                    target=f"{_kind(w)}/{name_of(w)}",
                    confidence=0.82 if untainted_would_do else 0.7,
                    evidence=[
                        *head,
                        f"the nodes carry taints its pods do not tolerate: {', '.join(sorted(taints))}",
                    ],
                    facts={
                        "kind": _kind(w),
                        "name": name_of(w),
                        "tolerations": [
                            {k: v for k, v in t.items() if k in ("key", "value", "effect")}
                            | {"operator": "Equal" if t.get("value") else "Exists"}
                            for t in taints.values()
                        ],
                        "has_tolerations": bool(tolerations),
                        "tainted_nodes": tainted,
                    },
                )
            )
        if cordoned:
            out.append(
                Finding(
                    analyzer="nodes_refuse_pods",
                    mechanism="node_cordoned",
                    component=component,
                    target=f"Node/{cordoned[0]}",
                    confidence=0.8,
                    evidence=[*head, f"nodes cordoned (unschedulable): {', '.join(cordoned)}"],
                    facts={"nodes": cordoned, "scope": "cluster"},
                )
            )
    return out


# -- network policy -------------------------------------------------------------------------------------------------


def network_policy_denies(snap: Snapshot) -> list[Finding]:
    """A NetworkPolicy that admits no traffic to (or from) pods that Services route to, while callers fail."""
    out: list[Finding] = []
    for pol in snap.of("NetworkPolicy"):
        pspec = spec(pol)
        types = pspec.get("policyTypes") or (["Ingress", "Egress"] if "egress" in pspec else ["Ingress"])
        deny_in = "Ingress" in types and not pspec.get("ingress")
        deny_out = "Egress" in types and not pspec.get("egress")
        if not deny_in and not deny_out:
            continue
        selected = [
            p for p in snap.live_pods() if selector_matches(pspec.get("podSelector"), meta(p).get("labels") or {})
        ]
        if not selected:
            continue
        services = sorted(
            {
                name_of(s)
                for s in snap.of("Service")
                for p in selected
                if labels_match(spec(s).get("selector"), meta(p).get("labels"))
            }
        )
        failing_callers = []
        for pod in snap.live_pods():
            text = snap.pod_logs(pod)
            hosts = {t.host.split(".")[0] for t in connection_targets(text)}
            if (deny_in and hosts & set(services)) or (deny_out and pod in selected and hosts):
                failing_callers.append(name_of(pod))
        unhealthy = [name_of(p) for p in selected if pod_problems(p)]
        if not failing_callers and not unhealthy:
            continue
        direction = " and ".join(d for d, on in (("ingress", deny_in), ("egress", deny_out)) if on)
        name = name_of(pol)
        evidence = [
            f"NetworkPolicy/{name} selects {len(selected)} pod(s) and allows no {direction}",
            f"Services routing to them: {', '.join(services) or '(none)'}",
        ]
        if failing_callers:
            evidence.append(f"pods failing to connect: {', '.join(failing_callers[:3])}")
        if unhealthy:
            evidence.append(f"selected pods unhealthy: {', '.join(unhealthy[:3])}")
        out.append(
            Finding(
                analyzer="network_policy_denies",
                mechanism="network_policy_deny",
                component=services[0] if len(services) == 1 else name,
                target=f"NetworkPolicy/{name}",
                confidence=0.83 if failing_callers else 0.65,
                evidence=evidence,
                facts={"policy": name},
            )
        )
    return out


# -- admission: quotas, limits, webhooks ---------------------------------------------------------------------------

_QUOTA = re.compile(r"exceeded quota|must specify (?:limits|requests)")
_LIMITS = re.compile(r"(?:maximum|minimum) (?:cpu|memory|storage) usage per (?:Container|Pod)")
_WEBHOOK = re.compile(r'failed calling webhook "(?P<hook>[^"]+)"|admission webhook "(?P<denied>[^"]+)" denied')


def admission_refuses_pods(snap: Snapshot) -> list[Finding]:
    """Pod creation refused at admission: a ResourceQuota, a LimitRange or a webhook (events of the controllers)."""
    out: list[Finding] = []
    seen: set[tuple[str, str]] = set()
    for e in snap.events:
        if e.get("reason") not in ("FailedCreate", "FailedCreatePodSandBox") and "forbidden" not in str(
            e.get("message")
        ):
            continue
        msg = str(e.get("message", ""))
        about = e.get("involvedObject") or {}
        owner = f"{about.get('kind')}/{about.get('name')}"
        quotas = [f"ResourceQuota/{name_of(q)}" for q in snap.of("ResourceQuota")]
        limits = [f"LimitRange/{name_of(q)}" for q in snap.of("LimitRange")]
        if _QUOTA.search(msg):
            mechanism, target = "quota_exceeded", (quotas or [owner])[0]
        elif _LIMITS.search(msg):
            mechanism, target = "limit_range_violation", (limits or [owner])[0]
        elif (m := _WEBHOOK.search(msg)) is not None:
            mechanism, target = "admission_webhook_failure", f"webhook/{m.group('hook') or m.group('denied')}"
        else:
            continue
        if (mechanism, owner) in seen:
            continue
        seen.add((mechanism, owner))
        workload = _owner_workload_of(snap, about)
        out.append(
            Finding(
                analyzer="admission_refuses_pods",
                mechanism=mechanism,
                component=snap.component_of(workload) if workload is not None else str(about.get("name", "")),
                target=target,
                confidence=0.78,
                evidence=[f"{owner} cannot create pods: {msg[:240]}"],
                facts={"owner": owner},
            )
        )
    return out


def _owner_workload_of(snap: Snapshot, about: Obj) -> Obj | None:
    kind, name = about.get("kind"), str(about.get("name", ""))
    if kind == "ReplicaSet":
        rs = snap.get("ReplicaSet", name)
        for ref in meta(rs or {}).get("ownerReferences") or []:
            if ref.get("kind") == "Deployment":
                return snap.get("Deployment", str(ref.get("name", "")))
        return None
    if kind in WORKLOAD_KINDS:
        return snap.get(str(kind), name)
    return None


# -- lifecycle: finalizers, init containers, shared ports -----------------------------------------------------------


def stuck_finalizers(snap: Snapshot) -> list[Finding]:
    """Objects being deleted that a finalizer holds (pods Terminating, claims kept), reported with their finalizers."""
    out: list[Finding] = []
    for kind in ("Pod", "PersistentVolumeClaim", "Deployment", "Service", "ConfigMap"):
        for obj in snap.of(kind):
            m = meta(obj)
            if not m.get("deletionTimestamp") or not m.get("finalizers"):
                continue
            owner = snap.owner_workload(obj) if kind == "Pod" else None
            out.append(
                Finding(
                    analyzer="stuck_finalizers",
                    mechanism="stuck_finalizer",
                    component=snap.component_of(owner) if owner is not None else name_of(obj),
                    target=f"{kind}/{name_of(obj)}",
                    confidence=0.55,
                    evidence=[
                        f"{kind}/{name_of(obj)} is being deleted since {m.get('deletionTimestamp')} but finalizers "
                        f"{', '.join(map(str, m['finalizers']))} hold it: the controller that owns them must finish"
                    ],
                    facts={"finalizers": list(m["finalizers"])},
                )
            )
    return out


def init_container_failure(snap: Snapshot) -> list[Finding]:
    """Pods held in Init because an init container fails; with history, the revision whose init containers ran."""
    out: list[Finding] = []
    seen: set[str] = set()
    for pod in snap.live_pods():
        failing: list[str] = []
        hanging: list[str] = []
        still = False
        for cs in status(pod).get("initContainerStatuses") or []:
            state = cs.get("state") or {}
            reason = (state.get("waiting") or {}).get("reason") or (state.get("terminated") or {}).get("reason")
            code = (state.get("terminated") or (cs.get("lastState") or {}).get("terminated") or {}).get("exitCode")
            if reason in ("CrashLoopBackOff", "Error") or (code not in (None, 0) and not cs.get("ready")):
                failing.append(str(cs.get("name")))
            elif "running" in state and not cs.get("ready"):
                hanging.append(str(cs.get("name")))
        owner = snap.owner_workload(pod)
        if not failing and hanging and owner is not None and not status(owner).get("availableReplicas"):
            # An init container that keeps running while the workload has no available pod at all: pods never
            # leave Init. Only a fault with history (an older revision without it) is reported below.
            failing = [f"{n} (still running, never completes)" for n in hanging]
            still = True
        if not failing:
            continue
        if owner is None or name_of(owner) in seen:
            continue
        seen.add(name_of(owner))
        rev = None
        if _kind(owner) == "Deployment":
            current = _pod_spec(owner).get("initContainers")
            for rs in snap.replicasets_of(owner):
                if ((spec(rs).get("template") or {}).get("spec") or {}).get("initContainers") != current:
                    rev = revision(rs) or None
                    break
        if still and not rev:
            continue
        out.append(
            Finding(
                analyzer="init_container_failure",
                mechanism="init_container_failure",
                component=snap.component_of(owner),
                target=f"{_kind(owner)}/{name_of(owner)}",
                confidence=0.8 if rev else 0.6,
                evidence=[
                    f"pod {name_of(pod)} is held in Init: init container(s) {', '.join(failing)} fail",
                    *_log_excerpt(snap, pod),
                ],
                facts={"kind": _kind(owner), "name": name_of(owner), "revision": rev},
            )
        )
    return out


def container_port_clash(snap: Snapshot) -> list[Finding]:
    """Containers of one pod declaring the same port: they share a network namespace, so only one can bind it."""
    out: list[Finding] = []
    for w in _workloads(snap):
        owners: dict[tuple[int, str], list[str]] = {}
        for c in containers(_pod_spec(w)):
            for p in c.get("ports") or []:
                if isinstance(p.get("containerPort"), int):
                    owners.setdefault((p["containerPort"], p.get("protocol") or "TCP"), []).append(str(c.get("name")))
        clashes = {k: v for k, v in owners.items() if len(v) > 1}
        if not clashes:
            continue
        (port, proto), names = next(iter(clashes.items()))
        unhealthy = [p for p in snap.pods_of(w) if pod_problems(p)]
        out.append(
            Finding(
                analyzer="container_port_clash",
                mechanism="container_port_clash",
                component=snap.component_of(w),
                target=f"{_kind(w)}/{name_of(w)}",
                confidence=0.75 if unhealthy else 0.5,
                evidence=[f"{_kind(w)}/{name_of(w)} containers {', '.join(names)} both declare {proto} port {port}"],
                facts={"port": port},
            )
        )
    return out


def host_port_conflict(snap: Snapshot) -> list[Finding]:
    """Pods waiting to be scheduled because the hostPort they ask for is taken on every node that would take them."""
    out: list[Finding] = []
    for w in _workloads(snap):
        pending = _pending(snap, w)
        events = [m for m in _scheduling_events(snap, pending) if "free ports" in m]
        ports = [
            (i, j, p)
            for i, c in enumerate(containers(_pod_spec(w)))
            for j, p in enumerate(c.get("ports") or [])
            if p.get("hostPort")
        ]
        if not pending or not events or not ports:
            continue
        ops = [f"/spec/template/spec/containers/{i}/ports/{j}/hostPort" for i, j, _ in ports]
        out.append(
            Finding(
                analyzer="host_port_conflict",
                mechanism="host_port_conflict",
                component=snap.component_of(w),
                target=f"{_kind(w)}/{name_of(w)}",
                confidence=0.8,
                evidence=[
                    f"{_kind(w)}/{name_of(w)} pods ask for hostPort(s) {sorted(p['hostPort'] for _, _, p in ports)}",
                    f"FailedScheduling: {events[0]}",
                ],
                facts={"kind": _kind(w), "name": name_of(w), "paths": ops, "old": [p["hostPort"] for _, _, p in ports]},
            )
        )
    return out


_DNS_FAILURE = re.compile(
    r"no such host|server misbehaving|Temporary failure in name resolution|Name or service not known|"
    r"lookup [\w.-]+ on [\d.]+:53",
    re.IGNORECASE,
)


def dns_policy(snap: Snapshot) -> list[Finding]:
    """Pods that cannot resolve names while their template bypasses the cluster DNS (``dnsPolicy`` Default or None)."""
    out: list[Finding] = []
    for w in _workloads(snap):
        pod_spec = _pod_spec(w)
        policy = pod_spec.get("dnsPolicy", "ClusterFirst")
        if policy in ("ClusterFirst", "ClusterFirstWithHostNet") and not pod_spec.get("dnsConfig"):
            continue
        failing = [p for p in snap.pods_of(w) if _DNS_FAILURE.search(snap.pod_logs(p))]
        if not failing:
            continue
        line = next(ln for ln in snap.pod_logs(failing[0]).splitlines() if _DNS_FAILURE.search(ln))
        out.append(
            Finding(
                analyzer="dns_policy",
                mechanism="dns_policy",
                component=snap.component_of(w),
                target=f"{_kind(w)}/{name_of(w)}",
                confidence=0.82 if policy != "ClusterFirst" else 0.65,
                evidence=[
                    f"{_kind(w)}/{name_of(w)} pods use dnsPolicy {policy}"
                    + (f" with dnsConfig {pod_spec.get('dnsConfig')}" if pod_spec.get("dnsConfig") else "")
                    + ", which bypasses the cluster DNS",
                    f"log {name_of(failing[0])}: {line.strip()[:200]}",
                ],
                facts={"kind": _kind(w), "name": name_of(w), "policy": policy, "config": pod_spec.get("dnsConfig")},
            )
        )
    return out


def _host_refs(pod_spec: Obj, service: str) -> bool:
    """Whether a pod spec's env values, command or args name a Service as a host (``name``, ``name:port``,
    ``name.namespace...``): the clients the cluster DNS sends to that Service."""
    pattern = re.compile(rf"(?<![\w.-]){re.escape(service)}(?=$|[:./])")
    texts: list[str] = []
    for c in [*containers(pod_spec), *(pod_spec.get("initContainers") or [])]:
        texts += [str(e.get("value", "")) for e in c.get("env") or [] if "value" in e]
        texts += [str(a) for a in [*(c.get("command") or []), *(c.get("args") or [])]]
    return any(pattern.search(t) for t in texts)


def local_traffic_policy(snap: Snapshot) -> list[Finding]:
    """A Service with ``internalTrafficPolicy: Local`` whose clients run on nodes that hold none of its endpoints.

    With Local, kube-proxy on a node routes the Service's cluster IP only to endpoints on that same node and drops the
    traffic otherwise (no fallback): a client on a node without a local endpoint cannot reach the Service at all,
    while every pod is Ready and the endpoints are populated. The fix is the default policy, Cluster.
    """
    out: list[Finding] = []
    pods = snap.live_pods()
    for svc in snap.of("Service"):
        if spec(svc).get("internalTrafficPolicy") != "Local" or not spec(svc).get("selector"):
            continue
        backends = snap.pods_selected_by(svc)
        local = {str(spec(p).get("nodeName")) for p in backends if spec(p).get("nodeName") and not pod_problems(p)}
        if not local:
            continue  # no ready endpoint anywhere: another fault, which another analyzer reads
        name = name_of(svc)
        stranded = [
            p for p in pods if spec(p).get("nodeName") not in local and p not in backends and _host_refs(spec(p), name)
        ]
        if not stranded:
            continue
        client = stranded[0]
        owner = snap.owner_workload(client)
        out.append(
            Finding(
                analyzer="local_traffic_policy",
                mechanism="local_traffic_policy",
                component=name,
                target=f"Service/{name}",
                confidence=0.8,
                evidence=[
                    f"Service/{name} has internalTrafficPolicy Local: a node routes it only to endpoints on that node",
                    f"its ready endpoints run on {sorted(local)}",
                    f"pod {name_of(client)}"
                    + (f" ({_kind(owner)}/{name_of(owner)})" if owner is not None else "")
                    + f" names it as a host and runs on {spec(client).get('nodeName')}, which has no local endpoint",
                ],
                facts={"service": name, "clients": sorted({name_of(p) for p in stranded})[:5]},
            )
        )
    return out


def duplicate_env(snap: Snapshot) -> list[Finding]:
    """A container that declares one env name twice with different values.

    The kubelet builds the environment in order, so the later entry silently shadows the earlier one (the API server
    only warns). A second entry is how a value gets appended by a patch rather than edited: the fix drops the later
    duplicates, each guarded by a JSON-patch test of its name and value, so the declared value is the one the
    program reads again.
    """
    out: list[Finding] = []
    for w in _workloads(snap):
        for i, c in enumerate(containers(_pod_spec(w))):
            env = c.get("env") or []
            first: dict[str, int] = {}
            later: list[int] = []
            for j, e in enumerate(env):
                n = e.get("name")
                if n in first and (e.get("value"), e.get("valueFrom")) != (
                    env[first[n]].get("value"),
                    env[first[n]].get("valueFrom"),
                ):
                    later.append(j)
                first.setdefault(n, j)
            if not later:
                continue
            base = f"/spec/template/spec/containers/{i}/env"
            ops: list[dict[str, Any]] = []
            for j in sorted(later, reverse=True):
                ops.append({"op": "test", "path": f"{base}/{j}/name", "value": env[j].get("name")})
                if "value" in env[j]:
                    ops.append({"op": "test", "path": f"{base}/{j}/value", "value": env[j]["value"]})
                ops.append({"op": "remove", "path": f"{base}/{j}"})
            shown = ", ".join(
                f"{env[j].get('name')}={env[first[env[j].get('name')]].get('value')!r} then {env[j].get('value')!r}"
                for j in later
            )
            out.append(
                Finding(
                    analyzer="duplicate_env",
                    mechanism="duplicate_env",
                    component=snap.component_of(w),
                    target=f"{_kind(w)}/{name_of(w)}",
                    confidence=0.7,
                    evidence=[
                        f"container {c.get('name')} of {_kind(w)}/{name_of(w)} declares env twice: {shown}",
                        "the kubelet applies env in order, so the later value shadows the declared one",
                    ],
                    facts={"kind": _kind(w), "name": name_of(w), "ops": ops},
                )
            )
    return out


def _count(value: Any, replicas: int, round_up: bool) -> int | None:
    """A rolling-update bound (an int or a percentage of replicas) as a pod count, rounded as the controller does
    (maxSurge up, maxUnavailable down)."""
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"(\d+)%", str(value or ""))
    if not m:
        return None
    share = int(m.group(1)) * replicas / 100
    return int(-(-share // 1)) if round_up else int(share)


def rollout_strategy_unsafe(snap: Snapshot) -> list[Finding]:
    """A Deployment whose RollingUpdate may take every pod down at once (maxUnavailable >= replicas, maxSurge 0),
    while it has no available pod: any failing new revision leaves it with nothing serving. The fix is the
    controller's default bounds (25% / 25%), so a bad revision stops with old pods still up."""
    out: list[Finding] = []
    for w in snap.of("Deployment"):
        strategy = spec(w).get("strategy") or {}
        replicas = spec(w).get("replicas", 1)
        if strategy.get("type", "RollingUpdate") != "RollingUpdate" or not isinstance(replicas, int) or replicas < 1:
            continue
        bounds = strategy.get("rollingUpdate") or {}
        unavailable = _count(bounds.get("maxUnavailable", "25%"), replicas, round_up=False)
        if unavailable is None or unavailable < replicas or status(w).get("availableReplicas"):
            continue
        out.append(
            Finding(
                analyzer="rollout_strategy_unsafe",
                mechanism="rollout_strategy_unsafe",
                component=snap.component_of(w),
                target=f"Deployment/{name_of(w)}",
                confidence=0.6,
                evidence=[
                    f"Deployment/{name_of(w)} rolls out with maxUnavailable {bounds.get('maxUnavailable')} of "
                    f"{replicas} replicas (maxSurge {bounds.get('maxSurge', '25%')}): a rollout may remove every pod",
                    f"it has 0/{replicas} available",
                ],
                facts={"name": name_of(w), "old": bounds},
            )
        )
    return out


_ADDRESS = re.compile(
    r"^(?P<scheme>[a-z][a-z0-9+.-]*://)?(?P<host>[a-z0-9-]+)(?P<domain>(\.[a-z0-9-]+)*):(?P<port>\d+)(?P<rest>/.*)?$"
)


def env_address_wrong_port(snap: Snapshot) -> list[Finding]:
    """An env value ``host:port`` that names a Service of the namespace on a port the Service does not expose.

    A Service's cluster IP answers only on its declared ports (kube-proxy has no rule for any other), so the client
    dials nothing. Headless Services are left out (their names resolve to the pods, which answer on their own
    ports), and so is a port a backend pod declares. The fix puts the Service's port in the value, when the Service
    has exactly one."""
    out: list[Finding] = []
    for w in _workloads(snap):
        for i, c in enumerate(containers(_pod_spec(w))):
            for j, e in enumerate(c.get("env") or []):
                m = _ADDRESS.match(str(e.get("value", "")))
                if "value" not in e or not m:
                    continue
                svc = snap.get("Service", m.group("host"))
                domain = m.group("domain")
                if svc is None or (domain and not domain.startswith(f".{snap.namespace}")):
                    continue
                if spec(svc).get("clusterIP") == "None" or not spec(svc).get("selector"):
                    continue
                ports = [p.get("port") for p in spec(svc).get("ports") or [] if p.get("port")]
                port = int(m.group("port"))
                declared = {
                    p.get("containerPort")
                    for b in snap.pods_selected_by(svc)
                    for cc in containers(spec(b))
                    for p in cc.get("ports") or []
                }
                if not ports or port in ports or port in declared:
                    continue
                fixable = len(ports) == 1
                value = str(e["value"])
                new = value[: m.start("port")] + str(ports[0]) + value[m.end("port") :] if fixable else None
                path = f"/spec/template/spec/containers/{i}/env/{j}/value"
                out.append(
                    Finding(
                        analyzer="env_address_wrong_port",
                        mechanism="env_address_wrong_port",
                        component=snap.component_of(w),
                        target=f"{_kind(w)}/{name_of(w)}",
                        confidence=0.75 if fixable else 0.4,
                        evidence=[
                            f"container {c.get('name')} of {_kind(w)}/{name_of(w)} has {e.get('name')}={value}",
                            f"Service/{name_of(svc)} exposes only port(s) {sorted(ports)}: nothing answers on {port}",
                        ],
                        facts={"kind": _kind(w), "name": name_of(w), "path": path, "old": value, "new": new},
                    )
                )
    return out


PROBE_DEFAULTS = {"initialDelaySeconds": 0, "periodSeconds": 10, "failureThreshold": 3, "timeoutSeconds": 1}
"""The kubelet's defaults for a probe's timing fields (Kubernetes API reference, ``Probe``)."""
_UP_BUT_FAILING = re.compile(r"statuscode: 5\d\d\b|NOT_SERVING|deadline exceeded|timeout|timed out", re.IGNORECASE)
"""Liveness failures in which the program is there but not (yet) healthy: a 5xx, a gRPC NOT_SERVING, no answer in
time. A 404 or a refused connection is a probe aimed at nothing, which more time does not fix."""


def _budget(probe: Obj) -> float:
    """Seconds a container has, after start, before its liveness probe can kill it."""
    t = {k: _seconds(probe.get(k), v) for k, v in PROBE_DEFAULTS.items()}
    return float(t["initialDelaySeconds"] + t["periodSeconds"] * t["failureThreshold"])


def _seconds(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def liveness_kills(snap: Snapshot) -> list[Finding]:
    """Pods the kubelet keeps killing on a liveness probe (``Unhealthy``: Liveness probe failed, restarts).

    When an older revision of the Deployment ran with another probe, that probe is put back (history beats
    inference). When there is no such revision (the workload is new) and the program answers but is not healthy yet
    (a 5xx, NOT_SERVING, a timeout) under a probe that gives it less time than the kubelet's defaults would, the probe
    is relaxed to those defaults: a probe that kills a container before it can finish starting makes it restart
    forever, however healthy the program is. TNR undoes the relaxation if the pods do not recover."""
    out: list[Finding] = []
    for w in snap.of("Deployment"):
        pods = [p for p in snap.pods_of(w) if restarts(p) > 0 and pod_problems(p)]
        failures = {
            name_of(p): [
                str(e.get("message", ""))
                for e in snap.events_for("Pod", name_of(p))
                if e.get("reason") == "Unhealthy" and str(e.get("message", "")).startswith("Liveness probe failed")
            ]
            for p in pods
        }
        killed = [p for p in pods if failures[name_of(p)]]
        if not killed:
            continue
        evidence = [
            f"pod {name_of(killed[0])} is killed by its liveness probe (Unhealthy: Liveness probe failed)"
            f" and restarted {restarts(killed[0])} times"
        ]
        current = containers(_pod_spec(w))
        found = _liveness_from_history(snap, w, current)
        if found is not None:
            ops, rev, why = found
            facts: dict[str, Any] = {"name": name_of(w), "ops": ops, "revision": rev}
            confidence = 0.7
        else:
            answers = [m for p in killed for m in failures[name_of(p)]]
            ops, why = _liveness_relaxed(current, answers)
            if not ops:
                continue
            facts, confidence = {"name": name_of(w), "ops": ops, "revision": None}, 0.6
        out.append(
            Finding(
                analyzer="liveness_kills",
                mechanism="liveness_kills",
                component=snap.component_of(w),
                target=f"Deployment/{name_of(w)}",
                confidence=confidence,
                evidence=[*evidence, why],
                facts=facts,
            )
        )
    return out


def _liveness_from_history(snap: Snapshot, w: Obj, current: list[Obj]) -> tuple[list[Obj], int, str] | None:
    """The ops that put back the liveness probes of the newest older revision that ran with other ones."""
    for rs in sorted(snap.replicasets_of(w), key=revision, reverse=True):
        old = containers(((spec(rs).get("template") or {}).get("spec")) or {})
        by_name = {c.get("name"): c for c in old}
        ops = [
            {
                "op": "replace" if "livenessProbe" in c else "add",
                "path": f"/spec/template/spec/containers/{i}/livenessProbe",
                "value": by_name[c.get("name")]["livenessProbe"],
            }
            for i, c in enumerate(current)
            if c.get("name") in by_name
            and by_name[c.get("name")].get("livenessProbe")
            and by_name[c.get("name")].get("livenessProbe") != c.get("livenessProbe")
        ]
        if ops:
            return ops, revision(rs), f"revision {revision(rs)} ran with another liveness probe: {ops[0]['value']}"
    return None


def _liveness_relaxed(current: list[Obj], answers: list[str]) -> tuple[list[Obj], str]:
    """The ops that raise each too-tight liveness probe's timing to the kubelet's defaults, when every failure shows
    a program that is there but not healthy yet; none otherwise."""
    if not answers or not all(_UP_BUT_FAILING.search(a) for a in answers):
        return [], ""
    ops, notes = [], []
    default_budget = _budget({})
    for i, c in enumerate(current):
        probe = c.get("livenessProbe")
        if not isinstance(probe, dict) or _budget(probe) >= default_budget:
            continue
        relaxed = dict(probe)
        for key in ("periodSeconds", "failureThreshold", "timeoutSeconds"):
            relaxed[key] = max(_seconds(probe.get(key), PROBE_DEFAULTS[key]), PROBE_DEFAULTS[key])
        ops.append({"op": "replace", "path": f"/spec/template/spec/containers/{i}/livenessProbe", "value": relaxed})
        notes.append(
            f"container {c.get('name')}'s liveness probe allows {_budget(probe):g}s before a kill, less than the "
            f"kubelet's defaults ({default_budget:g}s), while the program answers: {answers[-1][:100]}"
        )
    return ops, "; ".join(notes) + ("; no older revision to take the probe from" if notes else "")


RELATIONS: tuple[Analyzer, ...] = (
    service_selects_nothing,
    service_selects_foreign_pods,
    probe_port_mismatch,
    resources_exceed_nodes,
    nodes_refuse_pods,
    network_policy_denies,
    admission_refuses_pods,
    stuck_finalizers,
    init_container_failure,
    container_port_clash,
    host_port_conflict,
    dns_policy,
    local_traffic_policy,
    duplicate_env,
    rollout_strategy_unsafe,
    env_address_wrong_port,
    liveness_kills,
)
"""The relation analyzers, run after the base ones (``analyzers.ANALYZERS``)."""
