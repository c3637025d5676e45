"""Generic Kubernetes analyzers: each reads a ``Snapshot`` and reports findings, never a scenario's name.

Why findings and not fixes: a fault shows in many places at once (a Service's targetPort, its callers' logs, error
spans), and several analyzers may see the same fault from different sides. Each finding states one *mechanism* in
Kubernetes terms (``service_target_port``, ``scaled_to_zero``, ...), the object at fault, the component to localise,
the evidence, a confidence, and the ``facts`` a recipe needs to fix it. The AIOpsLab category follows from the
mechanism alone (``ROOT_CAUSES``): one table says how the rulebook classifies every fault it can see. Diagnosis ranks
the findings; mitigation turns the root-cause ones into actions (``recipes``). Symptom findings (a client that cannot
reach its upstream) carry ``caused_by`` so that they rank below, and are explained by, the finding of their cause.

Everything is derived from Kubernetes semantics and widely shared conventions: selectors and ports, ReplicaSet
revision history, scheduling events, PV/PVC binding, the database's own init scripts (``/docker-entrypoint-initdb.d``)
as the declaration of its users, and log lines of common drivers and RPC stacks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from stratus.contracts import RootCause
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


def _rc(system_level: str, fault_type: str) -> RootCause:
    return RootCause(system_level=system_level, fault_type=fault_type)


ROOT_CAUSES: dict[str, RootCause] = {
    # Virtualization: an object of the orchestrator is wrong, whatever the application inside does.
    "service_target_port": _rc("Virtualization", "Misconfiguration"),  # a Service's spec contradicts its pods
    "scaled_to_zero": _rc("Virtualization", "Operation Error"),  # an operator scaled a served workload away
    "stale_claim_ref": _rc("Virtualization", "Operation Error"),  # claims deleted under their volumes (Released)
    "missing_storage_class": _rc("Virtualization", "Operation Error"),  # claims left naming a class now gone
    "unschedulable_placement": _rc("Virtualization", "Dependency Problem"),  # pods require a node that is not there
    "upstream_unavailable": _rc("Virtualization", "Dependency Problem"),  # a symptom: the Service has no endpoint
    # Application: the program, its configuration or its data refuse to work, on healthy Kubernetes objects.
    "changed_template": _rc("Application", "Misconfiguration"),  # a new image/command/args/env broke the pods
    "bad_image": _rc("Application", "Misconfiguration"),  # an image that cannot be pulled
    "wrong_program": _rc("Application", "Misconfiguration"),  # the command runs another workload's binary
    "client_wrong_port": _rc("Application", "Misconfiguration"),  # the client's configured address is wrong
    "tls_required": _rc("Application", "Misconfiguration"),  # the server's TLS settings reject its clients
    "database_auth": _rc("Application", "Authentication Issue"),  # the database refuses the client's user
    "runtime_credential_drift": _rc("Application", "Authentication Issue"),  # a password set at run time only
    "crash_loop": _rc("Application", "Dependency Problem"),  # crashing for a reason no analyzer recognised
    # Relations (``relations``): the API's own semantics say the objects cannot work together.
    "service_selector_mismatch": _rc("Virtualization", "Misconfiguration"),  # a selector that picks no pod
    "service_selects_foreign_pods": _rc("Virtualization", "Misconfiguration"),  # ...or pods that cannot serve it
    "probe_port_mismatch": _rc("Virtualization", "Misconfiguration"),  # a probe on a port the container lacks
    "resources_exceed_nodes": _rc("Virtualization", "Misconfiguration"),  # requests no node can allocate
    "untolerated_taints": _rc("Virtualization", "Misconfiguration"),  # taints the pods do not tolerate
    "node_cordoned": _rc("Virtualization", "Operation Error"),  # an operator cordoned the nodes the pods need
    "network_policy_deny": _rc("Virtualization", "Network/Storage Issue"),  # a policy drops the traffic
    "quota_exceeded": _rc("Virtualization", "Operation Error"),  # a quota refuses new pods
    "limit_range_violation": _rc("Virtualization", "Misconfiguration"),  # a LimitRange refuses the pods
    "admission_webhook_failure": _rc("Virtualization", "Dependency Problem"),  # a webhook refuses or is down
    "stuck_finalizer": _rc("Virtualization", "Operation Error"),  # a deletion a finalizer holds
    "init_container_failure": _rc("Application", "Dependency Problem"),  # an init container keeps failing
    "container_port_clash": _rc("Application", "Misconfiguration"),  # two containers of a pod on one port
    "host_port_conflict": _rc("Virtualization", "Misconfiguration"),  # a hostPort taken on every node
    "dns_policy": _rc("Virtualization", "Misconfiguration"),  # pods bypass the cluster DNS and resolve nothing
    "local_traffic_policy": _rc("Virtualization", "Misconfiguration"),  # clients on nodes without a local endpoint
    "duplicate_env": _rc("Application", "Misconfiguration"),  # a later env entry shadows the declared value
    "env_address_wrong_port": _rc("Application", "Misconfiguration"),  # env dials a port the Service lacks
    "rollout_strategy_unsafe": _rc("Virtualization", "Misconfiguration"),  # a rollout may remove every pod
    "liveness_kills": _rc("Virtualization", "Misconfiguration"),  # a liveness probe kills pods before ready
    "sidecar_blocks_completion": _rc("Virtualization", "Misconfiguration"),  # a helper keeps Jobs from completing
    # Changes since the last healthy state (``changes``): the orchestrator's objects, or the program and its config.
    "recent_change": _rc("Virtualization", "Misconfiguration"),
    "recent_app_change": _rc("Application", "Misconfiguration"),
}
"""Each mechanism's category in AIOpsLab's vocabulary (``system_level`` / ``fault_type``), from the mechanism alone.

