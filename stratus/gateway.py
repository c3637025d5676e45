"""The cluster gateway: the only way Stratus agents touch the Kubernetes API.

Why it is shaped this way:

- **Two faces.** ``ReadGateway`` (detector, diagnoser) executes reads and renders them as text an agent can read;
  every write it is asked for is refused. ``WriteGateway`` (mitigator, undoer) adds writes, and only under a lease.
- **Every write is a write-ahead step (DESIGN.md R2), in this order:** confine -> the lease's scope must equal the
  action's scope -> the write policy's request rules (kind, verb, scope: ``WritePolicy.check_request``) -> read the
  pre-image -> server-side dry run (``dryRun=All``; a failure returns the API's message and nothing changes) -> the
  policy's result rules (``check_result``, on the dry run's object) -> the ready-capacity guard (a write that would
  terminate Ready pods is refused, ``stratus.disruption``: undo restores specs, not processes) -> the undo record (an
  action with no recordable undo is refused) -> ``journal_intent`` (if it raises, the write is not sent) with the
  fencing check beside it -> the write -> ``journal_outcome``. Undo writes (``apply_undo``) skip the guard: they
  restore the pre-image.
- **Where the time goes, and what is not waited for.** A write costs a dry run, the intent's acknowledgement (the
  fence is checked meanwhile) and the write. For an update of an existing object the intent does not depend on the
  dry run (its undo restores the pre-image), so it is appended while the dry run is on the wire, and voided with an
  ``ok=False`` outcome (which the undoer skips) when the write is then refused or its dry run fails; undoing it had the
  void been lost would restore an unchanged pre-image. A create, a delete or an exec is journaled only once judged
  (the undo of a create that never ran would delete somebody else's object). The pre-image of an object this gateway
  wrote last, when the object has no status (nothing but writers change it), is the response to that write rather
  than a new GET: the request carries its resourceVersion as a precondition, so the dry run proves it current, and a
  conflict reads again. An intent without an outcome is undone anyway, so no write waits for its own outcome: the
  outcome of a write the API accepted goes out with the next intent as one JetStream message (``journal_batch``;
  alone at ``flush``), and any other outcome (a refused write, which the undoer skips; a failed command) is sent at
  once and acknowledged before the next intent.
- **One thread per write where it can be.** A write is CPU-bound in one Python process. Given ``journal_wire`` and
  ``fence_wire`` (the mitigator passes them), an update journaled ahead is one worker call (``_ahead_wired``): it
  sends the fence check and the intent on connections of its own (``stratus.alock.BlockingFence``,
  ``stratus.walwire``), sends the dry run, reads both answers, judges, and sends the write only after a clear yes from
  the fence and the intent's acknowledgement; meanwhile the event loop is idle instead of competing for the
  interpreter. What the worker cannot settle goes the event loop's way (a fence without a clear yes is asked of
  ``check_fence``). The write and its dry run are serialised once (``KubeApi.prepare``): the same bytes, the dry run's
  URL with ``dryRun=All`` appended.
- **The undo restores exactly what the write replaced.** Every write carries the pre-image's ``resourceVersion`` as a
  precondition (in the patch body, as a JSON-patch ``test`` op, or as delete preconditions). Controllers bump it with
  status updates all the time, so on a conflict the object is read again: if its spec-level state (``digest.normalise``)
  still equals the pre-image's, the recorded undo is still exact and the write is retried, fenced again; otherwise the
  write fails, nothing changes, and the outcome ``ok=False`` tells the undoer to skip it.
- **Undo records are data.** update/patch/scale/set_*/rollout_*/cordon -> ``replace`` with the pre-image (server
  fields stripped); create (or apply of a new object) -> ``delete``; delete -> ``create`` from the pre-image; delete of
  a pod (or ReplicaSet) whose controller exists -> no undo, recorded as "controller-owned, verified"; exec -> the
  data-plane catalogue's inverse, with the state it overwrites read first when its inverse needs it (a consumer
  group's committed offset; ``stratus.dataplane``). ``apply_undo`` executes them idempotently (a replay after a crash
  must converge): ``replace`` uses the *current* resourceVersion and creates a missing object, ``delete`` of an absent
  object is done, ``create`` of a present object becomes a replace. Undo writes are fenced like any other write.
- **Fencing is the A-Lock's.** The gateway takes ``check_fence(scope, token)`` as a callable (``ALock.ensure_fence``
  fits; a callable returning ``False`` also counts as a refusal) and calls it immediately before each request that
  changes the cluster; it never imports the lock.
- **Raw JSON over the official client.** Requests go through ``kubernetes.client.ApiClient`` (auth, TLS, kubeconfig and
  in-cluster config), but bodies stay plain dicts: pre-images and undo records must be exact JSON, not models that drop
  unknown fields. The client is synchronous; the async methods run it in a thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import dataclasses
import functools
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, Self, cast
from urllib.parse import urlencode

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from pydantic import BaseModel, ConfigDict, Field

from stratus import dataplane
from stratus.actions import (
    CLUSTER_SCOPE,
    KINDS,
    Action,
    Apply,
    Create,
    Delete,
    Describe,
    Events,
    Exec,
    Get,
    ListObjects,
    Logs,
    Replace,
    RolloutHistory,
    RolloutRestart,
    RolloutStatus,
    RolloutUndo,
    Scale,
    SetEnv,
    SetImage,
    resolve_kind,
)
from stratus.confinement import Refusal, Role, confine_action
from stratus.contracts import JournalRecord, Lease, new_id
from stratus.digest import (
    CLUSTER_DIGEST_KINDS,
    NAMESPACED_DIGEST_KINDS,
    SERVER_METADATA,
    StateDigest,
    digest_of,
    normalise,
)
from stratus.disruption import ready_capacity_loss
from stratus.errors import PermanentError, StratusError
from stratus.identity import InvalidIdentity
from stratus.kubectl import parse_command, render_describe, render_events, render_object, render_table
from stratus.scrub import redact_secret
from stratus.writepolicy import (
    REVISION_KINDS,
    Program,
    WritePolicy,
    configmap_content_changed,
    history_features,
    history_images,
    history_programs,
    introduced_features,
    introduced_images,
    introduced_programs,
    recorded_features,
    recorded_images,
    recorded_object,
    recorded_programs,
)
from stratus.writerequest import (
    WireRequest,
    build_write,
    copy_json,
    create_request,
    delete_request,
    object_path,
    patch_request,
    precondition_of,
    replace_request,
)

Obj = dict[str, Any]
log = logging.getLogger(__name__)

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
REVISION = "deployment.kubernetes.io/revision"
CONFLICT_RETRIES = 5
INTENT_WAIT_S = 10.0
"""How long a worker that has judged a write waits for its intent's acknowledgement before giving up unsent."""
STOP_WAIT_S = 90.0
"""How long a data-plane operation that stops Deployments waits for their pods to be gone."""
READY_WAIT_S = 120.0
"""How long it waits, after restoring them, for their Ready pods to be back."""
POLL_S = 0.5
"""How often those two waits look at the pods."""
WRITTEN_CACHE = 64
"""How many of its own write responses a gateway keeps as candidate pre-images (see ``WriteGateway._write``)."""
CONSUMER_KINDS = ("Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob")
"""The kinds whose pods may read a ConfigMap: pods, and the objects holding pod templates."""
CONSUMERS_TTL_S = 2.0
"""How long a gateway trusts its listing of a namespace's consumers of ConfigMaps (its own writes refresh it)."""
RECREATING_OWNERS = {"Pod": {"ReplicaSet", "StatefulSet", "DaemonSet", "Job"}, "ReplicaSet": {"Deployment"}}
"""Kinds whose deletion a live controller undoes by itself, and the controllers that do it."""


class KubeApiError(StratusError):
    """The API server refused a request; ``str()`` reads like kubectl's ``Error from server``."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"Error from server ({reason}): {message}" if status else message)
        self.status = status
        self.reason = reason
        self.api_message = message

    @classmethod
    def from_response(cls, status: int, data: bytes) -> KubeApiError:
        try:
            body = json.loads(data)
            return cls(status, str(body.get("reason") or status), str(body.get("message") or body))
        except (ValueError, AttributeError):
            return cls(status, str(status), data.decode("utf-8", "replace").strip() or f"HTTP {status}")


class ExecFailed(KubeApiError):
    """The command ran and exited non-zero: it may have changed something, so its undo is still due."""


class FencingRefused(PermanentError):
    """The fencing check answered False: the lease is no longer the scope's current writer."""


class FenceCheck(Protocol):
    def __call__(self, scope: str, token: int, /) -> Awaitable[object]:
        """Raise (or return False) unless ``token`` is ``scope``'s current write lease."""
        ...


class JournalCallback(Protocol):
    def __call__(self, record: JournalRecord, /) -> Awaitable[object]:
        """Append ``record`` durably; raise if it could not be appended."""
        ...


class BatchCallback(Protocol):
    def __call__(self, records: list[JournalRecord], /) -> Awaitable[object]:
        """Append ``records`` (in order) durably as one unit; raise if they could not be appended."""
        ...


class WiredAppend(Protocol):
    def wait(self) -> int:
        """The append's stream sequence once acknowledged; raise if it was refused or not acknowledged."""
        ...

    def abandon(self) -> None:
        """Give up on the acknowledgement (it will not be read)."""
        ...


class WiredJournal(Protocol):
    """The journal's appends from a worker thread (``stratus.journal.Journal``: ``wire_ready``, ``begin_wired``)."""

    def wire_ready(self, tx_id: str) -> bool: ...

    def begin_wired(self, records: list[JournalRecord]) -> WiredAppend: ...


class WiredFence(Protocol):
    """The fence check from a worker thread (``stratus.alock.BlockingFence``)."""

    def send(self, scope: str, token: int) -> bool: ...

    def passes(self) -> bool: ...

    def abandon(self) -> None: ...


