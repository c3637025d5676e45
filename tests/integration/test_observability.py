"""Traces and logs across services on a real nats-server: one trace follows an incident from the service that opened
it through the coordinator to the agent, every span carries ``incident_id`` (and ``tx_id`` where there is one), and
every log line a handler writes is JSON with the service, the incident and the transaction."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from stratus import contracts as c
from stratus.bus import Bus
from stratus.localinfra import LocalServer
from stratus.observability import log_handler, tracer_provider
from tests.busharness import Layer, topology_for

pytestmark = pytest.mark.integration

log = logging.getLogger("tests.observability")


async def test_one_trace_follows_an_incident_across_services_with_its_ids(nats_server: LocalServer, uid: str) -> None:
    exporter = InMemorySpanExporter()
    provider = tracer_provider("test", processor=SimpleSpanProcessor(exporter))
    t = topology_for(uid)
    layer = Layer("nats", nats_server.url)
    detector = Bus.create(nats_server.url, service="detector", topology=t, tracer_provider=provider)
    coordinator = Bus.create(nats_server.url, service="coordinator", topology=t, tracer_provider=provider)
    mitigator = Bus.create(nats_server.url, service="mitigator", topology=t, tracer_provider=provider)
    incident, lease = f"inc-{uid}", c.Lease(scope="ns", holder="h", token=1, expires_at=c.utcnow())
    done = asyncio.Event()
    lines = io.StringIO()
    handler = log_handler("json", lines)
    logging.getLogger().addHandler(handler)
    log.setLevel(logging.INFO)

    async def coordinate(event: c.IncidentOpened) -> None:
        log.info("coordinating %s", event.incident_id)
        request = c.MitigateRequest(
            incident_id=event.incident_id, scope="ns", tx_id=f"{incident}-tx1", attempt=1, lease=lease
        )
        await coordinator.publish(t.work("mitigator"), request)

    async def mitigate(request: c.MitigateRequest) -> None:
        log.info("mitigating")
        done.set()

    coordinator.subscribe(t.coordinator_consumer(0), c.IncidentOpened, coordinate, name="c", description="c")
    mitigator.subscribe(t.consumer("mitigator"), c.MitigateRequest, mitigate, name="m", description="m")
    opened = c.IncidentOpened(incident_id=incident, scope="ns", s0=c.Severity(mu=1), baseline=1)
    try:
        async with layer.run(detector, coordinator, mitigator):
            subject = t.events(incident, opened.kind).replace(f".{t.partition(incident)}.", ".0.")
            await detector.publish(subject, opened)
            await asyncio.wait_for(done.wait(), 15)
    finally:
        logging.getLogger().removeHandler(handler)

    spans = [s for s in exporter.get_finished_spans() if (s.attributes or {}).get("incident_id") == incident]
    consumed = [s for s in spans if s.kind.name == "CONSUMER"]
    assert len(consumed) == 2, [(s.name, s.kind) for s in spans]  # the coordinator's and the mitigator's
    assert len({s.context.trace_id for s in spans}) == 1  # one trace, detector -> coordinator -> mitigator
    assert any((s.attributes or {}).get("tx_id") == f"{incident}-tx1" for s in consumed)
    trace_id = format(spans[0].context.trace_id, "032x")

    records = [json.loads(line) for line in lines.getvalue().splitlines()]
    mine = {r["message"]: r for r in records if r.get("incident_id") == incident}
    coordinating, mitigating = mine[f"coordinating {incident}"], mine["mitigating"]
    assert coordinating["service"] == "coordinator" and coordinating["tx_id"] is None
    assert mitigating["service"] == "mitigator" and mitigating["tx_id"] == f"{incident}-tx1"
    assert coordinating["trace_id"] == mitigating["trace_id"] == trace_id
    assert {"ts", "level", "logger"} <= set(mitigating)


def test_the_otlp_exporter_is_off_unless_configured() -> None:
    from stratus.settings import CommonSettings

    assert CommonSettings().otlp_endpoint is None
    settings: Any = CommonSettings(otlp_endpoint="http://collector:4318/v1/traces")  # type: ignore[arg-type]
    assert str(settings.otlp_endpoint).endswith("/v1/traces")
