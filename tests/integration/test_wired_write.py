"""The write path with the intent and the fence sent from the gateway's worker thread (``journal_wire``,
``fence_wire``), on real NATS, Redis and the arena: the same journal, the same refusals, nothing written that the
async path would not write; and what the worker cannot settle (a fence without a clear answer) is settled by the
A-Lock."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from stratus.actions import Patch
from stratus.alock import ALock, FencingError
from stratus.bus import Bus
from stratus.contracts import Lease
from stratus.gateway import KubeApi, WriteGateway
from stratus.journal import Journal, JournalError, undo_plan

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.fixtures_arena"]


class World:
    def __init__(self, api: KubeApi, ns: str, bus: Bus, lock: ALock, lease: Lease) -> None:
        self.api, self.ns, self.bus, self.lock, self.lease = api, ns, bus, lock, lease
        self.journal = Journal(bus)
        self.tx = f"tx-{uuid.uuid4().hex[:8]}"

    def gateway(self, **overrides: Any) -> WriteGateway:
        settings: dict[str, Any] = {
            "lease": self.lease,
            "check_fence": self.lock.ensure_fence,
            "journal_intent": self.journal.append,
            "journal_outcome": self.journal.append,
            "journal_batch": self.journal.append_batch,
            "incident_id": "inc",
            "tx_id": self.tx,
            "attempt": 1,
            "journal_wire": self.journal,
            "fence_wire": self.lock.blocking_fence(),
        }
        return WriteGateway(self.api, **(settings | overrides))

    async def data(self, name: str = "conf") -> dict[str, str]:
        obj = await asyncio.to_thread(self.api.get, "ConfigMap", self.ns, name)
        assert obj is not None
        return dict(obj.get("data") or {})


@pytest.fixture
async def world(arena_kubeconfig: Path, bus: Bus, redis: aioredis.Redis) -> AsyncIterator[World]:
    await bus.ensure_streams()
    api = KubeApi.from_kubeconfig(arena_kubeconfig)
    ns = f"wire-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(api.create, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    for name in ("conf", "other"):
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": {"k": "0"}}
        await asyncio.to_thread(api.create, cm)
    lock = ALock(redis, prefix=f"wire-{uuid.uuid4().hex[:6]}")
    lease = await lock.acquire_write(ns, "inc/a1", 30)
    made = World(api, ns, bus, lock, lease)
    yield made
    made.journal.close()
    await lock.aclose()
    api.close()


def patch(ns: str, value: str, name: str = "conf") -> Patch:
    return Patch(kind="ConfigMap", namespace=ns, name=name, patch_type="merge", patch={"data": {"k": value}})


def wired_publishes(journal: Journal) -> int:
    return journal._wire._next if journal._wire is not None else 0


async def test_wired_writes_are_journaled_in_order_and_undone(world: World) -> None:
    gw = world.gateway()
    for i in range(1, 6):
        result = await gw.write(patch(world.ns, f"v{i}"))
        assert result.ok, result.message
    await gw.flush()
    assert wired_publishes(world.journal) == 4  # the transaction's first append reads the subject's last sequence
    assert await world.data() == {"k": "v5"}
    records = await world.journal.read(world.tx)
    assert [(r.seq, r.phase) for r in records] == [(s, p) for s in range(1, 6) for p in ("intent", "outcome")]
    assert all(r.ok for r in records if r.phase == "outcome")
    assert [r.pre_image["data"]["k"] for r in records if r.phase == "intent" and r.pre_image] == [
        "0",
        "v1",
        "v2",
        "v3",
        "v4",
    ]
    for record in undo_plan(records):
        for spec in record.undo:
            assert (await gw.apply_undo(spec)).ok
    assert await world.data() == {"k": "0"}
    gw.close()


async def test_a_lost_lease_stops_a_wired_write_and_voids_its_intent(world: World) -> None:
    gw = world.gateway()
    assert (await gw.write(patch(world.ns, "a"))).ok
    assert (await gw.write(patch(world.ns, "b"))).ok  # wired
    await world.lock.release(world.lease)
    successor = await world.lock.acquire_write(world.ns, "inc/a2", 30)
    sent = wired_publishes(world.journal)
    with pytest.raises(FencingError, match=f"fencing token {world.lease.token}"):
        await gw.write(patch(world.ns, "c"))
    assert wired_publishes(world.journal) == sent + 1  # the intent went out on the wire, the write did not
    assert await world.data() == {"k": "b"}
    await gw.flush()
    records = await world.journal.read(world.tx)
    voided = [r for r in records if r.phase == "outcome" and r.seq == 3]
    assert len(voided) == 1 and voided[0].ok is False and "Not sent" in voided[0].message
    assert [r.seq for r in undo_plan(records)] == [2, 1]  # the voided intent is skipped
    assert await world.lock.check_fence(world.ns, successor.token)
    gw.close()


async def test_a_wired_fence_without_a_clear_answer_is_settled_by_the_a_lock(
    world: World, redis: aioredis.Redis
) -> None:
    gw = world.gateway()
    assert (await gw.write(patch(world.ns, "a"))).ok
    await redis.script_flush()  # the worker's EVALSHA now answers NOSCRIPT: no clear yes
    assert (await gw.write(patch(world.ns, "b"))).ok  # ``ensure_fence`` loads the script and says yes
    await redis.execute_command(  # type: ignore[no-untyped-call]
        "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"
    )  # the worker's connection too
    assert (await gw.write(patch(world.ns, "c"))).ok
    assert (await gw.write(patch(world.ns, "d"))).ok
    assert await world.data() == {"k": "d"}
    await gw.flush()
    records = await world.journal.read(world.tx)
    assert [r.seq for r in records if r.phase == "outcome" and r.ok] == [1, 2, 3, 4]
    gw.close()


async def test_a_refused_wired_append_sends_nothing(world: World) -> None:
    gw = world.gateway()
    assert (await gw.write(patch(world.ns, "a"))).ok
    await gw.flush()
    # Another writer appends to the same transaction's subject: this gateway's view of it is stale.
    records = await world.journal.read(world.tx)
    await Journal(world.bus).append(records[-1].model_copy(update={"seq": 99, "id": "msg-intruder"}))
    sent = wired_publishes(world.journal)
    with pytest.raises(JournalError, match="refused by JetStream"):
        await gw.write(patch(world.ns, "b"))
    assert wired_publishes(world.journal) == sent + 1  # refused on the wire
    assert await world.data() == {"k": "a"}
    gw.close()


async def test_a_wired_dry_run_failure_or_refusal_is_voided(world: World) -> None:
    gw = world.gateway()
    assert (await gw.write(patch(world.ns, "a"))).ok
    bad = Patch(kind="ConfigMap", namespace=world.ns, name="conf", patch_type="merge", patch={"data": {"k": 5}})
    result = await gw.write(bad)
    assert not result.ok and not result.executed and "Dry run failed" in result.message
    assert await world.data() == {"k": "a"}
    await gw.flush()
    records = await world.journal.read(world.tx)
    assert [(r.seq, r.phase, r.ok) for r in records if r.seq == 2] == [(2, "intent", None), (2, "outcome", False)]
    assert [r.seq for r in undo_plan(records)] == [1]
    gw.close()


async def test_without_a_wire_the_async_path_writes_the_same_journal(world: World) -> None:
    wired, plain = world.gateway(), world.gateway(journal_wire=None, tx_id=f"{world.tx}-plain")
    for i in range(3):
        assert (await wired.write(patch(world.ns, f"w{i}"))).ok
        assert (await plain.write(patch(world.ns, f"p{i}", name="other"))).ok
    await wired.flush()
    await plain.flush()

    def shape(records: list[Any]) -> list[tuple[int, str, bool | None, str]]:
        return [(r.seq, r.phase, r.ok, r.action.verb) for r in records]

    assert shape(await world.journal.read(world.tx)) == shape(await world.journal.read(f"{world.tx}-plain"))
    wired.close()
    plain.close()
