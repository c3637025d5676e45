"""Label and field selectors, parsed from their query-string forms and from ``LabelSelector`` objects."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from arena.errors import bad_request

Obj = dict[str, Any]
Requirement = tuple[str, str, list[str]]  # key, operator (=, !=, in, notin, exists, !), values

_SET = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|!=|=)\s*([A-Za-z0-9_./-]*)\s*$")


def _split(selector: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def parse_labels(selector: str | None) -> list[Requirement]:
    if not selector:
        return []
    reqs: list[Requirement] = []
    for part in _split(selector):
        m = _EQ.match(part)
        if m:
            reqs.append((m.group(1), "!=" if m.group(2) == "!=" else "=", [m.group(3)]))
            continue
        m = _SET.match(part)
        if m and not (m.group(1) and m.group(3)):
            if m.group(3):
                reqs.append((m.group(2), m.group(3), [v.strip() for v in m.group(4).split(",") if v.strip()]))
            else:
                reqs.append((m.group(2), "!" if m.group(1) else "exists", []))
            continue
        raise bad_request(f"unable to parse requirement: found '{part.strip()}', expected: in, notin, =, ==, !=")
    return reqs


def match_labels(reqs: list[Requirement], labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    for key, op, values in reqs:
        present = key in labels
        val = labels.get(key)
        if (
            (op == "=" and val != values[0])
            or (op == "!=" and present and val == values[0])
            or (op == "in" and val not in values)
            or (op == "notin" and present and val in values)
            or (op == "exists" and not present)
            or (op == "!" and present)
        ):
            return False
    return True


def label_selector_requirements(sel: Obj | None) -> list[Requirement] | None:
    """Requirements of a ``LabelSelector`` object; None for a null selector (matches nothing)."""
    if sel is None:
        return None
    reqs: list[Requirement] = [(k, "=", [v]) for k, v in (sel.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for e in sel.get("matchExpressions") or []:
        reqs.append((e["key"], ops.get(e.get("operator", ""), "in"), list(e.get("values") or [])))
    return reqs


def selector_string(sel: Obj | None) -> str:
    """The string form kubectl shows for a ``LabelSelector`` (``app=x,tier in (a,b)``)."""
    if not sel:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        op = e.get("operator")
        if op == "Exists":
            parts.append(e["key"])
        elif op == "DoesNotExist":
            parts.append("!" + e["key"])
        else:
            parts.append(f"{e['key']} {'in' if op == 'In' else 'notin'} ({','.join(e.get('values') or [])})")
    return ",".join(parts)


def _path(obj: Obj, path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def parse_fields(selector: str | None) -> Callable[[Obj], bool]:
    """A predicate for a field selector like ``status.phase=Running,spec.nodeName!=node-1``."""
    if not selector:
        return lambda o: True
    terms: list[tuple[str, bool, str]] = []
    for part in selector.split(","):
        part = part.strip()
        if not part:
            continue
        m = re.match(r"^([A-Za-z0-9_.]+)\s*(==|!=|=)\s*(.*)$", part)
        if not m:
            raise bad_request(f"invalid selector: '{selector}'; can't understand '{part}'")
        terms.append((m.group(1), m.group(2) == "!=", m.group(3)))

    def pred(obj: Obj) -> bool:
        for path, negate, want in terms:
            v = _path(obj, path)
            if path == "metadata.namespace" and v is None:
                v = ""
            s = "" if v is None else (str(v).lower() if isinstance(v, bool) else str(v))
            if (s == want) == negate:
                return False
        return True

    return pred