Virtualization when the fault lives in a Kubernetes object (Service, replicas, scheduling, volumes); Application when
those objects are sound and the program, its configuration or its data fail. Misconfiguration for a wrong value that
someone wrote, Operation Error for an operator's action that removed something the app needs, Dependency Problem for
a requirement nothing satisfies, Authentication Issue for credentials or grants the server rejects.
"""


class Finding(BaseModel):
    """One thing an analyzer saw, in Kubernetes terms, with what a recipe needs to act on it."""

    model_config = ConfigDict(frozen=True)

    analyzer: str = Field(description="The analyzer that produced the finding.")
    mechanism: str = Field(description="What is wrong, as a Kubernetes mechanism (e.g. service_target_port).")
    component: str = Field(description="The component to localise (a Service's or workload's name).")
    target: str = Field(description="The object at fault, Kind/name.")
    confidence: float = Field(ge=0.0, le=1.0, description="How sure the analyzer is that this is the fault.")
    evidence: list[str] = Field(default_factory=list, description="What was seen, in words a human can check.")
    facts: dict[str, Any] = Field(default_factory=dict, description="The values a recipe needs to fix it.")
    caused_by: str | None = Field(
        default=None, description="For a symptom: the component whose fault explains it (ranked below that one)."
    )

    @property
    def root_cause(self) -> RootCause:
        """The category in AIOpsLab's vocabulary: the mechanism's, never the analyzer's own choice."""
        return ROOT_CAUSES[self.mechanism]


Analyzer = Callable[[Snapshot], list[Finding]]


CRASHING = {"CrashLoopBackOff", "Error", "StartError", "RunContainerError", "CreateContainerError"}
PULLING = {"ImagePullBackOff", "ErrImagePull", "InvalidImageName"}


def _waiting_reasons(pod: Obj) -> set[str]:
    out = set()
    for cs in status(pod).get("containerStatuses") or []:
        state = cs.get("state") or {}
        if (state.get("waiting") or {}).get("reason"):
            out.add(str(state["waiting"]["reason"]))
        term = state.get("terminated") or (cs.get("lastState") or {}).get("terminated") or {}
        if term.get("reason") == "Error" and "running" not in state:
            out.add("Error")
    return out


def _crashing(pod: Obj) -> bool:
    return bool(_waiting_reasons(pod) & CRASHING) or (restarts(pod) > 0 and bool(pod_problems(pod)))


def _ports_declared(pods: list[Obj], protocol: str = "TCP") -> tuple[set[int], dict[str, int]]:
    numbers: set[int] = set()
    names: dict[str, int] = {}
    for pod in pods:
        for c in containers(spec(pod)):
            for p in c.get("ports") or []:
                if (p.get("protocol") or "TCP") != protocol or not isinstance(p.get("containerPort"), int):
                    continue
                numbers.add(p["containerPort"])
                if p.get("name"):
                    names[str(p["name"])] = p["containerPort"]
    return numbers, names


# -- Services --------------------------------------------------------------------------------------------------


def service_target_port(snap: Snapshot) -> list[Finding]:
    """A Service port whose targetPort is no port the selected pods declare, while the right one is evident."""
    out: list[Finding] = []
    for svc in snap.of("Service"):
        pods = snap.pods_selected_by(svc)
        if not pods:
            continue
        for i, port in enumerate(spec(svc).get("ports") or []):
            protocol = port.get("protocol") or "TCP"
            if protocol != "TCP":
                continue
            declared, named = _ports_declared(pods, protocol)
            if not declared:
                continue
            target = port.get("targetPort", port.get("port"))
            if isinstance(target, str) and not target.isdigit():
                if target in named:
                    continue
            elif int(target) in declared:
                continue
            fix: int | None = None
            if port.get("port") in declared:
                fix = int(port["port"])
            elif len(declared) == 1:
                fix = next(iter(declared))
            if fix is None:
                continue
            svc_name = name_of(svc)
            evidence = [
                f"Service/{svc_name} port {port.get('port')} sends to targetPort {target}, but the pods it selects "
                f"({', '.join(sorted(name_of(p) for p in pods)[:3])}) declare containerPorts {sorted(declared)}",
            ]
            callers = _callers_refused(snap, svc_name)
            if callers:
                evidence.append(f"callers log connection errors to {svc_name}: {', '.join(callers[:3])}")
            out.append(
                Finding(
                    analyzer="service_target_port",
                    mechanism="service_target_port",
                    component=svc_name,
                    target=f"Service/{svc_name}",
                    confidence=0.92 if callers else 0.85,
                    evidence=evidence,
                    facts={"service": svc_name, "index": i, "from": target, "to": fix},
                )
            )
    return out


def _callers_refused(snap: Snapshot, service: str) -> list[str]:
    """Pods whose logs show a connection error naming ``service``."""
    out = []
    for pod in snap.live_pods():
        for target in connection_targets(snap.pod_logs(pod)):
            if target.host.split(".")[0] == service:
                out.append(name_of(pod))
                break
    return out


# -- workloads -------------------------------------------------------------------------------------------------


def scaled_to_zero(snap: Snapshot) -> list[Finding]:
    """A Deployment/StatefulSet at zero replicas that a Service routes to (or that callers fail to reach)."""
    out: list[Finding] = []
    for kind in ("Deployment", "StatefulSet"):
        for w in snap.of(kind):
            if spec(w).get("replicas") != 0:
                continue
            labels = (spec(w).get("template") or {}).get("metadata", {}).get("labels")
            services = snap.services_selecting(labels)
            component = snap.component_of(w)
            callers = _callers_refused(snap, component)
            if not services and not callers:
                continue
            wanted = _last_applied_replicas(w) or 1
            evidence = [f"{kind}/{name_of(w)} has spec.replicas=0"]
            evidence += [f"Service/{name_of(s)} selects its pods and has no endpoints" for s in services]
            if callers:
                evidence.append(f"callers log connection errors to {component}: {', '.join(callers[:3])}")
            out.append(
                Finding(
                    analyzer="scaled_to_zero",
                    mechanism="scaled_to_zero",
                    component=component,
                    target=f"{kind}/{name_of(w)}",
                    confidence=0.9,
                    evidence=evidence,
                    facts={"kind": kind, "name": name_of(w), "replicas": wanted},
                )
            )
    return out


