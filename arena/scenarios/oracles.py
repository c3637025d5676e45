"""Mitigation oracles: ``compat`` reproduces AIOpsLab's checks with their quirks; ``strict`` adds what a fix must
really achieve (every pod Ready, the faulted field restored, a post-fix workload with no errors).

Also the evaluators of the other tasks (detection, localization, analysis), with AIOpsLab's exact semantics.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, Field

from arena.scenarios.schema import FieldCheck, GroundTruth

Obj = dict[str, Any]
Mode = Literal["compat", "strict"]


class Verdict(BaseModel):
    scenario: str = Field(description="Problem id.")
    mode: Mode = Field(description="Which oracle judged.")
    passed: bool = Field(description="The verdict.")
    reasons: list[str] = Field(default_factory=list, description="Why it failed (empty when it passed).")
    notes: list[str] = Field(default_factory=list, description="What was checked.")


# ---------------------------------------------------------------------------------------------------- field paths
_PART = re.compile(r"([^.\[\]]+)|\[(\d+|\*)\]|\[['\"]([^'\"]+)['\"]\]|\[(\w[\w.-]*)=([^\]]*)\]")


def values_at(obj: Any, path: str) -> list[Any]:
    """Values at a dotted path with ``[i]``, ``[*]``, ``["key.with.dots"]`` and ``[key=value]`` (the elements of a
    list whose ``key`` is ``value``, e.g. ``env[name=PORT].value``); a missing field yields ``[None]``.
    A string holding a JSON document is descended into (a ConfigMap key with a JSON file: ``data["f.json"].a.b``)."""
    current: list[Any] = [obj]
    for m in _PART.finditer(path):
        key, index = m.group(1) or m.group(3), m.group(2)  # name, [i] / [*], or ["a.key.with.dots"]
        nxt: list[Any] = []
        for v in current:
            if isinstance(v, str) and v.lstrip()[:1] in ("{", "["):
                try:
                    v = json.loads(v)
                except ValueError:
                    pass
            if m.group(4) is not None:
                nxt.extend(
                    e
                    for e in (v if isinstance(v, list) else [])
                    if isinstance(e, dict) and _same(e.get(m.group(4)), m.group(5))
                )
            elif key is not None:
                nxt.append(v.get(key) if isinstance(v, dict) else None)
            elif index == "*":
                nxt.extend(v if isinstance(v, list) else [None])
            else:
                i = int(index)
                nxt.append(v[i] if isinstance(v, list) and i < len(v) else None)
        current = nxt
    return current or [None]


def field_check(check: FieldCheck, obj: Obj | None) -> str | None:
    """None when the check holds, else the reason."""
    where = f"{check.kind}/{check.name} {check.path}"
    if obj is None:
        return None if check.absent else f"{check.kind}/{check.name} does not exist"
    values = values_at(obj, check.path)
    if check.absent:
        return None if all(v in (None, {}, []) for v in values) else f"{where} is {values} (must be absent)"
    if check.equals is not None:
        ok = all(_same(v, check.equals) for v in values)
        return None if ok else f"{where} is {_show(values)} (must be {check.equals!r})"
    if check.at_most is not None:
        present = [v for v in values if v is not None]
        try:
            ok = all(float(v) <= check.at_most for v in present)
        except (TypeError, ValueError):
            ok = False
        return None if ok else f"{where} is {_show(values)} (must be a number at most {check.at_most:g})"
    if check.contains is not None:
        ok = all(v is not None and check.contains in v for v in values)
        return None if ok else f"{where} is {_show(values)} (must contain {check.contains!r})"
    ok = all(v is None or check.not_contains not in v for v in values)
    return None if ok else f"{where} is {_show(values)} (must not contain {check.not_contains!r})"


def _same(v: Any, want: Any) -> bool:
    return v == want or (v is not None and str(v) == str(want))


def _show(values: list[Any]) -> Any:
    return values[0] if len(values) == 1 else values


# -------------------------------------------------------------------------------------------------- ALL_READY
def all_ready(pods: list[Obj], guarded: bool) -> list[str]:
    """AIOpsLab's shared mitigation check, with its quirk: guarded skips pods without container statuses."""
    reasons = []
    for pod in pods:
        name = pod["metadata"]["name"]
        statuses = (pod.get("status") or {}).get("containerStatuses")
        if not statuses:
            if guarded:
                continue
            return [f"pod {name} has no container statuses: the check raises TypeError ('NoneType' is not iterable)"]
        for cs in statuses:
            state = cs.get("state") or {}
            waiting, terminated = state.get("waiting"), state.get("terminated")
            if waiting and waiting.get("reason") == "CrashLoopBackOff":
                reasons.append(f"pod {name} container {cs.get('name')} is in CrashLoopBackOff")
            elif terminated and terminated.get("reason") != "Completed":
                reasons.append(f"pod {name} container {cs.get('name')} terminated: {terminated.get('reason')}")
            elif not cs.get("ready"):
                reasons.append(f"pod {name} container {cs.get('name')} is not ready")
    return reasons


def every_pod_ready(pods: list[Obj]) -> list[str]:
    """strict: every pod Running with every container ready (a Pending pod fails); a pod that has Succeeded (a
    finished Job's) has done its work and is not counted."""
    reasons = []
    for pod in pods:
        m, st = pod["metadata"], pod.get("status") or {}
        if st.get("phase") == "Succeeded" and not m.get("deletionTimestamp"):
            continue
        if m.get("deletionTimestamp"):
            reasons.append(f"pod {m['name']} is terminating")
            continue
        if st.get("phase") != "Running":
            reasons.append(f"pod {m['name']} is {st.get('phase', 'Pending')}")
            continue
        for cs in st.get("containerStatuses") or [{"name": "?", "ready": False}]:
            if not cs.get("ready"):
                state = cs.get("state") or {}
                why = (state.get("waiting") or {}).get("reason") or next(iter(state), "not running")
                reasons.append(f"pod {m['name']} container {cs.get('name')} is not ready ({why})")
    return reasons


# --------------------------------------------------------------------------------------------- other task types
def evaluate_detection(truth: GroundTruth, answer: Any) -> bool:
    return str(answer).strip().lower() == ("yes" if truth.detection else "no")


def evaluate_localization(truth: GroundTruth, answer: Any) -> tuple[bool, float]:
    """AIOpsLab: success if the answer is the target list or has exactly one element that is a target."""
    soln = [str(a) for a in answer] if isinstance(answer, list) else [str(answer)]
    accepted = [truth.localization, *truth.localization_alternatives]
    for target in accepted:
        if soln == target or (len(target) == 1 and target[0] in soln and len(soln) == 1):
            return True, 100.0
    targets = {t for lst in accepted for t in lst}
    hit = any(s in targets for s in soln)
    return False, (100.0 / len(soln) if hit and soln else 0.0)


def evaluate_analysis(truth: GroundTruth, answer: Any) -> bool:
    if not isinstance(answer, dict):
        return False
    level = str(answer.get("system_level", "")).strip().lower()
    kind = str(answer.get("fault_type", "")).strip().lower()
    return level == str(truth.system_level).lower() and kind == str(truth.fault_type).lower()
