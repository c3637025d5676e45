"""Small helpers over JSON-shaped Kubernetes objects: timestamps, metadata, owners, quantities."""

from __future__ import annotations

import datetime as dt
import random
import re
from typing import Any

Obj = dict[str, Any]

_ALNUM = "bcdfghjklmnpqrstvwxz2456789"


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(ts: str | None) -> dt.datetime | None:
    if not ts:
        return None
    try:
        return dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None


def age(ts: str | None) -> str:
    """kubectl's short duration (``5s``, ``3m2s``, ``4h``, ``2d``), as in the AGE column."""
    t = parse_time(ts)
    if t is None:
        return "<unknown>"
    secs = max(0, int((dt.datetime.now(dt.UTC) - t).total_seconds()))
    return human_duration(secs)


def human_duration(secs: int) -> str:
    if secs < 120:
        return f"{secs}s"
    mins = secs // 60
    if mins < 10:
        return f"{mins}m{secs % 60}s" if secs % 60 else f"{mins}m"
    if mins < 180:
        return f"{mins}m"
    hours = secs // 3600
    if hours < 8:
        return f"{hours}h{mins % 60}m" if mins % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"


def random_suffix(n: int = 5) -> str:
    return "".join(random.choice(_ALNUM) for _ in range(n))


def safe_encode(value: int) -> str:
    """A short string from an int, with the alphabet apimachinery's ``rand.SafeEncodeString`` uses."""
    out = []
    for _ in range(10):
        out.append(_ALNUM[value % len(_ALNUM)])
        value //= len(_ALNUM)
    return "".join(out).rstrip(_ALNUM[0]) or _ALNUM[0]


def meta(obj: Obj) -> Obj:
    m: Obj = obj.setdefault("metadata", {})
    return m


def name_of(obj: Obj) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


def ns_of(obj: Obj) -> str:
    return str(obj.get("metadata", {}).get("namespace") or "")


def labels_of(obj: Obj) -> dict[str, str]:
    return obj.get("metadata", {}).get("labels") or {}


def controller_of(obj: Obj) -> Obj | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def owner_ref(owner: Obj, controller: bool = True) -> Obj:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def is_terminating(obj: Obj) -> bool:
    return bool(obj.get("metadata", {}).get("deletionTimestamp"))


_QTY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
_SUFFIX = {
    "": 1.0,
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}


def parse_quantity(q: Any) -> float:
    """A resource quantity (``100m``, ``1.5``, ``128Mi``, ``1e3``) as a float; ValueError when malformed."""
    if isinstance(q, int | float):
        return float(q)
    s = str(q).strip()
    m = _QTY.match(s)
    if not m:
        raise ValueError(s)
    num, suf = m.group(1), m.group(2)
    if suf in _SUFFIX:
        return float(num) * _SUFFIX[suf]
    if suf[:1] in "eE":
        return float(num + suf)
    raise ValueError(s)


def condition(obj: Obj, ctype: str) -> Obj | None:
    for c in obj.get("status", {}).get("conditions") or []:
        if c.get("type") == ctype:
            return dict(c)
    return None


def set_condition(status: Obj, ctype: str, value: str, reason: str = "", message: str = "", **extra: Any) -> None:
    """Set a condition in ``status.conditions``, keeping lastTransitionTime unless the status flips."""
    conds = status.setdefault("conditions", [])
    ts = now()
    for c in conds:
        if c.get("type") == ctype:
            if c.get("status") != value:
                c["lastTransitionTime"] = ts
            c["status"] = value
            if reason:
                c["reason"] = reason
            else:
                c.pop("reason", None)
            if message:
                c["message"] = message
            else:
                c.pop("message", None)
            c.update(extra)
            return
    new: Obj = {"type": ctype, "status": value, "lastTransitionTime": ts, **extra}
    if reason:
        new["reason"] = reason
    if message:
        new["message"] = message
    conds.append(new)
