"""Operator modes in the coordinator's engine (real NATS and Redis, scripted cluster readings): what each mode sends
to the mitigator, the approval's branches (approve, deny, time-out) and that an approved plan runs as a transaction."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from services.coordinator.engine import Engine
from stratus import contracts as c
from stratus.actions import Scale
from stratus.alock import ALock
from stratus.bus import Bus
from tests.integration.test_coordinator_engine import (
    ScriptedObserver,
    alock,
    diagnosis,
    ended,
    no_sleep,
    opened,
    settings,
    start,
)

pytestmark = pytest.mark.integration
__all__ = ["alock"]  # the fixture, imported for this module's tests

SCALE = Scale(kind="Deployment", namespace="ns", name="web", replicas=1)


def proposed(incident: str, req: dict[str, Any], actions: list[c.Action] | None = None) -> c.PlanProposed:
    planned = [c.PlannedAction(action=a, diff="-  replicas: 0\n+  replicas: 1\n") for a in (actions or [SCALE])]
    return c.PlanProposed(incident_id=incident, tx_id=req["tx_id"], attempt=req["attempt"], actions=planned)


async def until_planned(engine: Engine, box: Any, incident: str, scope: str) -> dict[str, Any]:
    await engine.handle(opened(incident, scope))
    await engine.handle(diagnosis(incident))
    request = (await box.wait_kind("mitigate"))[0]
    assert request["plan_only"] is True and request["plan"] is None
    return request


async def test_observe_never_requests_a_mitigation(bus: Bus, redis: aioredis.Redis, alock: ALock, uid: str) -> None:
    incident, scope = f"inc-{uid}", f"ns-{uid}"
    box, sub = await start(bus, incident)
    engine = Engine(
        bus, redis, alock, ScriptedObserver([3]), settings(modes={scope: "observe"}), prefix=f"t{uid}", sleep=no_sleep
    )
    await engine.handle(opened(incident, scope))
    await engine.handle(diagnosis(incident))
    closed = (await box.wait_kind("incident_closed"))[0]
    assert closed["outcome"] == "escalated" and "observe mode" in closed["report"]
    assert box.of_kind("mitigate") == []
    await sub.unsubscribe()


async def test_shadow_records_the_plan_and_never_runs_it(
    bus: Bus, redis: aioredis.Redis, alock: ALock, uid: str
) -> None:
    incident, scope = f"inc-{uid}", f"ns-{uid}"
    box, sub = await start(bus, incident)
    engine = Engine(
        bus, redis, alock, ScriptedObserver([3, 3]), settings(mode="shadow"), prefix=f"t{uid}", sleep=no_sleep
    )
    request = await until_planned(engine, box, incident, scope)
    await engine.handle(proposed(incident, request))
    closed = (await box.wait_kind("incident_closed"))[0]
    assert closed["outcome"] == "escalated"
    assert "would have done" in closed["report"] and "scale Deployment/ns/web" in closed["report"]
    assert len(box.of_kind("mitigate")) == 1 and box.of_kind("checkpointed") == []
    assert (await alock.holders(scope))["writer"] is None  # the planning lease went back
    await sub.unsubscribe()


async def test_approve_then_the_plan_runs_as_a_transaction(
    bus: Bus, redis: aioredis.Redis, alock: ALock, uid: str
) -> None:
    incident, scope = f"inc-{uid}", f"ns-{uid}"
    box, sub = await start(bus, incident)
    engine = Engine(
        bus, redis, alock, ScriptedObserver([3, 3, 0]), settings(mode="approve"), prefix=f"t{uid}", sleep=no_sleep
    )
    request = await until_planned(engine, box, incident, scope)
    await engine.handle(proposed(incident, request))
    asked = (await box.wait_kind("approval_requested"))[0]
    assert asked["tx_id"] == request["tx_id"] and asked["actions"][0]["action"]["verb"] == "scale"
    assert "never above b" in asked["expected_effect"]
    record = await engine.store.load(incident)
    assert record is not None and record.state == "awaiting_approval" and record.lease is None
    await engine.handle(c.ApprovalDecided(incident_id=incident, tx_id="other", approved=True))  # not the pending one
    assert len(box.of_kind("mitigate")) == 1
    await engine.handle(c.ApprovalDecided(incident_id=incident, tx_id=request["tx_id"], approved=True, by="ops"))
    run = (await box.wait_kind("mitigate", 2))[1]
    assert run["plan_only"] is False and run["plan"] == [SCALE.model_dump(mode="json")]
    assert run["tx_id"] == request["tx_id"] and run["id"] != request["id"]
    assert (await box.wait_kind("checkpointed"))[0]["tx_id"] == request["tx_id"]
    await engine.handle(ended(incident, run, [0.0]))
    closed = (await box.wait_kind("incident_closed"))[0]
    assert closed["outcome"] == "resolved"
    assert [d["decision"] for d in box.of_kind("transaction_decided")] == ["commit"]
    await sub.unsubscribe()


async def test_deny_escalates_without_a_write(bus: Bus, redis: aioredis.Redis, alock: ALock, uid: str) -> None:
    incident, scope = f"inc-{uid}", f"ns-{uid}"
    box, sub = await start(bus, incident)
    engine = Engine(
        bus, redis, alock, ScriptedObserver([3, 3]), settings(mode="approve"), prefix=f"t{uid}", sleep=no_sleep
    )
    request = await until_planned(engine, box, incident, scope)
    await engine.handle(proposed(incident, request))
    await box.wait_kind("approval_requested")
    decided = c.ApprovalDecided(incident_id=incident, tx_id=request["tx_id"], approved=False, by="ops", reason="no")
    await engine.handle(decided)
    closed = (await box.wait_kind("incident_closed"))[0]
    assert closed["outcome"] == "escalated" and "denied by ops: no" in closed["report"]
    assert len(box.of_kind("mitigate")) == 1
    await engine.handle(decided.model_copy(update={"approved": True}))  # too late: the incident is closed
    assert len(box.of_kind("mitigate")) == 1
    await sub.unsubscribe()


async def test_an_unanswered_request_times_out_into_escalation(
    bus: Bus, redis: aioredis.Redis, alock: ALock, uid: str
) -> None:
    incident, scope = f"inc-{uid}", f"ns-{uid}"
    box, sub = await start(bus, incident)
    config = settings(mode="approve", approval_timeout_s=2.0)  # not shorter: a loaded machine can lose 0.2 s
    engine = Engine(bus, redis, alock, ScriptedObserver([3, 3]), config, prefix=f"t{uid}", sleep=no_sleep)
    request = await until_planned(engine, box, incident, scope)
    await engine.handle(proposed(incident, request))
    await box.wait_kind("approval_requested")
    await engine.sweep()
    assert box.of_kind("incident_closed") == []
    await asyncio.sleep(2.1)
    await engine.sweep()
    closed = (await box.wait_kind("incident_closed"))[0]
    assert closed["outcome"] == "escalated" and "nobody decided" in closed["report"]
    await sub.unsubscribe()


async def test_a_failed_plan_escalates(bus: Bus, redis: aioredis.Redis, alock: ALock, uid: str) -> None:
    incident, scope = f"inc-{uid}", f"ns-{uid}"
    box, sub = await start(bus, incident)
    engine = Engine(
        bus, redis, alock, ScriptedObserver([3, 3]), settings(mode="approve"), prefix=f"t{uid}", sleep=no_sleep
    )
    request = await until_planned(engine, box, incident, scope)
    failed = c.WorkFailed(
        incident_id=incident, service="mitigator", request_id=request["id"], reason="boom", tx_id=request["tx_id"]
    )
    await engine.handle(failed)
    closed = (await box.wait_kind("incident_closed"))[0]
    assert closed["outcome"] == "escalated" and "planning" in closed["report"] and "boom" in closed["report"]
    await sub.unsubscribe()
