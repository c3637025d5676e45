"""The bus's delivery semantics (``stratus.bus``), in two layers: each test marked ``layer`` runs on
``TestNatsBroker`` and on a real ``nats-server``; redelivery, heartbeats, order and stop need the real server's
clock and run there only. Every contract type round-trips; nothing a service drops is lost: it is in the
dead-letter stream with its reason."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import TypeAdapter

from stratus import contracts as c
from stratus.bus import Bus, Dropped
from stratus.errors import PermanentError, TemporaryError
from stratus.localinfra import LocalServer
from tests.busharness import Layer, Recorder, layer, topology_for
from tests.unit.test_contracts import samples

pytestmark = pytest.mark.integration
__all__ = ["layer"]


def events_consumer(t: c.Topology, **over: Any) -> c.ConsumerSpec:
    return c.ConsumerSpec(durable=f"{t.prefix}-events", stream=t.events_stream, filter_subject=t.all_events, **over)


class Handler:
    """Records what it is given; fails as told per incident id."""

    def __init__(self, fail: dict[str, list[BaseException]] | None = None, hold_s: float = 0.0) -> None:
        self.seen: list[c.IncidentEvent] = []
        self.fail = fail or {}
        self.hold_s = hold_s
        self.dropped: list[Dropped] = []
        self.done = asyncio.Event()

    async def __call__(self, event: c.IncidentEvent) -> None:
        self.seen.append(event)
        if self.hold_s:
            await asyncio.sleep(self.hold_s)
        errors = self.fail.get(event.incident_id)
        if errors:
            raise errors.pop(0)
        self.done.set()

    async def on_dropped(self, dropped: Dropped) -> None:
        self.dropped.append(dropped)

    def ids(self) -> list[str]:
        return [e.incident_id for e in self.seen]


def setup(layer: Layer, uid: str, handler: Handler, **spec: Any) -> tuple[Bus, c.Topology, Recorder]:
    t = topology_for(uid)
    bus = layer.bus(t)
    bus.subscribe(
        events_consumer(t, **spec),
        c.Event,
        handler,
        name="handle",
        description="test handler",
        on_dropped=handler.on_dropped,
    )
    return bus, t, Recorder.on(bus, t.deadletter_stream, t.all_deadletter)


async def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def settled(bus: Bus, t: c.Topology) -> None:
    """Nothing pending or unacknowledged on the test consumer (real layer)."""

    async def clean() -> bool:
        info = await bus.js.consumer_info(t.events_stream, f"{t.prefix}-events")
        return info.num_ack_pending == 0 and info.num_pending == 0

    deadline = asyncio.get_running_loop().time() + 10
    while not await clean():
        assert asyncio.get_running_loop().time() < deadline, "messages left unacknowledged"
        await asyncio.sleep(0.05)


# --- both layers ----------------------------------------------------------------------------------------------


async def test_a_handled_message_reaches_its_handler_typed_and_is_acknowledged(layer: Layer, uid: str) -> None:
    handler = Handler()
    bus, t, dead = setup(layer, uid, handler)
    event = c.StateChanged(incident_id="inc-1", state="diagnosing")
    async with layer.run(bus):
        await bus.publish(t.events("inc-1", event.kind), event)
        await wait_until(lambda: handler.seen)
        assert handler.seen == [event] and isinstance(handler.seen[0], c.StateChanged)
        if layer.real:
            await settled(bus, t)
    assert not dead.messages


async def test_a_malformed_message_is_dead_lettered_with_the_validation_error_and_the_consumer_goes_on(
    layer: Layer, uid: str
) -> None:
    handler = Handler()
    bus, t, dead = setup(layer, uid, handler)
    good = c.StateChanged(incident_id="inc-ok", state="opened")
    async with layer.run(bus):
        await bus.broker.publish(
            b'{"kind": "state_changed", "incident_id": 5}', t.events("inc-x", "bad"), stream=t.events_stream
        )
        await bus.broker.publish(b"not json at all", t.events("inc-x", "junk"), stream=t.events_stream)
        await bus.publish(t.events("inc-ok", good.kind), good)
        await dead.wait(lambda m: len(m) >= 2)
        await wait_until(lambda: handler.seen)
        if layer.real:
            await settled(bus, t)
    assert handler.seen == [good]  # never handed a message that did not validate
    records = {r["subject"]: c.DeadLetter.model_validate(r) for r in dead.messages}
    bad, junk = records[t.events("inc-x", "bad")], records[t.events("inc-x", "junk")]
    assert bad.cause == junk.cause == "malformed" and bad.service == "test"
    assert "malformed" in bad.reason and "incident_id" in bad.reason
    assert junk.payload == "not json at all" and bad.payload.startswith('{"kind"')
    assert [d.cause for d in handler.dropped] == ["malformed", "malformed"]


async def test_a_permanent_error_is_dead_lettered_with_its_reason_and_reported(layer: Layer, uid: str) -> None:
    handler = Handler(fail={"inc-p": [PermanentError("cannot ever work: no such scope")]})
    bus, t, dead = setup(layer, uid, handler)
    event = c.StateChanged(incident_id="inc-p", state="x", id="m-perm")
    async with layer.run(bus):
        await bus.publish(t.events("inc-p", event.kind), event)
        await dead.wait(lambda m: len(m) >= 1)
        if layer.real:
            await settled(bus, t)
    record = c.DeadLetter.model_validate(dead.messages[0])
    assert record.cause == "rejected" and record.reason == "cannot ever work: no such scope"
    assert record.incident_id == "inc-p" and c.EVENT_ADAPTER.validate_json(record.payload) == event
    assert len(handler.seen) == 1  # terminated, not retried
    assert [(d.cause, d.incident_id) for d in handler.dropped] == [("rejected", "inc-p")]


# --- the real server only: redelivery, heartbeats, order, stop -----------------------------------------------


@pytest.fixture
def real(nats_server: LocalServer) -> Layer:
    return Layer("nats", nats_server.url)


async def test_a_temporary_error_is_retried_after_its_delay(real: Layer, uid: str) -> None:
    handler = Handler(fail={"inc-t": [TemporaryError("dependency down", delay=0.3)]})
    bus, t, dead = setup(real, uid, handler)
    async with real.run(bus):
        await bus.publish(t.events("inc-t", "state_changed"), c.StateChanged(incident_id="inc-t", state="x"))
        await asyncio.wait_for(handler.done.wait(), 10)
        await settled(bus, t)
    assert handler.ids() == ["inc-t", "inc-t"] and not dead.messages


async def test_retries_are_bounded_and_the_exhausted_message_is_dead_lettered(real: Layer, uid: str) -> None:
    boom = [RuntimeError("bug"), TemporaryError("down", delay=0.05), TemporaryError("down", delay=0.05)]
    handler = Handler(fail={"inc-e": boom})
    bus, t, dead = setup(real, uid, handler, max_deliver=3)
    async with real.run(bus):
        await bus.publish(t.events("inc-e", "state_changed"), c.StateChanged(incident_id="inc-e", state="x"))
        await dead.wait(lambda m: len(m) >= 1, timeout=15)
        await settled(bus, t)
    record = c.DeadLetter.model_validate(dead.messages[0])
    assert record.cause == "exhausted" and record.deliveries == 3 and "down" in record.reason
    assert handler.ids() == ["inc-e"] * 3
    assert [d.cause for d in handler.dropped] == ["exhausted"]


async def test_long_work_sends_heartbeats_and_is_not_redelivered(real: Layer, uid: str) -> None:
    handler = Handler(hold_s=3.0)
    bus, t, _ = setup(real, uid, handler, ack_wait_s=1.0)
    async with real.run(bus):
        await bus.publish(t.events("inc-h", "state_changed"), c.StateChanged(incident_id="inc-h", state="x"))
        await asyncio.wait_for(handler.done.wait(), 15)
        await settled(bus, t)
        info = await bus.js.consumer_info(t.events_stream, f"{t.prefix}-events")
    assert handler.ids() == ["inc-h"] and info.num_redelivered == 0


async def test_a_serial_consumer_never_lets_a_later_message_overtake_one_being_retried(real: Layer, uid: str) -> None:
    handler = Handler(fail={"first": [TemporaryError("x", delay=0.2), TemporaryError("x", delay=0.2)]})
    bus, t, _ = setup(real, uid, handler, max_ack_pending=1)
    async with real.run(bus):
        for incident in ("first", "second", "third"):
            await bus.publish(t.events("inc", incident), c.StateChanged(incident_id=incident, state="x"))
        await wait_until(lambda: len(handler.seen) >= 5)
        await settled(bus, t)
    assert handler.ids() == ["first", "first", "first", "second", "third"]


async def test_stop_lets_a_running_handler_finish_and_acknowledges_it(real: Layer, uid: str) -> None:
    handler = Handler(hold_s=1.5)
    bus, t, _ = setup(real, uid, handler)
    await bus.open()
    await bus.ensure_streams()
    await bus.start()
    await bus.publish(t.events("inc-s", "state_changed"), c.StateChanged(incident_id="inc-s", state="x"))
    await wait_until(lambda: handler.seen)
    await bus.close()  # while the handler sleeps
    assert handler.done.is_set()  # it ran to the end: not cancelled mid-handle
    check = await Bus.connect(real.nats_url, topology=t)
    info = await check.js.consumer_info(t.events_stream, f"{t.prefix}-events")
    await check.close()
    assert info.num_ack_pending == 0 and info.num_redelivered == 0


async def test_every_contract_type_round_trips_through_jetstream(bus: Bus, uid: str) -> None:
    name, prefix = f"T_{uid}", f"t{uid}"
    await bus.ensure_stream(c.StreamSpec(name=name, subjects=(f"{prefix}.>",)))
    sent = samples()
    for i, message in enumerate(sent):
        await bus.publish(f"{prefix}.{i}", message, stream=name)
    sub = await bus.js.pull_subscribe(f"{prefix}.>", durable=f"d{uid}", stream=name)
    got = []
    while len(got) < len(sent):
        for msg in await sub.fetch(batch=len(sent), timeout=5):
            got.append(msg)
            await msg.ack()
    for message, msg in zip(sent, got, strict=True):
        assert TypeAdapter(type(message)).validate_json(msg.data) == message


async def test_publish_is_deduplicated_by_message_id(bus: Bus) -> None:
    await bus.ensure_streams()
    event = c.StateChanged(incident_id="i", state="opened")
    subject = bus.topology.events("i", event.kind)
    first = await bus.publish(subject, event)
    second = await bus.publish(subject, event)
    assert first is not None and second is not None and second.duplicate and second.seq == first.seq


async def test_two_installs_on_one_server_never_see_each_others_work(real: Layer, uid: str) -> None:
    """Same service names, same durable names, one server: the topologies keep them apart."""
    blue, green = (
        c.Topology(prefix=f"blue{uid}", stream_prefix=f"BLUE{uid}"),
        c.Topology(prefix=f"green{uid}", stream_prefix=f"GREEN{uid}"),
    )
    got: dict[str, list[str]] = {"blue": [], "green": []}
    buses = []
    for name, t in (("blue", blue), ("green", green)):
        bus = real.bus(t, service="mitigator")

        async def take(request: c.MitigateRequest, name: str = name) -> None:
            got[name].append(request.incident_id)

        bus.subscribe(t.consumer("mitigator"), c.MitigateRequest, take, name="mitigator", description="t")
        buses.append(bus)
    lease = c.Lease(scope="ns", holder="h", token=1, expires_at=c.utcnow())
    async with real.run(*buses):
        for i in range(3):
            for name, t, bus in (("blue", blue, buses[0]), ("green", green, buses[1])):
                request = c.MitigateRequest(incident_id=f"{name}-{i}", scope="ns", tx_id="t", attempt=1, lease=lease)
                await bus.publish(t.work("mitigator"), request)
        await wait_until(lambda: len(got["blue"]) == 3 and len(got["green"]) == 3)
        await asyncio.sleep(0.5)  # nothing else arrives late
    assert sorted(got["blue"]) == [f"blue-{i}" for i in range(3)]
    assert sorted(got["green"]) == [f"green-{i}" for i in range(3)]
    assert blue.consumer("mitigator").durable == green.consumer("mitigator").durable  # same name, different streams
