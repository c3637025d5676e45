"""Deployment -> ReplicaSet -> Pod, and StatefulSet -> Pod, as kube-controller-manager does them.

Deployments keep one ReplicaSet per pod template (named ``<deployment>-<pod-template-hash>``, with the
``deployment.kubernetes.io/revision`` annotation), so ``rollout undo`` (which copies an old ReplicaSet's template
back) and ``rollout restart`` (which changes a template annotation) behave as on a cluster. Rolling updates follow
the real controller's arithmetic: scale the new ReplicaSet up to ``replicas + maxSurge`` pods in total, scale old ones
down while at least ``replicas - maxUnavailable`` pods stay available, and first drop old pods that are not
available anyway. A rollout whose new pods never become ready therefore keeps the old pods serving, and after
``progressDeadlineSeconds`` (scaled by ``Timing.progress_deadline_factor``) reports ``ProgressDeadlineExceeded``.
"""

from __future__ import annotations

import copy
import json
import math
import zlib
from typing import TYPE_CHECKING, Any

from arena.errors import ApiError
from arena.objects import (
    condition,
    controller_of,
    is_terminating,
    now,
    owner_ref,
    random_suffix,
    safe_encode,
    set_condition,
)
from arena.resources import BY_KIND
from arena.store import Obj

if TYPE_CHECKING:
    from arena.cluster import Cluster

PODS = BY_KIND["Pod"]
RS = BY_KIND["ReplicaSet"]
DEPLOY = BY_KIND["Deployment"]
STS = BY_KIND["StatefulSet"]
PVCS = BY_KIND["PersistentVolumeClaim"]
REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"


def pod_ready(pod: Obj) -> bool:
    c = condition(pod, "Ready")
    return bool(c and c.get("status") == "True")


def pod_active(pod: Obj) -> bool:
    return not is_terminating(pod) and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def template_hash(tpl: Obj) -> str:
    t = copy.deepcopy(tpl)
    (t.get("metadata") or {}).get("labels", {}).pop(HASH_LABEL, None)
    return safe_encode(zlib.crc32(json.dumps(t, sort_keys=True).encode()))


_STRIP_CACHE: dict[int, tuple[Obj, str]] = {}


def _strip_hash(tpl: Obj) -> str:
    """The template as a canonical string, without the pod-template-hash label (cached: stored objects are
    immutable, so the identity of a template dict identifies its content while it is alive)."""
    hit = _STRIP_CACHE.get(id(tpl))
    if hit is not None and hit[0] is tpl:
        return hit[1]
    meta = tpl.get("metadata") or {}
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != HASH_LABEL}
    t = {**tpl, "metadata": {**meta, "labels": labels}}
    out = json.dumps(t, sort_keys=True)
    if len(_STRIP_CACHE) > 20_000:
        _STRIP_CACHE.clear()
    _STRIP_CACHE[id(tpl)] = (tpl, out)
    return out


