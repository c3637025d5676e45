"""Deciding when a scope has an incident: pure bookkeeping of consecutive bad probes (no I/O here)."""

from __future__ import annotations

from dataclasses import dataclass, field

from stratus.contracts import Severity

SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})


@dataclass
class Confirmation:
    """A scope opens an incident only after ``needed`` consecutive probes at or over the threshold."""

    threshold: float
    needed: int
    streaks: dict[str, int] = field(default_factory=dict)

    def observe(self, scope: str, severity: Severity) -> bool:
        if severity.crashed or severity.mu >= self.threshold:
            self.streaks[scope] = self.streaks.get(scope, 0) + 1
        else:
            self.streaks.pop(scope, None)
        return self.streaks.get(scope, 0) >= self.needed

    def reset(self, scope: str) -> None:
        self.streaks.pop(scope, None)


def evidence(severity: Severity, limit: int = 20) -> list[str]:
    items = [f"alert: {a}" for a in severity.alerts]
    items += [f"slo: {v}" for v in severity.violations]
    items += [f"unhealthy: {u}" for u in severity.unhealthy]
    return items[:limit]


def watched(namespaces: list[str], configured: list[str]) -> list[str]:
    if configured:
        return list(configured)
    return sorted(n for n in namespaces if n not in SYSTEM_NAMESPACES and not n.startswith("kube-"))
