"""A dict-backed ClusterView with a ten-line kubelet: a test double for the behaviour's view, not an arena."""

from __future__ import annotations

import copy
import itertools
from typing import Any

from arena.apps import APPS
from arena.behaviour.model import AppBehaviour
from arena.hooks import Obj, StartOutcome

CLUSTER_SCOPED = {"Namespace", "PersistentVolume", "StorageClass", "Node"}


class MiniCluster:
    def __init__(self, behaviour: AppBehaviour | None = None) -> None:
        self.objects: dict[tuple[str, str | None, str], Obj] = {}
        self.behaviour = behaviour or AppBehaviour()
        self.ips = itertools.count(10)
        self.uids = itertools.count(1)
        self.outcomes: dict[tuple[str, str], StartOutcome] = {}
        self.logs: dict[tuple[str, str], list[str]] = {}

    # -- ClusterView ------------------------------------------------------------------------------------------
    def get(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        return self.objects.get((kind, None if kind in CLUSTER_SCOPED else namespace, name))

    def list(self, kind: str, namespace: str | None = None, labels: dict[str, str] | None = None) -> list[Obj]:
        out = []
        for (k, ns, _), obj in self.objects.items():
            if k != kind or (namespace is not None and ns != namespace):
                continue
            have = obj["metadata"].get("labels") or {}
            if all(have.get(a) == b for a, b in (labels or {}).items()):
                out.append(obj)
        return out

    # -- writes ------------------------------------------------------------------------------------------------
    def put(self, obj: Obj) -> None:
        obj = copy.deepcopy(obj)
        kind, m = obj["kind"], obj["metadata"]
        m.setdefault("uid", f"uid-{next(self.uids)}")
        self.objects[(kind, None if kind in CLUSTER_SCOPED else m.get("namespace"), m["name"])] = obj

    def deploy(self, app: str) -> None:
        for doc in APPS[app].manifests():
            self.put(doc)
        for pvc in self.list("PersistentVolumeClaim"):
            pv = next(
                p
                for p in self.list("PersistentVolume")
                if p["spec"]["storageClassName"] == pvc["spec"]["storageClassName"]
            )
            pvc["spec"]["volumeName"] = pv["metadata"]["name"]
        for d in self.list("Deployment"):
            self.make_pod(d)

    def make_pod(self, deployment: Obj) -> Obj:
        tpl = deployment["spec"]["template"]
        name = f"{deployment['metadata']['name']}-{next(self.uids):05d}"
        pod = {
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": deployment["metadata"]["namespace"],
                "labels": dict(tpl["metadata"]["labels"]),
            },
            "spec": copy.deepcopy(tpl["spec"]),
            "status": {"phase": "Pending", "podIP": f"10.244.0.{next(self.ips)}", "containerStatuses": []},
        }
        self.put(pod)
        return self.get("Pod", pod["metadata"]["namespace"], name)  # type: ignore[return-value]

    def delete(self, kind: str, namespace: str | None, name: str) -> None:
        self.objects.pop((kind, namespace, name), None)

    def pods(self, namespace: str, **labels: str) -> list[Obj]:
        return self.list("Pod", namespace, labels or None)

    # -- the tiny kubelet --------------------------------------------------------------------------------------
    def start(self, pod: Obj) -> None:
        statuses = []
        for c in pod["spec"]["containers"]:
            out = self.behaviour.start(self, pod, c)
            self.outcomes[(pod["metadata"]["name"], c["name"])] = out
            self.logs.setdefault((pod["metadata"]["name"], c["name"]), []).extend(out.logs)
            state: dict[str, Any]
            if out.result == "running":
                state = {"running": {"startedAt": "now"}}
            elif out.result == "crash":
                state = {"waiting": {"reason": "CrashLoopBackOff"}}
            else:
                state = {"waiting": {"reason": "ImagePullBackOff", "message": out.message}}
            statuses.append({"name": c["name"], "state": state, "ready": False, "restartCount": 0})
        pod["status"]["containerStatuses"] = statuses
        self.refresh(pod)

    def refresh(self, pod: Obj) -> None:
        ready = True
        for c, cs in zip(pod["spec"]["containers"], pod["status"]["containerStatuses"], strict=True):
            cs["ready"] = "running" in cs["state"] and self.behaviour.ready(self, pod, c)
            ready = ready and cs["ready"]
        pod["status"]["phase"] = "Running"
        pod["status"]["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]

    def settle(self, namespace: str, rounds: int = 4) -> None:
        """(Re)start every non-running container until nothing changes; then collect periodic logs."""
        for _ in range(rounds):
            for pod in self.pods(namespace):
                if not pod["status"]["containerStatuses"] or any(
                    "running" not in cs["state"] for cs in pod["status"]["containerStatuses"]
                ):
                    self.start(pod)
                else:
                    self.refresh(pod)
                for c in pod["spec"]["containers"]:
                    lines = self.behaviour.periodic_logs(self, pod, c)
                    self.logs.setdefault((pod["metadata"]["name"], c["name"]), []).extend(lines)

    def pod_logs(self, pod: Obj, container: str | None = None) -> list[str]:
        name = container or pod["spec"]["containers"][0]["name"]
        return self.logs.get((pod["metadata"]["name"], name), [])
