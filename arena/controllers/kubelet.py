"""The kubelet emulation: runs every pod bound to a node through the container lifecycle a real kubelet reports.

Why it is shaped this way: the kubelet never decides by itself whether a container works. For every start, readiness
answer, liveness check, log line and exec it asks the ``Behaviour`` (arena/hooks.py), and turns the answer into the
exact status fields, events and logs of a real kubelet:

- start ``running`` -> Pulling/Pulled/Created/Started, ``state.running``, then readiness (re-asked every probe period);
- start ``crash`` (or ``alive`` answering an outcome) -> ``state.terminated`` (Error/Completed) for a moment, then
  ``waiting CrashLoopBackOff`` with a back-off that doubles from ``Timing.backoff_base`` up to ``backoff_cap``; the
  next start bumps ``restartCount`` and moves the old run to ``lastState``;
- start ``pull_error`` -> ErrImagePull then ImagePullBackOff, retried with its own back-off;
- start ``config_error`` (or a missing ConfigMap/Secret the pod references) -> CreateContainerConfigError.

All of this is driven by deadlines (``next_at``) checked on each controller pass, never by sleeping tasks, so a pass
is cheap and the state is always consistent with the pod object. Runtime state (runs, logs) lives here, keyed by pod
uid: a pod recreated under the same name is a new pod, as on a real node.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import time
import uuid
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from arena.controllers.scheduler import node_ready
from arena.errors import ApiError, bad_request, not_found
from arena.hooks import ExecResult, StartOutcome
from arena.objects import now
from arena.resources import BY_KIND
from arena.store import Obj

if TYPE_CHECKING:
    from arena.cluster import Cluster

log = logging.getLogger(__name__)
PODS = BY_KIND["Pod"]
MAX_LOG_LINES = 2000


@dataclass
class Run:
    """One container of one pod, as the kubelet tracks it."""

    name: str
    image: str
    phase: str = "creating"  # creating, running, crashed, waiting, done
    reason: str = "ContainerCreating"
    message: str = ""
    next_at: float = 0.0
    restart_count: int = 0
    started_once: bool = False
    ready: bool = False
    started_at: str | None = None
    running_since: float = 0.0
    container_id: str = ""
    terminated: Obj | None = None
    """The latest run's termination: ``state`` while crashed, ``lastState`` afterwards."""
    prev_terminated: Obj | None = None
    """The termination before ``terminated`` (``lastState`` while the latest run shows as terminated)."""
    backoff: float = 0.0
    pull_backoff: float = 0.0
    pulled: bool = False
    probe_at: float = 0.0
    live_at: float = float("inf")
    """When the next liveness (or, until it succeeds, startup) probe is due."""
    live_failures: int = 0
    startup_ok: bool = True
    instances: list[list[tuple[str, str]]] = field(default_factory=list)
    init: bool = False


@dataclass
class PodRun:
    uid: str
    ip: str
    host_ip: str
    start_time: str
    containers: dict[str, Run]
    init_order: list[str]
    killing_at: float | None = None


