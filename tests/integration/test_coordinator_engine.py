"""The coordinator's transaction protocol on real NATS and Redis, with the cluster readings scripted.

The arena-backed end-to-end tests (tests/e2e) cover the same protocol against a cluster; here each branch of the
state machine is driven precisely: commit, abort -> undo -> retry with a reflection, escalation, duplicates,
a writer that vanished, and a coordinator restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from services.coordinator.engine import Engine
from stratus import contracts as c
from stratus.alock import ALock
from stratus.bus import Bus
from stratus.settings import CoordinatorSettings

pytestmark = pytest.mark.integration


class ScriptedObserver:
    """Cluster readings in a given order (the cluster itself is exercised by the e2e tests)."""

    def __init__(self, mus: list[float]) -> None:
        self.mus = list(mus)
        self.calls = 0

    async def measure(self, scope: str) -> c.Severity:
        self.calls += 1
        mu = self.mus.pop(0) if self.mus else 0.0
        return c.Severity(mu=mu, unhealthy=[f"pod/x-{i}" for i in range(int(mu))])

    async def snapshot(self, scope: str, lease_scope: str) -> tuple[str, dict[str, Any]]:
        return "digest-0", {"Deployment/x": {"spec": {"replicas": 1}}}


class Outbox:
    """Everything the engine publishes, seen through a core subscription on stratus.>."""

    def __init__(self, incident: str) -> None:
        self.incident = incident
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.arrived = asyncio.Event()

    async def on_msg(self, msg: Any) -> None:
        import json

        data = json.loads(msg.data)
        if data.get("incident_id") == self.incident:
            self.messages.append((msg.subject, data))
            self.arrived.set()

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for _, d in self.messages if d.get("kind") == kind]

    async def wait_kind(self, kind: str, count: int = 1, timeout: float = 10) -> list[dict[str, Any]]:
        async def until() -> None:
            while len(self.of_kind(kind)) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(until(), timeout)
        return self.of_kind(kind)


@pytest.fixture
async def alock(redis: aioredis.Redis, uid: str) -> AsyncIterator[ALock]:
    lock = ALock(redis, prefix=f"t{uid}")
    yield lock
    await lock.aclose()


def settings(**overrides: Any) -> CoordinatorSettings:
    base: dict[str, Any] = {"settle_s": 0.0, "steady_s": 0.0, "lease_ttl_s": 2.0, "max_retries": 2, "max_actions": 5}
    base.update(overrides)
    return CoordinatorSettings(**base)


async def no_sleep(_: float) -> None:
    return None


async def start(bus: Bus, incident: str) -> tuple[Outbox, Any]:
    await bus.ensure_streams()
    box = Outbox(incident)
    sub = await bus.nc.subscribe("stratus.>", cb=box.on_msg)
    return box, sub


def opened(incident: str, scope: str, b: float = 3.0) -> c.IncidentOpened:
    return c.IncidentOpened(incident_id=incident, scope=scope, s0=c.Severity(mu=b), baseline=b)


def diagnosis(incident: str) -> c.DiagnosisReady:
    return c.DiagnosisReady(incident_id=incident, localisation=["geo"], summary="geo crash-loops")


def ended(incident: str, req: dict[str, Any], hidden: list[float], writes: int | None = None) -> c.TransactionEnded:
    return c.TransactionEnded(
        incident_id=incident,
        tx_id=req["tx_id"],
        attempt=req["attempt"],
        actions=len(hidden) if writes is None else writes,
        hidden_mu=hidden,
    )


async def test_a_fix_that_helps_commits_and_resolves(bus: Bus, redis: aioredis.Redis, alock: ALock, uid: str) -> None:
    incident, scope = f"inc-{uid}", f"ns-{uid}"
    box, sub = await start(bus, incident)
    engine = Engine(bus, redis, alock, ScriptedObserver([3, 0]), settings(), prefix=f"t{uid}", sleep=no_sleep)
    await engine.handle(opened(incident, scope))
    assert (await box.wait_kind("diagnose"))[0]["scope"] == scope
    await engine.handle(diagnosis(incident))
    request = (await box.wait_kind("mitigate"))[0]
    lease = c.Lease.model_validate(request["lease"])
    assert await alock.check_fence(scope, lease.token)
    await engine.handle(ended(incident, request, [0.0]))
    closed = (await box.wait_kind("incident_closed"))[0]
    assert closed["outcome"] == "resolved" and closed["visible_mu"] == [3.0, 0.0]
    assert (await box.wait_kind("transaction_decided"))[0]["decision"] == "commit"
    assert not await alock.check_fence(scope, lease.token)  # released
    states = [d["state"] for d in box.of_kind("state_changed")]
    assert states == ["diagnosing", "mitigating", "validating", "committed", "resolved"]
    await sub.unsubscribe()


async def test_a_harmful_attempt_is_aborted_undone_and_the_retry_carries_a_reflection(
    bus: Bus, redis: aioredis.Redis, alock: ALock, uid: str
) -> None:
    incident, scope = f"inc-{uid}", f"ns-{uid}"
    box, sub = await start(bus, incident)
    # pre 3 -> post 7 (worse: abort) -> after undo 3 -> pre 3 -> post 0 (commit)
    engine = Engine(bus, redis, alock, ScriptedObserver([3, 7, 3, 3, 0]), settings(), prefix=f"t{uid}", sleep=no_sleep)
    await engine.handle(opened(incident, scope))
    await engine.handle(diagnosis(incident))
    first = (await box.wait_kind("mitigate"))[0]
    await engine.handle(ended(incident, first, [5.0, 7.0]))
    undo = (await box.wait_kind("undo"))[0]
    assert undo["tx_id"] == first["tx_id"] and undo["lease"]["token"] == first["lease"]["token"]
    assert (await box.wait_kind("transaction_decided"))[0]["decision"] == "abort"
    await engine.handle(
        c.UndoCompleted(incident_id=incident, tx_id=first["tx_id"], attempt=1, undone=2, restored_digest="digest-0")
    )
    second = (await box.wait_kind("mitigate", 2))[1]
    assert second["attempt"] == 2 and second["lease"]["token"] > first["lease"]["token"]
    assert "Attempt 1" in second["reflections"][0] and "3 -> 5 -> 7" in second["reflections"][0]
    await engine.handle(ended(incident, second, [0.0]))
    closed = (await box.wait_kind("incident_closed"))[0]
    assert closed["outcome"] == "resolved"
    assert max(closed["visible_mu"]) <= 3.0  # TNR: the visible path never went above b
    await sub.unsubscribe()


async def test_the_checkpoint_waits_for_a_steady_mu_and_sets_b_there(
    bus: Bus, redis: aioredis.Redis, alock: ALock, uid: str
) -> None:
    incident, scope = f"inc-{uid}", f"ns-{uid}"
    box, sub = await start(bus, incident)
    # Detected at b=3 while the fault was still unfolding: 3 -> 5 -> 6 -> 6 -> 6 (steady) -> pre 6 -> post 0.
    observer = ScriptedObserver([3, 5, 6, 6, 6, 6, 0])
    engine = Engine(bus, redis, alock, observer, settings(steady_s=1.0), prefix=f"t{uid}", sleep=no_sleep)
    await engine.handle(opened(incident, scope, b=3.0))
    await engine.handle(diagnosis(incident))
    request = (await box.wait_kind("mitigate"))[0]
    assert (await box.wait_kind("checkpointed"))[0]["severity"]["mu"] == 6.0
    await engine.handle(ended(incident, request, [0.0]))
    closed = (await box.wait_kind("incident_closed"))[0]
    assert closed["baseline"] == 6.0 and closed["visible_mu"] == [6.0, 0.0]
    assert observer.calls == 7
    await sub.unsubscribe()


async def test_an_intermittent_failure_is_not_closed_on_one_clean_read(
    bus: Bus, redis: aioredis.Redis, alock: ALock, uid: str
) -> None:
    incident, scope = f"inc-{uid}", f"ns-{uid}"
    box, sub = await start(bus, incident)
    # One request in ten fails: the attempt's first read passes, the violation shows again on the third.
    observer = ScriptedObserver([0, 0, 1, 0])
    engine = Engine(bus, redis, alock, observer, settings(resolve_quiet_s=5.0), prefix=f"t{uid}", sleep=no_sleep)
    await engine.handle(opened(incident, scope, b=1.0))
    await engine.handle(diagnosis(incident))
    request = (await box.wait_kind("mitigate"))[0]
    assert (await box.wait_kind("checkpointed"))[0]["severity"]["mu"] == 1.0
    assert observer.calls == 3
    await engine.handle(ended(incident, request, [0.0]))
    closed = (await box.wait_kind("incident_closed"))[0]
    assert closed["outcome"] == "resolved" and closed["visible_mu"] == [1.0, 0.0]
    await sub.unsubscribe()


async def test_a_recovery_that_holds_through_the_quiet_window_closes_without_a_transaction(
    bus: Bus, redis: aioredis.Redis, alock: ALock, uid: str
) -> None:
    incident, scope = f"inc-{uid}", f"ns-{uid}"
    box, sub = await start(bus, incident)
    observer = ScriptedObserver([])  # every read passes
    # Only a fault failing every read need be ruled out: resolve_quiet_s decides.
    quiet = settings(resolve_quiet_s=5.0, resolve_min_failure_rate=1.0)
    engine = Engine(bus, redis, alock, observer, quiet, prefix=f"t{uid}", sleep=no_sleep)
    await engine.handle(opened(incident, scope, b=1.0))
    await engine.handle(diagnosis(incident))
    closed = (await box.wait_kind("incident_closed"))[0]
    assert closed["outcome"] == "resolved" and not box.of_kind("mitigate")
    assert observer.calls == 6  # one read, then five more a second apart
    await sub.unsubscribe()


async def test_a_recovery_closes_only_after_enough_clean_reads_to_rule_out_one_failure_in_ten(
    bus: Bus, redis: aioredis.Redis, alock: ALock, uid: str
) -> None:
    incident, scope = f"inc-{uid}", f"ns-{uid}"
    box, sub = await start(bus, incident)
    # By default: a fault failing one read in ten passes 44 reads in a row less than one time in a hundred. Here the
    # 30th read after the first clean one fails (15 reads would have closed it): the attempt starts from that read.
    observer = ScriptedObserver([0] * 30 + [1, 1])
    engine = Engine(bus, redis, alock, observer, settings(), prefix=f"t{uid}", sleep=no_sleep)
    assert settings().resolve_reads() == 44
    await engine.handle(opened(incident, scope, b=1.0))
    await engine.handle(diagnosis(incident))
    await box.wait_kind("mitigate")
    assert (await box.wait_kind("checkpointed"))[0]["severity"]["mu"] == 1.0
    assert not box.of_kind("incident_closed")
    await sub.unsubscribe()


async def test_an_aborted_transaction_that_wrote_nothing_shows_no_visible_state(
    bus: Bus, redis: aioredis.Redis, alock: ALock, uid: str
) -> None:
    incident, scope = f"inc-{uid}", f"ns-{uid}"
    box, sub = await start(bus, incident)
    # pre 3 -> post 4 (the fault got worse by itself: abort) -> nothing undone -> pre 4 -> post 0 (commit)
    engine = Engine(bus, redis, alock, ScriptedObserver([3, 4, 4, 0]), settings(), prefix=f"t{uid}", sleep=no_sleep)
    await engine.handle(opened(incident, scope))
    await engine.handle(diagnosis(incident))
    first = (await box.wait_kind("mitigate"))[0]
    await engine.handle(ended(incident, first, []))
    await box.wait_kind("undo")
    await engine.handle(
        c.UndoCompleted(incident_id=incident, tx_id=first["tx_id"], attempt=1, undone=0, restored_digest="digest-0")
    )
    second = (await box.wait_kind("mitigate", 2))[1]
    await engine.handle(ended(incident, second, [0.0]))
    closed = (await box.wait_kind("incident_closed"))[0]
    assert closed["visible_mu"] == [3.0, 0.0]  # no point for the attempt that changed nothing
    await sub.unsubscribe()


async def test_duplicate_and_redelivered_events_change_nothing(
    bus: Bus, redis: aioredis.Redis, alock: ALock, uid: str
) -> None:
    incident, scope = f"inc-{uid}", f"ns-{uid}"
    box, sub = await start(bus, incident)
    engine = Engine(bus, redis, alock, ScriptedObserver([3, 0]), settings(), prefix=f"t{uid}", sleep=no_sleep)
    for _ in range(2):
        await engine.handle(opened(incident, scope))
    d = diagnosis(incident)
    await engine.handle(d)
    await engine.handle(d)
    request = (await box.wait_kind("mitigate"))[0]
    e = ended(incident, request, [0.0])
    await engine.handle(e)
    await engine.handle(e)
    await box.wait_kind("incident_closed")
    await asyncio.sleep(0.2)  # let any (wrong) extra message arrive before counting
    assert len(box.of_kind("diagnose")) == 1 and len(box.of_kind("mitigate")) == 1
    assert len(box.of_kind("incident_closed")) == 1
    await sub.unsubscribe()


async def test_attempts_run_out_and_the_incident_escalates_with_a_report(
    bus: Bus, redis: aioredis.Redis, alock: ALock, uid: str
) -> None:
    incident, scope = f"inc-{uid}", f"ns-{uid}"
    box, sub = await start(bus, incident)
    engine = Engine(
        bus, redis, alock, ScriptedObserver([3, 4, 3]), settings(max_retries=0), prefix=f"t{uid}", sleep=no_sleep
    )
    await engine.handle(opened(incident, scope))
    await engine.handle(diagnosis(incident))
    request = (await box.wait_kind("mitigate"))[0]
    await engine.handle(ended(incident, request, [4.0]))
    await box.wait_kind("undo")
    await engine.handle(
        c.UndoCompleted(incident_id=incident, tx_id=request["tx_id"], attempt=1, undone=1, restored_digest="digest-0")
    )
    closed = (await box.wait_kind("incident_closed"))[0]
    assert closed["outcome"] == "escalated" and "attempt 1: abort" in closed["report"]
    await sub.unsubscribe()


async def test_a_vanished_writer_is_fenced_out_and_its_transaction_rolled_back(
    bus: Bus, redis: aioredis.Redis, alock: ALock, uid: str
) -> None:
    incident, scope = f"inc-{uid}", f"ns-{uid}"
    box, sub = await start(bus, incident)
    engine = Engine(
        bus, redis, alock, ScriptedObserver([3]), settings(lease_ttl_s=0.5), prefix=f"t{uid}", sleep=no_sleep
    )
    await engine.handle(opened(incident, scope))
    await engine.handle(diagnosis(incident))
    request = (await box.wait_kind("mitigate"))[0]
    old = c.Lease.model_validate(request["lease"])
    await engine.handle(started(incident, request))
    # The mitigator took the request, then never renewed (it died). Once the lease lapses the watchdog takes over.
    deadline = asyncio.get_running_loop().time() + 10
    while not box.of_kind("undo") and asyncio.get_running_loop().time() < deadline:
        await engine.sweep()
        await asyncio.sleep(0.1)
    undo = (await box.wait_kind("undo"))[0]
    assert undo["tx_id"] == request["tx_id"]
    assert undo["lease"]["token"] > old.token
    assert not await alock.check_fence(scope, old.token)  # the old writer can never write again
    assert (await box.wait_kind("transaction_decided"))[0]["decision"] == "abort"
    await sub.unsubscribe()


def started(incident: str, req: dict[str, Any]) -> c.TransactionStarted:
    return c.TransactionStarted(incident_id=incident, tx_id=req["tx_id"], attempt=req["attempt"], worker="m-0")


async def sweep_for(engine: Engine, seconds: float) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        await engine.sweep()
        await asyncio.sleep(0.1)


async def test_a_queued_request_keeps_its_lease_until_a_mitigator_takes_it(
    bus: Bus, redis: aioredis.Redis, alock: ALock, uid: str
) -> None:
    incident, scope = f"inc-{uid}", f"ns-{uid}"
    box, sub = await start(bus, incident)
    engine = Engine(
        bus, redis, alock, ScriptedObserver([3]), settings(lease_ttl_s=0.6), prefix=f"t{uid}", sleep=no_sleep
    )
    await engine.handle(opened(incident, scope))
    await engine.handle(diagnosis(incident))
    request = (await box.wait_kind("mitigate"))[0]
    lease = c.Lease.model_validate(request["lease"])
    await sweep_for(engine, 2.0)  # every mitigator is busy: the request waits three TTLs in the queue
    assert await alock.check_fence(scope, lease.token) and not box.of_kind("undo")
    await engine.handle(started(incident, request))  # taken: renewing is the mitigator's job now (it is not)
    await sweep_for(engine, 2.0)
    assert not await alock.check_fence(scope, lease.token)
    assert (await box.wait_kind("undo"))[0]["tx_id"] == request["tx_id"]
    await sub.unsubscribe()


async def test_a_request_nobody_takes_loses_its_lease_after_the_pickup_timeout(
    bus: Bus, redis: aioredis.Redis, alock: ALock, uid: str
) -> None:
    incident, scope = f"inc-{uid}", f"ns-{uid}"
    box, sub = await start(bus, incident)
    cfg = settings(lease_ttl_s=0.5, pickup_timeout_s=1.0)
    engine = Engine(bus, redis, alock, ScriptedObserver([3]), cfg, prefix=f"t{uid}", sleep=no_sleep)
    await engine.handle(opened(incident, scope))
    await engine.handle(diagnosis(incident))
    request = (await box.wait_kind("mitigate"))[0]
    await sweep_for(engine, 3.0)
    assert (await box.wait_kind("undo"))[0]["tx_id"] == request["tx_id"]
    assert (await box.wait_kind("transaction_decided"))[0]["decision"] == "abort"
    await sub.unsubscribe()


async def test_a_restarted_coordinator_resumes_the_incident(
    bus: Bus, redis: aioredis.Redis, alock: ALock, uid: str
) -> None:
    incident, scope = f"inc-{uid}", f"ns-{uid}"
    box, sub = await start(bus, incident)
    first = Engine(bus, redis, alock, ScriptedObserver([3]), settings(), prefix=f"t{uid}", sleep=no_sleep)
    await first.handle(opened(incident, scope))
    await first.handle(diagnosis(incident))
    request = (await box.wait_kind("mitigate"))[0]
    del first  # the coordinator dies; its successor only has Redis and the bus
    second = Engine(bus, redis, alock, ScriptedObserver([0]), settings(), prefix=f"t{uid}", sleep=no_sleep)
    await second.handle(ended(incident, request, [0.0]))
    assert (await box.wait_kind("incident_closed"))[0]["outcome"] == "resolved"
    await sub.unsubscribe()


async def test_per_incident_state_is_torn_down_when_the_work_is_done(
    bus: Bus, redis: aioredis.Redis, alock: ALock, uid: str
) -> None:
    engine = Engine(bus, redis, alock, ScriptedObserver([3, 0] * 20), settings(), prefix=f"t{uid}", sleep=no_sleep)
    await bus.ensure_streams()
    incidents = [f"inc-{uid}-{i}" for i in range(20)]
    await asyncio.gather(*(engine.handle(opened(i, f"ns-{uid}-{n}")) for n, i in enumerate(incidents)))
    await asyncio.gather(*(engine.handle(diagnosis(i)) for i in incidents))
    assert engine._locks == {}  # no lock outlives the event it serialised: nothing grows with the incidents
    await engine.sweep()
    assert engine._locks == {}


async def test_a_replica_with_a_stale_view_cannot_overwrite_the_record(
    bus: Bus, redis: aioredis.Redis, alock: ALock, uid: str
) -> None:
    from services.coordinator.engine import StaleRecord

    incident, scope = f"inc-{uid}", f"ns-{uid}"
    await bus.ensure_streams()
    a = Engine(bus, redis, alock, ScriptedObserver([3]), settings(), prefix=f"t{uid}", sleep=no_sleep)
    b = Engine(bus, redis, alock, ScriptedObserver([3]), settings(), prefix=f"t{uid}", sleep=no_sleep)
    await a.handle(opened(incident, scope))
    paused = await a.store.load(incident)  # replica a, paused past its lease with this view
    successor = await b.store.load(incident)
    assert paused is not None and successor is not None
    successor.report = "the successor's work"
    await b.store.save(successor)
    paused.report = "stale"
    with pytest.raises(StaleRecord):
        await a.store.save(paused)
    current = await a.store.load(incident)
    assert current is not None and current.report == "the successor's work"


async def test_an_event_that_cannot_be_handled_escalates_after_rolling_back_its_transaction(
    bus: Bus, redis: aioredis.Redis, alock: ALock, uid: str
) -> None:
    incident, scope = f"inc-{uid}", f"ns-{uid}"
    box, sub = await start(bus, incident)
    engine = Engine(bus, redis, alock, ScriptedObserver([3, 3]), settings(), prefix=f"t{uid}", sleep=no_sleep)
    await engine.handle(opened(incident, scope))
    await engine.handle(diagnosis(incident))
    request = (await box.wait_kind("mitigate"))[0]
    await engine.escalate_dropped(incident, "failed on each of 20 deliveries")  # mid-transaction
    undo = (await box.wait_kind("undo"))[0]  # writes may have happened: roll back first
    assert undo["tx_id"] == request["tx_id"]
    decided = (await box.wait_kind("transaction_decided"))[0]
    assert decided["decision"] == "abort" and "could not be handled" in decided["reason"]
    assert not box.of_kind("incident_closed")
    await engine.handle(
        c.UndoCompleted(incident_id=incident, tx_id=request["tx_id"], attempt=1, undone=1, restored_digest="digest-0")
    )
    closed = (await box.wait_kind("incident_closed"))[0]
    assert closed["outcome"] == "escalated" and "20 deliveries" in closed["report"]
    assert len(box.of_kind("mitigate")) == 1  # no new attempt after the loss
    await sub.unsubscribe()


async def test_an_attempt_waiting_for_another_incidents_lease_is_parked_not_blocking(
    bus: Bus, redis: aioredis.Redis, alock: ALock, uid: str
) -> None:
    """Two incidents on one scope: the second's diagnosis is handled at once (parked: waiting in the handler would hold
    up its partition, maybe the very events that end the first), and the watchdog starts it once the lease is free."""
    first, second, scope = f"inc-{uid}-a", f"inc-{uid}-b", f"ns-{uid}"
    box_a, sub_a = await start(bus, first)
    box_b, sub_b = await start(bus, second)
    engine = Engine(bus, redis, alock, ScriptedObserver([3, 0, 3, 0]), settings(lease_wait_s=0.2), prefix=f"t{uid}")
    for incident in (first, second):
        await engine.handle(opened(incident, scope))
    await engine.handle(diagnosis(first))
    request = (await box_a.wait_kind("mitigate"))[0]
    await asyncio.wait_for(engine.handle(diagnosis(second)), 5)  # returns: parked
    record = await engine.store.load(second)
    assert record is not None and record.attempt_pending and record.state == "diagnosing"
    await engine.sweep()
    assert not box_b.of_kind("mitigate")  # still held by the first
    await engine.handle(ended(first, request, [0.0]))  # the first commits and releases the lease
    await engine.sweep()
    second_request = (await box_b.wait_kind("mitigate"))[0]
    assert second_request["attempt"] == 1
    record = await engine.store.load(second)
    assert record is not None and not record.attempt_pending and record.state == "mitigating"
    await sub_a.unsubscribe()
    await sub_b.unsubscribe()


class SlowSnapshotObserver(ScriptedObserver):
    """A checkpoint snapshot that takes longer than the lease's TTL (a big namespace on a busy machine)."""

    def __init__(self, mus: list[float], snapshot_s: float) -> None:
        super().__init__(mus)
        self.snapshot_s = snapshot_s

    async def snapshot(self, scope: str, lease_scope: str) -> tuple[str, dict[str, Any]]:
        await asyncio.sleep(self.snapshot_s)
        return await super().snapshot(scope, lease_scope)


