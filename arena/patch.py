"""The three patch types of the Kubernetes API: strategic merge, JSON merge (RFC 7386) and JSON patch (RFC 6902).

Strategic merge follows the apimachinery rules for the built-in types: lists of objects with a patch merge key
(``containers`` by ``name``, container ``ports`` by ``containerPort``, service ``ports`` by ``port``, ``env`` by
``name``, ...) merge element by element; other lists are replaced; ``null`` deletes a key; the directives ``$patch``
(replace/delete/merge), ``$setElementOrder/<list>``, ``$retainKeys`` and ``$deleteFromPrimitiveList/<list>`` that
``kubectl apply`` and ``kubectl patch`` generate are honoured.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from arena.errors import ApiError, bad_request

MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "schedulingGates": "name",
    "secrets": "name",
}
PRIMITIVE_MERGE = {"finalizers"}
_DELETE = object()


def _merge_key(field: str, orig: list[Any], patch: list[Any]) -> str | None:
    if field == "ports":
        for item in [*orig, *patch]:
            if isinstance(item, dict) and "containerPort" in item:
                return "containerPort"
        return "port"
    return MERGE_KEYS.get(field)


def strategic_merge(original: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        raise bad_request("json: cannot unmarshal patch into Go value of type map[string]interface {}")
    result = _merge_map(original if isinstance(original, dict) else {}, patch)
    return {} if result is _DELETE else result


def _merge_map(orig: dict[str, Any], patch: dict[str, Any]) -> Any:
    directive = patch.get("$patch")
    if directive == "delete":
        return _DELETE
    if directive == "replace":
        return {k: v for k, v in patch.items() if k != "$patch"}
    result = copy.copy(orig)
    orders: dict[str, list[Any]] = {}
    retain: list[str] | None = None
    for key, value in patch.items():
        if key == "$patch":
            continue
        if key == "$retainKeys":
            retain = list(value or [])
            continue
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value or []
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            drop = set(map(json.dumps, value or []))
            result[field] = [v for v in result.get(field) or [] if json.dumps(v) not in drop]
            continue
        if value is None:
            result.pop(key, None)
            continue
        current = result.get(key)
        if isinstance(value, dict):
            merged = _merge_map(current if isinstance(current, dict) else {}, value)
            if merged is _DELETE:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list(key, current if isinstance(current, list) else [], value)
        else:
            result[key] = value
    for field, order in orders.items():
        if isinstance(result.get(field), list):
            result[field] = _order(field, result[field], order)
    if retain is not None:
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(field: str, orig: list[Any], patch: list[Any]) -> list[Any]:
    if (patch and all(not isinstance(x, dict) for x in patch)) or (
        not patch and orig and not isinstance(orig[0], dict)
    ):
        if field in PRIMITIVE_MERGE:
            out = list(orig)
            for v in patch:
                if v not in out:
                    out.append(v)
            return out
        return list(patch)
    key = _merge_key(field, orig, patch)
    if key is None:
        return [x for x in patch if not (isinstance(x, dict) and x.get("$patch"))]
    if any(isinstance(x, dict) and x.get("$patch") == "replace" for x in patch):
        return [x for x in patch if not (isinstance(x, dict) and "$patch" in x)]
    out = list(orig)
    for item in patch:
        if not isinstance(item, dict):
            raise bad_request(f"unable to merge list {field!r}: every element must be an object")
        if key not in item:
            raise ApiError(422, "Invalid", f"map: {json.dumps(item)} does not contain declared merge key: {key}", {})
        idx = next((i for i, o in enumerate(out) if isinstance(o, dict) and o.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            merged = _merge_map({}, item)
            if merged is not _DELETE:
                out.append(merged)
        else:
            merged = _merge_map(out[idx], item)
            if merged is _DELETE:
                out.pop(idx)
            else:
                out[idx] = merged
    return out


def _order(field: str, items: list[Any], order: list[Any]) -> list[Any]:
    if not items or not isinstance(items[0], dict):
        pos = {json.dumps(v): i for i, v in enumerate(order)}
        return sorted(items, key=lambda v: pos.get(json.dumps(v), len(pos)))
    key = _merge_key(field, items, order)
    if key is None:
        return items
    pos = {json.dumps(o.get(key)): i for i, o in enumerate(order) if isinstance(o, dict)}
    return sorted(items, key=lambda v: pos.get(json.dumps(v.get(key)), len(pos)))


def merge_patch(original: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(original) if isinstance(original, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


class JsonPatchError(Exception):
    pass


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise JsonPatchError(f"invalid path: {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str], path: str) -> Any:
    cur = doc
    for p in parts:
        if isinstance(cur, dict):
            if p not in cur:
                raise JsonPatchError(f"doc is missing path: {path!r}: missing value")
            cur = cur[p]
        elif isinstance(cur, list):
            try:
                cur = cur[int(p)]
            except (ValueError, IndexError) as exc:
                raise JsonPatchError(f"doc is missing path: {path!r}: missing value") from exc
        else:
            raise JsonPatchError(f"doc is missing path: {path!r}: missing value")
    return cur


def _remove(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        raise JsonPatchError("unable to remove the whole document")
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise JsonPatchError(f"unable to remove nonexistent key: {last}: missing value")
        return parent.pop(last)
    if isinstance(parent, list):
        try:
            return parent.pop(int(last))
        except (ValueError, IndexError) as exc:
            raise JsonPatchError(f"unable to remove nonexistent index: {path}") from exc
    raise JsonPatchError(f"doc is missing path: {path!r}")


def _add(doc: Any, path: str, value: Any, replace: bool = False) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise JsonPatchError(f"replace operation does not apply: doc is missing key: {path}: missing value")
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-" and not replace:
            parent.append(value)
        else:
            try:
                i = int(last)
            except ValueError as exc:
                raise JsonPatchError(f"invalid index {last!r} in path {path}") from exc
            if replace:
                if not 0 <= i < len(parent):
                    raise JsonPatchError(f"replace operation does not apply: doc is missing key: {path}")
                parent[i] = value
            else:
                if not 0 <= i <= len(parent):
                    raise JsonPatchError(f"add operation does not apply: index out of bounds: {path}")
                parent.insert(i, value)
    else:
        raise JsonPatchError(f"doc is missing path: {path!r}: missing value")
    return doc


def json_patch(original: Any, ops: Any) -> Any:
    """RFC 6902 JSON patch; raises ``JsonPatchError`` when an operation does not apply."""
    if not isinstance(ops, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(original)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op:
            raise bad_request(f"invalid JSON patch operation: {json.dumps(op)}")
        kind, path = op["op"], op.get("path", "")
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            doc = _add(doc, path, copy.deepcopy(op.get("value")), replace=True)
        elif kind in ("move", "copy"):
            src = op.get("from", "")
            value = _remove(doc, src) if kind == "move" else copy.deepcopy(_walk(doc, _pointer(src), src))
            doc = _add(doc, path, value)
        elif kind == "test":
            if _walk(doc, _pointer(path), path) != op.get("value"):
                raise JsonPatchError(f"testing value {path} failed: test failed")
        else:
            raise bad_request(f"Unexpected kind: {kind}")
    return doc
