"""The A-Lock's pure parts: how blockers read in messages, and what it refuses before touching Redis."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from stratus.alock import ALock, _blocker, _ttl_ms
from stratus.contracts import Lease
from stratus.errors import PermanentError


def test_blockers_read_as_holders() -> None:
    assert _blocker("writer", "inc-1/a2", "7") == "writer 'inc-1/a2' (token 7)"
    assert _blocker("cluster writer", "ops", "3") == "cluster writer 'ops' (token 3)"
    assert _blocker("reader", "abc123|diagnoser", "") == "reader 'diagnoser' (read lease abc123)"
    assert _blocker("namespace holder", "w|shop|inc-9", "") == "writer 'inc-9' of namespace 'shop'"
    assert _blocker("namespace holder", "r|shop|abc|det|x", "") == "reader 'det|x' of namespace 'shop'"
    assert _blocker("waiting writer", "f00d|mitigator", "") == "waiting writer 'mitigator'"


def test_ttl_must_be_positive() -> None:
    assert _ttl_ms(0.0001) == 1
    assert _ttl_ms(2.5) == 2500
    with pytest.raises(PermanentError, match="ttl"):
        _ttl_ms(0)


async def test_prefix_may_not_break_the_hash_tag() -> None:
    client = aioredis.Redis()  # never connects: construction only registers scripts
    assert ALock(client, prefix="p")._key("w", "shop") == "{p}:alock:w:shop"
    for bad in ("", "a{b", "c}"):
        with pytest.raises(PermanentError, match="prefix"):
            ALock(client, prefix=bad)
    await client.aclose()


class FlakyLock(ALock):
    """Renewal fails with a connection error ``failures`` times, then works (no Redis involved)."""

    def __init__(self, failures: int) -> None:
        super().__init__(aioredis.Redis(), prefix="flaky")
        self.failures = failures
        self.calls = 0

    async def renew(self, lease: Lease, ttl_s: float) -> Lease:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("redis unreachable")
        return lease.model_copy(update={"expires_at": datetime.now(UTC) + timedelta(seconds=ttl_s)})


async def test_lease_keeper_rides_out_a_transient_renewal_failure() -> None:
    alock = FlakyLock(failures=1)
    lease = Lease(scope="shop", holder="m", token=3, expires_at=datetime.now(UTC) + timedelta(seconds=0.6))
    async with alock.keep(lease, 0.6, release_on_exit=False) as keeper:

        async def renewed_twice() -> None:
            while keeper.renewals < 2:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(renewed_twice(), 5.0)
        assert not keeper.lost.is_set() and alock.calls == 3
    await alock.redis.aclose()


async def test_lease_keeper_declares_loss_when_renewal_keeps_failing() -> None:
    alock = FlakyLock(failures=1000)
    lease = Lease(scope="shop", holder="m", token=3, expires_at=datetime.now(UTC) + timedelta(seconds=0.3))
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with alock.keep(lease, 0.3, release_on_exit=False) as keeper:
        await asyncio.wait_for(keeper.lost.wait(), 5.0)
    assert isinstance(keeper.error, ConnectionError)
    assert loop.time() - started < 1.0  # lost by the lease's own expiry, not much later
    await alock.redis.aclose()


class RacingLock(ALock):
    """A renewal whose reply lands in the same loop step as the keeper's cancellation: on Python 3.11
    ``asyncio.wait_for`` then returns the reply and the cancellation is lost (CPython gh-86296)."""

    def __init__(self) -> None:
        super().__init__(aioredis.Redis(), prefix="race")
        self.in_renewal = asyncio.Event()
        self.reply = asyncio.Event()

    async def renew(self, lease: Lease, ttl_s: float) -> Lease:
        if not self.in_renewal.is_set():  # the first renewal waits for the test; later ones answer at once
            self.in_renewal.set()
            await self.reply.wait()
        return lease.model_copy(update={"expires_at": datetime.now(UTC) + timedelta(seconds=ttl_s)})


async def test_lease_keeper_exits_when_a_renewal_reply_races_the_cancel() -> None:
    alock = RacingLock()
    lease = Lease(scope="shop", holder="m", token=3, expires_at=datetime.now(UTC) + timedelta(seconds=3))
    keeper = alock.keep(lease, 0.3, release_on_exit=False)
    await keeper.__aenter__()
    started = asyncio.get_running_loop().time()
    async with asyncio.timeout(5.0):  # no extra task: __aexit__'s cancel must land in this very loop step
        await alock.in_renewal.wait()
        await asyncio.sleep(0)  # the keeper now waits inside wait_for
        alock.reply.set()  # the reply and the cancel (the first thing __aexit__ does) land together
        await keeper.__aexit__(None, None, None)  # it hung forever, renewing, before the fix
    assert asyncio.get_running_loop().time() - started < 3.0  # not rescued by the timeout's own cancellation
    assert keeper._task is not None and keeper._task.done()
    await alock.redis.aclose()
