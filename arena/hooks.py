"""The seam between the arena's cluster half (API server, controllers, kubelet) and its behaviour half
(applications, images, databases, requests).

The kubelet emulation never decides on its own whether a container works: it asks a ``Behaviour``. The cluster half
ships ``DefaultBehaviour`` (every image starts and is ready, except images listed as unknown); the applications half
supplies a behaviour that derives outcomes from the cluster's state (image catalogue, DNS -> Service -> endpoints ->
ports, database users), so symptoms are emergent, never keyed to a fault's name.

Everything here is synchronous and cheap: the kubelet calls it from its control loop.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Obj = dict[str, Any]
"""A Kubernetes object as the API serves it (JSON-shaped dict)."""


class ClusterView(Protocol):
    """Read access to the arena's object store, as the behaviour sees it."""

    def get(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        """The object, or None. ``kind`` is the Kind (``Service``, ``Pod``...); cluster-scoped kinds take None."""
        ...

    def list(self, kind: str, namespace: str | None = None, labels: dict[str, str] | None = None) -> list[Obj]:
        """Objects of a kind, optionally in one namespace and matching every label given."""
        ...


@dataclass(frozen=True)
class StartOutcome:
    """What happens when the kubelet (re)starts one container."""

    result: Literal["running", "crash", "pull_error", "config_error", "start_error"]
    """``start_error``: the runtime could not start the process (e.g. the binary is missing): containerd reports
    terminated reason ``StartError`` (exit 128) and the kubelet a ``Failed`` event, then backs off as for a crash."""
    logs: list[str] = field(default_factory=list)
    """Lines the container writes (for a crash: before it exits)."""
    exit_code: int = 0
    """For ``crash``: the exit code (the kubelet reports reason ``Error``, or ``Completed`` for 0)."""
    message: str = ""
    """For ``pull_error``/``config_error``: the waiting message (e.g. the registry's answer)."""
    keeps_running: bool = False
    """For ``running`` in an init container: the process does not exit on its own (``sleep infinity``, a wait loop
    that never succeeds), so the pod stays ``Init:N/M``; otherwise an init container's run completes (exit 0)."""
    exits: bool = False
    """For ``running``: the process finishes its work and exits 0 on its own (``sleep 5``), in any container; the
    kubelet then applies the pod's restartPolicy (a Job's pod Succeeds, a Deployment's container is restarted)."""


@dataclass(frozen=True)
class ExecResult:
    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0


class Behaviour(Protocol):
    def start(self, view: ClusterView, pod: Obj, container: Obj) -> StartOutcome:
        """Decide the outcome of starting ``container`` (an item of ``pod.spec.containers``)."""
        ...

    def ready(self, view: ClusterView, pod: Obj, container: Obj) -> bool:
        """Readiness of a running container; re-asked periodically, so it may change."""
        ...

    def alive(self, view: ClusterView, pod: Obj, container: Obj) -> StartOutcome | None:
        """Asked periodically for a running container: None while it keeps running, else how it dies."""
        ...

    def exec(self, view: ClusterView, pod: Obj, container: Obj, command: list[str]) -> ExecResult:
        """Run ``command`` inside a running container (``kubectl exec``)."""
        ...

    def probe(self, view: ClusterView, pod: Obj, container: Obj, probe: Obj) -> str | None:
        """One liveness or startup probe (``exec``, ``httpGet``, ``tcpSocket`` or ``grpc``) of a running container:
        None when it succeeds, else the prober's failure text (the event's message after "... probe failed: ")."""
        ...

    def periodic_logs(self, view: ClusterView, pod: Obj, container: Obj) -> Iterable[str]:
        """Lines a running container writes since the last call (e.g. a retry loop's errors)."""
        ...


class DefaultBehaviour:
    """Every container starts, is ready and stays alive, unless its image is listed in ``unknown_images``."""

    def __init__(self, unknown_images: Iterable[str] = ()) -> None:
        self.unknown_images = set(unknown_images)

    def start(self, view: ClusterView, pod: Obj, container: Obj) -> StartOutcome:
        image = str(container.get("image", ""))
        if not image or image in self.unknown_images:
            return StartOutcome(
                "pull_error",
                message=f'Failed to pull image "{image}": rpc error: code = NotFound desc = failed to pull and '
                f'unpack image "{image}": not found',
            )
        return StartOutcome("running", logs=[f"started {container.get('name')}"])

    def ready(self, view: ClusterView, pod: Obj, container: Obj) -> bool:
        return True

    def alive(self, view: ClusterView, pod: Obj, container: Obj) -> StartOutcome | None:
        return None

    def exec(self, view: ClusterView, pod: Obj, container: Obj, command: list[str]) -> ExecResult:
        if command[:1] == ["echo"]:
            return ExecResult(stdout=" ".join(command[1:]) + "\n")
        if command[:1] in (["true"], ["sh"], ["/bin/sh"]):
            return ExecResult()
        return ExecResult(stderr=f"exec: {command[0]!r}: executable file not found in $PATH\n", exit_code=127)

    def periodic_logs(self, view: ClusterView, pod: Obj, container: Obj) -> Iterable[str]:
        return ()

    def probe(self, view: ClusterView, pod: Obj, container: Obj, probe: Obj) -> str | None:
        return None
