"""Redis is not a single point of forgetting: fencing tokens stay unique and increasing, and an open incident with
its running transaction survives Redis restarting empty (real NATS, a private Redis that the test wipes)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from services.coordinator.engine import Engine
from stratus import contracts as c
from stratus.alock import ALock
from stratus.bus import Bus
from stratus.fence import JetStreamTokens
from stratus.localinfra import LocalServer, start_redis
from tests.integration.test_coordinator_engine import (
    ScriptedObserver,
    diagnosis,
    no_sleep,
    opened,
    settings,
    start,
    started,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def private_redis() -> Iterator[LocalServer]:
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture
async def wiped(private_redis: LocalServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(private_redis.url)
    yield client
    await client.aclose()


async def restart_empty(redis: aioredis.Redis) -> None:
    """What Redis restarting without persistence (or failing over to an empty replica) leaves: nothing at all."""
    await redis.flushall()
    await redis.script_flush()


async def test_tokens_stay_unique_and_increasing_across_a_redis_restart(bus: Bus, wiped: aioredis.Redis) -> None:
    alock = ALock(wiped, prefix="fence", tokens=JetStreamTokens(bus))
    issued: list[int] = []
    for _ in range(3):
        lease = await alock.acquire_write("shop", "a", 5)
        issued.append(lease.token)
        await alock.release(lease)
    held = await alock.acquire_write("shop", "b", 5)
    issued.append(held.token)
    await restart_empty(wiped)
    assert not await alock.check_fence("shop", held.token)  # the holder is forgotten: it cannot write
    after = await alock.acquire_write("shop", "c", 5)
    issued.append(after.token)
    assert issued == sorted(issued) and len(set(issued)) == len(issued)
    # Redis's own counter would have started again at 1, the token of the first grant.
    plain = await ALock(wiped, prefix="plain").acquire_write("shop", "d", 5)
    await restart_empty(wiped)
    assert (await ALock(wiped, prefix="plain").acquire_write("shop", "e", 5)).token == plain.token


class Replay:
    """A token source that first hands out a token already used (fetched before a racing grant), then fresh ones."""

    def __init__(self, inner: JetStreamTokens, stale: int) -> None:
        self.inner, self.stale = inner, stale

    async def issue(self, scope: str, holder: str) -> int:
        if self.stale:
            token, self.stale = self.stale, 0
            return token
        return await self.inner.issue(scope, holder)


async def test_a_token_not_above_the_scopes_last_is_refused_and_replaced(bus: Bus, wiped: aioredis.Redis) -> None:
    tokens = JetStreamTokens(bus)
    first = await ALock(wiped, prefix="race", tokens=tokens).acquire_write("shop", "a", 5)
    await ALock(wiped, prefix="race").release(first)
    second = await ALock(wiped, prefix="race", tokens=Replay(tokens, first.token)).acquire_write("shop", "b", 5)
    assert second.token > first.token


async def test_an_open_transaction_survives_redis_restarting_empty_and_is_rolled_back(
    bus: Bus, wiped: aioredis.Redis, uid: str
) -> None:
    incident, scope = f"inc-{uid}", f"ns-{uid}"
    box, sub = await start(bus, incident)
    alock = ALock(wiped, prefix=f"t{uid}", tokens=JetStreamTokens(bus))
    engine = Engine(
        bus, wiped, alock, ScriptedObserver([3, 3, 3]), settings(lease_ttl_s=5), prefix=f"t{uid}", sleep=no_sleep
    )
    await engine.handle(opened(incident, scope))
    await engine.handle(diagnosis(incident))
    request = (await box.wait_kind("mitigate"))[0]
    before = c.Lease.model_validate(request["lease"])
    await engine.handle(started(incident, request))  # the mitigator is writing under ``before``

    await restart_empty(wiped)
    # A coordinator that restarts now has only NATS: the record, the events and the journal.
    successor = Engine(
        bus, wiped, alock, ScriptedObserver([3, 3, 3]), settings(lease_ttl_s=5), prefix=f"t{uid}", sleep=no_sleep
    )
    assert incident in await successor.store.open_ids()
    deadline = asyncio.get_running_loop().time() + 10
    while not box.of_kind("undo") and asyncio.get_running_loop().time() < deadline:
        await successor.sweep()
        await asyncio.sleep(0.05)
    undo = (await box.wait_kind("undo"))[0]
    assert undo["tx_id"] == request["tx_id"]  # the harmful transaction is rolled back from its journal
    assert undo["lease"]["token"] > before.token  # never token 1 again
    assert not await alock.check_fence(scope, before.token)
    decided = (await box.wait_kind("transaction_decided"))[0]
    assert decided["decision"] == "abort" and decided["tx_id"] == request["tx_id"]
    await sub.unsubscribe()
    await alock.aclose()
