"""Every service's handler through the bus, in two layers: each test runs on ``TestNatsBroker`` (in memory) and on a
real ``nats-server``; Redis is real in both. A handler is wired as its service wires it (the same consumer spec, the
same contract, the same ``on_dropped`` hook) and the test watches what it publishes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest
import redis.asyncio as aioredis

from services.coordinator.app import subscribe_partitions
from services.coordinator.engine import Engine
from services.coordinator.handlers import EventHandler
from services.detector.handlers import Detector
from services.diagnoser.handlers import DiagnoseHandler, DiagnoserDeps
from services.mitigator.handlers import MitigateHandler, MitigatorDeps
from services.undoer.handlers import UndoerDeps, UndoHandler
from stratus import contracts as c
from stratus.alock import ALock
from stratus.bus import Bus
from stratus.registry import Registry
from stratus.runtime import report_dropped_work
from stratus.settings import CoordinatorSettings, DetectorSettings
from tests.busharness import Layer, Recorder, layer, topology_for

pytestmark = pytest.mark.integration
__all__ = ["layer"]

STALE = c.Lease(scope="ns", holder="gone", token=1, expires_at=datetime.now(UTC))


def events_of(bus: Bus) -> Recorder:
    return Recorder.on(bus, bus.topology.events_stream, bus.topology.all_events)


async def test_detector_attaches_an_alert_to_the_open_incident_of_its_scope(
    layer: Layer, redis: aioredis.Redis, uid: str
) -> None:
    t = topology_for(uid)
    bus = layer.bus(t, "detector")
    registry = Registry(redis, prefix=f"t{uid}")
    detector = Detector(bus, registry, cast(Any, None), DetectorSettings())
    bus.subscribe(t.consumer("detector"), c.Alert, detector.on_alert, name="detector", description="alerts")
    events = events_of(bus)
    scope, incident = f"ns-{uid}", f"inc-{uid}"
    await registry.claim_scope(scope, incident)
    alert = c.Alert(fingerprint="f1", status="firing", name="PodCrashLooping", scope=scope)
    async with layer.run(bus):
        await bus.publish(t.alerts(scope), alert)
        attached = (await events.wait_kind("alert_attached"))[0]
    assert attached["incident_id"] == incident and attached["alert"]["id"] == alert.id
    assert attached["id"] == f"{incident}:alert:{alert.id}"  # stable: a redelivered alert is de-duplicated


class Reasoner:
    async def diagnose(self, request: c.DiagnoseRequest, tools: Any) -> c.DiagnosisReady:
        return c.DiagnosisReady(incident_id=request.incident_id, localisation=["db"], summary="db is down")


def diagnoser(layer: Layer, uid: str) -> tuple[Bus, c.Topology]:
    """The diagnoser's consumer as its service wires it, with a reasoner that answers at once."""
    t = topology_for(uid)
    bus = layer.bus(t, "diagnoser")
    deps = DiagnoserDeps(bus=bus, gateway=cast(Any, None), reasoner=Reasoner())
    bus.subscribe(
        t.consumer("diagnoser"),
        c.DiagnoseRequest,
        DiagnoseHandler(deps),
        name="diagnoser",
        description="diagnose",
        on_dropped=report_dropped_work(bus),
    )
    return bus, t


async def test_diagnoser_answers_a_request_with_its_diagnosis(layer: Layer, uid: str) -> None:
    bus, t = diagnoser(layer, uid)
    events = events_of(bus)
    request = c.DiagnoseRequest(incident_id=f"inc-{uid}", scope="ns")
    async with layer.run(bus):
        await bus.publish(t.work("diagnoser"), request)
        diagnosis = (await events.wait_kind("diagnosis"))[0]
    assert diagnosis["incident_id"] == request.incident_id and diagnosis["localisation"] == ["db"]
    assert diagnosis["id"] == f"{request.id}:diagnosis"


