"""Diagnosis by change: what differs from the last healthy snapshot, tied to what is unhealthy now.

Why: most incidents follow a change, and TNR makes a wrong revert harmless (it is undone), so a ranked list of
recent changes is a list of fixes worth trying one at a time. Two snapshots in the same normalised form
(``stratus.lastgood``) are compared object by object; each difference is cut into *revertable units* (one container
field, one pod-spec field, a Service's selector, a node's taints, an object created or deleted), so that a benign
change made beside the harmful one can be reverted, found useless, undone, and the next unit tried.

A unit is a candidate only when it is tied to something unhealthy now, through Kubernetes relations: the workload that
owns an unhealthy pod, a Service without endpoints and the pods its selector picked, the ConfigMaps and Secrets an
unhealthy pod's env and volumes reference, its claims, their volumes and StorageClass, the NetworkPolicies that select
it, the node it runs on (or every node, while pods wait to be scheduled), the namespace's quotas and the admission
webhooks (while workloads are short of pods), and the cluster DNS configuration (while clients report names that do
not resolve: every lookup goes through it, so no selector ties it closer). Units tied to nothing are reported but
never reverted. Ties are broken by the unit's path, never by a name: the ranking knows relations, not faults.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from stratus.actions import ACTION_ADAPTER, KINDS, Action, Create, Delete, Patch, RolloutRestart, Scale
from stratus.kubevalues import selector_matches
from stratus.lastgood import (
    CLUSTER_DNS,
    DNS_NAMESPACE,
    LastGood,
    LastGoodSource,
    capture,
    dns_configs_mounted,
)
from stratus.reasoners.rulebook.analyzers import Finding
from stratus.reasoners.rulebook.relations import foreign_pods
from stratus.reasoners.rulebook.snapshot import Snapshot, labels_match, meta, name_of, read_traces, spec, status
from stratus.reasoning import ClusterTools
from stratus.severity import autoscaler_problem, pod_problems

Obj = dict[str, Any]

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")
APP_FIELDS = frozenset({"image", "command", "args", "env", "envFrom", "workingDir"})
"""Container fields that change the program itself: a change there is an Application fault, elsewhere a
Virtualization one (the orchestrator's objects)."""
CHANGE_MECHANISMS = ("recent_change", "recent_app_change")
MIN_SCORE = 0.5
MAX_CANDIDATES = 8


@dataclass(frozen=True)
class Change:
    """One revertable unit of difference between the last healthy snapshot and now."""

    kind: str
    namespace: str | None
    name: str
    op: Literal["created", "deleted", "changed"]
    pointer: str = ""
    """JSON pointer of the changed part in the live object ('' for a created or deleted object)."""
    old: Any = None
    new: Any = None
    revertable: bool = True
    also: tuple[tuple[str, Any, Any], ...] = ()
    """Fields the API interprets together with ``pointer`` (``dnsConfig`` with ``dnsPolicy``): reverted with it."""

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"

    def describe(self, limit: int = 160) -> str:
        if self.op != "changed":
            return f"{self.key} {self.op}"
        with_ = "".join(f" (with {p.rsplit('/', 1)[-1]})" for p, _, _ in self.also)
        lines = _line_delta(self.old, self.new)
        if lines:
            return f"{self.key} {self.pointer}{with_}: {_short(lines, limit)}"
        return f"{self.key} {self.pointer}{with_}: {_short(self.old, limit // 2)} -> {_short(self.new, limit // 2)}"


def _line_delta(old: Any, new: Any) -> str:
    """For configuration files (a ConfigMap's multi-line values): the lines removed and added, key by key."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return ""
    parts = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b or not isinstance(a, str) or not isinstance(b, str) or "\n" not in a + b:
            continue
        before, after = [x.strip() for x in a.splitlines()], [x.strip() for x in b.splitlines()]
        gone = [x for x in before if x and x not in after]
        added = [x for x in after if x and x not in before]
        parts.append(f"{key}: " + " ".join([*(f"-{x!r}" for x in gone), *(f"+{x!r}" for x in added)]))
    return "; ".join(parts)


def _short(value: Any, limit: int) -> str:
    text = "(none)" if value is None else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _esc(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


# -- the difference, in revertable units ---------------------------------------------------------------------------


def _dict_units(prefix: str, old: Obj, new: Obj) -> list[tuple[str, Any, Any]]:
    return [
        (f"{prefix}/{_esc(k)}", old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)
    ]


def _container_units(prefix: str, old: list[Obj], new: list[Obj]) -> list[tuple[str, Any, Any]]:
    if [c.get("name") for c in old] != [c.get("name") for c in new]:
        return [(prefix, old, new)]
    out = []
    for i, (a, b) in enumerate(zip(old, new, strict=True)):
        out += _dict_units(f"{prefix}/{i}", a, b)
    return out


COUPLED_POD_FIELDS = {"dnsConfig": "dnsPolicy"}
"""Pod-spec fields that are part of another one: the policy decides what the config means (``dnsPolicy: None``
requires a ``dnsConfig``; with ``ClusterFirst`` its nameservers are added to the cluster's), so a revert that put
back one without the other would leave a state that was never healthy."""


def _couple(units: list[tuple[str, Any, Any]]) -> list[tuple[str, Any, Any, tuple[tuple[str, Any, Any], ...]]]:
    """Fold each coupled field's unit into the unit of the field it belongs to, when both changed."""
    by_pointer = {u[0]: u for u in units}
    folded: dict[str, list[tuple[str, Any, Any]]] = {}
    for part, whole in COUPLED_POD_FIELDS.items():
        p_part, p_whole = f"/spec/template/spec/{part}", f"/spec/template/spec/{whole}"
        if p_part in by_pointer and p_whole in by_pointer:
            folded.setdefault(p_whole, []).append(by_pointer.pop(p_part))
    return [(p, a, b, tuple(folded.get(p, ()))) for p, a, b in by_pointer.values()]


def _template_units(old: Obj, new: Obj) -> list[tuple[str, Any, Any]]:
    out = _dict_units("/spec/template/metadata", old.get("metadata") or {}, new.get("metadata") or {})
    a, b = old.get("spec") or {}, new.get("spec") or {}
    for k in sorted(set(a) | set(b)):
        if a.get(k) == b.get(k):
            continue
        if k in ("containers", "initContainers"):
            out += _container_units(f"/spec/template/spec/{k}", a.get(k) or [], b.get(k) or [])
        else:
            out.append((f"/spec/template/spec/{k}", a.get(k), b.get(k)))
    return out


def _units(kind: str, old: Obj, new: Obj) -> list[tuple[str, Any, Any]]:
    out = _dict_units("/metadata", old.get("metadata") or {}, new.get("metadata") or {})
    a, b = dict(old.get("spec") or {}), dict(new.get("spec") or {})
    if kind in WORKLOADS:
        ta, tb = a.pop("template", {}) or {}, b.pop("template", {}) or {}
        out += _template_units(ta, tb)
    out += _dict_units("/spec", a, b)
    for k in sorted((set(old) | set(new)) - {"kind", "metadata", "spec", "keys", "hash"}):
        if old.get(k) != new.get(k):
            out.append((f"/{_esc(k)}", old.get(k), new.get(k)))
    changed_data = old.get("hash") != new.get("hash") and kind in ("Secret", "ConfigMap")
    if changed_data and not any(p == "/data" for p, _, _ in out):
        out.append(("/data", old.get("hash"), new.get("hash")))
    return out


def _revertable(kind: str, pointer: str, old: Obj | None, new: Obj | None) -> bool:
    if kind not in KINDS:
        return False
    if kind == "Secret":
        return pointer.startswith("/metadata")
    if kind == "ConfigMap" and pointer == "/data":
        return "data" in (old or {}) and "data" in (new or {})
    return not (kind == "Node" and pointer == "/allocatable")


def diff(before: LastGood, after: LastGood) -> list[Change]:
    """Every revertable unit of difference, over the kinds both snapshots read."""
    kinds = set(before.kinds) & set(after.kinds)
    out: list[Change] = []
    for key in sorted(set(before.objects) | set(after.objects)):
        kind = key.split("/", 1)[0]
        if kind not in kinds:
            continue
        old, new = before.objects.get(key), after.objects.get(key)
        ref = new or old or {}
        m = ref.get("metadata") or {}
        ns, name = m.get("namespace"), str(m.get("name", ""))
        dns = _is_dns(ns, before.scope)
        if dns and CLUSTER_DNS not in kinds:
            continue  # one of the snapshots did not read the cluster DNS: an absence there is no change
        if old is None:
            # The DNS server's configuration is the cluster's: never deleted because it is new to Stratus.
            out.append(Change(kind, ns, name, "created", new=new, revertable=kind in KINDS and not dns))
        elif new is None:
            creatable = kind in KINDS and kind != "Secret" and (kind != "ConfigMap" or "data" in old)
            out.append(Change(kind, ns, name, "deleted", old=old, revertable=creatable))
        elif old != new:
            for pointer, a, b, also in _couple(_units(kind, old, new)):
                ok = _revertable(kind, pointer, old, new)
                out.append(Change(kind, ns, name, "changed", pointer, a, b, ok, also))
    return out


def _is_dns(namespace: str | None, scope: str) -> bool:
    """Whether an object of a snapshot of ``scope`` is one of the cluster DNS objects it records."""
    return namespace == DNS_NAMESPACE and scope != DNS_NAMESPACE


# -- what is unhealthy, and how a change is tied to it -------------------------------------------------------------


@dataclass
class Unhealthy:
    """The objects that are unhealthy now, with a word on why."""

    pods: dict[str, str] = field(default_factory=dict)
    services: dict[str, str] = field(default_factory=dict)
    workloads: dict[str, str] = field(default_factory=dict)
    claims: dict[str, str] = field(default_factory=dict)
    unscheduled: list[str] = field(default_factory=list)
    autoscaled: dict[str, str] = field(default_factory=dict)
    """``Kind/name`` of a workload -> why the HorizontalPodAutoscaler that targets it cannot scale it."""

    def __bool__(self) -> bool:
        return bool(self.pods or self.services or self.workloads or self.claims or self.autoscaled)


def unhealthy(snap: Snapshot) -> Unhealthy:
    out = Unhealthy()
    for pod in snap.live_pods():
        problems = pod_problems(pod)
        if problems:
            out.pods[name_of(pod)] = ", ".join(problems)
            if status(pod).get("phase") == "Pending" and not spec(pod).get("nodeName"):
                out.unscheduled.append(name_of(pod))
    for svc in snap.of("Service"):
        if spec(svc).get("selector") and snap.ready_addresses(svc) == 0:
            out.services[name_of(svc)] = "no ready endpoint"
        elif spec(svc).get("selector") and all(foreign_pods(snap, svc)):
            out.services[name_of(svc)] = "endpoints in pods that do not serve its port"
    for kind in WORKLOADS:
        for w in snap.of(kind):
            want = spec(w).get("replicas", 1)
            have = status(w).get("availableReplicas") or 0
            if isinstance(want, int) and have < want:
                out.workloads[f"{kind}/{name_of(w)}"] = f"{have}/{want} available"
    for pvc in snap.of("PersistentVolumeClaim"):
        if status(pvc).get("phase") == "Pending":
            out.claims[name_of(pvc)] = "Pending"
    for hpa in snap.of("HorizontalPodAutoscaler"):
        problem = autoscaler_problem(hpa)
        target = spec(hpa).get("scaleTargetRef") or {}
        if problem and target.get("kind") in WORKLOADS and target.get("name"):
            out.autoscaled[f"{target['kind']}/{target['name']}"] = f"HorizontalPodAutoscaler/{name_of(hpa)}: {problem}"
    return out


def _template_labels(obj: Obj | None) -> dict[str, Any]:
    return ((spec(obj or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}


def _pod_refs(pod_spec: Obj) -> tuple[set[str], set[str], set[str]]:
    """ConfigMaps, Secrets and claims a pod spec references (env, envFrom, volumes, projected sources)."""
    cms, secrets = _env_refs(pod_spec)
    claims: set[str] = set()
    for v in pod_spec.get("volumes") or []:
        if (v.get("configMap") or {}).get("name"):
            cms.add(v["configMap"]["name"])
        if (v.get("secret") or {}).get("secretName"):
            secrets.add(v["secret"]["secretName"])
        if (v.get("persistentVolumeClaim") or {}).get("claimName"):
            claims.add(v["persistentVolumeClaim"]["claimName"])
        for s in (v.get("projected") or {}).get("sources") or []:
            if (s.get("configMap") or {}).get("name"):
                cms.add(s["configMap"]["name"])
            if (s.get("secret") or {}).get("name"):
                secrets.add(s["secret"]["name"])
    return cms, secrets, claims


@dataclass
class _Context:
    snap: Snapshot
    bad: Unhealthy
    before: LastGood
    after: LastGood
    bad_pods: list[Obj]
    bad_labels: list[dict[str, Any]]
    refs: tuple[set[str], set[str], set[str]]
    upstream_cms: dict[str, str] = field(default_factory=dict)
    """ConfigMaps read by the pods of a Service an unhealthy pod's env addresses -> that Service."""
    unresolved: list[str] = field(default_factory=list)
    """What the scope's logs, events and traces say about names that did not resolve (``resolution_failures``)."""

    @classmethod
    def build(cls, snap: Snapshot, bad: Unhealthy, before: LastGood, after: LastGood) -> _Context:
        pods = [p for p in snap.live_pods() if name_of(p) in bad.pods]
        labels = [meta(p).get("labels") or {} for p in pods]
        # Pods behind an unhealthy Service, as its selector picked them when the scope was healthy.
        for svc_name in bad.services:
            old = before.objects.get(f"Service/{snap.namespace}/{svc_name}")
            sel = spec(old or snap.get("Service", svc_name) or {}).get("selector")
            for kind in WORKLOADS:
                for w in before.of(kind):
                    if meta(w).get("namespace") in (None, snap.namespace) and labels_match(sel, _template_labels(w)):
                        labels.append(_template_labels(w))
        cms: set[str] = set()
        secrets: set[str] = set()
        claims: set[str] = set(bad.claims)
        specs = [spec(p) for p in pods]
        for key in bad.workloads:
            workload = snap.get(*key.split("/", 1))
            if workload is not None:
                specs.append((spec(workload).get("template") or {}).get("spec") or {})
        for s in specs:
            a, b, c = _pod_refs(s)
            cms |= a
            secrets |= b
            claims |= c
        refs = (cms, secrets, claims)
        return cls(
            snap, bad, before, after, pods, labels, refs, _upstream_configs(snap, specs), resolution_failures(snap)
        )


_RESOLUTION_FAILURE = re.compile(
    r"no such host|NXDOMAIN|could not resolve|can't resolve|cannot resolve|server can't find|name or service not known"
    r"|temporary failure in name resolution|name does not resolve|nodename nor servname|getaddrinfo|UnknownHost"
    r"|DNS resolution failed|failed to resolve (?:host|address)|unable to resolve",
    re.IGNORECASE,
)
"""How resolvers and their callers report a name that did not resolve: Go's resolver, glibc's and musl's getaddrinfo,
busybox's nslookup, curl and Thrift clients, Java, Node, gRPC's resolver."""
_IMAGE_PULL = re.compile(r"pull|image|registry|manifest", re.IGNORECASE)
"""A lookup failing while an image is pulled is the node's resolver (the runtime's), not the cluster DNS."""
MAX_RESOLUTION_EXAMPLES = 3


def resolution_failures(snap: Snapshot) -> list[str]:
    """Lines of the scope's pod logs, events and traces that report a name that did not resolve (a few examples)."""
    out: list[str] = []

    def scan(text: str) -> None:
        for line in text.splitlines():
            if len(out) >= MAX_RESOLUTION_EXAMPLES:
                return
            m = _RESOLUTION_FAILURE.search(line)
            excerpt = line[max(0, m.start() - 100) : m.end() + 40].strip() if m else ""
            if m and not _IMAGE_PULL.search(line) and excerpt not in out:
                out.append(excerpt)

    for text in snap.logs.values():
        scan(text)
    for e in snap.events:
        scan(str(e.get("message", "")))
    for trace in snap.traces:
        for sp in trace.get("spans") or []:
            for entry in sp.get("logs") or []:
                scan(" ".join(str(f.get("value", "")) for f in entry.get("fields") or [] if isinstance(f, dict)))
    return out


_ADDRESS = re.compile(r"^(?:[a-z][a-z0-9+.-]*://)?(?P<host>[a-z0-9]([a-z0-9-]*[a-z0-9])?)(?::\d{1,5})?(?:/.*)?$")


def _upstream_configs(snap: Snapshot, specs: list[Obj]) -> dict[str, str]:
    """ConfigMaps read (env or volume) by the pods behind the Services these pod specs address in their env: a
    dependency's configuration is part of what a client runs against (a feature-flag server, a proxy's routes)."""
    out: dict[str, str] = {}
    for s in specs:
        for c in [*(s.get("containers") or []), *(s.get("initContainers") or [])]:
            for e in c.get("env") or []:
                m = _ADDRESS.match(str(e.get("value") or ""))
                svc = snap.get("Service", m.group("host")) if m else None
                if svc is None:
                    continue
                for pod in snap.pods_selected_by(svc):
                    for cm in _pod_refs(spec(pod))[0]:
                        out.setdefault(cm, name_of(svc))
    return out


def ties(change: Change, ctx: _Context) -> tuple[float, list[str]]:
    """How strongly a change is tied to what is unhealthy (0: not at all), and the relations that tie it."""
    snap, bad = ctx.snap, ctx.bad
    kind, name = change.kind, change.name
    objs = [o for o in (ctx.before.objects.get(change.key), ctx.after.objects.get(change.key)) if o]
    why: list[tuple[float, str]] = []
    if _is_dns(change.namespace, snap.namespace):
        why += _dns_ties(change, ctx.unresolved)
    elif kind in WORKLOADS:
        # A workload created since the last healthy state is blamed only for harm to others (a Service whose
        # endpoints it took): deleting a new workload because its own pods fail would hide the symptom, not fix it.
        own = change.op != "created"
        if own and f"{kind}/{name}" in bad.workloads:
            why.append((0.95, f"{kind}/{name} is short of pods ({bad.workloads[f'{kind}/{name}']})"))
        if own and f"{kind}/{name}" in bad.autoscaled:
            # Utilisation is a share of the containers' requests, so what the autoscaler reads is the template's
            # resources; other template changes rank below them.
            weight = 0.9 if change.pointer.endswith("/resources") else 0.55
            why.append((weight, f"its autoscaler cannot scale it ({bad.autoscaled[f'{kind}/{name}']})"))
        for o in objs:
            sel = (spec(o).get("selector") or {}).get("matchLabels")
            owned = [p for p in ctx.bad_pods if labels_match(sel, meta(p).get("labels"))]
            if owned and own:
                pod = name_of(owned[0])
                why.append((0.95, f"it owns pod {pod} ({bad.pods[pod]})"))
            for svc, reason in bad.services.items():
                old_svc = ctx.before.objects.get(f"Service/{snap.namespace}/{svc}") or snap.get("Service", svc) or {}
                if not own and f"Service/{snap.namespace}/{svc}" not in ctx.before.objects:
                    continue  # a new workload and a new Service: neither harms what ran before
                if labels_match(spec(old_svc).get("selector"), _template_labels(o)):
                    why.append((0.9, f"Service/{svc} ({reason}) selected its pods"))
    elif kind == "Service" and change.op == "created":
        pass  # a new Service routes to pods but cannot make them unhealthy: deleting it would only hide its symptom
    elif kind == "Service":
        if name in bad.services:
            why.append((1.0, f"Service/{name} has {bad.services[name]}"))
        if change.op == "deleted" and (bad.pods or bad.workloads):
            why += _deleted_service_ties(change, ctx)
        for o in objs:
            picked = [p for p in ctx.bad_pods if labels_match(spec(o).get("selector"), meta(p).get("labels"))]
            if picked:
                why.append((0.7, f"it selects pod {name_of(picked[0])} ({bad.pods[name_of(picked[0])]})"))
    elif kind in ("ConfigMap", "Secret"):
        refs = ctx.refs[0] if kind == "ConfigMap" else ctx.refs[1]
        # Deleting a ConfigMap or Secret created since the healthy state cannot help the pods that read it.
        if name in refs and change.op != "created":
            why.append((0.85, f"unhealthy pods reference {kind}/{name} (env or volume)"))
        elif kind == "ConfigMap" and name in ctx.upstream_cms and change.op == "changed":
            svc = ctx.upstream_cms[name]
            why.append((0.65, f"unhealthy pods call Service/{svc}, whose pods read ConfigMap/{name}"))
    elif kind == "PersistentVolumeClaim":
        if name in bad.claims:
            why.append((1.0, f"PersistentVolumeClaim/{name} is {bad.claims[name]}"))
        elif name in ctx.refs[2]:
            why.append((0.9, f"unhealthy pods mount PersistentVolumeClaim/{name}"))
    elif kind == "PersistentVolume":
        for o in objs:
            ref = spec(o).get("claimRef") or {}
            if ref.get("namespace") == snap.namespace and ref.get("name") in ctx.refs[2]:
                why.append((0.85, f"it is the volume of PersistentVolumeClaim/{ref.get('name')}"))
    elif kind == "StorageClass":
        for pvc in snap.of("PersistentVolumeClaim"):
            if spec(pvc).get("storageClassName") == name and name_of(pvc) in ctx.refs[2]:
                why.append((0.85, f"PersistentVolumeClaim/{name_of(pvc)} names StorageClass/{name}"))
    elif kind == "NetworkPolicy":
        for o in objs:
            sel = spec(o).get("podSelector")
            hit = next((lab for lab in ctx.bad_labels if selector_matches(sel, lab)), None)
            if hit is not None:
                why.append((0.8, f"it selects unhealthy pods ({', '.join(f'{k}={v}' for k, v in hit.items())})"))
    elif kind == "Node":
        on_it = [p for p in ctx.bad_pods if spec(p).get("nodeName") == name]
        if on_it:
            why.append((0.85, f"unhealthy pod {name_of(on_it[0])} runs on it"))
        if bad.unscheduled:
            why.append((0.8, f"pods wait to be scheduled ({', '.join(bad.unscheduled[:2])})"))
    elif kind in ("ResourceQuota", "LimitRange"):
        # The admission plugins name what refused a pod: the quota by name, a LimitRange by its per-object bound.
        quota = re.compile(rf"(failed|exceeded) quota: {re.escape(name)}[:,]")
        for e in snap.events:
            text = str(e.get("message", ""))
            named = quota.search(text) if kind == "ResourceQuota" else re.search(r"usage per (Container|Pod) is", text)
            if named:
                why.append((0.95, f"pod creation is refused at admission: {text[:160]}"))
                break
        if bad.workloads or bad.unscheduled:
            why.append((0.6, "workloads in the namespace are short of pods"))
    elif kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        why += _webhook_ties(kind, objs, ctx)
    elif kind == "Namespace" and name == snap.namespace and change.pointer.startswith("/metadata/labels"):
        refused = next(
            (str(e.get("message", "")) for e in snap.events if "violates PodSecurity" in str(e.get("message", ""))),
            None,
        )
        if refused is not None:
            why.append((0.95, f"its labels set the Pod Security level, and pod creation is refused: {refused[:160]}"))
        elif bad.workloads:
            why.append((0.5, "its labels set admission policy, and workloads are short of pods"))
    if not why:
        return 0.0, []
    score = max(w for w, _ in why)
    if change.pointer.startswith("/metadata/annotations") and kind != "Node":
        score *= 0.3
    elif change.pointer.startswith("/metadata/") and kind not in ("Node", "Namespace"):
        score *= 0.5
    return score, list(dict.fromkeys(text for _, text in sorted(why, key=lambda t: -t[0])))


def _webhook_ties(kind: str, objs: list[Obj], ctx: _Context) -> list[tuple[float, str]]:
    """An admission webhook is tied when the controllers' events name it refusing pods, or when it intercepts pod
    creation in this namespace (its rules, namespace and object selectors) while pods created here are unhealthy."""
    bad, out = ctx.bad, []
    names = {str(h.get("name")) for o in objs for h in o.get("webhooks") or [] if h.get("name")}
    for e in ctx.snap.events:
        text = str(e.get("message", ""))
        hit = next((n for n in sorted(names) if f'webhook "{n}"' in text), None)
        if hit is not None:
            out.append((0.95, f'events name webhook "{hit}": {text[:160]}'))
            break
    hooks = [h for o in objs for h in o.get("webhooks") or [] if _intercepts_pods(h, ctx.snap.namespace)]
    hit_pod = next(
        (
            p
            for p in ctx.bad_pods
            for h in hooks
            if selector_matches(h.get("objectSelector") or {}, meta(p).get("labels") or {})
        ),
        None,
    )
    if hit_pod is not None:
        why = "mutates" if kind.startswith("Mutating") else "admits"
        out.append((0.7, f"it {why} every pod created in the namespace, and pod {name_of(hit_pod)} is unhealthy"))
    elif hooks and (bad.workloads or bad.unscheduled):
        out.append((0.5, "workloads are short of pods, and it intercepts every pod created in the namespace"))
    return out


def _dns_ties(change: Change, unresolved: list[str]) -> list[tuple[float, str]]:
    """The cluster DNS configuration (or the server that reads it) changed since the healthy state is tied when the
    scope's clients report names that do not resolve: every in-cluster lookup goes through it."""
    if not unresolved:
        return []
    what = "the cluster DNS configuration" if change.kind == "ConfigMap" else "the cluster DNS server"
    return [(0.9, f"names do not resolve in the scope ({unresolved[0]}), and every lookup goes through {what}")]


def _intercepts_pods(hook: Obj, namespace: str) -> bool:
    """Whether a webhook's rules cover pod CREATE and its namespaceSelector can match the namespace (only the label
    every namespace carries, ``kubernetes.io/metadata.name``, is known here; other required labels count as unknown,
    so not matching)."""
    covers = any(
        ("pods" in (r.get("resources") or []) or "*" in (r.get("resources") or []))
        and ({"CREATE", "*"} & set(r.get("operations") or []))
        for r in hook.get("rules") or []
    )
    return covers and selector_matches(hook.get("namespaceSelector") or {}, {"kubernetes.io/metadata.name": namespace})


def _deleted_service_ties(change: Change, ctx: _Context) -> list[tuple[float, str]]:
    """A Service deleted while the pods it routed to still run: its name no longer resolves (NXDOMAIN) and its cluster
    IP is gone, so every client that dials it fails, although nothing about the backends changed."""
    name, out = change.name, []
    host = re.compile(rf"(?<![\w.-]){re.escape(name)}(?=$|[:./\s\"'])")
    for pod in ctx.bad_pods:
        mentioned = any(host.search(t) for t in _spec_texts(spec(pod))) or host.search(ctx.snap.pod_logs(pod))
        if mentioned:
            out.append((0.9, f"unhealthy pod {name_of(pod)} names {name} as a host (env, args or logs)"))
            break
    selector = spec(change.old or {}).get("selector")
    backends = [p for p in ctx.snap.live_pods() if selector and labels_match(selector, meta(p).get("labels"))]
    if backends:
        out.append(
            (
                0.6,
                f"the pods it routed to still run ({name_of(backends[0])}) but the name is gone, "
                "while pods in the namespace are unhealthy",
            )
        )
    return out


def _spec_texts(pod_spec: Obj) -> list[str]:
    texts: list[str] = []
    for c in [*(pod_spec.get("containers") or []), *(pod_spec.get("initContainers") or [])]:
        texts += [str(e.get("value", "")) for e in c.get("env") or [] if "value" in e]
        texts += [str(a) for a in [*(c.get("command") or []), *(c.get("args") or [])]]
    return texts


# -- reverts ---------------------------------------------------------------------------------------------------------


def _manifest(kind: str, obj: Obj) -> Obj:
    m = obj.get("metadata") or {}
    manifest: Obj = {
        "apiVersion": KINDS[kind].api_version,
        "kind": kind,
        "metadata": {k: m[k] for k in ("name", "namespace", "labels", "annotations") if k in m},
    }
    for k, v in obj.items():
        if k not in ("kind", "metadata", "keys", "hash", "allocatable"):
            manifest[k] = v
    return manifest


def revert_actions(change: Change) -> list[Action]:
    """The writes that put a unit back as it was in the last healthy snapshot."""
    if not change.revertable:
        return []
    ns, kind, name = change.namespace, change.kind, change.name
    if change.op == "created":
        return [Delete(kind=kind, namespace=ns, name=name)]
    if change.op == "deleted":
        return [Create(manifest=_manifest(kind, change.old))]
    if kind in ("Deployment", "StatefulSet") and change.pointer == "/spec/replicas" and isinstance(change.old, int):
        return [Scale(kind=kind, namespace=ns, name=name, replicas=change.old)]
    ops = [
        _revert_op(pointer, old, new) for pointer, old, new in ((change.pointer, change.old, change.new), *change.also)
    ]
    return [Patch(kind=kind, namespace=ns, name=name, patch_type="json", patch=ops)]


def _revert_op(pointer: str, old: Any, new: Any) -> Obj:
    if old is None:
        return {"op": "remove", "path": pointer}
    if new is None:
        return {"op": "add", "path": pointer, "value": old}
    return {"op": "replace", "path": pointer, "value": old}


_READINESS_UNIT = re.compile(r"^/spec/template/spec/(?:initContainers|containers)/\d+/readinessProbe$")
_PROGRAM_VERDICT = re.compile(r"NOT_SERVING|statuscode: 5\d\d\b")
"""A readiness probe answer in which the program itself says it cannot serve (the gRPC health protocol's
NOT_SERVING, an HTTP 5xx), as opposed to a probe that reaches nothing (refused, timeout, 404, wrong protocol)."""


def _hides_verdict(change: Change, ctx: _Context) -> str:
    """Why reverting a readiness probe would only hide the fault ('' when it would not): the probe changed since the
    healthy state, and every failure the kubelet reports for the workload's unhealthy pods is the program's own answer
    that it cannot serve. A probe relays that verdict; without it the pods turn Ready while the program still
    refuses, so the cause (what the program depends on) must be looked for first."""
    if change.kind not in WORKLOADS or change.op != "changed" or not _READINESS_UNIT.match(change.pointer):
        return ""
    workload = ctx.snap.get(change.kind, change.name)
    sel = (spec(workload or {}).get("selector") or {}).get("matchLabels")
    answers = [
        str(e.get("message", ""))
        for p in ctx.bad_pods
        if sel and labels_match(sel, meta(p).get("labels"))
        for e in ctx.snap.events_for("Pod", name_of(p))
        if e.get("reason") == "Unhealthy" and str(e.get("message", "")).startswith("Readiness probe failed")
    ]
    if not answers or not all(_PROGRAM_VERDICT.search(a) for a in answers):
        return ""
    return f"the program answers its readiness probe that it cannot serve ({answers[-1][:120]}): the probe reports it"


@dataclass
class Candidate:
    """A change tied to the incident, with its revert."""

    change: Change
    score: float
    why: list[str]
    actions: list[Action]
    hides: str = ""
    """Why the revert would hide the fault rather than fix it ('' when it would not): tried after every other."""

    @property
    def mechanism(self) -> str:
        if self.change.namespace == DNS_NAMESPACE:
            return "recent_change"  # the cluster's DNS: the platform's configuration, not the application's
        field_name = self.change.pointer.rsplit("/", 1)[-1]
        program = "/containers/" in self.change.pointer and field_name in APP_FIELDS
        return "recent_app_change" if program or self.change.kind in ("ConfigMap", "Secret") else "recent_change"


def candidates(before: LastGood, after: LastGood, snap: Snapshot) -> tuple[list[Candidate], list[Change]]:
    """Changes tied to what is unhealthy, most likely first; and the changes tied to nothing (reported only)."""
    bad = unhealthy(snap)
    changes = diff(before, after)
    if not bad:
        read, labels = _configs_read(snap), [meta(p).get("labels") or {} for p in snap.live_pods()]
        dns = _dns_candidates(changes, snap, after)
        # The cluster's DNS objects are suspects only on evidence that names do not resolve.
        own = [c for c in changes if not _is_dns(c.namespace, snap.namespace)]
        suspects = sorted(dns + _silent_candidates(own, read, labels), key=lambda c: -c.score)[:MAX_CANDIDATES]
        chosen = {id(c.change) for c in dns}
        return suspects, [
            c for c in changes if id(c) not in chosen and (c not in own or not _silent_suspect(c, read, labels))
        ]
    ctx = _Context.build(snap, bad, before, after)
    tied: list[Candidate] = []
    loose: list[Change] = []
    for ch in changes:
        score, why = ties(ch, ctx)
        if score < MIN_SCORE:
            loose.append(ch)
            continue
        actions = revert_actions(ch)
        if ch.kind in ("Secret", "ConfigMap") and ch.op == "changed" and ch.pointer == "/data":
            restarts = _env_consumers(ch, ctx)
            if restarts:
                names = ", ".join(str(r.name) for r in restarts)
                why.append(f"pods read it as env, fixed when they start: restart {names}")
            actions += restarts
        if _is_dns(ch.namespace, snap.namespace) and actions:
            reloads = _dns_reloads(ch, after)
            if reloads:
                why.append("the restored Corefile has no reload plugin: restart the server")
            actions += reloads
        if ch.kind == "MutatingWebhookConfiguration" and ch.op in ("created", "changed") and actions:
            restarts = _mutated_workloads(ch, ctx)
            if restarts:
                names = ", ".join(str(r.name) for r in restarts)
                why.append(f"pods it rewrote keep the mutation until they are replaced: restart {names}")
            actions += restarts
        if ch.kind == "Service" and ch.op == "deleted" and actions:
            restarts = _crashed_clients(ch, ctx)
            if restarts:
                names = ", ".join(str(r.name) for r in restarts)
                why.append(f"pods that crashed without it start again: restart {names}")
            actions += restarts
        tied.append(Candidate(ch, round(score, 3), why, actions, _hides_verdict(ch, ctx)))
    tied.sort(key=lambda c: (bool(c.hides), -c.score, c.change.key, c.change.pointer))
    return _node_taints_together(tied)[:MAX_CANDIDATES], loose


def _node_taints_together(tied: list[Candidate]) -> list[Candidate]:
    """The same taints set on several nodes since the healthy state are one act (a pool tainted at once): their
    reverts are one candidate, so one transaction frees every node instead of leaving the others tainted."""
    groups: dict[str, list[Candidate]] = {}
    for c in tied:
        if c.change.kind == "Node" and c.change.pointer == "/spec/taints" and c.actions:
            groups.setdefault(json.dumps(c.change.new, sort_keys=True), []).append(c)
    out: list[Candidate] = []
    for c in tied:
        group = groups.get(json.dumps(c.change.new, sort_keys=True), []) if c.change.kind == "Node" else []
        if c not in group:
            out.append(c)
        elif c is group[0]:
            others = ", ".join(o.change.name for o in group[1:])
            why = [*c.why, f"the same taints were set on {others}: reverted with it"] if others else c.why
            out.append(Candidate(c.change, c.score, why, [a for o in group for a in o.actions], c.hides))
    return out


def _dns_candidates(changes: list[Change], snap: Snapshot, after: LastGood) -> list[Candidate]:
    """With nothing unhealthy in Kubernetes terms, the cluster DNS changes, when clients report names that do not
    resolve (pods stay Ready while every call by name fails)."""
    unresolved = resolution_failures(snap)
    out = []
    for c in changes:
        why = _dns_ties(c, unresolved) if c.revertable and _is_dns(c.namespace, snap.namespace) else []
        if why:
            restarts = _dns_reloads(c, after)
            texts = [
                why[0][1],
                *(["the restored Corefile has no reload plugin: restart the server"] if restarts else []),
            ]
            out.append(Candidate(c, why[0][0], texts, revert_actions(c) + restarts))
    return out


_RELOAD = re.compile(r"^\s*reload\b", re.MULTILINE)


def _dns_reloads(change: Change, after: LastGood) -> list[Action]:
    """Restarts of the DNS server Deployments that mount a reverted Corefile without the ``reload`` plugin: CoreDNS
    reads its configuration at start only, unless that plugin watches it."""
    if change.kind != "ConfigMap" or change.pointer != "/data" or not isinstance(change.old, dict):
        return []
    corefile = change.old.get("Corefile")
    if not isinstance(corefile, str) or _RELOAD.search(corefile):
        return []
    return [
        RolloutRestart(kind="Deployment", namespace=change.namespace, name=str(meta(d).get("name")))
        for d in after.of("Deployment")
        if meta(d).get("namespace") == change.namespace and dns_configs_mounted(d, {change.name})
    ]


def _configs_read(snap: Snapshot) -> set[str]:
    """The ConfigMaps the scope's running pods read (env or volume)."""
    return {cm for p in snap.live_pods() for cm in _pod_refs(spec(p))[0]}


def _silent_suspect(
    change: Change,
    configs_read: set[str] | frozenset[str] = frozenset(),
    live_labels: list[dict[str, Any]] | None = None,
) -> bool:
    """A change to what a workload runs (a container's program fields), to a Service's routing, or a NetworkPolicy
    created or changed: the usual causes of an incident seen only in the SLOs, while every pod is Ready and every
    Service has endpoints."""
    if change.revertable and change.kind == "NetworkPolicy" and change.op in ("created", "changed"):
        return True  # a policy can only take traffic away: pods stay Ready while their calls time out
    if change.revertable and change.kind == "Service" and change.op == "deleted":
        # a Service deleted while the pods it selected still run: its callers fail to resolve it, every pod Ready
        sel = spec(change.old or {}).get("selector")
        return bool(sel) and any(labels_match(sel, lab) for lab in live_labels or [])
    if not change.revertable or change.op != "changed":
        return False
    if change.kind == "ConfigMap":
        return change.pointer == "/data" and change.name in configs_read  # configuration a running program reads
    if change.kind in WORKLOADS:
        return "/containers/" in change.pointer and change.pointer.rsplit("/", 1)[-1] in APP_FIELDS | {"ports"}
    return change.kind == "Service" and change.pointer.startswith("/spec/")


def _silent_candidates(
    changes: list[Change], configs_read: set[str], live_labels: list[dict[str, Any]]
) -> list[Candidate]:
    """With nothing unhealthy in Kubernetes terms, the suspect changes, each a revert to try alone: TNR undoes a
    revert that does not lower the SLO violations, and the next is tried."""
    why = "no object is unhealthy (the incident shows in the SLOs only): a change to what runs is the likeliest cause"
    out = [
        Candidate(c, 0.65, [why], revert_actions(c)) for c in changes if _silent_suspect(c, configs_read, live_labels)
    ]
    return sorted(out, key=lambda c: -c.score)[:MAX_CANDIDATES]


def _env_consumers(change: Change, ctx: _Context) -> list[Action]:
    """Restarts of the workloads whose unhealthy pods read a changed ConfigMap or Secret as env: env is resolved
    when a container starts, so a rotated value reaches them only through new pods (stale env)."""
    out: list[Action] = []
    for pod in ctx.bad_pods:
        cms, secrets = _env_refs(spec(pod))
        if change.name not in (cms if change.kind == "ConfigMap" else secrets):
            continue
        owner = ctx.snap.owner_workload(pod)
        if owner is None or str(owner.get("kind", "Deployment")) not in ("Deployment", "StatefulSet", "DaemonSet"):
            continue
        restart = RolloutRestart(
            kind=str(owner.get("kind", "Deployment")), namespace=ctx.snap.namespace, name=name_of(owner)
        )
        if all(a.target != restart.target for a in out):
            out.append(restart)
    return out


_TEMPLATE_FIELDS = ("image", "command", "args", "env", "envFrom", "resources", "securityContext")
"""Container fields an admission mutation may rewrite: a pod that differs from its template there was rewritten
(not ``volumeMounts``: the API server adds the service account token's mount to every pod)."""


def _rewritten(pod: Obj, template: Obj) -> bool:
    """Whether a pod's containers differ from its workload's template (a mutation at admission)."""
    want = {c.get("name"): c for c in (template.get("spec") or {}).get("containers") or []}
    have = {c.get("name"): c for c in spec(pod).get("containers") or []}
    if set(want) != set(have):
        return True
    return any(want[n].get(f) != have[n].get(f) for n in want for f in _TEMPLATE_FIELDS if f in want[n] or f in have[n])


def _mutated_workloads(change: Change, ctx: _Context) -> list[Action]:
    """Restarts of the workloads whose pods a mutating webhook created or changed since the healthy state rewrote:
    removing the webhook changes no pod that exists, so they keep the mutation until they are replaced. A pod was
    rewritten when the webhook intercepts it (rules, namespace and object selectors) and it differs from its
    workload's template; without such a pod, the unhealthy pods it intercepts."""
    hooks = [h for h in (change.new or {}).get("webhooks") or [] if _intercepts_pods(h, ctx.snap.namespace)]
    intercepted = [
        p
        for p in ctx.snap.live_pods()
        if any(selector_matches(h.get("objectSelector") or {}, meta(p).get("labels") or {}) for h in hooks)
    ]
    owned = [(p, w) for p in intercepted if (w := ctx.snap.owner_workload(p)) is not None]
    rewritten = [(p, w) for p, w in owned if _rewritten(p, spec(w).get("template") or {})]
    chosen = rewritten or [(p, w) for p, w in owned if name_of(p) in ctx.bad.pods]
    out: list[Action] = []
    for _, w in chosen:
        if str(w.get("kind", "Deployment")) not in WORKLOADS:
            continue
        restart = RolloutRestart(kind=str(w.get("kind", "Deployment")), namespace=ctx.snap.namespace, name=name_of(w))
        if all(a.target != restart.target for a in out):
            out.append(restart)
    return out


def _crashed_clients(change: Change, ctx: _Context) -> list[Action]:
    """Restarts of the workloads whose unhealthy pods are not the deleted Service's backends: clients that crashed
    while its name did not resolve wait out their back-off otherwise."""
    selector = spec(change.old or {}).get("selector")
    out: list[Action] = []
    for pod in ctx.bad_pods:
        if selector and labels_match(selector, meta(pod).get("labels")):
            continue
        owner = ctx.snap.owner_workload(pod)
        if owner is None or str(owner.get("kind", "Deployment")) not in WORKLOADS:
            continue
        restart = RolloutRestart(
            kind=str(owner.get("kind", "Deployment")), namespace=ctx.snap.namespace, name=name_of(owner)
        )
        if all(a.target != restart.target for a in out):
            out.append(restart)
    return out


def _env_refs(pod_spec: Obj) -> tuple[set[str], set[str]]:
    cms: set[str] = set()
    secrets: set[str] = set()
    for c in [*(pod_spec.get("containers") or []), *(pod_spec.get("initContainers") or [])]:
        for e in c.get("env") or []:
            src = e.get("valueFrom") or {}
            if (src.get("configMapKeyRef") or {}).get("name"):
                cms.add(src["configMapKeyRef"]["name"])
            if (src.get("secretKeyRef") or {}).get("name"):
                secrets.add(src["secretKeyRef"]["name"])
        for e in c.get("envFrom") or []:
            if (e.get("configMapRef") or {}).get("name"):
                cms.add(e["configMapRef"]["name"])
            if (e.get("secretRef") or {}).get("name"):
                secrets.add(e["secretRef"]["name"])
    return cms, secrets


def _component(snap: Snapshot, change: Change) -> str:
    if change.kind in WORKLOADS:
        w = snap.get(change.kind, change.name)
        return snap.component_of(w) if w is not None else change.name
    return change.name


def findings(before: LastGood, after: LastGood, snap: Snapshot) -> list[Finding]:
    """The candidates as findings: evidence says what changed and why it is blamed; facts carry the revert."""
    tied, _ = candidates(before, after, snap)
    out = []
    for rank, c in enumerate(tied):
        revert = [ACTION_ADAPTER.dump_python(a, mode="json") for a in c.actions]
        evidence = [
            f"changed since the last healthy state: {c.change.describe()}",
            f"blamed because {'; '.join(c.why[:2])}",
        ]
        if not c.actions:
            evidence.append("it cannot be reverted from the snapshot (data kept by hash only, or a kind not acted on)")
        confidence = round(min(0.75, 0.8 * c.score) - 0.01 * rank, 3)
        if c.hides:
            evidence.append(f"reverted last: {c.hides}")
            confidence = min(confidence, MIN_SCORE)
        out.append(
            Finding(
                analyzer="changes",
                mechanism=c.mechanism,
                component=_component(snap, c.change),
                target=c.change.key,
                confidence=confidence,
                evidence=evidence,
                facts={
                    "revert": revert,
                    "pointer": c.change.pointer,
                    "op": c.change.op,
                    "rank": rank,
                    "hides": c.hides,
                },
            )
        )
    return out


def revert_plan_actions(finding: Finding) -> list[Action]:
    return [ACTION_ADAPTER.validate_python(a) for a in finding.facts.get("revert") or []]


async def change_findings(source: LastGoodSource | None, tools: ClusterTools, snap: Snapshot) -> list[Finding]:
    """The change candidates of a scope, when a last healthy snapshot exists (none otherwise, or on a read error)."""
    if source is None:
        return []
    try:
        before = await source(snap.namespace)
        if before is None:
            return []
        after = await capture(tools, snap.namespace)
    except Exception as exc:  # the memory is an aid: without it the analyzers still run
        snap.read_errors.append(f"last-good: {exc}")
        return []
    dns_changed = any(_is_dns(c.namespace, snap.namespace) and c.revertable for c in diff(before, after))
    if dns_changed and not snap.traces and not resolution_failures(snap):
        await read_traces(tools, snap)  # a client that logs nothing still records its failed lookups in its spans
    return findings(before, after, snap)