async def test_the_lease_outlives_a_checkpoint_slower_than_its_ttl(
    bus: Bus, redis: aioredis.Redis, alock: ALock, uid: str
) -> None:
    """From its grant until the request carries it, the coordinator keeps the lease alive: a mitigator used to get a
    lease about to lapse and lose it at its first renewal."""
    incident, scope = f"inc-{uid}", f"ns-{uid}"
    box, sub = await start(bus, incident)
    observer = SlowSnapshotObserver([3], snapshot_s=1.5)
    engine = Engine(bus, redis, alock, observer, settings(lease_ttl_s=0.6), prefix=f"t{uid}", sleep=no_sleep)
    await engine.handle(opened(incident, scope))
    await engine.handle(diagnosis(incident))
    request = (await box.wait_kind("mitigate"))[0]
    lease = c.Lease.model_validate(request["lease"])
    assert await alock.check_fence(scope, lease.token)  # 2.5 TTLs after the grant, still the scope's writer
    async with alock.keep(lease, 0.6, release_on_exit=False) as keeper:  # the mitigator's keeper takes over
        await asyncio.sleep(1.0)
        assert not keeper.lost.is_set() and keeper.renewals >= 2
    await sub.unsubscribe()


async def test_a_transaction_that_wrote_nothing_resolves_only_after_the_run_of_clean_reads(
    bus: Bus, redis: aioredis.Redis, alock: ALock, uid: str
) -> None:
    incident, scope = f"inc-{uid}", f"ns-{uid}"
    box, sub = await start(bus, incident)
    # pre 1 -> the mitigator writes nothing -> post 0 (one request in ten failing passes a read) -> 20 clean reads,
    # then the failure shows again: not resolved, the next attempt starts from it.
    observer = ScriptedObserver([1, 0] + [0] * 20 + [1, 1])
    engine = Engine(bus, redis, alock, observer, settings(), prefix=f"t{uid}", sleep=no_sleep)
    await engine.handle(opened(incident, scope, b=1.0))
    await engine.handle(diagnosis(incident))
    first = (await box.wait_kind("mitigate"))[0]
    await engine.handle(ended(incident, first, [], writes=0))
    assert (await box.wait_kind("transaction_decided"))[0]["decision"] == "commit"
    second = await box.wait_kind("mitigate", count=2)
    assert second[1]["attempt"] == 2 and not box.of_kind("incident_closed")
    await sub.unsubscribe()