async def test_diagnoser_turns_a_malformed_request_into_work_failed_and_a_dead_letter(layer: Layer, uid: str) -> None:
    bus, t = diagnoser(layer, uid)
    events, dead = events_of(bus), Recorder.on(bus, t.deadletter_stream, t.all_deadletter)
    incident = f"inc-{uid}"
    async with layer.run(bus):  # the scope is missing: it cannot validate
        await bus.broker.publish(
            {"kind": "diagnose", "incident_id": incident, "id": "req-1"}, t.work("diagnoser"), stream=t.work_stream
        )
        failed = (await events.wait_kind("work_failed"))[0]
        await dead.wait(lambda m: bool(m))
    assert failed["incident_id"] == incident and failed["request_id"] == "req-1" and "scope" in failed["reason"]
    assert dead.messages[0]["cause"] == "malformed" and dead.messages[0]["incident_id"] == incident


@pytest.mark.parametrize("service", ["mitigator", "undoer"])
async def test_a_writer_refuses_a_lease_that_is_no_longer_current(
    layer: Layer, redis: aioredis.Redis, uid: str, service: str
) -> None:
    t = topology_for(uid)
    bus = layer.bus(t, service)
    alock = ALock(redis, prefix=f"t{uid}")
    request: c.MitigateRequest | c.UndoRequest
    if service == "mitigator":
        mdeps = MitigatorDeps(bus, alock, cast(Any, None), cast(Any, None), cast(Any, None), lease_ttl_s=5)
        handler: Any = MitigateHandler(mdeps)
        body: Any = c.MitigateRequest
        request = c.MitigateRequest(incident_id=f"inc-{uid}", scope="ns", tx_id="tx1", attempt=1, lease=STALE)
    else:
        handler = UndoHandler(UndoerDeps(bus, alock, cast(Any, None)))
        body = c.UndoRequest
        request = c.UndoRequest(
            incident_id=f"inc-{uid}", scope="ns", tx_id="tx1", attempt=1, lease=STALE, checkpoint_digest=""
        )
    bus.subscribe(
        t.consumer(service), body, handler, name=service, description="w", on_dropped=report_dropped_work(bus)
    )
    events, dead = events_of(bus), Recorder.on(bus, t.deadletter_stream, t.all_deadletter)
    try:
        async with layer.run(bus):
            await bus.publish(t.work(service), request)
            failed = (await events.wait_kind("work_failed"))[0]
            await dead.wait(lambda m: bool(m))
    finally:
        await alock.aclose()
    assert failed["service"] == service and failed["request_id"] == request.id and failed["tx_id"] == "tx1"
    assert "no longer current" in failed["reason"]
    assert dead.messages[0]["cause"] == "rejected" and dead.messages[0]["tx_id"] == "tx1"
    assert not events.of("transaction_started")  # nothing was attempted


class Observer:
    async def measure(self, scope: str) -> c.Severity:
        return c.Severity(mu=2.0, unhealthy=["pod/a", "pod/b"])

    async def snapshot(self, scope: str, lease_scope: str) -> tuple[str, dict[str, Any]]:
        return "digest", {}


async def test_coordinator_asks_for_a_diagnosis_when_an_incident_opens(
    layer: Layer, redis: aioredis.Redis, uid: str
) -> None:
    if not layer.real:
        pytest.skip("the coordinator keeps incidents in a JetStream key-value bucket, which the in-memory broker lacks")
    t = topology_for(uid)
    bus = layer.bus(t, "coordinator")
    alock = ALock(redis, prefix=f"t{uid}")
    settings = CoordinatorSettings(settle_s=0, steady_s=0)
    engine = Engine(bus, redis, alock, Observer(), settings, prefix=f"t{uid}")
    subscribers = subscribe_partitions(bus, t, EventHandler(engine), ack_wait_s=5, manual=False)
    work = Recorder.on(bus, t.work_stream, t.all_work)
    events = events_of(bus)
    incident = f"inc-{uid}"
    opened = c.IncidentOpened(incident_id=incident, scope="ns", s0=c.Severity(mu=2.0), baseline=2.0)
    try:
        async with layer.run(bus):
            await bus.publish(t.events(incident, opened.kind), opened)
            request = (await work.wait_kind("diagnose"))[0]
            state = (await events.wait_kind("state_changed"))[0]
            record = await engine.store.load(incident)
    finally:
        await alock.aclose()
    assert request["incident_id"] == incident and request["id"] == f"{incident}:diagnose"
    assert state["state"] == "diagnosing"
    assert len(subscribers) == t.partitions
    assert record is not None and record.state == "diagnosing" and record.version >= 1