def _last_applied_replicas(workload: Obj) -> int | None:
    raw = (meta(workload).get("annotations") or {}).get("kubectl.kubernetes.io/last-applied-configuration")
    if not raw:
        return None
    try:
        replicas = json.loads(raw).get("spec", {}).get("replicas")
    except (ValueError, AttributeError):
        return None
    return replicas if isinstance(replicas, int) and replicas > 0 else None


def _node_matches(node: Obj, selector: dict[str, Any]) -> bool:
    return labels_match(selector, meta(node).get("labels")) if selector else True


def _term_matches(node: Obj, term: dict[str, Any]) -> bool:
    labels = meta(node).get("labels") or {}
    for expr in term.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        have = labels.get(key)
        ok = {
            "In": have in values,
            "NotIn": have not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }.get(str(op), True)
        if not ok:
            return False
    return True


def unschedulable_placement(snap: Snapshot) -> list[Finding]:
    """A pod template whose nodeSelector or required node affinity matches no node (Pending, FailedScheduling)."""
    out: list[Finding] = []
    nodes = [n for n in snap.of("Node") if not spec(n).get("unschedulable")]
    if not nodes:
        return out
    for kind in ("Deployment", "StatefulSet"):
        for w in snap.of(kind):
            pod_spec = (spec(w).get("template") or {}).get("spec") or {}
            selector = pod_spec.get("nodeSelector") or {}
            bad_keys = [k for k, v in selector.items() if not any(_node_matches(n, {k: v}) for n in nodes)]
            required = (
                ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
                    "requiredDuringSchedulingIgnoredDuringExecution"
                )
                or {}
            ).get("nodeSelectorTerms") or []
            affinity_bad = bool(required) and not any(_term_matches(n, t) for n in nodes for t in required)
            if not bad_keys and not affinity_bad:
                continue
            pending = [p for p in snap.pods_of(w) if status(p).get("phase") == "Pending"]
            events = [
                str(e.get("message", ""))
                for p in pending
                for e in snap.events_for("Pod", name_of(p))
                if e.get("reason") == "FailedScheduling"
            ]
            evidence = []
            if bad_keys:
                wanted = ", ".join(f"{k}={selector[k]}" for k in bad_keys)
                evidence.append(f"{kind}/{name_of(w)} requires nodeSelector {wanted}, which no node has")
            if affinity_bad:
                evidence.append(f"{kind}/{name_of(w)} has a required node affinity that no node satisfies")
            if pending:
                evidence.append(f"pods Pending: {', '.join(name_of(p) for p in pending[:3])}")
            evidence += [f"FailedScheduling: {m}" for m in events[:2]]
            out.append(
                Finding(
                    analyzer="unschedulable_placement",
                    mechanism="unschedulable_placement",
                    component=snap.component_of(w),
                    target=f"{kind}/{name_of(w)}",
                    confidence=0.9 if pending else 0.6,
                    evidence=evidence,
                    facts={
                        "kind": kind,
                        "name": name_of(w),
                        "bad_keys": bad_keys,
                        "all_keys": len(bad_keys) == len(selector),
                        "affinity": affinity_bad,
                    },
                )
            )
    return out


def unbound_claims(snap: Snapshot) -> list[Finding]:
    """A PVC stuck Pending: its PersistentVolume is Released with a stale claimRef, or its StorageClass is missing."""
    out: list[Finding] = []
    classes = {name_of(sc) for sc in snap.of("StorageClass")}
    for pvc in snap.of("PersistentVolumeClaim"):
        if status(pvc).get("phase") == "Bound":
            continue
        pvc_name = name_of(pvc)
        sc = spec(pvc).get("storageClassName")
        users = [
            p
            for p in snap.live_pods()
            if any(
                (v.get("persistentVolumeClaim") or {}).get("claimName") == pvc_name
                for v in spec(p).get("volumes") or []
            )
        ]
        owners = [w for w in (snap.owner_workload(p) for p in users) if w is not None]
        component = snap.component_of(owners[0]) if owners else pvc_name
        evidence = [f"PersistentVolumeClaim/{pvc_name} is {status(pvc).get('phase') or 'Pending'}"]
        evidence += [f"pod {name_of(p)} is {status(p).get('phase')} waiting for it" for p in users[:2]]
        for p in users[:1]:
            evidence += [
                f"{e.get('reason')}: {e.get('message')}"
                for e in snap.events_for("Pod", name_of(p))
                if e.get("reason") == "FailedScheduling"
            ][:1]
        candidates = [
            pv
            for pv in snap.of("PersistentVolume")
            if (sc is None or spec(pv).get("storageClassName") == sc)
            and (not spec(pvc).get("volumeName") or spec(pvc).get("volumeName") == name_of(pv))
        ]
        stale = []
        for pv in candidates:
            ref = spec(pv).get("claimRef") or {}
            phase = status(pv).get("phase")
            if not ref:
                continue
            same_claim = ref.get("namespace") == snap.namespace and ref.get("name") == pvc_name
            if phase == "Released" or (same_claim and ref.get("uid") and ref.get("uid") != meta(pvc).get("uid")):
                stale.append(pv)
        if stale:
            pv = stale[0]
            ref = spec(pv).get("claimRef") or {}
            evidence.append(
                f"PersistentVolume/{name_of(pv)} (storageClass {spec(pv).get('storageClassName')}) is "
                f"{status(pv).get('phase')} with a stale claimRef to {ref.get('namespace')}/{ref.get('name')} "
                f"(uid {ref.get('uid')}, the claim's uid is {meta(pvc).get('uid')})"
            )
            out.append(
                Finding(
                    analyzer="unbound_claims",
                    mechanism="stale_claim_ref",
                    component=component,
                    target=f"PersistentVolume/{name_of(pv)}",
                    confidence=0.88,
                    evidence=evidence,
                    facts={"pv": name_of(pv), "pvc": pvc_name, "scope": "cluster"},
                )
            )
        if sc and sc not in classes:  # one claim may carry both findings: each has its own fix
            static = [pv for pv in snap.of("PersistentVolume") if spec(pv).get("storageClassName") == sc]
            evidence.append(f"StorageClass/{sc} does not exist")
            out.append(
                Finding(
                    analyzer="unbound_claims",
                    mechanism="missing_storage_class",
                    component=component,
                    target=f"StorageClass/{sc}",
                    confidence=0.8 if static else 0.6,
                    evidence=evidence,
                    facts={"storage_class": sc, "static": bool(static), "pvc": pvc_name, "scope": "cluster"},
                )
            )
    return out