def _resolve(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        frac = int(value[:-1]) * total / 100
        return math.ceil(frac) if round_up else math.floor(frac)
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def owned_by(objs: list[Obj], owner: Obj) -> list[Obj]:
    uid = owner["metadata"]["uid"]
    return [o for o in objs if (controller_of(o) or {}).get("uid") == uid]


class ReplicaSetController:
    watches = frozenset({"replicasets.apps", "pods"})

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def reconcile(self, t: float) -> None:
        store = self.cluster.store
        pods_by_owner: dict[str, list[Obj]] = {}
        for p in store.list(PODS.key):
            ref = controller_of(p)
            if ref:
                pods_by_owner.setdefault(ref["uid"], []).append(p)
        for rs in store.list(RS.key):
            if is_terminating(rs):
                continue
            self._sync(rs, pods_by_owner.get(rs["metadata"]["uid"], []))

    def _sync(self, rs: Obj, pods: list[Obj]) -> None:
        want = int((rs.get("spec") or {}).get("replicas", 1))
        active = [p for p in pods if pod_active(p)]
        diff = len(active) - want
        events = self.cluster.events
        failure: str | None = None
        if diff < 0:
            for _ in range(-diff):
                try:
                    pod = self._new_pod(rs)
                except ApiError as e:
                    failure = e.message
                    events.emit(rs, "Warning", "FailedCreate", f"Error creating: {e.message}", "replicaset-controller")
                    break
                active.append(pod)
                events.emit(
                    rs, "Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}", "replicaset-controller"
                )
        elif diff > 0:

            def rank(p: Obj) -> tuple[int, int, int, str]:
                spec, st = p.get("spec") or {}, p.get("status") or {}
                phase_rank = 0 if not spec.get("nodeName") else (1 if st.get("phase") == "Pending" else 2)
                restarts = sum(int(c.get("restartCount", 0)) for c in st.get("containerStatuses") or [])
                return (
                    phase_rank,
                    1 if pod_ready(p) else 0,
                    -restarts,
                    "~" + (p["metadata"].get("creationTimestamp") or ""),
                )

            victims = sorted(active, key=rank)[:diff]
            for p in victims:
                try:
                    self.cluster.rest.delete(PODS, p["metadata"].get("namespace"), p["metadata"]["name"])
                except ApiError:
                    continue
                active.remove(p)
                events.emit(
                    rs, "Normal", "SuccessfulDelete", f"Deleted pod: {p['metadata']['name']}", "replicaset-controller"
                )
        self._status(rs, active, failure)

    def _new_pod(self, rs: Obj) -> Obj:
        tpl = (rs.get("spec") or {}).get("template") or {}
        tmeta = tpl.get("metadata") or {}
        name = rs["metadata"]["name"]
        pod: Obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{name}-{random_suffix()}",
                "generateName": f"{name}-",
                "namespace": rs["metadata"].get("namespace"),
                "labels": dict(tmeta.get("labels") or {}),
                "ownerReferences": [owner_ref(rs)],
            },
            "spec": copy.deepcopy(tpl.get("spec") or {}),
        }
        if tmeta.get("annotations"):
            pod["metadata"]["annotations"] = dict(tmeta["annotations"])
        return self.cluster.rest.create(PODS, rs["metadata"].get("namespace"), pod)

    def _status(self, rs: Obj, active: list[Obj], failure: str | None) -> None:
        ready = sum(1 for p in active if pod_ready(p))
        labels = ((rs.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}
        st: Obj = {
            "replicas": len(active),
            "fullyLabeledReplicas": sum(
                1 for p in active if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in labels.items())
            ),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        st["terminatingReplicas"] = 0
        if failure:
            set_condition(st, "ReplicaFailure", "True", "FailedCreate", failure)
        for k in ("readyReplicas", "availableReplicas", "fullyLabeledReplicas"):
            if not st[k]:
                st.pop(k)
        st.pop("terminatingReplicas")
        if st != rs.get("status"):
            new = copy.deepcopy(rs)
            new["status"] = st
            self.cluster.rest.write(RS, new)


class DeploymentController:
    watches = frozenset({"deployments.apps", "replicasets.apps"})

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.progress: dict[str, tuple[str, float]] = {}
        self.rolling = False

    def next_due(self, t: float) -> float:
        return t + 0.25 if self.rolling else float("inf")

    def reconcile(self, t: float) -> None:
        store = self.cluster.store
        rss_by_owner: dict[str, list[Obj]] = {}
        for rs in store.list(RS.key):
            ref = controller_of(rs)
            if ref:
                rss_by_owner.setdefault(ref["uid"], []).append(rs)
        self.rolling = False
        deployments = store.list(DEPLOY.key)
        live = {d["metadata"]["uid"] for d in deployments}
        for uid in [u for u in self.progress if u not in live]:
            del self.progress[uid]
        for d in deployments:
            if is_terminating(d):
                continue
            self._sync(d, rss_by_owner.get(d["metadata"]["uid"], []), t)

    def _emit(self, d: Obj, msg: str) -> None:
        self.cluster.events.emit(d, "Normal", "ScalingReplicaSet", msg, "deployment-controller")

    def _scale(self, d: Obj, rs: Obj, replicas: int) -> Obj:
        old = int(rs["spec"].get("replicas", 0))
        if old == replicas:
            return rs
        new = copy.deepcopy(rs)
        new["spec"]["replicas"] = replicas
        ann = new["metadata"].setdefault("annotations", {})
        ann["deployment.kubernetes.io/desired-replicas"] = str(d["spec"].get("replicas", 1))
        stored = self.cluster.rest.write(RS, new)
        verb = "up" if replicas > old else "down"
        self._emit(d, f"Scaled {verb} replica set {rs['metadata']['name']} from {old} to {replicas}")
        return stored

    def _sync(self, d: Obj, rss: list[Obj], t: float) -> None:
        spec = d.get("spec") or {}
        tpl = spec.get("template") or {}
        replicas = int(spec.get("replicas", 1))
        key = _strip_hash(tpl)
        new_rs = next((rs for rs in rss if _strip_hash((rs.get("spec") or {}).get("template") or {}) == key), None)
        olds = [rs for rs in rss if rs is not new_rs]
        max_rev = max((int((rs["metadata"].get("annotations") or {}).get(REVISION, "0")) for rs in rss), default=0)
        created = False
        if new_rs is None and not spec.get("paused"):
            new_rs = self._create_rs(d, tpl, max_rev + 1)
            created = new_rs is not None
        elif new_rs is not None:
            ann = new_rs["metadata"].get("annotations") or {}
            rev = int(ann.get(REVISION, "0"))
            if rev < max_rev and not spec.get("paused"):
                upd = copy.deepcopy(new_rs)
                a = upd["metadata"].setdefault("annotations", {})
                hist = [h for h in (a.get("deployment.kubernetes.io/revision-history") or "").split(",") if h]
                a["deployment.kubernetes.io/revision-history"] = ",".join([*hist, str(rev)])
                a[REVISION] = str(max_rev + 1)
                cause = (d["metadata"].get("annotations") or {}).get("kubernetes.io/change-cause")
                if cause:
                    a["kubernetes.io/change-cause"] = cause
                new_rs = self.cluster.rest.write(RS, upd)
        if new_rs is None:
            return
        active_olds = [rs for rs in olds if int(rs["spec"].get("replicas", 0)) > 0]
        strategy = spec.get("strategy") or {}
        if not spec.get("paused"):
            if strategy.get("type") == "Recreate":
                if active_olds:
                    for rs in active_olds:
                        self._scale(d, rs, 0)
                elif not any(int((rs.get("status") or {}).get("replicas", 0)) for rs in olds):
                    new_rs = self._scale(d, new_rs, replicas)
            else:
                new_rs = self._rolling(d, new_rs, olds, replicas)
        self._cleanup(d, olds)
        self._set_revision(d, new_rs)
        self._status(d, new_rs, olds, replicas, t, created)

    def _create_rs(self, d: Obj, tpl: Obj, revision: int) -> Obj | None:
        h = template_hash(tpl)
        name = f"{d['metadata']['name']}-{h}"
        ns = d["metadata"].get("namespace")
        tpl = copy.deepcopy(tpl)
        tlabels = dict((tpl.get("metadata") or {}).get("labels") or {})
        tlabels[HASH_LABEL] = h
        tpl.setdefault("metadata", {})["labels"] = tlabels
        sel = copy.deepcopy(d["spec"].get("selector") or {})
        sel.setdefault("matchLabels", {})[HASH_LABEL] = h
        ann = {
            REVISION: str(revision),
            "deployment.kubernetes.io/desired-replicas": str(d["spec"].get("replicas", 1)),
            "deployment.kubernetes.io/max-replicas": str(d["spec"].get("replicas", 1) + 1),
        }
        cause = (d["metadata"].get("annotations") or {}).get("kubernetes.io/change-cause")
        if cause:
            ann["kubernetes.io/change-cause"] = cause
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": tlabels,
                "annotations": ann,
                "ownerReferences": [owner_ref(d)],
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": d["spec"].get("minReadySeconds", 0),
                "selector": sel,
                "template": tpl,
            },
        }
        try:
            return self.cluster.rest.create(RS, ns, rs)
        except ApiError as e:
            if e.code == 409:
                return None
            self.cluster.events.emit(d, "Warning", "FailedCreate", e.message, "deployment-controller")
            return None

    def _rolling(self, d: Obj, new_rs: Obj, olds: list[Obj], replicas: int) -> Obj:
        ru = (d["spec"].get("strategy") or {}).get("rollingUpdate") or {}
        surge = _resolve(ru.get("maxSurge", "25%"), replicas, True)
        unavail = _resolve(ru.get("maxUnavailable", "25%"), replicas, False)
        if surge == 0 and unavail == 0:
            unavail = 1
        active_olds = [rs for rs in olds if int(rs["spec"].get("replicas", 0)) > 0]
        new_spec = int(new_rs["spec"].get("replicas", 0))
        if not active_olds:
            if new_spec != replicas:
                new_rs = self._scale(d, new_rs, replicas)
            return new_rs
        # Scale up the new ReplicaSet within maxSurge.
        total = new_spec + sum(int(rs["spec"].get("replicas", 0)) for rs in olds)
        if new_spec > replicas:
            new_rs = self._scale(d, new_rs, replicas)
        elif new_spec < replicas:
            room = replicas + surge - total
            if room > 0:
                new_rs = self._scale(d, new_rs, min(replicas, new_spec + room))
        new_spec = int(new_rs["spec"].get("replicas", 0))
        new_avail = int((new_rs.get("status") or {}).get("availableReplicas", 0))
        min_available = replicas - unavail
        all_pods = new_spec + sum(int(rs["spec"].get("replicas", 0)) for rs in olds)
        new_unavailable = max(0, new_spec - new_avail)
        # First drop old pods that are not available anyway.
        max_cleanup = all_pods - min_available - new_unavailable
        olds_sorted = sorted(active_olds, key=lambda rs: rs["metadata"].get("creationTimestamp") or "")
        cleaned: list[Obj] = []
        for rs in olds_sorted:
            spec_r = int(rs["spec"].get("replicas", 0))
            avail = int((rs.get("status") or {}).get("availableReplicas", 0))
            if max_cleanup <= 0 or spec_r <= avail:
                cleaned.append(rs)
                continue
            down = min(max_cleanup, spec_r - avail)
            max_cleanup -= down
            cleaned.append(self._scale(d, rs, spec_r - down))
        # Then scale old ReplicaSets down while availability allows.
        available = new_avail + sum(int((rs.get("status") or {}).get("availableReplicas", 0)) for rs in cleaned)
        budget = available - min_available
        for rs in cleaned:
            if budget <= 0:
                break
            spec_r = int(rs["spec"].get("replicas", 0))
            if spec_r == 0:
                continue
            down = min(spec_r, budget)
            budget -= down
            self._scale(d, rs, spec_r - down)
        return new_rs

    def _cleanup(self, d: Obj, olds: list[Obj]) -> None:
        limit = int(d["spec"].get("revisionHistoryLimit", 10))
        dead = [
            rs
            for rs in olds
            if int(rs["spec"].get("replicas", 0)) == 0 and int((rs.get("status") or {}).get("replicas", 0)) == 0
        ]
        if len(dead) <= limit:
            return
        dead.sort(key=lambda rs: int((rs["metadata"].get("annotations") or {}).get(REVISION, "0")))
        for rs in dead[: len(dead) - limit]:
            try:
                self.cluster.rest.delete(RS, rs["metadata"].get("namespace"), rs["metadata"]["name"])
            except ApiError:
                pass

    def _set_revision(self, d: Obj, new_rs: Obj) -> None:
        rev = (new_rs["metadata"].get("annotations") or {}).get(REVISION)
        ann = d["metadata"].get("annotations") or {}
        if rev and ann.get(REVISION) != rev:
            cur = self.cluster.store.get(DEPLOY.key, d["metadata"].get("namespace"), d["metadata"]["name"])
            if cur is None:
                return
            upd = copy.deepcopy(cur)
            upd["metadata"].setdefault("annotations", {})[REVISION] = rev
            self.cluster.rest.write(DEPLOY, upd)

    def _status(self, d: Obj, new_rs: Obj, olds: list[Obj], replicas: int, t: float, created: bool) -> None:
        cur = self.cluster.store.get(DEPLOY.key, d["metadata"].get("namespace"), d["metadata"]["name"])
        if cur is None:
            return
        everything = [
            new_rs,
            *[
                self.cluster.store.get(RS.key, rs["metadata"].get("namespace"), rs["metadata"]["name"]) or rs
                for rs in olds
            ],
        ]
        new_rs = (
            self.cluster.store.get(RS.key, new_rs["metadata"].get("namespace"), new_rs["metadata"]["name"]) or new_rs
        )

        def s(rs: Obj, k: str) -> int:
            return int((rs.get("status") or {}).get(k, 0))

        total = sum(s(rs, "replicas") for rs in everything)
        available = sum(s(rs, "availableReplicas") for rs in everything)
        ready = sum(s(rs, "readyReplicas") for rs in everything)
        updated = s(new_rs, "replicas")
        ru = (d["spec"].get("strategy") or {}).get("rollingUpdate") or {}
        unavail = _resolve(ru.get("maxUnavailable", "25%"), replicas, False)
        if (d["spec"].get("strategy") or {}).get("type") == "Recreate":
            unavail = 0
        st: Obj = copy.deepcopy(cur.get("status") or {})
        st["observedGeneration"] = cur["metadata"].get("generation", 1)
        st["replicas"] = total
        st["updatedReplicas"] = updated
        st["readyReplicas"] = ready
        st["availableReplicas"] = available
        st["unavailableReplicas"] = max(0, max(total, replicas) - available)
        for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas"):
            if not st[k]:
                st.pop(k)
        ts = now()
        if available >= replicas - unavail:
            set_condition(
                st,
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                lastUpdateTime=_keep(st, "Available", "MinimumReplicasAvailable", ts),
            )
        else:
            set_condition(
                st,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                lastUpdateTime=_keep(st, "Available", "MinimumReplicasUnavailable", ts),
            )
        name = new_rs["metadata"]["name"]
        complete = updated == replicas and available == replicas and total == replicas
        if not complete:
            self.rolling = True
        uid = d["metadata"]["uid"]
        marker = json.dumps([name, updated, available, ready, total])
        last = self.progress.get(uid)
        if last is None or last[0] != marker:
            self.progress[uid] = (marker, t)
            last = self.progress[uid]
        deadline = float(d["spec"].get("progressDeadlineSeconds", 600)) * self.cluster.timing.progress_deadline_factor
        prog = condition(cur, "Progressing") or {}
        if complete:
            reason, msg, value = "NewReplicaSetAvailable", f'ReplicaSet "{name}" has successfully progressed.', "True"
        elif t - last[1] > deadline and not d["spec"].get("paused"):
            reason, msg, value = "ProgressDeadlineExceeded", f'ReplicaSet "{name}" has timed out progressing.', "False"
        elif created or (
            prog.get("reason") == "NewReplicaSetCreated" and prog.get("message", "").endswith(f'"{name}"')
        ):
            reason, msg, value = "NewReplicaSetCreated", f'Created new replica set "{name}"', "True"
        else:
            reason, msg, value = "ReplicaSetUpdated", f'ReplicaSet "{name}" is progressing.', "True"
        if d["spec"].get("paused"):
            reason, msg, value = "DeploymentPaused", "Deployment is paused", "Unknown"
        set_condition(
            st,
            "Progressing",
            value,
            reason,
            msg,
            lastUpdateTime=_keep(st, "Progressing", reason + msg, ts, with_message=True),
        )
        if st != cur.get("status"):
            upd = copy.deepcopy(cur)
            upd["status"] = st
            self.cluster.rest.write(DEPLOY, upd)


