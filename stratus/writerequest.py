"""The request builder: one HTTP request per write, from which the dry run is derived by adding ``dryRun=All``.

Why it is shaped this way: a write is examined (confinement, the lease, the write policy, the ready-capacity rule) on
its typed action, then proved harmless by a server-side dry run, then sent. If the dry run and the write were built by
two code paths, or if a path could mean something other than the action's identity, the server could act on an object
nobody examined: a ``#`` in a name turns ``?dryRun=All`` into a fragment, ``..`` segments are normalised into another
namespace's path. So:

- ``object_path`` validates the kind, namespace and name with Kubernetes' rules (``stratus.identity``), quotes every
  segment, and checks that the path it built parses back to exactly the segments it was given;
- ``build_write`` turns an action and the object it is computed against into a ``WireRequest``;
- ``WireRequest.dry_run()`` is the same request with ``dryRun=All`` (also in the ``DeleteOptions`` body of a delete);
  the gateway sends the dry run and then the very request it derived it from.
"""

from __future__ import annotations

import copy
import dataclasses
import posixpath
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import quote, unquote

from stratus.actions import (
    KINDS,
    Action,
    Apply,
    Cordon,
    Create,
    Delete,
    Patch,
    Replace,
    RolloutRestart,
    RolloutUndo,
    Scale,
    SetEnv,
    SetImage,
    Uncordon,
    resolve_kind,
)
from stratus.identity import InvalidIdentity, check_identity

Obj = dict[str, Any]
PatchType = Literal["strategic", "merge", "json"]
PATCH_CONTENT_TYPES: dict[str, str] = {
    "strategic": "application/strategic-merge-patch+json",
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
}
SUBRESOURCES = frozenset({"status", "scale", "log", "exec"})