TEMPLATE_FIELDS = ("image", "command", "args", "env")


def template_diff(current: dict[str, Any], previous: dict[str, Any]) -> list[dict[str, Any]]:
    """Container fields that changed between two pod templates: ``[{container, field, old, new}]``."""
    prev = {c.get("name"): c for c in containers(previous.get("spec") or {})}
    out = []
    for c in containers(current.get("spec") or {}):
        old = prev.get(c.get("name"))
        if old is None:
            continue
        for fname in TEMPLATE_FIELDS:
            if c.get(fname) != old.get(fname):
                out.append({"container": c.get("name"), "field": fname, "old": old.get(fname), "new": c.get(fname)})
    return out


def changed_template(snap: Snapshot) -> list[Finding]:
    """A Deployment whose pods fail since its template changed, while the previous revision ran.

    Comparing the current ReplicaSet's template with the previous one finds the changed field whatever it is (an
    image, a command, args, env), so wrong images and wrong commands are one mechanism.
    """
    out: list[Finding] = []
    for dep in snap.of("Deployment"):
        pods = snap.pods_of(dep)
        failing = [p for p in pods if pod_problems(p) or _crashing(p)]
        if not failing:
            continue
        history = snap.replicasets_of(dep)
        current_tpl = spec(dep).get("template") or {}
        previous = next(
            (rs for rs in history if template_diff(current_tpl, spec(rs).get("template") or {})),
            None,
        )
        reasons = set().union(*(_waiting_reasons(p) for p in failing))
        pull = bool(reasons & PULLING)
        if previous is None:
            if pull:
                out.append(_bad_image_without_history(snap, dep, failing, reasons))
            continue
        diff = template_diff(current_tpl, spec(previous).get("template") or {})
        changes = "; ".join(f"{d['container']}.{d['field']}: {d['old']!r} -> {d['new']!r}" for d in diff)
        evidence = [
            f"Deployment/{name_of(dep)} changed since revision {revision(previous)}: {changes}",
            f"its pods fail: {', '.join(f'{name_of(p)} ({_status_words(p)})' for p in failing[:3])}",
        ]
        for p in failing[:1]:
            evidence += _log_excerpt(snap, p)
        other = _failure_explained_elsewhere(snap, failing, diff)
        if other:
            evidence.append(f"but the failure looks unrelated to the change: {other}")
        out.append(
            Finding(
                analyzer="changed_template",
                mechanism="changed_template",
                component=snap.component_of(dep),
                target=f"Deployment/{name_of(dep)}",
                confidence=0.45 if other and not pull else 0.9 if pull else 0.8,
                evidence=evidence,
                facts={"name": name_of(dep), "revision": revision(previous), "diff": diff},
            )
        )
    return out


def _failure_explained_elsewhere(snap: Snapshot, failing: list[Obj], diff: list[dict[str, Any]]) -> str | None:
    """Why the pods' failure may have nothing to do with the template change (an old revision is not a cause).

    Credentials refused by a database, or an upstream whose Service has no ready endpoint, fail the same way
    whatever revision runs, unless the change touched the environment (where credentials and addresses live).
    """
    if any(d["field"] == "env" for d in diff):
        return None
    text = "\n".join(snap.pod_logs(p) for p in failing)
    if _NOT_AUTHORIZED.search(text) or _AUTH_FAILED.search(text):
        return "the database refuses the client's credentials"
    for t in connection_targets(text):
        svc = snap.service_for_host(t.host)
        exposed = {p.get("port") for p in spec(svc).get("ports") or []} if svc else set()
        if svc is not None and t.port in exposed and snap.ready_addresses(svc) == 0:
            return f"Service/{name_of(svc)} it calls has no ready endpoint"
    return None


def _bad_image_without_history(snap: Snapshot, dep: Obj, failing: list[Obj], reasons: set[str]) -> Finding:
    images = sorted({str(c.get("image")) for c in containers((spec(dep).get("template") or {}).get("spec") or {})})
    return Finding(
        analyzer="changed_template",
        mechanism="bad_image",
        component=snap.component_of(dep),
        target=f"Deployment/{name_of(dep)}",
        confidence=0.6,
        evidence=[
            f"Deployment/{name_of(dep)} pods cannot pull their image ({', '.join(sorted(reasons & PULLING))}): "
            f"{', '.join(images)}; no earlier revision to return to"
        ],
        facts={"name": name_of(dep)},
    )


def _status_words(pod: Obj) -> str:
    return ", ".join(pod_problems(pod)) or f"{restarts(pod)} restarts"


def _log_excerpt(snap: Snapshot, pod: Obj, limit: int = 2) -> list[str]:
    lines = [ln for ln in snap.pod_logs(pod).splitlines() if ERROR_LINE.search(ln)]
    return [f"log {name_of(pod)}: {ln.strip()[:200]}" for ln in lines[-limit:]]


ERROR_LINE = re.compile(r"panic|fatal|error|refused|failed|not authorized|FTL|PNC|ERR", re.IGNORECASE)