class WriteResult(BaseModel):
    """What a write (or an undo write) did."""

    model_config = ConfigDict(frozen=True)

    ok: bool = Field(description="True when the write was executed and the API accepted it.")
    action: Action = Field(description="The action as journaled.")
    message: str = Field(description="What happened, for the agent: the API's message on failure.")
    executed: bool = Field(description="False when nothing was sent (dry run failed, refused).")
    object: dict[str, Any] | None = Field(default=None, description="Summary of the object after the write.")
    seq: int | None = Field(default=None, description="Journal sequence number of the write.")
    undo: list[Action] = Field(default_factory=list, description="The undo recorded before the write.")


def _now() -> datetime:
    return datetime.now(UTC)


def _controlled_by(obj: Obj, uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("controller") and ref.get("uid") == uid for ref in refs)


_PHASE_ORDER = {"Running": 0, "Unknown": 1, "Pending": 2}


def _logging_order(pod: Obj) -> tuple[int, int, int, str, int, str]:
    """The pod ``kubectl logs deploy/NAME`` reads first (kubectl's ByLogging order): scheduled before unscheduled,
    Running before Unknown before Pending, Ready before not, Ready for longer first, more container restarts first (a
    crash-looping pod has a previous log), older first."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    ready: Obj = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    is_ready = ready.get("status") == "True"
    restarts = max((int(cs.get("restartCount") or 0) for cs in status.get("containerStatuses") or []), default=0)
    return (
        0 if spec.get("nodeName") else 1,
        _PHASE_ORDER.get(str(status.get("phase")), 3),
        0 if is_ready else 1,
        str(ready.get("lastTransitionTime") or "~") if is_ready else "~",
        -restarts,
        str((pod.get("metadata") or {}).get("creationTimestamp") or "~"),
    )


def strip_for_restore(obj: Obj) -> Obj:
    """A pre-image ready to be created or replaced again: server fields and status removed."""
    out = {k: copy_json(v) for k, v in obj.items() if k != "status"}
    meta = out.setdefault("metadata", {})
    for key in SERVER_METADATA:
        meta.pop(key, None)
    return out


def summarise(obj: Obj | None) -> dict[str, Any] | None:
    if obj is None:
        return None
    meta = obj.get("metadata") or {}
    out: dict[str, Any] = {"kind": obj.get("kind"), "name": meta.get("name")}
    for key in ("namespace", "resourceVersion", "generation"):
        if meta.get(key) is not None:
            out[key] = meta[key]
    spec = obj.get("spec") or {}
    if isinstance(spec, dict) and "replicas" in spec:
        out["replicas"] = spec["replicas"]
    return out


# --- REST over the official client ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PreparedRequest:
    """A ``WireRequest`` serialised by the official client (``KubeApi.prepare``), ready to send as is."""

    request: WireRequest
    method: str
    url: str
    headers: dict[str, str]
    body: Any


class KubeApi:
    """Synchronous JSON REST calls through ``kubernetes.client.ApiClient`` (auth and TLS from its configuration)."""

    def __init__(self, api_client: k8s.ApiClient, *, timeout_s: float = 30.0) -> None:
        self.client = api_client
        self.timeout_s = timeout_s

    @classmethod
    def from_kubeconfig(cls, path: str | Path | None = None, context: str | None = None) -> KubeApi:
        return cls(
            cast(Any, k8s_config).new_client_from_config(config_file=str(path) if path else None, context=context)
        )

    @classmethod
    def in_cluster(cls) -> KubeApi:
        configuration = k8s.Configuration()
        cast(Any, k8s_config).load_incluster_config(client_configuration=configuration)
        return cls(k8s.ApiClient(configuration))

    def close(self) -> None:
        cast(Any, self.client).close()

    @staticmethod
    def path(kind: str, namespace: str | None, name: str | None = None, sub: str | None = None) -> str:
        """The object's REST path, segments validated and quoted (``stratus.writerequest.object_path``)."""
        try:
            return object_path(kind, namespace, name, sub)
        except InvalidIdentity as exc:
            raise KubeApiError(422, "Invalid", str(exc)) from exc

    def send(self, req: WireRequest) -> Any:
        """Send one built request (``stratus.writerequest``)."""
        return self.request(req.method, req.path, query=list(req.query), body=req.body, content_type=req.content_type)

    def prepare(self, req: WireRequest) -> PreparedRequest:
        """``req`` serialised once for the wire (URL, headers with the credentials, body), to send as the write and
        as its dry run (``send_prepared``): the two then differ in the ``dryRun`` query parameter and nothing else."""
        m, url, hdrs, payload, _ = self.client.param_serialize(
            req.method,
            req.path,
            query_params=list(req.query),
            header_params={"Accept": "application/json", "Content-Type": req.content_type},
            body=req.body,
            auth_settings=["BearerToken"],
        )
        return PreparedRequest(req, m, url, hdrs, payload)

    def send_prepared(self, prepared: PreparedRequest, *, dry_run: bool) -> Any:
        """Send a prepared request, or its dry run: the same URL with ``dryRun=All`` appended. A request whose dry run
        changes more than the query (a DELETE's options carry ``dryRun`` too) is serialised again for it."""
        url = prepared.url
        if dry_run and not prepared.request.is_dry_run:
            dry = prepared.request.dry_run()
            if dry.body is not prepared.request.body:
                return self.send(dry)
            url += ("&" if "?" in url else "?") + urlencode([dry.query[-1]])
        response = self.client.call_api(
            prepared.method,
            url,
            header_params=dict(prepared.headers),  # a copy: the client may rewrite them
            body=prepared.body,
            _request_timeout=self.timeout_s,
        )
        return self._answer(response, raw=False)

    def request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        raw: bool = False,
    ) -> Any:
        headers = {"Accept": "*/*" if raw else "application/json", "Content-Type": content_type}
        m, url, hdrs, payload, _ = self.client.param_serialize(
            method, path, query_params=query or [], header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        response = self.client.call_api(m, url, header_params=hdrs, body=payload, _request_timeout=self.timeout_s)
        return self._answer(response, raw=raw)

    @staticmethod
    def _answer(response: Any, *, raw: bool) -> Any:
        data = response.read()
        if not 200 <= response.status < 300:
            raise KubeApiError.from_response(response.status, data)
        if raw:
            return data.decode("utf-8", "replace")
        return json.loads(data) if data else {}

    def get(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        try:
            obj: Obj = self.request("GET", self.path(kind, namespace, name))
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise
        return _with_type(kind, obj)

    def items(
        self,
        kind: str,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[Obj]:
        query = [("labelSelector", label_selector)] if label_selector else []
        if field_selector:
            query.append(("fieldSelector", field_selector))
        items = self.request("GET", self.path(kind, namespace), query=query).get("items") or []
        return [_with_type(kind, item) for item in items]

    def _built(self, build: Callable[[], WireRequest], dry_run: bool) -> Any:
        try:
            req = build()
        except InvalidIdentity as exc:
            raise KubeApiError(422, "Invalid", str(exc)) from exc
        return self.send(req.dry_run() if dry_run else req)

    def create(self, manifest: Obj, *, dry_run: bool = False) -> Obj:
        return _with_type(manifest["kind"], self._built(lambda: create_request(manifest), dry_run))

    def replace(self, manifest: Obj, *, dry_run: bool = False) -> Obj:
        return _with_type(manifest["kind"], self._built(lambda: replace_request(manifest), dry_run))

    def patch(
        self,
        kind: str,
        namespace: str | None,
        name: str,
        body: Any,
        patch_type: Literal["strategic", "merge", "json"],
        *,
        dry_run: bool = False,
    ) -> Obj:
        return _with_type(kind, self._built(lambda: patch_request(kind, namespace, name, body, patch_type), dry_run))

    def delete(
        self, kind: str, namespace: str | None, name: str, *, preconditions: Obj | None = None, dry_run: bool = False
    ) -> Obj:
        result: Obj = self._built(lambda: delete_request(kind, namespace, name, preconditions=preconditions), dry_run)
        return result

    def logs(self, namespace: str, pod: str, *, container: str | None, tail: int | None, previous: bool) -> str:
        query = [("container", container)] if container else []
        if tail is not None:
            query.append(("tailLines", str(tail)))
        if previous:
            query.append(("previous", "true"))
        text: str = self.request("GET", self.path("Pod", namespace, pod, "log"), query=query, raw=True)
        return text

    def exec(self, namespace: str, pod: str, container: str | None, command: list[str]) -> tuple[int, str, str]:
        """Run ``command`` in the container (websocket exec); returns (exit code, stdout, stderr)."""
        from kubernetes.stream import stream

        kwargs: dict[str, Any] = {"command": command, "stdout": True, "stderr": True, "stdin": False, "tty": False}
        if container:
            kwargs["container"] = container
        # ``stream`` swaps the request method of the ApiClient it is given while it opens the websocket: on the shared
        # client, a request of another thread in that window would go over a websocket too. So each exec has its own.
        own = k8s.ApiClient(self.client.configuration)
        try:
            return self._exec_on(own, stream, namespace, pod, kwargs)
        finally:
            cast(Any, own).close()

    def _exec_on(
        self, own: k8s.ApiClient, stream: Callable[..., Any], namespace: str, pod: str, kwargs: dict[str, Any]
    ) -> tuple[int, str, str]:
        ws = stream(
            k8s.CoreV1Api(own).connect_get_namespaced_pod_exec, pod, namespace, _preload_content=False, **kwargs
        )
        try:
            ws.run_forever(timeout=self.timeout_s)
            out, err = ws.read_stdout() or "", ws.read_stderr() or ""
            code = ws.returncode
        finally:
            ws.close()
            # websocket-client skips closing the socket when the server closed the stream first.
            raw = getattr(ws, "sock", None)
            if raw is not None:
                raw.shutdown()
        return int(code if code is not None else 0), str(out), str(err)


def _with_type(kind: str, obj: Obj) -> Obj:
    """List items come without kind/apiVersion; the digest and the undo records need them."""
    info = KINDS[resolve_kind(kind)]
    obj.setdefault("kind", info.kind)
    obj.setdefault("apiVersion", info.api_version)
    return obj


# --- the read face ----------------------------------------------------------------------------------------------


class ReadGateway:
    """Reads the cluster for an agent; refuses every write."""

    role: Role = "read"

    def __init__(self, api: KubeApi, *, default_namespace: str = "default", workdir: Path | None = None) -> None:
        self.api = api
        self.default_namespace = default_namespace
        self.workdir = workdir

    @classmethod
    def from_kubeconfig(cls, path: str | Path | None = None, context: str | None = None, **kwargs: Any) -> Self:
        return cls(KubeApi.from_kubeconfig(path, context), **kwargs)

    @classmethod
    def in_cluster(cls, **kwargs: Any) -> Self:
        return cls(KubeApi.in_cluster(), **kwargs)

    def close(self) -> None:
        self.api.close()

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    # -- the kubectl tool

    async def kubectl(self, line: str, *, namespace: str | None = None, exec_inverse: list[str] | None = None) -> str:
        """Run one kubectl command line; every refusal and API error comes back as text for the agent."""
        try:
            actions = parse_command(
                line,
                role=self.role,
                namespace=namespace or self.default_namespace,
                workdir=self.workdir,
                exec_inverse=exec_inverse,
            )
        except Refusal as exc:
            return str(exc)
        out: list[str] = []
        for action in actions:
            try:
                result = await self.run(action)
            except (Refusal, KubeApiError) as exc:
                out.append(str(exc))
                continue
            out.append(result if isinstance(result, str) else result.message)
        return "\n\n".join(out)

    async def run(self, action: Action) -> str | WriteResult:
        """Execute one action: reads return text; writes need a ``WriteGateway``."""
        confine_action(action, self.role)
        return await self.read(action)

    # -- reads

    async def read(self, action: Action) -> str:
        if action.is_write:
            confine_action(action, "read")
        text: str = await self._call(self._read_sync, action)
        return text

    def _read_sync(self, action: Action) -> str:
        now = _now()
        if isinstance(action, Get):
            obj = self.api.get(action.kind, action.namespace, action.name)
            obj = redact_secret(obj) if obj is not None else None  # Secret values never reach an agent
            if obj is None:
                raise KubeApiError(404, "NotFound", f'{KINDS[action.kind].plural} "{action.name}" not found')
            if action.output in ("yaml", "json", "name"):
                return render_object(obj, action.output)
            return render_table(action.kind, [obj], wide=action.output == "wide", now=now)
        if isinstance(action, ListObjects):
            ns = None if action.all_namespaces else action.namespace
            objs = self.api.items(
                action.kind, ns, label_selector=action.label_selector, field_selector=action.field_selector
            )
            objs = [redact_secret(o) for o in objs]
            if action.output in ("yaml", "json"):
                return render_object({"apiVersion": "v1", "kind": "List", "items": objs}, action.output)
            if action.output == "name":
                return "\n".join(render_object(o, "name") for o in objs) or "No resources found."
            cluster = not KINDS[action.kind].namespaced
            table = render_table(
                action.kind,
                objs,
                wide=action.output == "wide",
                namespace_column=action.all_namespaces and not cluster,
                now=now,
            )
            if not objs and not cluster and not action.all_namespaces:
                return f"No resources found in {action.namespace} namespace."
            return table
        if isinstance(action, Describe):
            if action.name:
                obj = self.api.get(action.kind, action.namespace, action.name)
                if obj is None:
                    raise KubeApiError(404, "NotFound", f'{KINDS[action.kind].plural} "{action.name}" not found')
                objs = [obj]
            else:
                objs = self.api.items(action.kind, action.namespace, label_selector=action.label_selector)
                if not objs:
                    return "No resources found."
            parts = [render_describe(redact_secret(o), self._events_about(o), now=now) for o in objs]
            return "\n\n\n".join(parts)
        if isinstance(action, Logs):
            pod = action.name if action.kind == "Pod" else self._a_pod_of(action.kind, action.namespace, action.name)
            return self.api.logs(
                str(action.namespace), pod, container=action.container, tail=action.tail, previous=action.previous
            )
        if isinstance(action, Events):
            selectors = [action.field_selector] if action.field_selector else []
            if action.for_kind:
                selectors.append(f"involvedObject.kind={action.for_kind}")
            if action.for_name:
                selectors.append(f"involvedObject.name={action.for_name}")
            ns = None if action.all_namespaces else action.namespace
            events = self.api.items("Event", ns, field_selector=",".join(selectors) or None)
            return render_events(events, now=now, namespace_column=action.all_namespaces)
        if isinstance(action, RolloutStatus):
            return self._rollout_status(action)
        if isinstance(action, RolloutHistory):
            return self._rollout_history(action)
        raise Refusal(f"{action.verb} is not a read.", rule="read_only")

    def _events_about(self, obj: Obj) -> list[Obj]:
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace") or self.default_namespace
        sel = f"involvedObject.name={meta.get('name')},involvedObject.kind={obj.get('kind')}"
        try:
            events = self.api.items("Event", ns, field_selector=sel)
        except KubeApiError:
            return []
        # Emulated or older servers may ignore field selectors: filter again here.
        return [
            e
            for e in events
            if (e.get("involvedObject") or {}).get("name") == meta.get("name")
            and (e.get("involvedObject") or {}).get("kind") == obj.get("kind")
        ]

    def _a_pod_of(self, kind: str, namespace: str | None, name: str) -> str:
        owner = self.api.get(kind, namespace, name)
        if owner is None:
            raise KubeApiError(404, "NotFound", f'{KINDS[kind].plural} "{name}" not found')
        labels = ((owner.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        pods = self.api.items("Pod", namespace, label_selector=selector) if selector else []
        if not pods:
            raise KubeApiError(0, "", f"error: no pods found for {kind.lower()}/{name}")
        return str(min(pods, key=_logging_order)["metadata"]["name"])

    def _rollout_status(self, action: RolloutStatus) -> str:
        obj = self.api.get(action.kind, action.namespace, action.name)
        if obj is None:
            raise KubeApiError(404, "NotFound", f'{KINDS[action.kind].plural} "{action.name}" not found')
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        want = int(spec.get("replicas", 1))
        ref = f'{action.kind.lower()} "{action.name}"'
        if (obj["metadata"].get("generation") or 0) > (status.get("observedGeneration") or 0):
            return f"Waiting for {ref} spec update to be observed..."
        updated = int(status.get("updatedReplicas") or 0)
        total = int(status.get("replicas") or 0)
        available = int(status.get("availableReplicas") or status.get("readyReplicas") or 0)
        if updated < want:
            return f"Waiting for {ref} rollout to finish: {updated} out of {want} new replicas have been updated..."
        if total > updated:
            return f"Waiting for {ref} rollout to finish: {total - updated} old replicas are pending termination..."
        if available < updated:
            return f"Waiting for {ref} rollout to finish: {available} of {updated} updated replicas are available..."
        return f"{ref} successfully rolled out"

    def _revisions(self, deployment: Obj) -> list[tuple[int, Obj]]:
        meta = deployment["metadata"]
        out = []
        for rs in self.api.items("ReplicaSet", meta.get("namespace")):
            owners = (rs.get("metadata") or {}).get("ownerReferences") or []
            if any(o.get("uid") == meta.get("uid") and o.get("controller") for o in owners):
                rev = ((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION)
                if rev and str(rev).isdigit():
                    out.append((int(rev), rs))
        return sorted(out, key=lambda pair: pair[0])

    def _rollout_history(self, action: RolloutHistory) -> str:
        obj = self.api.get(action.kind, action.namespace, action.name)
        if obj is None:
            raise KubeApiError(404, "NotFound", f'deployments.apps "{action.name}" not found')
        lines = [f"deployment.apps/{action.name}", "REVISION  IMAGES"]
        for rev, rs in self._revisions(obj):
            containers = ((rs.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
            lines.append(f"{rev:<9} {','.join(str(c.get('image')) for c in containers)}")
        return "\n".join(lines)

    # -- state digests

    async def state_digest(self, scope: str) -> StateDigest:
        """The normalised digest of a scope's declared state (``stratus.digest``)."""
        digest: StateDigest = await self._call(self._digest_sync, scope)
        return digest

    def _digest_sync(self, scope: str) -> StateDigest:
        objects: list[Obj] = []
        kinds, namespace = (CLUSTER_DIGEST_KINDS, None) if scope == CLUSTER_SCOPE else (NAMESPACED_DIGEST_KINDS, scope)
        for kind in kinds:
            try:
                objects.extend(self.api.items(kind, namespace))
            except KubeApiError as exc:
                if exc.status != 404:  # a server that does not serve the kind has none of it
                    raise
        return digest_of(scope, objects)

    async def get_object(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        """One object as JSON, or None when it does not exist."""
        obj: Obj | None = await self._call(self.api.get, kind, namespace, name)
        return redact_secret(obj) if obj is not None else None

    async def list_objects(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[Obj]:
        """Objects of a kind as JSON (every namespace when ``namespace`` is None)."""
        objs: list[Obj] = await self._call(
            self.api.items, kind, namespace, label_selector=label_selector, field_selector=field_selector
        )
        return [redact_secret(o) for o in objs]

    async def logs(
        self, namespace: str, pod: str, container: str | None = None, tail: int = 100, previous: bool = False
    ) -> str:
        """A container's log text."""
        text: str = await self._call(self.api.logs, namespace, pod, container=container, tail=tail, previous=previous)
        return text

    async def events(self, namespace: str) -> list[Obj]:
        """The namespace's events, oldest first."""
        events = await self.list_objects("Event", namespace)
        return sorted(events, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))


# --- the write face ---------------------------------------------------------------------------------------------


class WriteGateway(ReadGateway):
    """Reads and writes under a lease: every write is confined, dry-run, pre-imaged, journaled and fenced."""

    role: Role = "write"

    def __init__(
        self,
        api: KubeApi,
        *,
        lease: Lease,
        check_fence: FenceCheck,
        journal_intent: JournalCallback | None = None,
        journal_outcome: JournalCallback | None = None,
        journal_batch: BatchCallback | None = None,
        incident_id: str = "",
        tx_id: str = "",
        attempt: int = 0,
        first_seq: int = 1,
        max_writes: int | None = None,
        default_namespace: str = "default",
        workdir: Path | None = None,
        policy: WritePolicy | None = None,
        recorded: Mapping[str, Obj] | None = None,
        journal_wire: WiredJournal | None = None,
        fence_wire: WiredFence | None = None,
    ) -> None:
        super().__init__(api, default_namespace=default_namespace, workdir=workdir)
        self.policy = policy if policy is not None else WritePolicy.configured()
        self.journal_wire = journal_wire
        self.fence_wire = fence_wire
        """With both, an update journaled ahead is appended and fenced from the worker thread (``_ahead_wired``)."""
        self.recorded = recorded
        """The scope's last-known-good objects (``stratus.lastgood``), by ``Kind/namespace/name``: what a workload ran
        while the scope was healthy counts as run before (``writepolicy.recorded_programs``)."""
        self.lease = lease
        self.check_fence = check_fence
        self.journal_intent = journal_intent
        self.journal_outcome = journal_outcome
        self.journal_batch = journal_batch
        self.incident_id = incident_id
        self.tx_id = tx_id
        self.attempt = attempt
        self.next_seq = first_seq
        self.max_writes = max_writes
        self.writes = 0
        self._serial = asyncio.Lock()  # one write at a time: seq order is journal order
        self._written: dict[tuple[str, str | None, str], Obj] = {}  # own write responses, candidate pre-images
        self._outcome: asyncio.Future[object] | None = None  # the last write's outcome append, until acknowledged
        self._held: JournalRecord | None = None  # an accepted write's outcome, to go with the next intent (or flush)
        self._consumers: dict[str, tuple[float, list[Obj]]] = {}  # by namespace: (when listed, pods and templates)

    def renew(self, lease: Lease) -> None:
        """Use a renewed lease (same scope and token, later expiry)."""
        if lease.scope != self.lease.scope or lease.token != self.lease.token:
            raise PermanentError("renew() takes the same lease with a later expiry; a new lease needs a new gateway")
        self.lease = lease

    async def run(self, action: Action) -> str | WriteResult:
        if action.is_write:
            return await self.write(action)
        return await self.read(action)

    async def execute(self, action: Action) -> str:
        """Run one write for a reasoner: the message on success; ``PermanentError`` with the reason otherwise."""
        result = await self.write(action)
        if not result.ok:
            raise PermanentError(result.message)
        return result.message

    @property
    def writes_left(self) -> int:
        """Writes this transaction may still run (K minus writes done); large when unbounded."""
        return 1_000_000 if self.max_writes is None else max(0, self.max_writes - self.writes)

    # -- the write pipeline

    @property
    def covered_scopes(self) -> frozenset[str]:
        """The scopes this gateway may write: the lease's, and under a cluster lease the incident's own namespace.

        A cluster lease excludes every namespace holder (``stratus.alock``), so it *could* cover every namespace; it
        covers only the one the checkpoint digested (``default_namespace``, the incident's scope), so that a write
        elsewhere (a victim namespace, kube-system) is refused rather than left out of the post-undo digest.
        """
        if self.lease.scope == CLUSTER_SCOPE:
            return frozenset({CLUSTER_SCOPE, self.default_namespace})
        return frozenset({self.lease.scope})

    def _check_scope(self, action: Action) -> None:
        if action.scope not in self.covered_scopes:
            raise Refusal(
                f"Write operation '{action.verb}' on {action.target} refused: it is in scope '{action.scope}' but "
                f"this transaction's lease covers scope '{self.lease.scope}'. Act only on objects of "
                f"'{self.lease.scope}', or report that the fix needs scope '{action.scope}'.",
                rule="lease_scope",
            )

    async def _fence(self) -> None:
        verdict = await self.check_fence(self.lease.scope, self.lease.token)
        if verdict is False:
            raise FencingRefused(
                f"fencing token {self.lease.token} is not the current writer of scope {self.lease.scope!r}; "
                "the write was not sent"
            )

    async def write(self, action: Action) -> WriteResult:
        """Run one write through the whole R2 pipeline (see the module docstring)."""
        async with self._serial:
            return await self._write(action)

    async def _write(self, action: Action) -> WriteResult:
        confine_action(action, "write")
        self._check_scope(action)
        if self.max_writes is not None and self.writes >= self.max_writes:
            raise Refusal(
                f"Write operation '{action.verb}' refused: this transaction already ran {self.writes} writes, its "
                f"bound K={self.max_writes}. End the transaction and let it be validated.",
                rule="risk_window",
            )
        if self.journal_intent is None or self.journal_outcome is None:
            raise PermanentError("this gateway has no journal: writes are refused (every write is journaled first)")
        # The pre-image is read first and the request is built once against it (stratus.writerequest): the dry run
        # is that request with dryRun=All, and the write is that very request. When this gateway wrote the object
        # last and the object has no status (no controller writes it), the response to that write is the candidate
        # pre-image instead of a GET: the request carries its resourceVersion as a precondition, so the server's dry
        # run proves it is the current object (a conflict falls back to a fresh read). Same guarantee, one read less.
        self.policy.check_request(action)
        if isinstance(action, Exec):
            self._check_exec_forward(action)
        pre = None if isinstance(action, (Create, Exec)) else self._written.get(_key(action))
        reused = pre is not None
        if pre is None:
            pre = await self._call(self._pre_image_sync, action)
        for _ in range(CONFLICT_RETRIES + 1):
            if pre is not None and _restores_pre_image(action) and not _undo_reads(action):
                judged = await self._ahead(action, pre, reused)
            else:
                judged = await self._checked(action, pre, reused)
            if judged is not None:
                break
            # The pre-image is no longer current (a remembered one, or the object changed under the dry run): read it
            # and start again.
            self._written.pop(_key(action), None)
            reused = False
            pre = await self._call(self._pre_image_sync, action)
        else:
            return WriteResult(
                ok=False,
                action=action,
                executed=False,
                message=f"Dry run failed, nothing was changed: {action.target} kept changing under the dry run.",
            )
        if isinstance(judged, WriteResult):
            return judged
        intent, request = judged.intent, judged.request
        self.writes += 1
        if action.kind != "ConfigMap":
            self._consumers.clear()  # it may add or change a consumer of a ConfigMap (``_consumers_sync``)
        self._written.pop(_key(action), None)
        try:
            error = judged.error
            if judged.sent and error is None:
                after = judged.after
            elif judged.sent and error is not None and not _is_conflict(error):
                raise error
            else:
                # Not sent yet, or refused on a resourceVersion that status churn moved: ``_send`` reads the object
                # again and sends the write when its spec is still the pre-image's (fenced again).
                after = await self._send(action, pre, dry_run=False, request=request)
            ok, message = True, _done(action, after, intent.message, created=pre is None)
            self._remember(action, after)
            summary = summarise(after) if isinstance(after, dict) and after.get("metadata") else None
        except KubeApiError as exc:
            ok, message, summary = False, f"The write failed: {exc}", None
            # An API refusal changed nothing (ok=False: the undoer skips it); a failed command may have (None).
            recorded_ok = None if isinstance(exc, ExecFailed) else False
        else:
            recorded_ok = True
        outcome = _outcome_of(intent, recorded_ok, message)
        if recorded_ok is True and self.journal_batch is not None:
            # The API accepted the write: its outcome changes nothing the undoer does (an intent without an outcome
            # is undone too), so it goes out with the next intent, as one message (or alone at ``flush``).
            self._held = outcome
        else:
            self._send_outcome(outcome)
        # Every field is typed here, and the action and the undo passed the intent record's validation just now.
        return WriteResult.model_construct(
            ok=ok,
            action=intent.action,
            executed=True,
            message=message,
            object=summary,
            seq=intent.seq,
            undo=intent.undo,
        )

    def _check_exec_forward(self, action: Exec) -> None:
        """An operation's arguments only an undo may carry are refused, and the Deployments it stops must be ones the
        write policy lets this transaction scale (the scaling is the operation's, restored before it returns)."""
        try:
            dataplane.check_forward(action.operation, action.args)
        except dataplane.DataPlaneError as exc:
            raise Refusal(str(exc), rule="dataplane") from exc
        for name in dataplane.stopped_deployments(action.operation, action.args):
            stop = Scale(kind="Deployment", namespace=action.namespace, name=name, replicas=0)
            self._check_scope(stop)
            self.policy.check_request(stop)

    async def _checked(self, action: Action, pre: Obj | None, reused: bool) -> _Judged | WriteResult | None:
        """Dry-run ``action`` against ``pre``, judge the result, then journal the intent with the fence beside it.

        Returns the journaled intent and the request, to be sent; a ``WriteResult`` when the dry run failed (nothing
        changed); None when ``pre`` was remembered (``reused``) and is no longer current. Raises ``Refusal`` when the
        write policy, the ready-capacity guard or the undo refuses it. For a create, a delete, an exec, or a write
        whose undo reads the cluster (computed while the dry run is on the wire): nothing is journaled before the
        write is judged (the undo of a create that never ran would delete an object somebody else made).
        """
        undo_task = asyncio.ensure_future(self._undo_record(action, pre)) if _undo_reads(action) else None
        if undo_task is not None:
            undo_task.add_done_callback(lambda t: t.cancelled() or t.exception())
        try:
            try:
                request = await self._request(action, pre)
                if reused and _stale(request, pre):
                    return None
                dry = await self._send(action, pre, dry_run=True, request=request, refresh=not reused)
            except KubeApiError as exc:
                if reused and _is_conflict(exc):
                    return None
                return _dry_run_failed(action, exc)
            if _needs_reads(action, pre, dry):
                await self._call(self._judge_sync, action, pre, dry)
            else:
                self._judge_sync(action, pre, dry)
            undo, note = await undo_task if undo_task is not None else self._undo_for_sync(action, pre)
        finally:
            if undo_task is not None:
                undo_task.cancel()
        if undo is None:
            raise Refusal(
                f"Write operation '{action.verb}' on {action.target} refused: {note} Every write needs a recorded "
                "undo; choose an action whose effect can be reverted.",
                rule="no_undo",
            )
        intent = self._intent(action, pre, undo, note, dry)
        await self._journal_fenced(intent)
        return _Judged(intent, request)

    async def _ahead(self, action: Action, pre: Obj, reused: bool) -> _Judged | WriteResult | None:
        """An update of an existing object, journaled ahead: returns as ``_checked`` does, with the write already sent.

        Nothing in such a write's intent depends on its dry run (the undo restores the pre-image), and undoing it
        when it never ran changes nothing. So the intent is appended (the fence beside it) while one worker call sends
        the dry run, judges its result, waits until the intent is acknowledged and the lease checked, and sends the
        write: one hand-over to a thread and back instead of two, and the intent's round trip under the dry run's.
        When the write is not sent after all (the dry run fails, the policy refuses), the intent is voided with an
        ``ok=False`` outcome, which the undoer skips; if the void is lost with a crash, its undo restores a pre-image
        that never changed.
        """
        undo, note = self._undo_for_sync(action, pre)
        if not undo:
            return await self._checked(action, pre, reused)
        try:
            request = await self._request(action, pre)
        except KubeApiError as exc:
            return _dry_run_failed(action, exc)
        if reused and _stale(request, pre):
            return None
        intent = self._intent(action, pre, undo, note)
        if self.journal_wire is not None and self.fence_wire is not None and self.journal_wire.wire_ready(self.tx_id):
            return await self._ahead_wired(action, pre, request, intent)
        journaled = asyncio.ensure_future(self._journal_fenced(intent))
        gate: concurrent.futures.Future[None] = concurrent.futures.Future()
        journaled.add_done_callback(functools.partial(_open_gate, gate))
        try:
            step = await self._call(self._judged_write_sync, action, pre, request, gate)
        except asyncio.CancelledError:
            journaled.cancel()  # the gate closes: the worker sends nothing unless the intent was already durable
            raise
        except Exception as exc:
            await self._void(intent, journaled, str(exc))
            raise
        if step.dry_error is not None:
            await self._void(intent, journaled, f"the dry run failed: {step.dry_error}")
            return None if _is_conflict(step.dry_error) else _dry_run_failed(action, step.dry_error)
        if step.refusal is not None:
            await self._void(intent, journaled, str(step.refusal))
            raise step.refusal
        if not step.sent:
            await journaled  # raises what stopped the write: the journal's or the fence's refusal
            raise PermanentError(
                f"Write operation '{action.verb}' on {action.target} not sent: its intent was not acknowledged within "
                f"{INTENT_WAIT_S:.0f}s"
            )
        return _Judged(intent, request, sent=True, after=step.after, error=step.error)

    async def _ahead_wired(
        self, action: Action, pre: Obj, request: WireRequest | None, intent: JournalRecord
    ) -> _Judged | WriteResult | None:
        """``_ahead`` with the intent appended and the fence checked from the worker thread (``journal_wire``,
        ``fence_wire``): one worker call sends the fence check and the intent, sends the dry run, reads both answers,
        judges, and sends the write; the event loop waits meanwhile instead of competing for the interpreter. What
        the worker could not settle -- a fence check without a clear yes -- is settled here by ``check_fence``."""
        await self._acknowledged()
        held, self._held = self._held, None
        records = [held, intent] if held is not None else [intent]
        stop = threading.Event()
        try:
            step = await self._call(self._wired_write_sync, action, pre, request, records, stop)
        except BaseException:
            stop.set()  # cancelled: the worker sends no write after this
            self._held = held  # not known to be journaled: still due
            raise
        if step.journal_error is not None:
            self._held = held
            raise step.journal_error
        if step.dry_error is not None:
            self._send_outcome(_outcome_of(intent, False, f"Not sent: the dry run failed: {step.dry_error}"))
            return None if _is_conflict(step.dry_error) else _dry_run_failed(action, step.dry_error)
        if step.refusal is not None or step.failure is not None:
            stopped = step.refusal if step.refusal is not None else step.failure
            self._send_outcome(_outcome_of(intent, False, f"Not sent: {stopped}"))
            raise cast(BaseException, stopped)
        if not step.sent:  # the fence had no clear answer on the worker's line: ask the A-Lock
            try:
                await self._fence()
            except BaseException as exc:
                self._send_outcome(_outcome_of(intent, False, f"Not sent: {exc}"))
                raise
            return _Judged(intent, request)  # judged, journaled and fenced: ``_write`` sends it
        return _Judged(intent, request, sent=True, after=step.after, error=step.error)

    def _wired_write_sync(
        self,
        action: Action,
        pre: Obj,
        request: WireRequest | None,
        records: list[JournalRecord],
        stop: threading.Event,
    ) -> _Step:
        """``_ahead_wired``'s worker call (see there). Never sends the write unless the intent was acknowledged, the
        dry run judged and the fence answered yes, and never when ``stop`` is set."""
        fence, journal = cast(WiredFence, self.fence_wire), cast(WiredJournal, self.journal_wire)
        fence_sent = fence.send(self.lease.scope, self.lease.token)
        pending: WiredAppend | None = None
        try:
            try:
                pending = journal.begin_wired(records)
            except PermanentError as exc:  # nothing was sent
                return _Step(journal_error=exc)
            prepared = self.api.prepare(request) if request is not None and not isinstance(action, Exec) else None
            dry, dry_error = None, None
            try:
                dry = self._execute_sync(action, request, True, prepared)
            except KubeApiError as exc:
                dry_error = exc
            fenced = fence.passes() if fence_sent else False
            fence_sent = False
            waiting, pending = pending, None
            try:
                waiting.wait()
            except PermanentError as exc:
                return _Step(journal_error=exc)
            if dry_error is not None:
                return _Step(dry_error=dry_error)
            try:
                self._judge_sync(action, pre, dry)
            except Refusal as exc:
                return _Step(refusal=exc)
            except Exception as exc:
                return _Step(failure=exc)
            if not fenced or stop.is_set():
                return _Step()
            try:
                return _Step(sent=True, after=self._execute_sync(action, request, False, prepared))
            except KubeApiError as exc:
                return _Step(sent=True, error=exc)
        finally:
            if fence_sent:
                fence.abandon()
            if pending is not None:
                pending.abandon()

    async def _request(self, action: Action, pre: Obj | None) -> WireRequest | None:
        """The one request for ``action`` against ``pre`` (None for exec, which is not a REST write)."""
        computed = isinstance(action, (SetImage, SetEnv, RolloutRestart, RolloutUndo))
        return await self._call(self._build_sync, action, pre) if computed else self._build_sync(action, pre)

    def _judge_sync(self, action: Action, pre: Obj | None, dry: Any) -> None:
        """The write policy's result rules on the dry run's object, then the ready-capacity guard; raises ``Refusal``.
        When a workload gets an image or a program it does not run now, the images and programs its own revisions ran
        are read (a rollback brings no new registry and no new command); when a ConfigMap's content changes, the pods
        and pod templates of its namespace (whose programs may read it as code): call it in a thread then
        (``_needs_reads``)."""
        ran_before, programs_before, features_before = (
            self._history_sync(pre) if pre is not None and _needs_history(pre, dry) else (set(), set(), set())
        )
        features_before |= recorded_features(pre, self.recorded)
        programs_before |= recorded_programs(pre, self.recorded)
        ran_before |= recorded_images(pre, self.recorded)
        consumers: list[Obj] = []
        healthy = None
        if isinstance(action, Delete) and action.kind in ("ConfigMap", "Service"):
            self.policy.check_delete(action, pre, self._consumers_sync(action.scope))
        elif action.kind == "ConfigMap" and configmap_content_changed(pre, dry):
            consumers = self._consumers_sync(action.scope)
            healthy = recorded_object(dry if isinstance(dry, dict) else pre, self.recorded)
        policies: list[Obj] = []
        if action.kind == "NetworkPolicy" and not isinstance(action, Delete) and isinstance(dry, dict):
            consumers = self._consumers_sync(action.scope)
            policies = self._served_items("NetworkPolicy", action.scope)
        self.policy.check_result(
            action,
            pre,
            dry,
            ran_before,
            programs_before,
            consumers,
            healthy,
            features_before=features_before,
            policies=policies,
        )
        loss = ready_capacity_loss(action.verb, action.kind, pre, dry if isinstance(dry, dict) else None)
        if loss:
            raise Refusal(f"Write operation '{action.verb}' on {action.target} refused: {loss}", rule="ready_capacity")

    def _judged_write_sync(
        self, action: Action, pre: Obj, request: WireRequest | None, gate: concurrent.futures.Future[None]
    ) -> _Step:
        """``_ahead``'s worker call: the dry run, its judgement, then the write once ``gate`` says the intent is
        durable and the lease current (never when it fails, is cancelled or times out). The request is serialised
        once for both (``KubeApi.prepare``)."""
        prepared = self.api.prepare(request) if request is not None and not isinstance(action, Exec) else None
        try:
            dry = self._execute_sync(action, request, True, prepared)
        except KubeApiError as exc:
            return _Step(dry_error=exc)
        try:
            self._judge_sync(action, pre, dry)
        except Refusal as exc:
            return _Step(refusal=exc)
        try:
            gate.result(timeout=INTENT_WAIT_S)
        except BaseException:  # the journal's or the fence's refusal, a cancellation, a timeout: nothing is sent
            return _Step()
        try:
            return _Step(sent=True, after=self._execute_sync(action, request, False, prepared))
        except KubeApiError as exc:
            return _Step(sent=True, error=exc)

    def _intent(self, action: Action, pre: Obj | None, undo: list[Action], note: str, dry: Any = None) -> JournalRecord:
        """The next intent record; ``dry``: the dry run's answer, when the intent is journaled after it."""
        seq = self.next_seq
        self.next_seq += 1
        return JournalRecord(
            incident_id=self.incident_id,
            tx_id=self.tx_id,
            attempt=self.attempt,
            seq=seq,
            phase="intent",
            action=action,
            pre_image=pre,
            undo=undo,
            dry_run=summarise(dry) if isinstance(dry, dict) else None,
            message=note,
        )

    async def _journal_fenced(self, intent: JournalRecord) -> None:
        """Append ``intent`` (durable before its write is sent) with the fence checked beside it."""
        # The previous write's outcome is acknowledged first (the journal's order is the writes' order). The two round
        # trips are independent: the append is awaited here, the fence runs beside it (one task).
        fenced = asyncio.ensure_future(self._fence())
        fenced.add_done_callback(lambda t: t.cancelled() or t.exception())
        try:
            await self._append_intent(intent)
        finally:
            if not fenced.done():
                await asyncio.wait([fenced])
        fenced.result()

    async def _void(self, intent: JournalRecord, journaled: asyncio.Future[None], why: str) -> None:
        """Record that an intent appended ahead of its checks was not sent (an ``ok=False`` outcome, which the undoer
        skips). When its append or fence failed there is nothing to void: no write follows it either way."""
        try:
            await journaled
        except Exception:  # the write is refused for another reason already: no void needed
            return
        self._send_outcome(_outcome_of(intent, False, f"Not sent: {why}"))

    def _send_outcome(self, outcome: JournalRecord) -> None:
        """Append ``outcome`` now, acknowledged before the next intent or at ``flush``: an intent without its outcome
        is undone anyway (stratus.journal), so the outcome's round trip need not hold the caller up."""
        pending = asyncio.ensure_future(cast(JournalCallback, self.journal_outcome)(outcome))
        pending.add_done_callback(_log_lost_outcome)
        self._outcome = pending

    async def _append_intent(self, intent: JournalRecord) -> None:
        await self._acknowledged()
        held, self._held = self._held, None
        try:
            if held is None:
                await cast(JournalCallback, self.journal_intent)(intent)
            else:
                await cast(BatchCallback, self.journal_batch)([held, intent])
        except BaseException:
            self._held = held  # not journaled: still due
            raise

    async def _acknowledged(self) -> None:
        pending, self._outcome = self._outcome, None
        if pending is not None:
            await pending

    async def flush(self) -> None:
        """Wait until the last write's outcome is journaled; raise what its append raised.

        ``write`` returns once the outcome is sent, or, for a write the API accepted and with ``journal_batch``, once
        it is held for the next intent. The next write waits for it before its intent is appended (a failed outcome
        append refuses that write); a transaction calls ``flush`` when it ends, which appends a held outcome alone.
        """
        await self._acknowledged()
        held, self._held = self._held, None
        if held is not None:
            try:
                await cast(JournalCallback, self.journal_outcome)(held)
            except BaseException:
                self._held = held
                raise

    async def apply_undo(self, action: Action) -> WriteResult:
        """Execute one undo action idempotently, fenced before every request; used by the undoer.

        ``replace``/``create``/``apply`` converge on the manifest whatever the current state (create if absent,
        replace at the current resourceVersion, retried on conflicts); ``delete`` of an absent object is done.
        """
        confine_action(action, "write")
        self._check_scope(action)
        self._written.pop(_key(action), None)
        if action.kind != "ConfigMap":
            self._consumers.clear()
        try:
            after = await self._undo(action)
        except KubeApiError as exc:
            return WriteResult(ok=False, action=action, executed=True, message=f"The undo failed: {exc}")
        summary = summarise(after) if isinstance(after, dict) and after.get("metadata") else None
        message = f"undone: {action.verb} {action.target}"
        return WriteResult(ok=True, action=action, executed=True, message=message, object=summary)

    async def _undo(self, action: Action) -> Any:
        api = self.api
        if isinstance(action, Delete):
            await self._fence()
            try:
                return await self._call(api.delete, action.kind, action.namespace, str(action.name))
            except KubeApiError as exc:
                if exc.status == 404:
                    return {"message": "already absent"}
                raise
        if isinstance(action, (Replace, Create, Apply)):
            for _ in range(5):
                current = await self._call(api.get, action.kind, action.namespace, str(action.name))
                if current is not None and current["metadata"].get("deletionTimestamp"):
                    raise KubeApiError(409, "Conflict", f"{action.target} is being deleted; retry the undo later")
                await self._fence()
                try:
                    if current is None:
                        return await self._call(api.create, strip_for_restore(action.manifest))
                    restored = await self._call(api.replace, _with_rv(strip_for_restore(action.manifest), current))
                    if isinstance(action, Replace) and action.replicasets is not None:
                        await self._converge_rollout(restored, action.replicasets)
                    return restored
                except KubeApiError as exc:
                    if exc.status != 409:
                        raise
            raise KubeApiError(409, "Conflict", f"{action.target} kept changing; the undo did not converge")
        pre = await self._call(self._pre_image_sync, action)
        await self._fence()
        return await self._send(action, pre, dry_run=False)

    async def _converge_rollout(self, deployment: Obj, before: dict[str, int]) -> None:
        """Shrink the ReplicaSets a transaction's rollout created or grew back to their size before it.

        Restoring a Deployment's template does not remove the pods its rollout added: the controller takes old pods
        away only while enough stay available, so a rollout stuck on pods that never become Ready keeps its surge pods
        (on a cluster as here). Those are derived state no spec-level restore reaches. A ReplicaSet is never shrunk
        below its Ready pods, and the controller only ever scales old ReplicaSets down, so this does not fight it.
        """
        namespace = deployment["metadata"].get("namespace")
        for rs in await self._call(self._replicasets_sync, deployment):
            name = str(rs["metadata"]["name"])
            current = int(rs["spec"].get("replicas", 1))
            target = max(before.get(name, 0), int((rs.get("status") or {}).get("readyReplicas", 0)))
            if current > target:
                await self._fence()
                body = {"spec": {"replicas": target}}
                await self._call(self.api.patch, "ReplicaSet", namespace, name, body, "merge")
                log.info("undo: ReplicaSet %s/%s %d -> %d replicas (rollout undone)", namespace, name, current, target)

    def _remember(self, action: Action, after: Any) -> None:
        """Keep a write's response as the object's next candidate pre-image, if nothing but writers changes it."""
        if isinstance(action, (Delete, Exec)) or not isinstance(after, dict) or "status" in after:
            return
        if not _rv(after) or (after.get("metadata") or {}).get("deletionTimestamp"):
            return
        self._written[_key(action)] = after
        while len(self._written) > WRITTEN_CACHE:
            self._written.pop(next(iter(self._written)))

    async def _undo_record(self, action: Action, pre: Obj | None) -> tuple[list[Action] | None, str]:
        """The undo of ``action`` against ``pre``: in a thread when it reads the cluster (owners, ReplicaSets)."""
        if _undo_reads(action):
            return cast(tuple[list[Action] | None, str], await self._call(self._undo_for_sync, action, pre))
        return self._undo_for_sync(action, pre)

    # -- sync pieces (run in a thread)

    def _pre_image_sync(self, action: Action) -> Obj | None:
        if isinstance(action, (Exec, Create)):
            return None
        return self.api.get(action.kind, action.namespace, str(action.name))

    def _undo_for_sync(self, action: Action, pre: Obj | None) -> tuple[list[Action] | None, str]:
        if isinstance(action, Exec):
            try:
                inverse_op = self._exec_inverse_sync(action)
            except (dataplane.DataPlaneError, KubeApiError) as exc:
                return None, f"the inverse of {action.operation} cannot be recorded: {exc}."
            if inverse_op is None:
                return None, f"{action.operation} has no inverse in the data-plane catalogue, so it never runs forward."
            inverse = Exec(
                namespace=action.namespace,
                name=action.name,
                container=action.container,
                operation=inverse_op[0],
                args=inverse_op[1],
            )
            recorded = {k: v for k, v in inverse_op[1].items() if action.args.get(k) != v}
            read = f", recorded before the write: {json.dumps(recorded, sort_keys=True)}" if recorded else ""
            return [inverse], f"undo: the catalogue inverse {inverse_op[0]}{read}"
        if isinstance(action, (Create, Apply, Replace)) and pre is None:
            undo = Delete(kind=action.kind, namespace=action.namespace, name=str(action.name))
            return [undo], f"undo: delete the new {action.target}"
        if pre is None:
            return None, f"{action.target} does not exist, so there is no pre-image to restore."
        if isinstance(action, Delete):
            owner = self._live_controller(action.kind, pre)
            if owner:
                return [], f"controller-owned, verified: {owner} recreates {action.target}; nothing to restore"
            recreate = Create(manifest=strip_for_restore(pre))
            return [recreate], f"undo: recreate {action.target} from its pre-image"
        replicasets = self._replicasets_of(pre) if action.kind == "Deployment" else None
        restore = Replace(manifest=strip_for_restore(pre), replicasets=replicasets)
        return [restore], f"undo: restore {action.target} to its pre-image"

    def _exec_inverse_sync(self, action: Exec) -> tuple[str, Obj] | None:
        """The catalogue inverse of ``action``: for an operation whose inverse depends on the state it overwrites,
        that state is read now (the operation's read-only command in the same container), and the replicas of the
        Deployments it stops are recorded, so the undo restores both."""
        name = action.operation
        if not dataplane.has_inverse(name):
            return None
        _pod, container = self._exec_target_sync(action)
        argv = dataplane.read_argv(name, action.args, container)
        observed = None
        if argv is not None:
            code, out, _err = self.api.exec(str(action.namespace), action.name, action.container, argv)
            if code != 0:
                raise dataplane.DataPlaneError(f"its read of the current state ({argv[0]}) exited with code {code}")
            observed = out
        inverse = dataplane.inverse_of(name, action.args, observed)
        stopped = dataplane.stopped_deployments(name, action.args)
        if inverse is None or not stopped:
            return inverse
        replicas = {}
        for deployment in stopped:
            obj = self.api.get("Deployment", action.namespace, deployment)
            if obj is None:
                raise KubeApiError(404, "NotFound", f'deployments.apps "{deployment}" not found')
            replicas[deployment] = int((obj.get("spec") or {}).get("replicas", 1))
        recorded = action.args.get("replicas") or replicas
        return inverse[0], dataplane.check_args(inverse[0], {**inverse[1], "replicas": recorded})

    def _history_sync(self, pre: Obj) -> tuple[set[str], set[Program], set[str]]:
        """Images, programs and pod-template features the revisions ``pre`` controls had, listed from the API once
        (``writepolicy.history_images``, ``history_programs``, ``history_features``)."""
        kind = REVISION_KINDS[str(pre.get("kind"))]
        revisions = self.api.items(kind, (pre.get("metadata") or {}).get("namespace"))
        return (
            history_images(pre, revisions),
            history_programs(pre, revisions),
            history_features(pre, revisions),
        )

    def _consumers_sync(self, namespace: str) -> list[Obj]:
        """The pods and pod-template holders of ``namespace`` (``CONSUMER_KINDS``): who may read a ConfigMap's content
        as code (``writepolicy.configmap_code``). Listed once per ``CONSUMERS_TTL_S``, and again after any write of
        this gateway that is not a ConfigMap's (a write of this transaction that adds a consumer is seen at once)."""
        cached = self._consumers.get(namespace)
        if cached is not None and time.monotonic() - cached[0] < CONSUMERS_TTL_S:
            return cached[1]
        items = [obj for kind in CONSUMER_KINDS for obj in self._served_items(kind, namespace)]
        self._consumers[namespace] = (time.monotonic(), items)
        return items

    def _served_items(self, kind: str, namespace: str) -> list[Obj]:
        """The objects of ``kind`` in ``namespace``; none when the server does not serve the kind (404)."""
        try:
            return self.api.items(kind, namespace)
        except KubeApiError as exc:
            if exc.status != 404:
                raise
            return []

    def _replicasets_of(self, deployment: Obj) -> dict[str, int]:
        """The ReplicaSets a Deployment controls and their replicas (the derived state a rollout changes)."""
        return {
            str(rs["metadata"]["name"]): int(rs["spec"].get("replicas", 1)) for rs in self._replicasets_sync(deployment)
        }

    def _replicasets_sync(self, deployment: Obj) -> list[Obj]:
        meta = deployment["metadata"]
        uid = str(meta.get("uid"))
        return [rs for rs in self.api.items("ReplicaSet", meta.get("namespace")) if _controlled_by(rs, uid)]

    def _live_controller(self, kind: str, pre: Obj) -> str | None:
        kinds = RECREATING_OWNERS.get(kind)
        if not kinds:
            return None
        meta = pre.get("metadata") or {}
        for ref in meta.get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") in kinds:
                owner = self.api.get(str(ref["kind"]), meta.get("namespace"), str(ref.get("name")))
                if owner is not None and owner["metadata"].get("uid") == ref.get("uid"):
                    return f"{ref['kind']}/{ref.get('name')}"
        return None

    async def _send(
        self,
        action: Action,
        base: Obj | None,
        *,
        dry_run: bool,
        request: WireRequest | None = None,
        refresh: bool = True,
    ) -> Any:
        """Send the action against ``base`` (its resourceVersion is the precondition), riding out status churn.

        Controllers and kubelets bump an object's resourceVersion with status updates all the time, so the
        precondition can fail although nothing a writer declared changed. On such a conflict the object is read again:
        if its normalised (spec-level) state still equals ``base``'s, the recorded pre-image and undo remain exact and
        the write is retried on the fresh resourceVersion (fenced again); otherwise the write fails and nothing changed.
        With ``refresh=False`` a conflict is raised to the caller instead.
        """
        if isinstance(action, Exec) and not dry_run and dataplane.stopped_deployments(action.operation, action.args):
            return await self._exec_stopped(action)
        for attempt in range(CONFLICT_RETRIES + 1):
            try:
                if request is None or attempt > 0:
                    request = await self._call(self._build_sync, action, base)
                return await self._call(self._execute_sync, action, request, dry_run)
            except KubeApiError as exc:
                if not refresh or not _is_conflict(exc) or base is None or attempt == CONFLICT_RETRIES:
                    raise
                fresh = await self._call(self._pre_image_sync, action)
                if fresh is None or (not dry_run and normalise(fresh) != normalise(base)):
                    raise KubeApiError(
                        409, "Conflict", f"{action.target} changed after its pre-image was recorded: {exc.api_message}"
                    ) from exc
                base = fresh
                if not dry_run:
                    await self._fence()
        raise AssertionError("unreachable")

    def _build_sync(self, action: Action, base: Obj | None) -> WireRequest | None:
        """The one request for ``action`` against ``base`` (None for exec, which is not a REST write)."""
        if isinstance(action, Exec):
            return None
        ops = None
        if isinstance(action, (SetImage, SetEnv, RolloutRestart, RolloutUndo)):
            if base is None:
                raise KubeApiError(404, "NotFound", f'{KINDS[action.kind].plural} "{action.name}" not found')
            ops = self._template_ops(action, base)
        try:
            return build_write(action, base, template_ops=ops, server_metadata=SERVER_METADATA)
        except InvalidIdentity as exc:
            raise KubeApiError(422, "Invalid", str(exc)) from exc

    def _execute_sync(
        self, action: Action, request: WireRequest | None, dry_run: bool, prepared: PreparedRequest | None = None
    ) -> Any:
        """Send the built request (its dry-run form when ``dry_run``), serialised already when ``prepared`` (the
        same request); exec runs over the exec channel."""
        if isinstance(action, Exec):
            return self._exec_sync(action, dry_run)
        if request is None:
            raise Refusal(f"{action.verb} is not a write.", rule="unsupported")
        if prepared is not None:
            result = self.api.send_prepared(prepared, dry_run=dry_run)
        else:
            result = self.api.send(request.dry_run() if dry_run else request)
        return _with_type(action.kind, result) if isinstance(result, dict) and result.get("metadata") else result

    def _template_ops(self, action: SetImage | SetEnv | RolloutRestart | RolloutUndo, base: Obj) -> list[Obj]:
        """JSON-patch operations on the pod template (or a pod's spec) computed from the current object."""
        pod_spec_path = "/spec" if action.kind == "Pod" else "/spec/template/spec"
        template = (base.get("spec") or {}).get("template") or {}
        pod_spec = (base.get("spec") or {}) if action.kind == "Pod" else (template.get("spec") or {})
        containers = pod_spec.get("containers") or []
        names = [str(c.get("name")) for c in containers]
        ops: list[Obj] = []
        if isinstance(action, SetImage):
            for cname, image in action.images.items():
                targets = range(len(names)) if cname == "*" else [i for i, n in enumerate(names) if n == cname]
                if not targets:
                    raise KubeApiError(0, "", f'error: unable to find container named "{cname}"')
                ops += [
                    {"op": "replace", "path": f"{pod_spec_path}/containers/{i}/image", "value": image} for i in targets
                ]
            return ops
        if isinstance(action, SetEnv):
            targets = [i for i, n in enumerate(names) if action.container in (None, n)]
            if not targets:
                raise KubeApiError(0, "", f'error: unable to find container named "{action.container}"')
            for i in targets:
                env = [e for e in containers[i].get("env") or [] if e.get("name") not in action.unset]
                for key, value in action.env.items():
                    entry = {"name": key, "value": value}
                    idx = next((j for j, e in enumerate(env) if e.get("name") == key), None)
                    if idx is None:
                        env.append(entry)
                    else:
                        env[idx] = entry
                op = "replace" if "env" in containers[i] else "add"
                ops.append({"op": op, "path": f"{pod_spec_path}/containers/{i}/env", "value": env})
            return ops
        if isinstance(action, RolloutRestart):
            annotations = dict((template.get("metadata") or {}).get("annotations") or {})
            annotations[RESTARTED_AT] = _now().strftime("%Y-%m-%dT%H:%M:%SZ")
            meta = dict(template.get("metadata") or {})
            meta["annotations"] = annotations
            op = "replace" if "metadata" in template else "add"
            return [{"op": op, "path": "/spec/template/metadata", "value": meta}]
        revisions = self._revisions(base)
        current = int(((base["metadata"].get("annotations") or {}).get(REVISION)) or 0)
        if action.to_revision is not None:
            chosen = [rs for rev, rs in revisions if rev == action.to_revision]
            if not chosen:
                raise KubeApiError(0, "", f"error: unable to find specified revision {action.to_revision} in history")
        else:
            chosen = [rs for rev, rs in revisions if rev < current] if current else [rs for _, rs in revisions[:-1]]
            chosen = chosen[-1:]
            if not chosen:
                raise KubeApiError(0, "", f'error: no rollout history found for deployment "{action.name}"')
        new_template = copy.deepcopy((chosen[-1].get("spec") or {}).get("template") or {})
        labels = (new_template.get("metadata") or {}).get("labels") or {}
        labels.pop("pod-template-hash", None)
        return [{"op": "replace", "path": "/spec/template", "value": new_template}]

    def _exec_target_sync(self, action: Exec) -> tuple[Obj, Obj]:
        """The running pod and the container ``action`` runs in; ``KubeApiError`` otherwise."""
        pod = self.api.get("Pod", action.namespace, action.name)
        if pod is None:
            raise KubeApiError(404, "NotFound", f'pods "{action.name}" not found')
        names = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        if action.container and action.container not in names:
            raise KubeApiError(0, "", f"error: container {action.container} not found in pod {action.name}")
        if (pod.get("status") or {}).get("phase") != "Running":
            phase = (pod.get("status") or {}).get("phase")
            raise KubeApiError(
                400, "BadRequest", f"pod {action.name} is not running (phase {phase}); exec needs a running container"
            )
        containers = (pod.get("spec") or {}).get("containers") or []
        container = next(
            (c for c in containers if c.get("name") == action.container), containers[0] if containers else {}
        )
        return pod, container

    def _exec_sync(self, action: Exec, dry_run: bool) -> Obj:
        pod, container = self._exec_target_sync(action)
        try:
            argv = dataplane.render(
                action.operation, action.args, pod, container, lambda ns, name: self.api.get("ConfigMap", ns, name)
            )
        except dataplane.DataPlaneError as exc:
            raise KubeApiError(0, "", f"error: {exc}") from exc
        if dry_run:
            for name in dataplane.stopped_deployments(action.operation, action.args):
                if self.api.get("Deployment", action.namespace, name) is None:
                    raise KubeApiError(404, "NotFound", f'deployments.apps "{name}" not found')
            return {"dryRun": f"exec {action.operation}: pod and container are running, the operation renders"}
        code, out, err = self.api.exec(str(action.namespace), action.name, action.container, argv)
        if code != 0:
            # The operation's output is not returned: a database shell may echo what it was given.
            raise ExecFailed(0, "", f"{action.operation} terminated with exit code {code}")
        del out, err
        return {"exitCode": code}

    async def _exec_stopped(self, action: Exec) -> Obj:
        """Run an operation that needs its clients stopped: scale the Deployments it names to 0, wait until their
        pods are gone, run it, and scale them back (to the replicas the undo record carries, else to those of the
        moment), then wait until they have as many Ready pods as before. Each scaling is fenced; when the fence is
        lost midway the new writer's undo (which records the replicas) restores them. Any failure is an
        ``ExecFailed``: the command may have run, so its undo is due."""
        ns = str(action.namespace)
        names = dataplane.stopped_deployments(action.operation, action.args)
        recorded: dict[str, int] = action.args.get("replicas") or {}
        restore: dict[str, int] = {}
        ready: dict[str, int] = {}
        for name in names:
            obj = await self._call(self.api.get, "Deployment", ns, name)
            if obj is None:
                raise ExecFailed(404, "NotFound", f'deployments.apps "{name}" not found')
            restore[name] = int(recorded.get(name, (obj.get("spec") or {}).get("replicas", 1)))
            ready[name] = min(restore[name], int((obj.get("status") or {}).get("readyReplicas") or 0))
        stopped: list[str] = []
        try:
            for name in names:
                await self._fence()
                await self._call(self.api.patch, "Deployment", ns, name, {"spec": {"replicas": 0}}, "merge")
                stopped.append(name)
            if not await self._call(self._wait_sync, STOP_WAIT_S, self._no_pods_sync, ns, names):
                raise ExecFailed(0, "", f"the pods of {', '.join(names)} were not gone within {STOP_WAIT_S:.0f}s")
            result: Obj = await self._call(self._exec_sync, action, False)
        except KubeApiError as exc:
            if not isinstance(exc, ExecFailed):
                exc = ExecFailed(exc.status, exc.reason, exc.api_message)
            raise exc
        finally:
            for name in stopped:
                await self._fence()
                await self._call(self.api.patch, "Deployment", ns, name, {"spec": {"replicas": restore[name]}}, "merge")
                log.info("exec %s: deployment %s/%s back to %d replicas", action.operation, ns, name, restore[name])
        if not await self._call(self._wait_sync, READY_WAIT_S, self._ready_sync, ns, ready):
            raise ExecFailed(
                0,
                "",
                f"{action.operation} ran, but {', '.join(names)} did not get back their Ready pods "
                f"({ready}) within {READY_WAIT_S:.0f}s",
            )
        return result

    @staticmethod
    def _wait_sync(timeout_s: float, done: Callable[..., bool], *args: Any) -> bool:
        deadline = time.monotonic() + timeout_s
        while not done(*args):
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL_S)
        return True

    def _pods_of_sync(self, namespace: str, name: str) -> list[Obj]:
        """The pods a Deployment's ReplicaSets own, terminating ones included."""
        obj = self.api.get("Deployment", namespace, name)
        if obj is None:
            return []
        owners = {str(rs["metadata"].get("uid")) for rs in self._replicasets_sync(obj)}
        return [pod for pod in self.api.items("Pod", namespace) if any(_controlled_by(pod, uid) for uid in owners)]

    def _no_pods_sync(self, namespace: str, deployments: list[str]) -> bool:
        return not any(self._pods_of_sync(namespace, name) for name in deployments)

    def _ready_sync(self, namespace: str, ready: dict[str, int]) -> bool:
        """Whether each Deployment has at least ``ready[name]`` Ready pods that are not terminating (counted from the
        pods, not from a status the controller may not have updated yet)."""
        return all(
            sum(_pod_ready(p) for p in self._pods_of_sync(namespace, name)) >= want for name, want in ready.items()
        )


def _pod_ready(pod: Obj) -> bool:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _is_conflict(exc: KubeApiError) -> bool:
    """A failed resourceVersion precondition: 409, or a JSON-patch ``test`` of it that failed (422)."""
    return exc.status == 409 or (exc.status == 422 and "/metadata/resourceVersion" in exc.api_message)


def _log_lost_outcome(task: asyncio.Future[object]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("a write's outcome was not journaled (the next write is refused): %r", task.exception())


@dataclasses.dataclass(frozen=True)
class _Judged:
    """A write that passed its checks, its intent journaled: sent already (``sent``: its response or the API's
    refusal) or to be sent."""

    intent: JournalRecord
    request: WireRequest | None
    sent: bool = False
    after: Any = None
    error: KubeApiError | None = None


@dataclasses.dataclass(frozen=True)
class _Step:
    """What ``_judged_write_sync`` did: stopped at the dry run, at a refusal, before the write, or sent it."""

    dry_error: KubeApiError | None = None
    refusal: Refusal | None = None
    sent: bool = False
    after: Any = None
    error: KubeApiError | None = None
    journal_error: PermanentError | None = None  # the intent was not journaled (``_wired_write_sync``)
    failure: Exception | None = None  # the judgement failed otherwise (``_wired_write_sync``: after the intent)


def _dry_run_failed(action: Action, error: KubeApiError) -> WriteResult:
    return WriteResult(ok=False, action=action, executed=False, message=f"Dry run failed, nothing was changed: {error}")


def _outcome_of(intent: JournalRecord, ok: bool | None, message: str) -> JournalRecord:
    """The outcome record of ``intent``: ``ok`` True (accepted), False (refused or never sent: the undoer skips it) or
    None (a command that may have run)."""
    return intent.model_copy(
        update={
            "phase": "outcome",
            "ok": ok,
            "message": message,
            "id": new_id("msg"),
            "ts": _now(),
            "pre_image": None,
            "undo": [],
            "dry_run": None,
        }
    )


def _open_gate(gate: concurrent.futures.Future[None], journaled: asyncio.Future[None]) -> None:
    """Tell ``_judged_write_sync`` how the intent's append and the fence ended."""
    if journaled.cancelled():
        gate.cancel()
    elif (exc := journaled.exception()) is not None:
        gate.set_exception(exc)
    else:
        gate.set_result(None)


def _stale(request: WireRequest | None, pre: Obj | None) -> bool:
    """Whether a remembered pre-image is not the request's precondition (read the object again)."""
    return pre is None or request is None or precondition_of(request) != _rv(pre)


def _needs_reads(action: Action, pre: Obj | None, dry: Any) -> bool:
    """Whether judging ``dry`` reads the cluster (``_needs_history``; a ConfigMap's content changes, a ConfigMap or
    a Service deleted: the namespace's pods and templates; a NetworkPolicy: those and the other policies)."""
    return (
        _needs_history(pre, dry)
        or (action.kind == "ConfigMap" and configmap_content_changed(pre, dry))
        or (isinstance(action, Delete) and action.kind in ("ConfigMap", "Service"))
        or action.kind == "NetworkPolicy"
    )


def _needs_history(pre: Obj | None, dry: Any) -> bool:
    """Whether judging ``dry`` needs the images and programs that the revisions of ``pre`` ran (``dry`` brings a new
    image or a new program)."""
    return (
        pre is not None
        and str(pre.get("kind")) in REVISION_KINDS
        and bool(introduced_images(pre, dry) or introduced_programs(pre, dry) or introduced_features(pre, dry))
    )


def _restores_pre_image(action: Action) -> bool:
    """Whether the undo of ``action`` on an existing object puts its pre-image back (an update, not a create, a delete
    or an exec): undoing it when it never ran changes nothing, so its intent may be journaled before it is judged."""
    return not isinstance(action, (Create, Delete, Exec))


def _undo_reads(action: Action) -> bool:
    """Whether the undo record of ``action`` reads the cluster (a Deployment's ReplicaSets, a deleted pod's owner, the
    state a data-plane operation overwrites)."""
    if isinstance(action, Exec):
        return dataplane.operation(action.operation).invert is not None
    return action.kind == "Deployment" or (isinstance(action, Delete) and action.kind in RECREATING_OWNERS)


def _key(action: Action) -> tuple[str, str | None, str]:
    return action.kind, action.namespace, str(action.name)


def _rv(obj: Obj) -> str | None:
    value = (obj.get("metadata") or {}).get("resourceVersion")
    return value if isinstance(value, str) and value else None


def _with_rv(manifest: Obj, base: Obj) -> Obj:
    out: Obj = copy_json(manifest)
    meta = out.setdefault("metadata", {})
    meta["resourceVersion"] = base["metadata"].get("resourceVersion")
    return out


def _done(action: Action, after: Any, note: str, *, created: bool = False) -> str:
    what = f"{action.kind.lower()}/{action.name}"
    past = {
        "patch": "patched",
        "scale": "scaled",
        "set_image": "image updated",
        "set_env": "env updated",
        "rollout_restart": "restarted",
        "rollout_undo": "rolled back",
        "delete": "deleted",
        "apply": "configured",
        "create": "created",
        "replace": "replaced",
        "cordon": "cordoned",
        "uncordon": "uncordoned",
    }
    if isinstance(action, Exec) and isinstance(after, dict):
        return f"exec {action.operation} in pod/{action.name}: exit 0 ({note})"
    verb = "created" if created and isinstance(action, (Apply, Replace)) else past.get(action.verb, action.verb)
    return f"{what} {verb} ({note})"