@dataclasses.dataclass(frozen=True)
class WireRequest:
    """One REST request exactly as it goes to the API server."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    body: Any = None
    content_type: str = "application/json"

    @property
    def is_dry_run(self) -> bool:
        return ("dryRun", "All") in self.query

    def dry_run(self) -> WireRequest:
        """The same request with ``dryRun=All``: nothing else differs."""
        if self.is_dry_run:
            return self
        body = self.body
        if self.method == "DELETE" and isinstance(body, dict):
            body = {**body, "dryRun": ["All"]}
        return dataclasses.replace(self, query=(*self.query, ("dryRun", "All")), body=body)


def _segment(value: str) -> str:
    return quote(value, safe="")


@lru_cache(maxsize=1024)
def object_path(kind: str, namespace: str | None, name: str | None = None, sub: str | None = None) -> str:
    """The REST path of a kind's collection or object; raises ``InvalidIdentity`` for names Kubernetes refuses
    (memoised: a pure function of its arguments, and the same objects are read and written again and again; a refusal
    is not cached, so it is raised every time)."""
    info = KINDS[resolve_kind(kind)]
    check_identity(info.kind, namespace if info.namespaced else None, name)
    if sub is not None and sub not in SUBRESOURCES:
        raise InvalidIdentity(f"subresource {sub!r} is not one of {', '.join(sorted(SUBRESOURCES))}")
    segments = ["api", info.api_version] if "/" not in info.api_version else ["apis", *info.api_version.split("/")]
    if info.namespaced and namespace:
        segments += ["namespaces", namespace]
    segments.append(info.plural)
    if name:
        segments.append(name)
    if sub:
        segments.append(sub)
    path = "/" + "/".join(_segment(s) for s in segments)
    # Belt and braces: the path must be its own normal form and decode to exactly these segments.
    if posixpath.normpath(path) != path or [unquote(p) for p in path.split("/")[1:]] != segments:
        raise InvalidIdentity(f"the request path for {kind} {namespace}/{name} would not be the object's own path")
    return path


def create_request(manifest: Obj) -> WireRequest:
    meta = manifest.get("metadata") or {}
    return WireRequest("POST", object_path(manifest["kind"], meta.get("namespace")), body=manifest)


def replace_request(manifest: Obj) -> WireRequest:
    meta = manifest.get("metadata") or {}
    return WireRequest("PUT", object_path(manifest["kind"], meta.get("namespace"), meta["name"]), body=manifest)


def patch_request(kind: str, namespace: str | None, name: str, body: Any, patch_type: PatchType) -> WireRequest:
    return WireRequest(
        "PATCH", object_path(kind, namespace, name), body=body, content_type=PATCH_CONTENT_TYPES[patch_type]
    )


def delete_request(kind: str, namespace: str | None, name: str, *, preconditions: Obj | None = None) -> WireRequest:
    body: Obj = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
    if preconditions:
        body["preconditions"] = preconditions
    return WireRequest("DELETE", object_path(kind, namespace, name), body=body)


_ATOMS = (str, int, float, bool, type(None))


def copy_json(value: Any) -> Any:
    """A deep copy of decoded JSON (dicts, lists, immutable leaves), several times faster than ``copy.deepcopy``,
    which it falls back to for any other value."""
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    if isinstance(value, _ATOMS):
        return value
    return copy.deepcopy(value)


def strip_for_restore(obj: Obj, server_metadata: tuple[str, ...] | frozenset[str]) -> Obj:
    out = {k: copy_json(v) for k, v in obj.items() if k != "status"}
    meta = out.setdefault("metadata", {})
    for key in server_metadata:
        meta.pop(key, None)
    return out


def with_resource_version(manifest: Obj, base: Obj) -> Obj:
    out: Obj = copy_json(manifest)
    out.setdefault("metadata", {})["resourceVersion"] = base["metadata"].get("resourceVersion")
    return out


def build_write(
    action: Action,
    base: Obj | None,
    *,
    template_ops: list[Obj] | None = None,
    server_metadata: tuple[str, ...] | frozenset[str] = (),
) -> WireRequest:
    """The request that performs ``action`` on ``base`` (None: the object does not exist), with ``base``'s
    resourceVersion as its precondition. ``template_ops`` are the JSON-patch operations of set image/env and rollout
    restart/undo, computed from ``base`` by the gateway."""
    if isinstance(action, Create):
        return create_request(action.manifest)
    if isinstance(action, (Apply, Replace)):
        if base is None:
            return create_request(action.manifest)
        if isinstance(action, Replace):
            return replace_request(with_resource_version(action.manifest, base))
        body = with_resource_version(strip_for_restore(action.manifest, server_metadata), base)
        return patch_request(action.kind, action.namespace, str(action.name), body, "strategic")
    name = str(action.name)
    if isinstance(action, (SetImage, SetEnv, RolloutRestart, RolloutUndo)):
        if base is None or template_ops is None:
            raise InvalidIdentity(f"{action.verb} on {action.target} needs the current object")
        rv_test = {"op": "test", "path": "/metadata/resourceVersion", "value": base["metadata"]["resourceVersion"]}
        return patch_request(action.kind, action.namespace, name, [rv_test, *template_ops], "json")
    rv = base["metadata"].get("resourceVersion") if base is not None else None
    meta = {"metadata": {"resourceVersion": rv}} if rv else {}
    if isinstance(action, Delete):
        pre_cond = {"uid": base["metadata"].get("uid"), "resourceVersion": rv} if base is not None else None
        return delete_request(action.kind, action.namespace, name, preconditions=pre_cond)
    if isinstance(action, Patch):
        if action.patch_type == "json":
            test = [{"op": "test", "path": "/metadata/resourceVersion", "value": rv}] if rv else []
            return patch_request(action.kind, action.namespace, name, [*test, *action.patch], "json")
        patch_body: Any = action.patch
        if rv and isinstance(action.patch, dict):
            patch_body = with_resource_version(action.patch, {"metadata": {"resourceVersion": rv}})
        return patch_request(action.kind, action.namespace, name, patch_body, action.patch_type)
    if isinstance(action, Scale):
        return patch_request(
            action.kind, action.namespace, name, {**meta, "spec": {"replicas": action.replicas}}, "merge"
        )
    if isinstance(action, (Cordon, Uncordon)):
        flag = True if isinstance(action, Cordon) else None
        return patch_request(action.kind, None, name, {**meta, "spec": {"unschedulable": flag}}, "merge")
    raise InvalidIdentity(f"{action.verb} is not a REST write")


def precondition_of(request: WireRequest) -> str | None:
    """The resourceVersion ``request`` is conditioned on (``build_write`` puts the base's there), or None."""
    body = request.body
    if request.method == "PATCH" and isinstance(body, list):
        first = body[0] if body else None
        if isinstance(first, dict) and first.get("op") == "test" and first.get("path") == "/metadata/resourceVersion":
            value = first.get("value")
            return value if isinstance(value, str) else None
        return None
    if not isinstance(body, dict):
        return None
    holder = body.get("preconditions") if request.method == "DELETE" else body.get("metadata")
    value = holder.get("resourceVersion") if isinstance(holder, dict) else None
    return value if isinstance(value, str) else None