def sibling_program(snap: Snapshot) -> list[Finding]:
    """A workload running another workload's program: the convention its siblings (same image) keep is broken.

    Where several Deployments share an image and each runs the program named after itself, a Deployment whose
    command names *another* sibling's program runs the wrong binary; the convention says which one it should run.
    """
    out: list[Finding] = []
    by_image: dict[str, list[tuple[Obj, int, dict[str, Any]]]] = {}
    for dep in snap.of("Deployment"):
        for i, c in enumerate(containers((spec(dep).get("template") or {}).get("spec") or {})):
            if c.get("command"):
                by_image.setdefault(str(c.get("image")), []).append((dep, i, c))
    for group in by_image.values():
        names = {name_of(d) for d, _, _ in group}
        keeping = [d for d, _, c in group if _program(c) == name_of(d)]
        if len(keeping) < 3 or len(keeping) < 0.75 * len(group):
            continue
        for dep, i, c in group:
            program = _program(c)
            if program == name_of(dep) or program not in names:
                continue
            out.append(
                Finding(
                    analyzer="sibling_program",
                    mechanism="wrong_program",
                    component=snap.component_of(dep),
                    target=f"Deployment/{name_of(dep)}",
                    confidence=0.75,
                    evidence=[
                        f"Deployment/{name_of(dep)} container {c.get('name')} runs {c.get('command')}, the program of "
                        f"Deployment/{program}; {len(keeping)} of {len(group)} Deployments of image {c.get('image')} "
                        "run the program named after themselves"
                    ],
                    facts={"name": name_of(dep), "index": i, "command": [name_of(dep)], "old": c.get("command")},
                )
            )
    return out


def _program(container: dict[str, Any]) -> str:
    command = container.get("command") or []
    return str(command[0]).rsplit("/", 1)[-1] if command else ""


# -- logs: connections and databases ---------------------------------------------------------------------------


class Target(BaseModel):
    model_config = ConfigDict(frozen=True)

    host: str
    port: int | None = None
    error: str = ""


_CONNECT_PATTERNS = (
    re.compile(r"<Host: (?P<host>[\w.-]+) Port: (?P<port>\d+)>: (?P<err>.*)"),
    re.compile(r"dial tcp (?P<host>[\w.-]+):(?P<port>\d+): (?P<err>[^\"]*)"),
    re.compile(r"(?P<err>connection refused) calling ismaster on '(?P<host>[\w.-]+):(?P<port>\d+)'"),
    re.compile(r"Could not connect to \w+ at (?P<host>[\w.-]+):(?P<port>\d+): (?P<err>.*)"),
    re.compile(r"Failed to connect to \w+ (?P<host>[\w.-]+):(?P<port>\d+)(?P<err>)"),
    re.compile(r"(?P<err>[Cc]onnection refused)[^\n]*?(?P<host>[a-z][\w-]*(?:\.[\w-]+)*):(?P<port>\d{2,5})"),
)
_DB_URL = re.compile(r"(?:database URL|mongodb://(?:[^@/\s]+@)?)[:\s]*(?P<host>[\w.-]+):(?P<port>\d+)")
_UNREACHABLE = re.compile(r"no reachable servers|server selection (?:error|timeout)|No suitable servers", re.I)


def connection_targets(text: str) -> list[Target]:
    """Hosts a log says it could not connect to (thrift, gRPC/Go dial, mongo drivers, redis, memcached)."""
    out: list[Target] = []
    for pattern in _CONNECT_PATTERNS:
        for m in pattern.finditer(text):
            t = Target(host=m.group("host"), port=int(m.group("port")), error=m.group("err").strip()[:120])
            if t not in out:
                out.append(t)
    if _UNREACHABLE.search(text):
        for m in _DB_URL.finditer(text):
            t = Target(host=m.group("host"), port=int(m.group("port")), error="no reachable servers")
            if t not in out:
                out.append(t)
    return out


def unreachable_upstream(snap: Snapshot) -> list[Finding]:
    """A failing pod that cannot reach host:port: follow the host to its Service and say why it is unreachable.

    The finding localises the cause: a port the Service does not expose is the *client's* misconfiguration; a
    Service without ready endpoints is the *upstream's* problem (its own findings say why). The client is a symptom.
    """
    out: list[Finding] = []
    for pod in snap.live_pods():
        if not (_crashing(pod) or pod_problems(pod) or restarts(pod) > 0):
            continue
        owner = snap.owner_workload(pod)
        client = snap.component_of(owner) if owner else name_of(pod)
        for t in connection_targets(snap.pod_logs(pod)):
            svc = snap.service_for_host(t.host)
            if svc is None:
                ip_pod = snap.pod_for_ip(t.host)
                if ip_pod is None:
                    continue
                ip_owner = snap.owner_workload(ip_pod)
                svc_name = snap.component_of(ip_owner) if ip_owner else name_of(ip_pod)
                svc = snap.get("Service", svc_name)
                if svc is None:
                    continue
            svc_name = name_of(svc)
            exposed = {p.get("port") for p in spec(svc).get("ports") or []}
            seen = f"log {name_of(pod)}: cannot reach {t.host}:{t.port} ({t.error or 'error'})"
            if t.port is not None and exposed and t.port not in exposed and t.host.split(".")[0] == svc_name:
                out.append(
                    Finding(
                        analyzer="unreachable_upstream",
                        mechanism="client_wrong_port",
                        component=client,
                        target=f"Deployment/{name_of(owner) if owner else name_of(pod)}",
                        confidence=0.7,
                        evidence=[seen, f"Service/{svc_name} exposes ports {sorted(p for p in exposed if p)}"],
                        facts={"client": name_of(owner) if owner else None, "service": svc_name, "port": t.port},
                    )
                )
            elif snap.ready_addresses(svc) == 0:
                out.append(
                    Finding(
                        analyzer="unreachable_upstream",
                        mechanism="upstream_unavailable",
                        component=client,
                        target=f"Service/{svc_name}",
                        confidence=0.4,
                        evidence=[seen, f"Service/{svc_name} has no ready endpoints"],
                        facts={"client": name_of(owner) if owner else None, "service": svc_name},
                        caused_by=svc_name,
                    )
                )
    return out