class Kubelet:
    watches = frozenset({"pods", "nodes", "configmaps", "secrets"})

    def next_due(self, t: float) -> float:
        return min(self._due.values(), default=float("inf"))

    def _run_due(self, run: PodRun | None) -> float:
        """The earliest deadline of a pod's containers (start, back-off, probe, termination)."""
        due = float("inf")
        if run is None:
            return due
        if run.killing_at is not None:
            due = min(due, run.killing_at)
        for r in run.containers.values():
            if r.phase == "running":
                due = min(due, r.probe_at, r.live_at)
            elif r.phase != "done":
                due = min(due, r.next_at)
        return due

    def mark(self, namespace: str, name: str) -> None:
        """A pod object changed: sync it on the next pass."""
        self.dirty.add((namespace, name))

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.timing = cluster.timing
        self.runs: dict[str, PodRun] = {}
        self.dirty: set[tuple[str, str]] = set()
        self._due: dict[str, float] = {}
        self._ip_next: dict[str, int] = {}

    # ---------------------------------------------------------------------------------------------------- reconcile

    def reconcile(self, t: float) -> None:
        store = self.cluster.store
        live: set[str] = set()
        dirty, self.dirty = self.dirty, set()
        ready_nodes = {n["metadata"]["name"]: node_ready(n) for n in store.list("nodes")}
        for pod in store.list(PODS.key):
            node = (pod.get("spec") or {}).get("nodeName")
            if not node:
                continue
            meta = pod["metadata"]
            uid = meta["uid"]
            if node not in ready_nodes:
                # The pod garbage collector removes pods bound to a node that no longer exists.
                self.cluster.rest.force_remove(PODS, meta.get("namespace"), meta["name"])
                continue
            live.add(uid)
            if not ready_nodes[node]:
                self._node_not_ready(pod)
                continue  # a node that is not Ready runs nothing new and reports nothing
            if (meta.get("namespace") or "", meta["name"]) not in dirty and self._due.get(uid, 0.0) > t:
                continue  # nothing changed and no deadline reached: the status written last time still holds
            try:
                self._sync(pod, t)
                self._due[uid] = self._run_due(self.runs.get(uid))
            except ApiError:
                raise
            except Exception:
                log.exception("kubelet failed on pod %s/%s", pod["metadata"].get("namespace"), pod["metadata"]["name"])
        for uid in list(self.runs):
            if uid not in live:
                del self.runs[uid]
        for uid in list(self._due):
            if uid not in live:
                del self._due[uid]

    def _node_not_ready(self, pod: Obj) -> None:
        """What the node lifecycle controller does to the pods of a NotReady node: Ready=False."""
        status = pod.get("status") or {}
        if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []):
            return
        new = copy.deepcopy(pod)
        st = new["status"]
        for cnd in st.get("conditions") or []:
            if cnd.get("type") in ("Ready", "ContainersReady"):
                cnd["status"] = "False"
                cnd["reason"] = "NodeNotReady" if cnd["type"] == "Ready" else "ContainersNotReady"
        for cs in st.get("containerStatuses") or []:
            cs["ready"] = False
        self.cluster.rest.write(PODS, new)
        self.cluster.events.emit(new, "Warning", "NodeNotReady", "Node is not ready", "node-controller")

    def _node_ip(self, node: str) -> str:
        nobj = self.cluster.store.get("nodes", None, node)
        for a in ((nobj or {}).get("status") or {}).get("addresses") or []:
            if a.get("type") == "InternalIP":
                return str(a["address"])
        return "10.0.0.10"

    def _pod_ip(self, node: str) -> str:
        idx = int(node.rsplit("-", 1)[-1]) if node.rsplit("-", 1)[-1].isdigit() else 9
        n = self._ip_next.get(node, 2)
        self._ip_next[node] = n + 1 if n < 250 else 2
        return f"10.244.{idx}.{n}"

    def _emit(self, pod: Obj, type_: str, reason: str, message: str, container: str | None = None) -> None:
        fp = None
        if container is not None:
            group = "initContainers" if container in self._init_names(pod) else "containers"
            fp = f"spec.{group}{{{container}}}"
        self.cluster.events.emit(pod, type_, reason, message, "kubelet", pod["spec"].get("nodeName"), fp)

    @staticmethod
    def _init_names(pod: Obj) -> list[str]:
        return [c["name"] for c in (pod.get("spec") or {}).get("initContainers") or []]

    def _sync(self, pod: Obj, t: float) -> None:
        spec = pod["spec"]
        meta = pod["metadata"]
        uid = meta["uid"]
        run = self.runs.get(uid)
        phase = (pod.get("status") or {}).get("phase")
        if run is None:
            if phase in ("Succeeded", "Failed") and not meta.get("deletionTimestamp"):
                return
            if meta.get("deletionTimestamp"):
                self.cluster.rest.force_remove(PODS, meta.get("namespace"), meta["name"]) if not meta.get(
                    "finalizers"
                ) else None
                return
            node = spec["nodeName"]
            run = PodRun(
                uid=uid,
                ip=self._pod_ip(node),
                host_ip=self._node_ip(node),
                start_time=now(),
                containers={},
                init_order=self._init_names(pod),
            )
            for c in spec.get("initContainers") or []:
                run.containers[c["name"]] = Run(
                    c["name"], c.get("image", ""), init=True, next_at=t + self.timing.container_create
                )
            for c in spec.get("containers") or []:
                run.containers[c["name"]] = Run(c["name"], c.get("image", ""), next_at=t + self.timing.container_create)
            self.runs[uid] = run
        if meta.get("deletionTimestamp"):
            self._terminate(pod, run, t)
            return
        sidecars = _sidecars(pod)
        init_pending = [n for n in run.init_order if not _init_through(run.containers[n], n in sidecars)]
        mains = [run.containers[c["name"]] for c in spec.get("containers") or [] if c["name"] in run.containers]
        if sidecars and mains and all(m.phase == "done" for m in mains):
            self._stop_sidecars(pod, run, sidecars, t)  # the pod's work is done: its native sidecars are stopped
        for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
            r = run.containers.get(c["name"])
            if r is None:
                continue
            if r.init and init_pending and c["name"] != init_pending[0]:
                continue
            if not r.init and init_pending:
                continue
            self._step(pod, c, r, t)
        self._write_status(pod, run)

    # ------------------------------------------------------------------------------------------------ container step

    def _mount_error(self, pod: Obj) -> str | None:
        """A ConfigMap or Secret volume whose object (or a listed key) is missing: MountVolume.SetUp fails."""
        ns = pod["metadata"].get("namespace")
        store = self.cluster.store
        for v in (pod.get("spec") or {}).get("volumes") or []:
            for src_key, kind, word, name_key in (
                ("configMap", "configmaps", "configmap", "name"),
                ("secret", "secrets", "secret", "secretName"),
            ):
                src = v.get(src_key)
                if src is None or src.get("optional"):
                    continue
                obj = store.get(kind, ns, str(src.get(name_key, "")))
                if obj is None:
                    what = f'{word} "{src.get(name_key)}" not found'
                    return f'MountVolume.SetUp failed for volume "{v.get("name")}" : {what}'
                have = {**(obj.get("data") or {}), **(obj.get("binaryData") or {})}
                missing = [i.get("key") for i in src.get("items") or [] if i.get("key") not in have]
                if missing:
                    return (
                        f'MountVolume.SetUp failed for volume "{v.get("name")}" : {word} references non-existent '
                        f"{word} key: {missing[0]}"
                    )
        return None

    def _config_error(self, pod: Obj, c: Obj) -> str | None:
        ns = pod["metadata"].get("namespace")
        store = self.cluster.store
        for env in c.get("env") or []:
            src = env.get("valueFrom") or {}
            for ref_key, kind in (("configMapKeyRef", "configmaps"), ("secretKeyRef", "secrets")):
                ref = src.get(ref_key)
                if not ref or ref.get("optional"):
                    continue
                obj = store.get(kind, ns, ref.get("name", ""))
                word = "configmap" if kind == "configmaps" else "secret"
                if obj is None:
                    return f'{word} "{ref.get("name")}" not found'
                data = obj.get("data") or {}
                if ref.get("key") not in data and ref.get("key") not in (obj.get("stringData") or {}):
                    kind_word = "Secret" if word == "secret" else "ConfigMap"
                    return f"couldn't find key {ref.get('key')} in {kind_word} {ns}/{ref.get('name')}"
        for ef in c.get("envFrom") or []:
            for ref_key, kind in (("configMapRef", "configmaps"), ("secretRef", "secrets")):
                ref = ef.get(ref_key)
                if ref and not ref.get("optional") and store.get(kind, ns, ref.get("name", "")) is None:
                    return f'{"configmap" if kind == "configmaps" else "secret"} "{ref.get("name")}" not found'
        return None

    def _step(self, pod: Obj, c: Obj, r: Run, t: float) -> None:
        timing = self.timing
        view = self.cluster.view
        behaviour = self.cluster.behaviour
        image = c.get("image", "")
        if r.phase in ("running",) and image != r.image:
            self._emit(pod, "Normal", "Killing", f"Container {r.name} definition changed, will be restarted", r.name)
            r.prev_terminated, r.terminated = r.terminated, self._finish_instance(r, 137, "Error", t)
            r.image = image
            r.pulled = False
            r.phase = "creating"
            r.next_at = t
            r.backoff = 0.0
        if r.phase == "running":
            if t - r.running_since >= timing.backoff_reset:
                r.backoff = 0.0
            if t >= r.live_at and self._probe_alive(pod, c, r, t):
                return
            if t >= r.probe_at:
                r.probe_at = t + timing.probe_period
                outcome = behaviour.alive(view, pod, c)
                if outcome is not None:
                    if c.get("livenessProbe") and outcome.exit_code in (137, 143):
                        self._emit(
                            pod,
                            "Warning",
                            "Unhealthy",
                            f"Liveness probe failed: {outcome.message or 'probe failed'}",
                            r.name,
                        )
                        self._emit(
                            pod,
                            "Normal",
                            "Killing",
                            f"Container {r.name} failed liveness probe, will be restarted",
                            r.name,
                        )
                    self._append(r, outcome.logs)
                    self._crash(pod, c, r, outcome, t)
                    return
                self._append(r, list(behaviour.periodic_logs(view, pod, c)))
                ready = r.startup_ok and bool(behaviour.ready(view, pod, c))
                if not ready and r.startup_ok and c.get("readinessProbe"):
                    # every failed probe is reported, also by a container that never became Ready (aggregated
                    # into the event's count)
                    why = behaviour.probe(view, pod, c, c["readinessProbe"])
                    msg = f"Readiness probe failed: {why}" if why else self._probe_message(pod, c)
                    self._emit(pod, "Warning", "Unhealthy", msg, r.name)
                r.ready = ready
            return
        if r.phase == "done" or t < r.next_at:
            return
        if r.phase == "crashed":
            # Terminated/Error has been visible for a moment: now the kubelet backs off.
            if self._restart_policy_stops(pod, r):
                r.phase = "done"
                return
            r.phase = "waiting"
            r.reason = "CrashLoopBackOff"
            r.backoff = timing.backoff_base if r.backoff <= 0 else min(r.backoff * 2, timing.backoff_cap)
            pod_ref = f"{pod['metadata']['name']}_{pod['metadata'].get('namespace')}({pod['metadata']['uid']})"
            r.message = f"back-off {_secs(r.backoff)} restarting failed container={r.name} pod={pod_ref}"
            self._emit(
                pod, "Warning", "BackOff", f"Back-off restarting failed container {r.name} in pod {pod_ref}", r.name
            )
            r.next_at = t + r.backoff
            return
        if r.phase == "pull_wait":
            r.phase = "waiting"
            r.reason = "ImagePullBackOff"
            r.message = f'Back-off pulling image "{image}": ErrImagePull: {r.message}'
            self._emit(pod, "Normal", "BackOff", f'Back-off pulling image "{image}"', r.name)
            self._emit(pod, "Warning", "Failed", "Error: ImagePullBackOff", r.name)
            r.next_at = t + r.pull_backoff
            return
        # creating, or waiting out a back-off: (re)start the container.
        if not r.started_once:
            mount = self._mount_error(pod)
            if mount is not None:
                # the volume manager retries; the containers stay ContainerCreating until every volume mounts
                self.cluster.events.emit(
                    pod,
                    "Warning",
                    "FailedMount",
                    mount,
                    "kubelet",
                    pod["spec"].get("nodeName"),
                    throttle=timing.reschedule * 2,
                )
                r.next_at = t + timing.reschedule
                return
        cfg = self._config_error(pod, c)
        if cfg is not None:
            self._pull_events(pod, c, r)
            r.phase = "waiting"
            r.reason = "CreateContainerConfigError"
            r.message = cfg
            self._emit(pod, "Warning", "Failed", f"Error: {cfg}", r.name)
            r.next_at = t + timing.reschedule
            return
        outcome = behaviour.start(view, pod, c)
        if outcome.result == "pull_error":
            self._emit(pod, "Normal", "Pulling", f'Pulling image "{image}"', r.name)
            self._emit(pod, "Warning", "Failed", outcome.message or f'Failed to pull image "{image}"', r.name)
            self._emit(pod, "Warning", "Failed", "Error: ErrImagePull", r.name)
            r.phase = "pull_wait"
            r.reason = "ErrImagePull"
            r.message = outcome.message
            r.pull_backoff = (
                timing.image_backoff_base if r.pull_backoff <= 0 else min(r.pull_backoff * 2, timing.image_backoff_cap)
            )
            r.next_at = t + min(timing.crash_visible * 2, r.pull_backoff)
            return
        if outcome.result == "config_error":
            self._pull_events(pod, c, r)
            r.phase = "waiting"
            r.reason = "CreateContainerConfigError"
            r.message = outcome.message
            self._emit(pod, "Warning", "Failed", f"Error: {outcome.message}", r.name)
            r.next_at = t + timing.reschedule
            return
        self._pull_events(pod, c, r)
        if r.started_once:
            r.restart_count += 1
        r.started_once = True
        r.instances.append([])
        if len(r.instances) > 2:
            r.instances.pop(0)
        r.container_id = "containerd://" + uuid.uuid4().hex + uuid.uuid4().hex
        r.started_at = now()
        self._emit(pod, "Normal", "Created", f"Created container: {r.name}", r.name)
        if outcome.result == "start_error":
            self._emit(pod, "Warning", "Failed", f"Error: {outcome.message}", r.name)
            self._crash(pod, c, r, outcome, t)
            return
        self._emit(pod, "Normal", "Started", f"Started container {r.name}", r.name)
        self._append(r, outcome.logs)
        sidecar = r.init and c.get("restartPolicy") == "Always"
        completes = outcome.result == "running" and (
            outcome.exits or (r.init and not sidecar and not outcome.keeps_running)
        )
        if outcome.result == "crash" or completes:
            if completes:
                outcome = StartOutcome("crash", exit_code=0)
            self._crash(pod, c, r, outcome, t)
            return
        r.phase = "running"
        r.reason = ""
        r.message = ""
        r.running_since = t
        r.ready = False
        r.probe_at = t + timing.ready_delay
        r.live_failures = 0
        r.startup_ok = not c.get("startupProbe")
        first = c.get("startupProbe") or c.get("livenessProbe")
        r.live_at = t + self._probe_seconds(first, "initialDelaySeconds", 0) if first else float("inf")

    def _probe_seconds(self, probe: Obj, key: str, default: float) -> float:
        """A probe's timing in arena seconds: the probe period stands for the kubelet's default 10 s."""
        return max(float(probe.get(key, default) or 0), 0.0) * self.timing.probe_period / 10.0

    def _probe_alive(self, pod: Obj, c: Obj, r: Run, t: float) -> bool:
        """One startup (until it first succeeds) or liveness probe; True when the container was killed for it."""
        which = "Liveness" if r.startup_ok else "Startup"
        probe = c.get("livenessProbe") if r.startup_ok else c.get("startupProbe")
        if not probe:
            r.live_at = float("inf")
            return False
        r.live_at = t + max(self._probe_seconds(probe, "periodSeconds", 10), self.timing.tick)
        why = self.cluster.behaviour.probe(self.cluster.view, pod, c, probe)
        if why is None:
            r.live_failures = 0
            if not r.startup_ok:
                r.startup_ok = True
                live = c.get("livenessProbe")
                r.live_at = t + self._probe_seconds(live, "initialDelaySeconds", 0) if live else float("inf")
                r.probe_at = t
            return False
        r.live_failures += 1
        self._emit(pod, "Warning", "Unhealthy", f"{which} probe failed: {why}", r.name)
        if r.live_failures < int(probe.get("failureThreshold") or 3):
            return False
        self._emit(
            pod, "Normal", "Killing", f"Container {r.name} failed {which.lower()} probe, will be restarted", r.name
        )
        r.live_at = float("inf")
        self._crash(pod, c, r, StartOutcome("crash", exit_code=137), t)
        return True

    def _probe_message(self, pod: Obj, c: Obj) -> str:
        probe = c.get("readinessProbe") or {}
        ip = (self.runs.get(pod["metadata"]["uid"]) or PodRun("", "", "", "", {}, [])).ip
        if "httpGet" in probe:
            port = probe["httpGet"].get("port")
            path = probe["httpGet"].get("path", "/")
            return (
                f'Readiness probe failed: Get "http://{ip}:{port}{path}": dial tcp {ip}:{port}: connect: '
                "connection refused"
            )
        if "tcpSocket" in probe:
            return (
                f"Readiness probe failed: dial tcp {ip}:{probe['tcpSocket'].get('port')}: connect: connection refused"
            )
        return "Readiness probe failed: command terminated with non-zero exit code"

    def _pull_events(self, pod: Obj, c: Obj, r: Run) -> None:
        image = c.get("image", "")
        policy = c.get("imagePullPolicy", "IfNotPresent")
        if r.pulled and policy != "Always":
            self._emit(pod, "Normal", "Pulled", f'Container image "{image}" already present on machine', r.name)
            return
        self._emit(pod, "Normal", "Pulling", f'Pulling image "{image}"', r.name)
        size = 20_000_000 + (zlib.crc32(image.encode()) % 50_000_000)
        self._emit(
            pod,
            "Normal",
            "Pulled",
            f'Successfully pulled image "{image}" in 412ms (412ms including waiting). Image size: {size} bytes.',
            r.name,
        )
        r.pulled = True

    def _restart_policy_stops(self, pod: Obj, r: Run) -> bool:
        if r.init and r.name in _sidecars(pod):
            return False  # a restartable init container (native sidecar) is restarted whatever its exit
        if r.init:
            return bool(r.terminated and r.terminated.get("exitCode") == 0)
        policy = pod["spec"].get("restartPolicy", "Always")
        code = (r.terminated or {}).get("exitCode", 1)
        return bool(policy == "Never" or (policy == "OnFailure" and code == 0))

    def _finish_instance(self, r: Run, exit_code: int, reason: str, t: float) -> Obj:
        term = {
            "exitCode": exit_code,
            "reason": reason,
            "startedAt": r.started_at,
            "finishedAt": now(),
            "containerID": r.container_id,
        }
        r.ready = False
        return term

    def _crash(self, pod: Obj, c: Obj, r: Run, outcome: StartOutcome, t: float) -> None:
        code = outcome.exit_code if outcome.result in ("crash", "start_error") else 1
        reason = (
            "Completed" if code == 0 else ("OOMKilled" if code == 137 and "oom" in outcome.message.lower() else "Error")
        )
        term = self._finish_instance(r, code, reason, t)
        if outcome.result == "start_error":
            term["reason"] = "StartError"
            term["startedAt"] = "1970-01-01T00:00:00Z"  # containerd never started the process
        if outcome.message and reason != "Completed":
            term["message"] = outcome.message
        r.prev_terminated, r.terminated = r.terminated, term
        r.phase = "crashed"
        if r.init and code == 0 and c.get("restartPolicy") != "Always":
            r.phase = "done"
        r.next_at = t + self.timing.crash_visible

    def _append(self, r: Run, lines: list[str]) -> None:
        if not lines:
            return
        if not r.instances:
            r.instances.append([])
        cur = r.instances[-1]
        ts = now()
        for line in lines:
            for part in str(line).splitlines() or [""]:
                cur.append((ts, part))
        if len(cur) > MAX_LOG_LINES:
            del cur[: len(cur) - MAX_LOG_LINES]

    def append_log(self, pod: Obj, container: str, lines: list[str]) -> None:
        """Lines a running container writes outside the kubelet's own steps (a controller loop's API errors)."""
        run = self.runs.get(pod["metadata"]["uid"])
        r = run.containers.get(container) if run else None
        if r is not None:
            self._append(r, lines)

    # ------------------------------------------------------------------------------------------------- termination

    def _stop_sidecars(self, pod: Obj, run: PodRun, sidecars: set[str], t: float) -> None:
        for name in sidecars:
            r = run.containers.get(name)
            if r is None or r.phase == "done":
                continue
            if r.phase == "running":
                self._emit(pod, "Normal", "Killing", f"Stopping container {r.name}", r.name)
                r.prev_terminated, r.terminated = r.terminated, self._finish_instance(r, 0, "Completed", t)
            elif r.terminated is None:
                r.terminated = {"exitCode": 0, "reason": "Completed", "startedAt": r.started_at, "finishedAt": now()}
            r.phase = "done"

    def _terminate(self, pod: Obj, run: PodRun, t: float) -> None:
        meta = pod["metadata"]
        if run.killing_at is None:
            grace = float(meta.get("deletionGracePeriodSeconds") or 0)
            run.killing_at = t + min(grace, self.timing.termination)
            for r in run.containers.values():
                if r.phase == "running":
                    self._emit(pod, "Normal", "Killing", f"Stopping container {r.name}", r.name)
            return
        if t < run.killing_at:
            return
        if meta.get("finalizers"):
            new = copy.deepcopy(pod)
            for cs in new.get("status", {}).get("containerStatuses") or []:
                cs["ready"] = False
            self.cluster.rest.write(PODS, new)
            return
        self.cluster.rest.force_remove(PODS, meta.get("namespace"), meta["name"])
        self.runs.pop(run.uid, None)

    # ------------------------------------------------------------------------------------------------------- status

    def _container_status(self, c: Obj, r: Run) -> Obj:
        state: Obj
        if r.phase == "running":
            state = {"running": {"startedAt": r.started_at}}
        elif r.phase in ("crashed", "done") and r.terminated:
            state = {"terminated": r.terminated}
        else:
            w: Obj = {"reason": r.reason}
            if r.message:
                w["message"] = r.message
            state = {"waiting": w}
        image = c.get("image", "")
        cs: Obj = {
            "name": r.name,
            "state": state,
            "lastState": {},
            "ready": r.ready and r.phase == "running",
            "restartCount": r.restart_count,
            "image": image,
            "imageID": f"docker.io/library/{image.split(':')[0]}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"
            if r.pulled
            else "",
            "started": r.phase == "running",
        }
        if r.container_id:
            cs["containerID"] = r.container_id
        last = r.prev_terminated if r.phase in ("crashed", "done") else r.terminated
        if last:
            cs["lastState"] = {"terminated": last}
        return cs

    def _write_status(self, pod: Obj, run: PodRun) -> None:
        spec = pod["spec"]
        old = pod.get("status") or {}
        status: Obj = {k: v for k, v in old.items() if k not in ("containerStatuses", "initContainerStatuses")}
        status["conditions"] = [dict(c) for c in old.get("conditions") or []]
        css = [
            self._container_status(c, run.containers[c["name"]])
            for c in spec.get("containers") or []
            if c["name"] in run.containers
        ]
        ics = [
            self._container_status(c, run.containers[c["name"]])
            for c in spec.get("initContainers") or []
            if c["name"] in run.containers
        ]
        sidecars = _sidecars(pod)
        if ics:
            for cs, c in zip(ics, spec.get("initContainers") or [], strict=False):
                r = run.containers[c["name"]]
                if r.phase == "done" and c["name"] not in sidecars:
                    cs["ready"] = True
                    cs["started"] = False
                elif c.get("restartPolicy") != "Always":
                    cs["ready"] = False  # a regular init container is ready only once it has completed
            status["initContainerStatuses"] = ics
        init_done = all(_init_through(run.containers[n], n in sidecars) for n in run.init_order)
        if not init_done:
            for cs in css:
                cs["state"] = {"waiting": {"reason": "PodInitializing"}}
        status["containerStatuses"] = css
        runs = [run.containers[c["name"]] for c in spec.get("containers") or [] if c["name"] in run.containers]
        side_runs = [run.containers[n] for n in run.init_order if n in sidecars]
        all_ready = bool(runs) and all(r.ready and r.phase == "running" for r in runs + side_runs)
        policy = spec.get("restartPolicy", "Always")
        if runs and all(r.phase == "done" for r in runs):
            phase = "Succeeded" if all((r.terminated or {}).get("exitCode") == 0 for r in runs) else "Failed"
        elif init_done and any(r.started_once for r in runs):
            phase = "Running"
        else:
            phase = "Pending"
        _ = policy
        status["phase"] = phase
        status["hostIP"] = run.host_ip
        status["hostIPs"] = [{"ip": run.host_ip}]
        status["podIP"] = run.ip
        status["podIPs"] = [{"ip": run.ip}]
        status["startTime"] = run.start_time
        from arena.objects import set_condition

        set_condition(status, "PodReadyToStartContainers", "True")
        set_condition(
            status,
            "Initialized",
            "True" if init_done else "False",
            "" if init_done else "ContainersNotInitialized",
            ""
            if init_done
            else "containers with incomplete status: ["
            + " ".join(n for n in run.init_order if not _init_through(run.containers[n], n in sidecars))
            + "]",
        )
        not_ready = [r.name for r in runs + side_runs if not (r.ready and r.phase == "running")]
        msg = f"containers with unready status: [{' '.join(not_ready)}]" if not_ready else ""
        done = phase in ("Succeeded", "Failed")
        set_condition(
            status,
            "Ready",
            "True" if all_ready else "False",
            "" if all_ready else ("PodCompleted" if done else "ContainersNotReady"),
            msg,
        )
        set_condition(
            status,
            "ContainersReady",
            "True" if all_ready else "False",
            "" if all_ready else ("PodCompleted" if done else "ContainersNotReady"),
            msg,
        )
        set_condition(status, "PodScheduled", "True")
        order = {"PodReadyToStartContainers": 0, "Initialized": 1, "Ready": 2, "ContainersReady": 3, "PodScheduled": 4}
        status["conditions"].sort(key=lambda c: order.get(c.get("type", ""), 9))
        for cnd in status["conditions"]:
            cnd.setdefault("lastProbeTime", None)
        if status != old:
            new = dict(pod)
            new["status"] = status
            new["metadata"] = dict(pod["metadata"])
            self.cluster.rest.write(PODS, new)

    # ------------------------------------------------------------------------------------------------ logs and exec

    def _pod_and_container(self, ns: str, name: str, container: str | None) -> tuple[Obj, Obj]:
        pod = self.cluster.store.get(PODS.key, ns, name)
        if pod is None:
            raise not_found(PODS, name)
        containers = pod["spec"].get("containers") or []
        inits = pod["spec"].get("initContainers") or []
        if not container:
            default = (pod["metadata"].get("annotations") or {}).get("kubectl.kubernetes.io/default-container")
            if default:
                container = default
            elif len(containers) == 1:
                container = containers[0]["name"]
            else:
                names = " ".join(c["name"] for c in containers)
                extra = f" or one of the init containers: [{' '.join(c['name'] for c in inits)}]" if inits else ""
                raise bad_request(f"a container name must be specified for pod {name}, choose one of: [{names}]{extra}")
        c = next((x for x in containers + inits if x["name"] == container), None)
        if c is None:
            raise bad_request(f"container {container} is not valid for pod {name}")
        return pod, c

    def logs(self, ns: str, name: str, container: str | None, previous: bool) -> list[tuple[str, str]]:
        pod, c = self._pod_and_container(ns, name, container)
        run = self.runs.get(pod["metadata"]["uid"])
        r = run.containers.get(c["name"]) if run else None
        if previous:
            if r is None or (len(r.instances) < 2 and not (r.phase in ("crashed", "waiting") and r.restart_count > 0)):
                raise bad_request(f'previous terminated container "{c["name"]}" in pod "{name}" not found')
            return list(r.instances[-2]) if len(r.instances) >= 2 else []
        if r is None or not r.instances:
            reason = r.reason if r else "ContainerCreating"
            if reason in ("ErrImagePull", "ImagePullBackOff"):
                raise bad_request(
                    f'container "{c["name"]}" in pod "{name}" is waiting to start: trying and failing to pull image'
                )
            if reason == "CreateContainerConfigError":
                raise bad_request(
                    f'container "{c["name"]}" in pod "{name}" is waiting to start: CreateContainerConfigError'
                )
            raise bad_request(
                f'container "{c["name"]}" in pod "{name}" is waiting to start: {reason or "ContainerCreating"}'
            )
        return list(r.instances[-1])

    def exec(self, ns: str, name: str, container: str | None, command: list[str]) -> ExecResult:
        pod, c = self._pod_and_container(ns, name, container)
        if not command:
            raise bad_request("you must specify at least 1 command")
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            raise bad_request(f"cannot exec into a container in a completed pod; current phase is {phase}")
        run = self.runs.get(pod["metadata"]["uid"])
        r = run.containers.get(c["name"]) if run else None
        if r is None or r.phase != "running":
            raise bad_request(f'unable to upgrade connection: container not found ("{c["name"]}")')
        return self.cluster.behaviour.exec(self.cluster.view, pod, c, list(command))


def _sidecars(pod: Obj) -> set[str]:
    """The pod's restartable init containers (``restartPolicy: Always``): native sidecars, which start in init order,
    keep running beside the main containers and do not hold back the pod's completion."""
    return {
        c["name"] for c in (pod.get("spec") or {}).get("initContainers") or [] if c.get("restartPolicy") == "Always"
    }


def _init_through(r: Run, sidecar: bool) -> bool:
    """Whether an init container lets the next one start: it completed, or (a native sidecar) it has started."""
    return r.phase == "done" or (sidecar and r.started_once)


def _secs(s: float) -> str:
    if s >= 60:
        m, sec = divmod(int(s), 60)
        return f"{m}m{sec}s"
    return f"{s:g}s"


_ = time
