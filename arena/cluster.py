"""The emulated cluster: the object store, the REST layer, the controllers and the behaviour, wired together.

Everything that changes objects runs on one asyncio event loop (the server's): the controller loop is a single task
that runs every controller's ``reconcile`` whenever the store changes (and at least every ``Timing.tick``), so
controllers are plain synchronous functions that never race each other. Code on other threads (tests, the
applications half, fault injection) reaches the loop through ``call``/``call_soon``; the convenience methods
``get``/``list``/``create``/``apply``/``patch``/``delete`` do that for them.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import copy
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from arena.controllers.apiclients import ApiClientController
from arena.controllers.autoscaling import HorizontalPodAutoscalerController
from arena.controllers.batch import CronJobController, JobController
from arena.controllers.endpoints import EndpointsController
from arena.controllers.events import EventRecorder
from arena.controllers.kubelet import Kubelet
from arena.controllers.lifecycle import GarbageCollector, NamespaceController, NodeController
from arena.controllers.scheduler import Scheduler
from arena.controllers.volumes import VolumeController
from arena.controllers.workloads import DeploymentController, ReplicaSetController, StatefulSetController
from arena.errors import ApiError
from arena.hooks import Behaviour, DefaultBehaviour, ExecResult
from arena.resources import BY_KIND, ResourceType, by_kind
from arena.rest import Rest
from arena.selectors import match_labels
from arena.store import Change, Obj, Store
from arena.timing import Timing

log = logging.getLogger(__name__)
T = TypeVar("T")
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class StoreView:
    """``ClusterView`` over the store (arena/hooks.py): what the behaviour reads."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        rt = by_kind(kind)
        return self._store.get(rt.key, namespace if rt.namespaced else None, name)

    def list(self, kind: str, namespace: str | None = None, labels: dict[str, str] | None = None) -> list[Obj]:
        rt = by_kind(kind)
        items = self._store.list(rt.key, namespace if rt.namespaced else None)
        if labels:
            reqs = [(k, "=", [v]) for k, v in labels.items()]
            items = [o for o in items if match_labels(reqs, o["metadata"].get("labels"))]
        return items