_NOT_AUTHORIZED = re.compile(r"not authorized on (?P<db>[\w.-]+) to execute command")
_AUTH_FAILED = re.compile(r"SASL authentication step|Authentication failed|AuthenticationFailed", re.I)
_TLS_REJECT = re.compile(r"SSLHandshakeFailed|only allow SSL connections|requires TLS|ssl handshake", re.I)


def database_auth(snap: Snapshot) -> list[Finding]:
    """A client failing on database authentication/authorisation: find the database and its declared users.

    The database's init scripts (a ConfigMap mounted at ``/docker-entrypoint-initdb.d``) declare which users and
    roles it should have; the failing client's error names the database (``not authorized on <db>``) or the user
    (the server's ``Authentication failed`` log with ``UserNotFound``). The difference is the repair.
    """
    out: list[Finding] = []
    for pod in snap.live_pods():
        if not (_crashing(pod) or pod_problems(pod) or restarts(pod) > 0):
            continue
        text = snap.pod_logs(pod)
        denied = _NOT_AUTHORIZED.search(text)
        failed = _AUTH_FAILED.search(text)
        if not denied and not failed:
            continue
        owner = snap.owner_workload(pod)
        client = name_of(owner) if owner else None
        db_pod = _database_pod(snap, pod, text, denied.group("db") if denied else None)
        if db_pod is None:
            continue
        decl = declared_users(snap, db_pod)
        db_owner = snap.owner_workload(db_pod)
        db_component = snap.component_of(db_owner) if db_owner else name_of(db_pod)
        evidence = [f"log {name_of(pod)}: {(denied or failed).group(0)}"]  # type: ignore[union-attr]
        facts: dict[str, Any] = {
            "db_pod": name_of(db_pod),
            "db_container": _db_container(db_pod),
            "client": client,
            "admin": _root_credentials(db_pod),
        }
        if denied:
            database = denied.group("db")
            grants = [(u, r) for u in decl for r in u["roles"] if r["db"] == database]
            if not grants:
                continue
            user, role = grants[0]
            evidence.append(
                f"the database's init script grants {role['role']} on {database} to {user['user']}@{user['db']}"
            )
            facts.update(repair="grant", user=user["user"], auth_db=user["db"], roles=[role])
        else:
            missing = _server_user_not_found(snap, db_pod)
            known = [u for u in decl if u["user"] in missing] if missing else []
            if not known:
                continue
            user = known[0]
            evidence.append(f"the database logs UserNotFound for {user['user']}@{user['db']}")
            evidence.append(f"its init script declares {user['user']} with roles {user['roles']}")
            facts.update(repair="create", user=user["user"], auth_db=user["db"], pwd=user["pwd"], roles=user["roles"])
        if not facts["admin"]:
            evidence.append("no administrator credentials found in the database container's env")
        out.append(
            Finding(
                analyzer="database_auth",
                mechanism="database_auth",
                component=db_component,
                target=f"Pod/{name_of(db_pod)}",
                confidence=0.88,
                evidence=evidence,
                facts=facts,
            )
        )
    return _dedupe(out)


def _dedupe(findings: list[Finding]) -> list[Finding]:
    """One finding per mechanism, target (and roles), with every client that saw it (``facts["clients"]``)."""
    seen: dict[tuple[str, str, str], Finding] = {}
    for f in findings:
        key = (f.mechanism, f.target, json.dumps(f.facts.get("roles"), sort_keys=True))
        prev = seen.get(key)
        clients = sorted({*(prev.facts["clients"] if prev else []), f.facts.get("client")} - {None})
        seen[key] = (prev or f).model_copy(update={"facts": {**(prev or f).facts, "clients": clients}})
    return list(seen.values())


def _database_pod(snap: Snapshot, client: Obj, text: str, database: str | None) -> Obj | None:
    """The database pod a client talks to: from its logged URL, its env, or the init script naming ``database``."""
    hosts = [m.group("host") for m in _DB_URL.finditer(text)]
    for c in containers(spec(client)):
        for e in c.get("env") or []:
            value = str(e.get("value") or "")
            if "mongo" in str(e.get("name", "")).lower() or value.startswith("mongodb://"):
                hosts += [m.group("host") for m in re.finditer(r"(?P<host>[\w.-]+):\d+", value)]
    for host in hosts:
        svc = snap.service_for_host(host)
        if svc is not None:
            pods = [p for p in snap.pods_selected_by(svc) if _db_container(p)]
            if pods:
                return pods[0]
    if database:
        for p in snap.live_pods():
            if any(r["db"] == database for u in declared_users(snap, p) for r in u["roles"]):
                return p
    return None


def _db_container(pod: Obj) -> str | None:
    for c in containers(spec(pod)):
        if "mongo" in str(c.get("image", "")):
            return str(c.get("name"))
    return None


def _root_credentials(db_pod: Obj) -> dict[str, str]:
    for c in containers(spec(db_pod)):
        env = {str(e.get("name")): str(e.get("value")) for e in c.get("env") or [] if e.get("value") is not None}
        user, pwd = env.get("MONGO_INITDB_ROOT_USERNAME"), env.get("MONGO_INITDB_ROOT_PASSWORD")
        if user and pwd:
            return {"user": user, "pwd": pwd, "db": "admin"}
    return {}


def _server_user_not_found(snap: Snapshot, db_pod: Obj) -> set[str]:
    out = set()
    for line in snap.pod_logs(db_pod).splitlines():
        if "UserNotFound" not in line:
            continue
        m = re.search(r'"principalName"\s*:\s*"([^"]+)"', line) or re.search(r'Could not find user "?([\w.-]+)', line)
        if m:
            out.add(m.group(1))
    return out


_SIBLING = re.compile(r"getSiblingDB\(\s*['\"]([\w.-]+)['\"]\s*\)")
_USE = re.compile(r"^\s*use\s+([\w.-]+)", re.M)
_CREATE = re.compile(r"createUser\(\s*(\{.*?\})\s*\)", re.S)
_GRANT = re.compile(r"grantRolesToUser\(\s*['\"]([\w.-]+)['\"]\s*,\s*(\[.*?\])\s*\)", re.S)
_ROLE = re.compile(r"role\s*['\"]?\s*:\s*['\"]([\w.-]+)['\"]\s*,\s*['\"]?db['\"]?\s*:\s*['\"]([\w.-]+)['\"]")


