"""Contracts through a real JetStream: every type is published and read back validated; bad input is kept, not lost."""

from __future__ import annotations

import asyncio
import json

import pytest
from nats.aio.msg import Msg
from pydantic import TypeAdapter

from stratus import contracts as c
from stratus.bus import DEADLETTER_STREAM, Bus
from stratus.errors import PermanentError, TemporaryError
from tests.unit.test_contracts import samples

pytestmark = pytest.mark.integration


async def make_stream(bus: Bus, uid: str, retention: str = "limits") -> tuple[str, str]:
    name, prefix = f"T_{uid}", f"t{uid}"
    await bus.ensure_stream(c.StreamSpec(name=name, subjects=(f"{prefix}.>",), retention=retention))  # type: ignore[arg-type]
    return name, prefix


async def test_every_contract_type_round_trips_through_jetstream(bus: Bus, uid: str) -> None:
    stream, prefix = await make_stream(bus, uid)
    sent = samples()
    for i, message in enumerate(sent):
        await bus.publish(f"{prefix}.{i}", message)
    sub = await bus.js.pull_subscribe(f"{prefix}.>", durable=f"d{uid}", stream=stream)
    got = []
    while len(got) < len(sent):
        for msg in await sub.fetch(batch=len(sent), timeout=5):
            got.append(msg)
            await msg.ack()
    for message, msg in zip(sent, got, strict=True):
        decoded = TypeAdapter(type(message)).validate_json(msg.data)
        assert decoded == message


async def test_publish_is_deduplicated_by_message_id(bus: Bus, uid: str) -> None:
    _, prefix = await make_stream(bus, uid)
    event = c.StateChanged(incident_id="i", state="opened")
    first = await bus.publish(f"{prefix}.x", event)
    second = await bus.publish(f"{prefix}.x", event)
    assert second.duplicate and second.seq == first.seq


async def consume_until(bus: Bus, spec: c.ConsumerSpec, handler, n: int, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    stop = asyncio.Event()
    done = asyncio.Event()
    count = 0

    async def counting(value, msg: Msg) -> None:  # type: ignore[no-untyped-def]
        nonlocal count
        try:
            await handler(value, msg)
        finally:
            count += 1
            if count >= n:
                done.set()

    task = asyncio.create_task(bus.consume("test", spec, c.EVENT_ADAPTER, counting, stop=stop))
    try:
        await asyncio.wait_for(done.wait(), timeout)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def deadletters(bus: Bus, uid: str) -> list[dict[str, str]]:
    await bus.ensure_streams(())
    sub = await bus.js.pull_subscribe("stratus.deadletter.test", durable=f"dl{uid}", stream=DEADLETTER_STREAM)
    out: list[dict[str, str]] = []
    try:
        while True:
            for msg in await sub.fetch(batch=50, timeout=1):
                await msg.ack()
                out.append(json.loads(msg.data))
    except Exception:
        return out
    finally:
        await sub.unsubscribe()


async def test_malformed_message_is_rejected_with_a_clear_error_and_kept(bus: Bus, uid: str) -> None:
    await bus.ensure_streams(())
    stream, prefix = await make_stream(bus, uid)
    spec = c.ConsumerSpec(durable=f"c{uid}", stream=stream, filter_subject=f"{prefix}.>")
    await bus.js.publish(f"{prefix}.bad", b'{"kind": "state_changed", "incident_id": 5}')
    await bus.js.publish(f"{prefix}.junk", b"not json at all")
    good = c.StateChanged(incident_id="i", state="opened")
    await bus.publish(f"{prefix}.good", good)
    handled: list[c.IncidentEvent] = []

    async def handler(event: c.IncidentEvent, msg: Msg) -> None:
        handled.append(event)

    await consume_until(bus, spec, handler, 1)
    assert handled == [good]  # the consumer survived both bad messages and went on
    rejected = [d for d in await deadletters(bus, uid) if d["subject"].startswith(prefix)]
    reasons = {d["subject"]: d["reason"] for d in rejected}
    assert "incident_id" in reasons[f"{prefix}.bad"] and "malformed" in reasons[f"{prefix}.bad"]
    assert "malformed" in reasons[f"{prefix}.junk"]
    assert any(d["payload"] == "not json at all" for d in rejected)
    info = await bus.js.consumer_info(stream, spec.durable)
    assert info.num_ack_pending == 0 and info.num_pending == 0


async def test_temporary_error_redelivers_and_permanent_error_terminates(bus: Bus, uid: str) -> None:
    stream, prefix = await make_stream(bus, uid)
    spec = c.ConsumerSpec(durable=f"c{uid}", stream=stream, filter_subject=f"{prefix}.>")
    await bus.publish(f"{prefix}.t", c.StateChanged(incident_id="temp", state="x"))
    await bus.publish(f"{prefix}.p", c.StateChanged(incident_id="perm", state="x"))
    seen: list[str] = []

    async def handler(event: c.IncidentEvent, msg: Msg) -> None:
        seen.append(event.incident_id)
        if event.incident_id == "temp" and seen.count("temp") == 1:
            raise TemporaryError("dependency down", delay=0.1)
        if event.incident_id == "perm":
            raise PermanentError("never works")

    await consume_until(bus, spec, handler, 3)
    assert seen.count("temp") == 2 and seen.count("perm") == 1