def _keep(st: Obj, ctype: str, reason: str, ts: str, with_message: bool = False) -> str:
    for c in st.get("conditions") or []:
        if c.get("type") == ctype:
            key = (c.get("reason", "") + c.get("message", "")) if with_message else c.get("reason", "")
            if key == reason:
                return str(c.get("lastUpdateTime") or ts)
    return ts


class StatefulSetController:
    watches = frozenset({"statefulsets.apps", "pods", "persistentvolumeclaims"})

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def reconcile(self, t: float) -> None:
        store = self.cluster.store
        pods_by_owner: dict[str, list[Obj]] = {}
        for p in store.list(PODS.key):
            ref = controller_of(p)
            if ref:
                pods_by_owner.setdefault(ref["uid"], []).append(p)
        for sts in store.list(STS.key):
            if not is_terminating(sts):
                self._sync(sts, pods_by_owner.get(sts["metadata"]["uid"], []))

    def _sync(self, sts: Obj, pods: list[Obj]) -> None:
        spec = sts.get("spec") or {}
        name = sts["metadata"]["name"]
        ns = sts["metadata"].get("namespace")
        replicas = int(spec.get("replicas", 1))
        revision = f"{name}-{template_hash(spec.get('template') or {})}"
        by_ord: dict[int, Obj] = {}
        for p in pods:
            suffix = p["metadata"]["name"][len(name) + 1 :]
            if suffix.isdigit():
                by_ord[int(suffix)] = p
        ordered = spec.get("podManagementPolicy", "OrderedReady") == "OrderedReady"
        # Create missing pods in order.
        for i in range(replicas):
            found = by_ord.get(i)
            if found is None:
                self._ensure_claims(sts, i)
                try:
                    created = self.cluster.rest.create(PODS, ns, self._pod(sts, i, revision))
                except ApiError as e:
                    self.cluster.events.emit(
                        sts,
                        "Warning",
                        "FailedCreate",
                        f"create Pod {name}-{i} in StatefulSet {name} failed error: {e.message}",
                        "statefulset-controller",
                    )
                    break
                by_ord[i] = created
                self.cluster.events.emit(
                    sts,
                    "Normal",
                    "SuccessfulCreate",
                    f"create Pod {name}-{i} in StatefulSet {name} successful",
                    "statefulset-controller",
                )
                if ordered:
                    break
            elif ordered and not (pod_ready(found) and pod_active(found)):
                break
        # Scale down from the highest ordinal.
        extra = sorted((i for i in by_ord if i >= replicas), reverse=True)
        for i in extra[:1] if ordered else extra:
            p = by_ord[i]
            if not is_terminating(p):
                self.cluster.rest.delete(PODS, ns, p["metadata"]["name"])
                self.cluster.events.emit(
                    sts,
                    "Normal",
                    "SuccessfulDelete",
                    f"delete Pod {p['metadata']['name']} in StatefulSet {name} successful",
                    "statefulset-controller",
                )
        # Rolling update: replace outdated pods from the highest ordinal, one at a time.
        strategy = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate")
        current = [by_ord[i] for i in range(replicas) if i in by_ord]
        if (
            strategy == "RollingUpdate"
            and all(pod_ready(p) and pod_active(p) for p in current)
            and len(current) == replicas
        ):
            for i in sorted(range(replicas), reverse=True):
                p = by_ord[i]
                if (p["metadata"].get("labels") or {}).get("controller-revision-hash") != revision:
                    self.cluster.rest.delete(PODS, ns, p["metadata"]["name"])
                    break
        live = [by_ord[i] for i in by_ord if pod_active(by_ord[i])]
        ready = sum(1 for p in live if pod_ready(p))
        updated = sum(
            1 for p in live if (p["metadata"].get("labels") or {}).get("controller-revision-hash") == revision
        )
        st: Obj = {
            "observedGeneration": sts["metadata"].get("generation", 1),
            "replicas": len(live),
            "readyReplicas": ready,
            "currentReplicas": updated,
            "updatedReplicas": updated,
            "availableReplicas": ready,
            "currentRevision": revision,
            "updateRevision": revision,
            "collisionCount": 0,
        }
        for k in ("readyReplicas", "currentReplicas", "updatedReplicas"):
            if not st[k]:
                st.pop(k)
        if st != sts.get("status"):
            upd = copy.deepcopy(sts)
            upd["status"] = st
            self.cluster.rest.write(STS, upd)

    def _ensure_claims(self, sts: Obj, i: int) -> None:
        ns = sts["metadata"].get("namespace")
        name = sts["metadata"]["name"]
        sel_labels = ((sts.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        for tmpl in (sts.get("spec") or {}).get("volumeClaimTemplates") or []:
            cname = f"{tmpl['metadata']['name']}-{name}-{i}"
            if self.cluster.store.get(PVCS.key, ns, cname) is not None:
                continue
            pvc = {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {
                    "name": cname,
                    "namespace": ns,
                    "labels": {**sel_labels, **((tmpl.get("metadata") or {}).get("labels") or {})},
                },
                "spec": copy.deepcopy(tmpl.get("spec") or {}),
            }
            try:
                self.cluster.rest.create(PVCS, ns, pvc)
            except ApiError:
                pass

    def _pod(self, sts: Obj, i: int, revision: str) -> Obj:
        spec = sts.get("spec") or {}
        tpl = copy.deepcopy(spec.get("template") or {})
        name = sts["metadata"]["name"]
        labels = dict((tpl.get("metadata") or {}).get("labels") or {})
        labels.update(
            {
                "controller-revision-hash": revision,
                "statefulset.kubernetes.io/pod-name": f"{name}-{i}",
                "apps.kubernetes.io/pod-index": str(i),
            }
        )
        pspec = tpl.get("spec") or {}
        pspec["hostname"] = f"{name}-{i}"
        if spec.get("serviceName"):
            pspec["subdomain"] = spec["serviceName"]
        vols = pspec.setdefault("volumes", [])
        for tmpl in spec.get("volumeClaimTemplates") or []:
            vname = tmpl["metadata"]["name"]
            if not any(v.get("name") == vname for v in vols):
                vols.append({"name": vname, "persistentVolumeClaim": {"claimName": f"{vname}-{name}-{i}"}})
        if not vols:
            pspec.pop("volumes")
        meta: Obj = {
            "name": f"{name}-{i}",
            "namespace": sts["metadata"].get("namespace"),
            "labels": labels,
            "ownerReferences": [owner_ref(sts)],
        }
        if (tpl.get("metadata") or {}).get("annotations"):
            meta["annotations"] = dict(tpl["metadata"]["annotations"])
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pspec}