def _statements(script: str) -> list[str]:
    """Split a shell script into statements at ``;`` and at new lines outside brackets."""
    out: list[str] = []
    buf: list[str] = []
    depth = 0
    for ch in re.sub(r"//[^\n]*", "", script):
        depth += (ch in "([{") - (ch in ")]}")
        if ch == ";" or (ch == "\n" and depth <= 0):
            out.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    out.append("".join(buf))
    return [s for s in out if s.strip()]


def declared_users(snap: Snapshot, db_pod: Obj) -> list[dict[str, Any]]:
    """Users and roles a mongo pod's init scripts declare: ``[{user, db, pwd, roles: [{role, db}]}]``."""
    volumes = {v.get("name"): v for v in spec(db_pod).get("volumes") or []}
    scripts: list[str] = []
    for c in containers(spec(db_pod)):
        for mount in c.get("volumeMounts") or []:
            if str(mount.get("mountPath", "")).rstrip("/") != "/docker-entrypoint-initdb.d":
                continue
            cm_name = (volumes.get(mount.get("name")) or {}).get("configMap", {}).get("name")
            cm = snap.get("ConfigMap", str(cm_name)) if cm_name else None
            if cm:
                scripts += [str(v) for k, v in sorted((cm.get("data") or {}).items()) if k.endswith(".js")]
    users: dict[tuple[str, str], dict[str, Any]] = {}
    for script in scripts:
        current = "test"
        for stmt in _statements(script):
            sibling = _SIBLING.search(stmt)
            if sibling and "=" in stmt.split("getSiblingDB")[0]:
                current = sibling.group(1)
                continue
            use = _USE.match(stmt)
            if use:
                current = use.group(1)
                continue
            db = sibling.group(1) if sibling else current
            create = _CREATE.search(stmt)
            if create:
                body = create.group(1)
                user = re.search(r"user\s*['\"]?\s*:\s*['\"]([^'\"]+)['\"]", body)
                pwd = re.search(r"pwd\s*['\"]?\s*:\s*['\"]([^'\"]*)['\"]", body)
                if user:
                    roles = [{"role": r, "db": d} for r, d in _ROLE.findall(body)]
                    users[(db, user.group(1))] = {
                        "user": user.group(1),
                        "db": db,
                        "pwd": pwd.group(1) if pwd else "",
                        "roles": roles,
                    }
            grant = _GRANT.search(stmt)
            if grant and (db, grant.group(1)) in users:
                for r, d in _ROLE.findall(grant.group(2)):
                    role = {"role": r, "db": d}
                    if role not in users[(db, grant.group(1))]["roles"]:
                        users[(db, grant.group(1))]["roles"].append(role)
    return list(users.values())


def database_rejects_plaintext(snap: Snapshot) -> list[Finding]:
    """A database that rejects its clients' plaintext connections after its template changed to require TLS."""
    out: list[Finding] = []
    for dep in snap.of("Deployment"):
        rejecting = [p for p in snap.pods_of(dep) if _TLS_REJECT.search(snap.pod_logs(p))]
        if not rejecting:
            continue
        history = snap.replicasets_of(dep)
        current_tpl = spec(dep).get("template") or {}
        previous = next((rs for rs in history if template_diff(current_tpl, spec(rs).get("template") or {})), None)
        diff = template_diff(current_tpl, spec(previous).get("template") or {}) if previous else []
        evidence = [f"log {name_of(rejecting[0])}: rejects plaintext client connections (TLS required)"]
        if diff:
            changes = "; ".join(f"{d['container']}.{d['field']}: {d['old']!r} -> {d['new']!r}" for d in diff)
            evidence.append(f"Deployment/{name_of(dep)} changed since revision {revision(previous or {})}: {changes}")
        out.append(
            Finding(
                analyzer="database_rejects_plaintext",
                mechanism="tls_required",
                component=snap.component_of(dep),
                target=f"Deployment/{name_of(dep)}",
                confidence=0.85 if diff else 0.6,
                evidence=evidence,
                facts={
                    "name": name_of(dep),
                    "revision": revision(previous) if previous else None,
                    "diff": diff,
                    "clients": _clients_of(snap, snap.component_of(dep)),
                    "tls_args": _tls_args(current_tpl),
                },
            )
        )
    return out


_CREDENTIAL_DEMANDED = re.compile(r"\bNOAUTH\b[^\n]*|\bWRONGPASS\b[^\n]*|authentication required[^\n]*", re.I)
_ENV_ADDRESS = re.compile(r"(?:^|[/@,\s])(?P<host>[a-z0-9][a-z0-9.-]*):\d{1,5}\b")
_CREDENTIAL_WORD = re.compile(r"pass|auth|secret|token|credential|acl|user|key", re.I)


def _declares_credentials(pod_spec: dict[str, Any]) -> list[str]:
    """Where a pod's declaration could set a credential or keep state across a restart (empty: nowhere).

    Anything counts: an env var or argument that names a credential, ``envFrom``, a mounted Secret or ConfigMap (a
    configuration file may set one) or a persistent volume (state a new pod would read back)."""
    found: list[str] = []
    for c in [*containers(pod_spec), *(pod_spec.get("initContainers") or [])]:
        if not isinstance(c, dict):
            continue
        found += [f"env {e.get('name')}" for e in c.get("env") or [] if _CREDENTIAL_WORD.search(str(e.get("name")))]
        found += ["envFrom"] if c.get("envFrom") else []
        found += [
            f"arg {a}" for a in [*(c.get("command") or []), *(c.get("args") or [])] if _CREDENTIAL_WORD.search(str(a))
        ]
    for v in pod_spec.get("volumes") or []:
        kinds = {"secret", "configMap", "projected", "persistentVolumeClaim", "hostPath", "csi"} & set(v)
        found += [f"volume {v.get('name')} ({k})" for k in sorted(kinds)]
    return found


