"""Deciding when a scope has an incident: pure bookkeeping of recent bad probes (no I/O here)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from stratus.contracts import Severity

SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})


@dataclass
class Confirmation:
    """A scope opens an incident once ``needed`` of its last ``window`` probes were at or over the threshold, the
    latest one included.

    ``needed`` consecutive probes (``window == needed``) would miss an intermittent failure: one request in ten
    failing shows two bad probes in a row about once in a hundred probes, so it was detected minutes late or not at
    all. Counting them within a window keeps what the streak was for (one blip opens nothing) and sees a failure that
    recurs.
    """

    threshold: float
    needed: int
    window: int = 0  # 0: ``needed`` (consecutive probes)
    recent: dict[str, deque[bool]] = field(default_factory=dict)

    def observe(self, scope: str, severity: Severity) -> bool:
        bad = severity.crashed or severity.mu >= self.threshold
        if self.needed > max(self.window, 1) and self.window:
            return False  # more bad probes than the window holds: probes never open an incident (alerts do)
        size = max(self.window, self.needed)
        seen = self.recent.get(scope)
        if seen is None:
            if not bad:
                return False  # nothing kept for a healthy scope
            seen = self.recent[scope] = deque(maxlen=size)
        seen.append(bad)
        if not any(seen):
            del self.recent[scope]
            return False
        return bad and sum(seen) >= self.needed

    def reset(self, scope: str) -> None:
        self.recent.pop(scope, None)


def evidence(severity: Severity, limit: int = 20) -> list[str]:
    items = [f"alert: {a}" for a in severity.alerts]
    items += [f"slo: {v}" for v in severity.violations]
    items += [f"unhealthy: {u}" for u in severity.unhealthy]
    return items[:limit]


def watched(namespaces: list[str], configured: list[str]) -> list[str]:
    if configured:
        return list(configured)
    return sorted(n for n in namespaces if n not in SYSTEM_NAMESPACES and not n.startswith("kube-"))
