"""mu from the oracles' readings: what counts as unhealthy capacity, and when mu is infinite."""

from __future__ import annotations

import math
from typing import Any

from stratus.severity import Snapshot, Weights, assess


def pod(name: str, ready: bool = True, waiting: str | None = None, phase: str = "Running") -> dict[str, Any]:
    state = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    return {
        "metadata": {"name": name},
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [{"name": "c", "ready": ready, "state": state}],
        },
    }


def deploy(name: str, replicas: int, available: int) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"replicas": replicas}, "status": {"availableReplicas": available}}


def test_healthy_scope_is_zero() -> None:
    snap = Snapshot(pods=[pod("a"), pod("b")], deployments=[deploy("a", 1, 1), deploy("b", 1, 1)])
    assert assess(snap).mu == 0


def test_crash_loop_and_not_ready_and_short_deployment_count() -> None:
    snap = Snapshot(
        pods=[pod("a", ready=False, waiting="CrashLoopBackOff"), pod("b", ready=False), pod("c")],
        deployments=[deploy("a", 1, 0), deploy("c", 1, 1)],
    )
    sev = assess(snap)
    assert sev.mu == 3 and not sev.crashed
    assert any("CrashLoopBackOff" in u for u in sev.unhealthy)


def test_service_without_endpoints_unbound_pvc_and_weights() -> None:
    snap = Snapshot(
        deployments=[deploy("x", 1, 1)],
        services=[{"metadata": {"name": "user-service"}, "spec": {"selector": {"app": "u"}}}],
        endpoints=[{"metadata": {"name": "user-service"}, "subsets": []}],
        pvcs=[{"metadata": {"name": "geo-pvc"}, "status": {"phase": "Pending"}}],
        alerts=["PodNotReady"],
        violations=["frontend: HTTP 500"],
    )
    sev = assess(snap, Weights(alerts=2, violations=3, unhealthy=1))
    assert sev.mu == 2 + 3 + 2


def test_every_workload_down_is_infinite() -> None:
    snap = Snapshot(deployments=[deploy("a", 0, 0), deploy("b", 1, 0)])
    sev = assess(snap)
    assert sev.crashed and math.isinf(sev.mu)


def test_completed_pods_are_not_unhealthy() -> None:
    done = pod("job", ready=False, phase="Succeeded")
    assert assess(Snapshot(pods=[done], deployments=[deploy("a", 1, 1)])).mu == 0