def runtime_credential_drift(snap: Snapshot) -> list[Finding]:
    """A server demands a credential that nothing in its declaration sets: run-time state, which a new pod drops.

    The client's error is the server's own protocol answer to an unauthenticated command (``NOAUTH``,
    ``WRONGPASS``, "authentication required"); the server is the Service the client's env addresses. When the
    server's pod template declares no credential anywhere and keeps no state (no password env or argument, no
    mounted Secret/ConfigMap, no persistent volume), the demand was set at run time (for example with a ``CONFIG
    SET``), and replacing the server's pods restores what it declares. The clients are restarted after it.
    """
    out: list[Finding] = []
    for pod in snap.live_pods():
        if not (_crashing(pod) or pod_problems(pod) or restarts(pod) > 0):
            continue
        demanded = _CREDENTIAL_DEMANDED.search(snap.pod_logs(pod))
        if not demanded:
            continue
        owner = snap.owner_workload(pod)
        client = name_of(owner) if owner else None
        hosts = [
            m.group("host")
            for c in containers(spec(pod if owner is None else (spec(owner).get("template") or {})))
            for e in c.get("env") or []
            for m in _ENV_ADDRESS.finditer(str(e.get("value") or ""))
        ]
        for host in dict.fromkeys(hosts):
            svc = snap.service_for_host(host)
            if svc is None:
                continue
            servers = {name_of(w): w for p in snap.pods_selected_by(svc) if (w := snap.owner_workload(p)) is not None}
            for server in servers.values():
                if name_of(server) == client:
                    continue
                declared = _declares_credentials(spec(server).get("template", {}).get("spec") or {})
                if declared:
                    continue
                kind = server.get("kind", "Deployment")
                out.append(
                    Finding(
                        analyzer="runtime_credential_drift",
                        mechanism="runtime_credential_drift",
                        component=snap.component_of(server),
                        target=f"{kind}/{name_of(server)}",
                        confidence=0.8,
                        evidence=[
                            f"log {name_of(pod)}: {demanded.group(0)[:160]}",
                            f"{client or name_of(pod)} reaches Service/{name_of(svc)} at {host}",
                            f"{kind}/{name_of(server)} declares no credential and keeps no state (no password env or"
                            " argument, no mounted Secret/ConfigMap, no persistent volume): the demand is run-time"
                            " state that a new pod does not have",
                        ],
                        facts={"kind": kind, "name": name_of(server), "service": name_of(svc), "client": client},
                    )
                )
    return _dedupe(out)


TLS_FLAGS = frozenset(
    {"--tlsMode", "--sslMode", "--tlsCertificateKeyFile", "--sslPEMKeyFile", "--tlsCAFile", "--sslCAFile"}
)


def _tls_args(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Containers whose args require TLS: ``[{index, old, new}]`` with ``new`` the args without the TLS options."""
    out = []
    for i, c in enumerate(containers(template.get("spec") or {})):
        args = [str(a) for a in c.get("args") or []]
        if not any(a.split("=")[0] in ("--tlsMode", "--sslMode") for a in args):
            continue
        kept: list[str] = []
        skip = False
        for a in args:
            if skip:
                skip = False
                continue
            flag = a.split("=")[0]
            if flag in TLS_FLAGS:
                skip = "=" not in a
                continue
            kept.append(a)
        out.append({"index": i, "old": c.get("args"), "new": kept})
    return out


def _clients_of(snap: Snapshot, service: str) -> list[str]:
    """Deployments whose pods' logs name ``service`` as a host they use."""
    out = []
    for dep in snap.of("Deployment"):
        text = "\n".join(snap.pod_logs(p) for p in snap.pods_of(dep))
        if re.search(rf"\b{re.escape(service)}(?:\.[\w.-]+)?:\d+", text) and name_of(dep) != service:
            out.append(name_of(dep))
    return out


def crash_looping(snap: Snapshot) -> list[Finding]:
    """Crash-looping pods, whatever the reason: the weakest finding, for a restart only as a last resort."""
    out: list[Finding] = []
    seen: set[str] = set()
    for pod in snap.live_pods():
        if not _waiting_reasons(pod) & {"CrashLoopBackOff", "Error"}:
            continue
        owner = snap.owner_workload(pod)
        if owner is None or name_of(owner) in seen:
            continue
        seen.add(name_of(owner))
        out.append(
            Finding(
                analyzer="crash_looping",
                mechanism="crash_loop",
                component=snap.component_of(owner),
                target=f"{owner.get('kind', 'Deployment')}/{name_of(owner)}",
                confidence=0.2,
                evidence=[f"pod {name_of(pod)} is crash-looping ({restarts(pod)} restarts)", *_log_excerpt(snap, pod)],
                facts={"kind": owner.get("kind", "Deployment"), "name": name_of(owner)},
            )
        )
    return out


ANALYZERS: tuple[Analyzer, ...] = (
    service_target_port,
    scaled_to_zero,
    unschedulable_placement,
    unbound_claims,
    changed_template,
    sibling_program,
    database_auth,
    database_rejects_plaintext,
    runtime_credential_drift,
    unreachable_upstream,
    crash_looping,
)
"""Every analyzer, roughly from the most specific mechanism to the most generic symptom."""


def analyze(snap: Snapshot, analyzers: tuple[Analyzer, ...] | None = None) -> list[Finding]:
    """Run the analyzers (default: these and the relation analyzers); by confidence, causes before symptoms."""
    if analyzers is None:
        from stratus.reasoners.rulebook.batch import BATCH  # both build on this module's helpers
        from stratus.reasoners.rulebook.relations import RELATIONS

        analyzers = ANALYZERS + RELATIONS + BATCH
    findings = [f for a in analyzers for f in a(snap)]
    return sorted(findings, key=lambda f: (f.caused_by is not None, -f.confidence))