def node_object(
    name: str,
    index: int,
    cpu: str = "4",
    memory: str = "16Gi",
    pods: str = "110",
    labels: dict[str, str] | None = None,
    taints: list[Obj] | None = None,
) -> Obj:
    lab = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        **(labels or {}),
    }
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    cap = {"cpu": cpu, "memory": memory, "pods": pods, "ephemeral-storage": "100Gi", "hugepages-2Mi": "0"}

    def cond(t: str, status: str, reason: str, msg: str) -> Obj:
        return {
            "type": t,
            "status": status,
            "lastHeartbeatTime": ts,
            "lastTransitionTime": ts,
            "reason": reason,
            "message": msg,
        }

    node: Obj = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": lab,
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {"podCIDR": f"10.244.{index}.0/24", "podCIDRs": [f"10.244.{index}.0/24"]},
        "status": {
            "capacity": cap,
            "allocatable": dict(cap),
            "conditions": [
                cond(
                    "MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"
                ),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": f"10.0.0.{10 + index}"},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": f"{index:032x}",
                "systemUUID": f"00000000-0000-0000-0000-{index:012x}",
                "bootID": f"00000000-0000-0000-0000-{index:012x}",
                "kernelVersion": "6.1.0-arena-amd64",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "containerRuntimeVersion": "containerd://1.7.24",
                "kubeletVersion": "v1.37.0",
                "kubeProxyVersion": "v1.37.0",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    }
    if taints:
        node["spec"]["taints"] = taints
    return node


class Cluster:
    def __init__(
        self,
        behaviour: Behaviour | None = None,
        nodes: int | Iterable[Obj] = 3,
        timing: Timing | None = None,
    ) -> None:
        self.timing = timing or Timing()
        self.behaviour: Behaviour = behaviour or DefaultBehaviour()
        self.store = Store()
        self.rest = Rest(self.store)
        self.view = StoreView(self.store)
        self.events = EventRecorder(self.rest, self.timing.max_events)
        self.kubelet = Kubelet(self)
        self.scheduler = Scheduler(self)
        self.volumes = VolumeController(self)
        self.controllers: list[Any] = [
            NamespaceController(self),
            NodeController(self),
            DeploymentController(self),
            ReplicaSetController(self),
            StatefulSetController(self),
            CronJobController(self),
            JobController(self),
            self.volumes,
            self.scheduler,
            self.kubelet,
            EndpointsController(self),
            HorizontalPodAutoscalerController(self),
            ApiClientController(self),
            GarbageCollector(self),
        ]
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread_id: int | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._dirty: set[str] = set()
        self._structural = True
        self._due: dict[int, float] = {}
        self.store.listeners.append(self._on_change)
        self._bootstrap(nodes)

    # --------------------------------------------------------------------------------------------------- bootstrap

    def _bootstrap(self, nodes: int | Iterable[Obj]) -> None:
        for ns in SYSTEM_NAMESPACES:
            self.rest.create(BY_KIND["Namespace"], None, {"metadata": {"name": ns}})
        if isinstance(nodes, int):
            node_objs = [node_object(f"node-{i}", i) for i in range(1, nodes + 1)]
        else:
            node_objs = [
                n if "status" in n else node_object(n["name"], i, **{k: v for k, v in n.items() if k != "name"})
                for i, n in enumerate(nodes, start=1)
            ]
        for n in node_objs:
            self._create_node(n)
        from arena.behaviour.dns import COREDNS_CONFIGMAP, COREDNS_NAMESPACE, DEFAULT_COREFILE

        self.rest.create(
            BY_KIND["ConfigMap"],
            COREDNS_NAMESPACE,
            {"metadata": {"name": COREDNS_CONFIGMAP}, "data": {"Corefile": DEFAULT_COREFILE}},
        )
        self.rest.create(
            BY_KIND["Service"],
            "default",
            {
                "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "targetPort": 6443}]},
            },
        )

    def _create_node(self, node: Obj) -> Obj:
        obj = copy.deepcopy(node)
        status = obj.get("status")
        created = self.rest.create(BY_KIND["Node"], None, obj)
        if status:
            upd = copy.deepcopy(created)
            upd["status"] = status
            created = self.rest.write(BY_KIND["Node"], upd)
        return created

    def add_node(
        self,
        name: str,
        cpu: str = "4",
        memory: str = "16Gi",
        pods: str = "110",
        labels: dict[str, str] | None = None,
        taints: builtins.list[Obj] | None = None,
    ) -> Obj:
        """Register a Ready node (as a kubelet joining the cluster does)."""
        index = len(self.store.list("nodes")) + 1
        node = node_object(name, index, cpu, memory, pods, labels, taints)
        return copy.deepcopy(self.call(self._create_node, node))

    def set_node_ready(self, name: str, ready: bool) -> None:
        """Flip a node's Ready condition (a kubelet that stops or resumes posting status)."""

        def run() -> None:
            node = self.rest.get(BY_KIND["Node"], None, name)
            upd = copy.deepcopy(node)
            for c in upd["status"].get("conditions") or []:
                if c.get("type") == "Ready":
                    c["status"] = "True" if ready else "Unknown"
                    c["reason"] = "KubeletReady" if ready else "NodeStatusUnknown"
                    c["message"] = (
                        "kubelet is posting ready status" if ready else "Kubelet stopped posting node status."
                    )
            self.rest.write(BY_KIND["Node"], upd)

        self.call(run)

    # ---------------------------------------------------------------------------------------------- the loop

    def _on_change(self, change: Change) -> None:
        if change.key == "events":
            return  # no controller reads events
        self._dirty.add(change.key)
        if change.key == "pods":
            self.kubelet.mark(change.obj["metadata"].get("namespace") or "", change.obj["metadata"]["name"])
        meta, old_meta = change.obj.get("metadata", {}), (change.old or {}).get("metadata", {})
        if (
            change.type == "DELETED"
            or meta.get("deletionTimestamp")
            or meta.get("ownerReferences") != old_meta.get("ownerReferences")
        ):
            self._structural = True
        wake, loop = self._wake, self.loop
        if wake is None or loop is None:
            return
        if threading.get_ident() == self._thread_id:
            wake.set()
        else:
            loop.call_soon_threadsafe(wake.set)

    def reconcile_once(self, force: bool = False) -> None:
        """One pass: each controller runs when a kind it watches changed, when its own timer is due (back-offs,
        probes, retries), or at least every ``Timing.resync``; the garbage collector when something was deleted or
        re-owned. Idle passes cost next to nothing, so API writes do not drag every controller along."""
        t = time.monotonic()
        dirty, self._dirty = self._dirty, set()
        structural, self._structural = self._structural, False
        for c in self.controllers:
            watches: frozenset[str] | None = getattr(c, "watches", None)
            run = (
                force
                or watches is None
                or t >= self._due.get(id(c), 0.0)
                or bool(dirty & watches)
                or (structural and getattr(c, "structural", False))
            )
            if not run:
                continue
            try:
                c.reconcile(t)
            except Exception:
                log.exception("controller %s failed", type(c).__name__)
            due = t + self.timing.resync
            next_due = getattr(c, "next_due", None)
            if next_due is not None:
                due = min(due, next_due(t))
            self._due[id(c)] = due

    async def run(self) -> None:
        """The controller loop; runs until ``stop``."""
        self.loop = asyncio.get_running_loop()
        self._thread_id = threading.get_ident()
        self._wake = asyncio.Event()
        while not self._stopping:
            self._wake.clear()
            self.reconcile_once()
            try:
                await asyncio.wait_for(self._wake.wait(), self.timing.tick)
            except TimeoutError:
                pass
            await asyncio.sleep(0.005)

    def stop(self) -> None:
        self._stopping = True
        if self._wake is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(self._wake.set)

    # ------------------------------------------------------------------------------------ calls from other threads

    def on_loop(self) -> bool:
        return self.loop is None or threading.get_ident() == self._thread_id

    def call(self, fn: Callable[..., T], *args: Any, timeout: float = 30.0, **kwargs: Any) -> T:
        """Run ``fn(*args)`` on the cluster's loop and return its result (directly when already there)."""
        if self.on_loop():
            return fn(*args, **kwargs)
        assert self.loop is not None
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(fn(*args, **kwargs))
            except BaseException as exc:
                fut.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return fut.result(timeout)

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Schedule ``fn(*args)`` on the cluster's loop without waiting."""
        if self.loop is None:
            fn(*args)
        else:
            self.loop.call_soon_threadsafe(fn, *args)

    # -------------------------------------------------------------------------------------- in-process object API

    def get(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        """A deep copy of the object, or None."""
        obj = self.view.get(kind, namespace, name)
        return copy.deepcopy(obj) if obj is not None else None

    def list(self, kind: str, namespace: str | None = None, labels: dict[str, str] | None = None) -> list[Obj]:
        return copy.deepcopy(self.view.list(kind, namespace, labels))

    def create(self, obj: Obj, dry_run: bool = False) -> Obj:
        rt = by_kind(obj["kind"])
        return copy.deepcopy(self.call(self.rest.create, rt, obj.get("metadata", {}).get("namespace"), obj, dry_run))

    def apply(self, obj: Obj) -> Obj:
        """Create the object, or replace the existing one's spec/data/labels with ``obj``'s (a simple apply)."""
        rt = by_kind(obj["kind"])

        def run() -> Obj:
            ns = obj.get("metadata", {}).get("namespace") or ("default" if rt.namespaced else None)
            cur = self.store.get(rt.key, ns if rt.namespaced else None, obj["metadata"]["name"])
            if cur is None:
                return self.rest.create(rt, ns, obj)
            new = copy.deepcopy(obj)
            new.setdefault("metadata", {})["resourceVersion"] = cur["metadata"]["resourceVersion"]
            return self.rest.update(rt, ns, obj["metadata"]["name"], new)

        return copy.deepcopy(self.call(run))

    def patch(
        self,
        kind: str,
        namespace: str | None,
        name: str,
        patch: Any,
        patch_type: str = "strategic",
        subresource: str | None = None,
    ) -> Obj:
        rt = by_kind(kind)
        return copy.deepcopy(self.call(self.rest.patch, rt, namespace, name, patch_type, patch, False, subresource))

    def delete(
        self, kind: str, namespace: str | None, name: str, propagation: str | None = None, grace: int | None = None
    ) -> Obj | None:
        rt = by_kind(kind)
        try:
            return copy.deepcopy(self.call(self.rest.delete, rt, namespace, name, propagation, grace))
        except ApiError as e:
            if e.code == 404:
                return None
            raise

    def events_for(self, kind: str, namespace: str | None, name: str) -> builtins.list[Obj]:
        return [
            e
            for e in self.list("Event", namespace or "default")
            if (e.get("involvedObject") or {}).get("kind") == kind
            and (e.get("involvedObject") or {}).get("name") == name
        ]

    # -------------------------------------------------------------------------------------------- kubelet façade

    def logs(
        self, namespace: str, pod: str, container: str | None = None, previous: bool = False
    ) -> builtins.list[tuple[str, str]]:
        """(timestamp, line) pairs of a container's current (or previous) run."""
        return self.call(self.kubelet.logs, namespace, pod, container, previous)

    def exec(self, namespace: str, pod: str, container: str | None, command: builtins.list[str]) -> ExecResult:
        return self.call(self.kubelet.exec, namespace, pod, container, command)

    def bind(self, namespace: str, pod: str, node: str) -> None:
        def run() -> None:
            obj = self.rest.get(BY_KIND["Pod"], namespace, pod)
            self.scheduler.bind(obj, node)

        self.call(run)

    def resource(self, kind: str) -> ResourceType:
        return by_kind(kind)
