"""``kubectl logs deploy/NAME`` reads the pod kubectl would pick (its ByLogging order)."""

from __future__ import annotations

from typing import Any

from stratus.gateway import _logging_order

Obj = dict[str, Any]


def pod(name: str, *, node: str = "n1", phase: str = "Running", ready: bool = False, restarts: int = 0) -> Obj:
    return {
        "metadata": {"name": name, "creationTimestamp": f"2026-01-01T00:00:0{name[-1]}Z"},
        "spec": {"nodeName": node} if node else {},
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [{"name": "c", "restartCount": restarts}],
        },
    }


def first(*pods: Obj) -> str:
    return str(min(pods, key=_logging_order)["metadata"]["name"])


def test_a_ready_pod_is_read_before_a_crashing_one_and_a_crash_looping_one_before_a_fresh_one() -> None:
    assert first(pod("p1", restarts=4), pod("p2", ready=True)) == "p2"
    # two not-ready pods: the one that has restarted has a previous log to read, whatever their ages
    assert first(pod("p1"), pod("p2", restarts=3)) == "p2"
    assert first(pod("p1", restarts=1), pod("p2", restarts=1)) == "p1"  # then the older


def test_scheduled_running_pods_come_before_pending_and_unscheduled_ones() -> None:
    assert first(pod("p1", node="", phase="Pending"), pod("p2", phase="Pending")) == "p2"
    assert first(pod("p1", phase="Pending", restarts=9), pod("p2")) == "p2"
