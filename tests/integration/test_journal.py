"""The write-ahead journal on a real JetStream: ordered read-back, refusal of interleaved writers, undo plan."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from nats.errors import TimeoutError as NatsTimeout

from stratus.actions import Scale
from stratus.bus import Bus
from stratus.contracts import JournalRecord
from stratus.errors import TemporaryError
from stratus.journal import Journal, JournalError, undo_plan

pytestmark = pytest.mark.integration


def record(tx: str, seq: int, phase: str, ok: bool | None = None) -> JournalRecord:
    return JournalRecord(
        incident_id="inc",
        tx_id=tx,
        attempt=1,
        seq=seq,
        phase=phase,  # type: ignore[arg-type]
        action=Scale(kind="Deployment", namespace="ns", name=f"d{seq}", replicas=0),
        pre_image={"spec": {"replicas": 1}},
        ok=ok,
    )


async def test_records_read_back_in_order(bus: Bus, uid: str) -> None:
    await bus.ensure_streams()
    journal = Journal(bus)
    tx = f"tx-{uid}"
    written = [record(tx, 1, "intent"), record(tx, 1, "outcome", True), record(tx, 2, "intent")]
    for r in written:
        await journal.append(r)
    assert await Journal(bus).read(tx) == written  # a fresh reader (another process) sees the same
    assert await journal.read(f"tx-other-{uid}") == []


async def test_a_batch_reads_back_as_its_records_in_order(bus: Bus, uid: str) -> None:
    await bus.ensure_streams()
    journal = Journal(bus)
    tx = f"tx-{uid}"
    written = [record(tx, 1, "intent"), record(tx, 1, "outcome", True), record(tx, 2, "intent")]
    await journal.append(written[0])
    seq = await journal.append_batch(written[1:])  # one message, one acknowledgement
    assert await journal.append_batch(written[1:]) == seq  # a retried batch is the same message
    last = record(tx, 2, "outcome", True)
    await journal.append(last)
    assert await Journal(bus).read(tx) == [*written, last]
    assert undo_plan(await journal.read(tx)) == [written[2], written[0]]
    with pytest.raises(JournalError):
        await journal.append_batch([record(tx, 3, "intent"), record(f"tx-other-{uid}", 3, "intent")])


async def test_a_second_writer_cannot_interleave(bus: Bus, uid: str) -> None:
    await bus.ensure_streams()
    tx = f"tx-{uid}"
    first, second = Journal(bus), Journal(bus)
    await first.append(record(tx, 1, "intent"))
    await second.append(record(tx, 1, "outcome", True))  # reads the last sequence first: fine
    with pytest.raises(JournalError, match="refused"):
        await first.append(record(tx, 2, "intent"))  # its view of the subject is stale


async def test_duplicate_append_is_idempotent(bus: Bus, uid: str) -> None:
    await bus.ensure_streams()
    journal = Journal(bus)
    tx = f"tx-{uid}"
    r = record(tx, 1, "intent")
    await journal.append(r)
    await Journal(bus).append(r)  # a redelivered request re-appends the same record
    assert await journal.read(tx) == [r]


def test_undo_plan_is_back_to_front_and_skips_rejected_writes() -> None:
    records = [
        record("t", 1, "intent"),
        record("t", 1, "outcome", True),
        record("t", 2, "intent"),
        record("t", 2, "outcome", False),  # the API refused it: nothing to undo
        record("t", 3, "intent"),  # the writer died before recording the outcome: undo it anyway
    ]
    assert [r.seq for r in undo_plan(records)] == [3, 1]


class SlowSubscription:
    """An ordered-consumer subscription whose next message comes only after ``stalls`` timeouts (a slow server)."""

    def __init__(self, sub: Any, stalls: int) -> None:
        self.sub, self.stalls = sub, stalls

    async def next_msg(self, timeout: float) -> Any:
        if self.stalls != 0:
            self.stalls -= 1
            await asyncio.sleep(min(timeout, 0.05))
            raise NatsTimeout
        return await self.sub.next_msg(timeout=timeout)

    async def unsubscribe(self) -> None:
        await self.sub.unsubscribe()


async def test_a_slow_server_makes_the_read_slower_never_shorter(
    bus: Bus, uid: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await bus.ensure_streams()
    tx = f"tx-{uid}"
    written = [record(tx, n, "intent") for n in range(1, 6)]
    for r in written:
        await Journal(bus).append(r)
    subscribe = bus.js.subscribe

    async def slow(*args: Any, **kwargs: Any) -> SlowSubscription:
        return SlowSubscription(await subscribe(*args, **kwargs), stalls=3)

    monkeypatch.setattr(bus.js, "subscribe", slow)
    assert await Journal(bus).read(tx) == written  # the old reader stopped at the first timeout: []

    async def stalled(*args: Any, **kwargs: Any) -> SlowSubscription:
        return SlowSubscription(await subscribe(*args, **kwargs), stalls=-1)

    monkeypatch.setattr(bus.js, "subscribe", stalled)
    with pytest.raises(TemporaryError, match="partial"):
        await Journal(bus).read(tx, timeout=0.5)
