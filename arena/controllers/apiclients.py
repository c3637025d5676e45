"""Pods that call the Kubernetes API: the controller loops some programs run (``Program.finalizer_controller``).

A loop runs only while its container is running on its pod (a pod scaled away, crash-looping or not started yet
reconciles nothing). Each API call it makes is authorised with the pod's ServiceAccount through the cluster's RBAC
objects (arena/rbac.py): an allowed patch removes the finalizer, a refused call is logged by the container as the
API's ``403 Forbidden`` answer, and the loop tries again at its next period.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from arena.apps.catalogue import Catalogue, expand
from arena.behaviour.world import ProcessError, process_of
from arena.objects import is_terminating
from arena.rbac import allowed, forbidden_message
from arena.resources import by_kind
from arena.selectors import match_labels
from arena.store import Obj

if TYPE_CHECKING:
    from arena.cluster import Cluster

log = logging.getLogger(__name__)


def _running(pod: Obj, name: str) -> bool:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == name:
            return "running" in (cs.get("state") or {})
    return False


def _selector(text: str) -> list[tuple[str, str, list[str]]]:
    reqs = []
    for part in text.split(","):
        if "=" in part:
            k, v = part.split("=", 1)
            reqs.append((k.strip().rstrip("="), "=", [v.strip().lstrip("=")]))
    return reqs


class ApiClientController:
    watches: frozenset[str] = frozenset()
    """Runs on its own timer: each loop has a period."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.last: dict[tuple[str, str], float] = {}

    def next_due(self, t: float) -> float:
        return t + 0.5

    def _catalogue(self) -> Catalogue | None:
        rt = getattr(self.cluster.behaviour, "rt", None)
        return getattr(rt, "catalogue", None)

    def reconcile(self, t: float) -> None:
        catalogue = self._catalogue()
        if catalogue is None:
            return
        for pod in self.cluster.store.list("pods"):
            if is_terminating(pod) or (pod.get("status") or {}).get("phase") != "Running":
                continue
            for c in (pod.get("spec") or {}).get("containers") or []:
                if not _running(pod, c["name"]):
                    continue
                try:
                    proc = process_of(catalogue, c)
                except ProcessError:
                    continue
                loop = proc.program.finalizer_controller
                if loop is None:
                    continue
                key = (pod["metadata"]["uid"], c["name"])
                if t - self.last.get(key, -1e9) < loop.every_s * self.cluster.timing.probe_period:
                    continue
                self.last[key] = t
                lines = self._finalizer_loop(pod, proc.config, loop.resource, loop.selector, loop.finalizer)
                if lines:
                    self.cluster.kubelet.append_log(pod, c["name"], lines)
        live = {p["metadata"]["uid"] for p in self.cluster.store.list("pods")}
        for key in [k for k in self.last if k[0] not in live]:
            del self.last[key]

    def _finalizer_loop(
        self, pod: Obj, config: dict[str, str], resource: str, selector: str, finalizer: str
    ) -> list[str]:
        view = self.cluster.view
        ns = str(pod["metadata"].get("namespace"))
        sa = str((pod.get("spec") or {}).get("serviceAccountName") or "default")
        resource, selector, finalizer = expand(resource, config), expand(selector, config), expand(finalizer, config)
        try:
            rt = by_kind(resource)
        except KeyError:
            return [f"reconcile failed: the server could not find the requested resource ({resource})"]
        if not allowed(view, ns, sa, "list", rt.plural, None, rt.group):
            msg = forbidden_message(ns, sa, "list", rt.plural, None, group=rt.group)
            return [f"reconcile failed: HTTP 403 Forbidden: {msg}"]
        reqs = _selector(selector)
        lines: list[str] = []
        for obj in self.cluster.store.list(rt.key):
            meta = obj["metadata"]
            if not is_terminating(obj) or finalizer not in (meta.get("finalizers") or []):
                continue
            if not match_labels(reqs, meta.get("labels")):
                continue
            ons = meta.get("namespace")
            if not allowed(view, ns, sa, "patch", rt.plural, ons, rt.group, meta["name"]):
                msg = forbidden_message(ns, sa, "patch", rt.plural, ons, meta["name"], rt.group)
                lines.append(f"reconcile {ons}/{meta['name']} failed: HTTP 403 Forbidden: {msg}")
                continue
            self.cluster.rest.finalize(rt, obj, finalizer)
            lines.append(f"removed finalizer {finalizer} from {rt.singular} {ons}/{meta['name']}")
        return lines
