"""The severity's unhealthy-capacity term counts a HorizontalPodAutoscaler that cannot scale its target."""

from __future__ import annotations

import asyncio
from typing import Any

from stratus.severity import SeverityMeter, Snapshot, assess, autoscaler_problem

Obj = dict[str, Any]


def hpa(*conditions: tuple[str, str, str]) -> Obj:
    return {
        "metadata": {"name": "web"},
        "status": {"conditions": [{"type": t, "status": s, "reason": r} for t, s, r in conditions]},
    }


def test_an_autoscaler_that_cannot_compute_or_change_the_scale_is_unhealthy() -> None:
    assert autoscaler_problem(hpa(("ScalingActive", "False", "FailedGetResourceMetric"))) == (
        "ScalingActive=False (FailedGetResourceMetric)"
    )
    assert autoscaler_problem(hpa(("AbleToScale", "False", "FailedGetScale"))) == "AbleToScale=False (FailedGetScale)"
    sev = assess(Snapshot(autoscalers=[hpa(("ScalingActive", "False", "FailedGetResourceMetric"))]))
    assert sev.mu == 1 and sev.unhealthy == ["hpa/web: ScalingActive=False (FailedGetResourceMetric)"]


def test_a_working_or_deliberately_disabled_autoscaler_is_not() -> None:
    assert autoscaler_problem(hpa(("AbleToScale", "True", "SucceededGetScale"), ("ScalingActive", "True", "x"))) is None
    assert autoscaler_problem(hpa(("ScalingActive", "False", "ScalingDisabled"))) is None  # target scaled to 0
    assert autoscaler_problem({"metadata": {"name": "new"}}) is None  # no status yet
    assert assess(Snapshot(autoscalers=[hpa(("ScalingLimited", "False", "DesiredWithinRange"))])).mu == 0


def test_a_cluster_that_does_not_serve_autoscalers_is_not_unreadable() -> None:
    class Lister:
        async def list_objects(self, kind: str, namespace: str | None) -> list[Obj]:
            if kind == "HorizontalPodAutoscaler":
                raise PermissionError("forbidden")
            return []

    sev = asyncio.run(SeverityMeter(Lister()).measure("shop"))
    assert sev.mu == 0 and not sev.crashed
