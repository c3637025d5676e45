"""Which partitions of the events stream this coordinator replica consumes: per-partition leases in Redis.

The events stream is split into ``STRATUS_PARTITIONS`` partitions by a stable hash of the incident id (see
``Topology.events``). Each partition has one durable consumer with ``max_ack_pending=1``: the server hands out one
message at a time, so a partition's events, and so each incident's, are handled one after another and never
overtake one that is being retried, whichever replica pulls. The leases decide which replica pulls:

- every replica announces itself in a members set (score: expiry on Redis's clock) and takes
  ``ceil(partitions / live replicas)`` partitions, preferring its own by rendezvous hashing, so the split is stable;
- a lease is a Redis key ``<prefix>:coordinator:partition:<n>`` holding the owner, with a TTL of
  ``STRATUS_PARTITION_LEASE_S``, renewed every third of it. A replica that dies or stops renewing loses its partitions
  after at most one TTL, and the others take them over; its in-flight message is redelivered after the consumer's ack
  wait (``STRATUS_EVENT_ACK_WAIT_S``), and nothing in that partition moves before it;
- a replica handles a message only while its lease is valid on its own clock (with a margin); otherwise the message
  is nak'ed at once for the new owner. A replica paused past its lease that wakes up mid-handle is stopped by the
  incident store, whose saves are compare-and-set on a version (``store.KvIncidentStore``);
- when a replica joins, the others release what exceeds their new share (stopping the consumer first: a running
  handler finishes) and the newcomer takes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import zlib
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

log = logging.getLogger(__name__)

# KEYS: lease. ARGV: owner, ttl ms. 1 when the caller holds the lease now (taken or renewed).
_TAKE = """
local cur = redis.call('GET', KEYS[1])
if cur == false then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
"""
# KEYS: lease. ARGV: owner.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# KEYS: members. ARGV: member, ttl ms. The number of live members, on Redis's clock.
_MEMBERS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""


class Partitions:
    """This replica's share of the partitions; ``start``/``stop`` turn a partition's consumer on and off."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        prefix: str,
        instance: str,
        count: int,
        lease_s: float,
        start: Callable[[int], Awaitable[None]],
        stop: Callable[[int], Awaitable[None]],
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.instance = instance
        self.count = count
        self.lease_s = lease_s
        self._start, self._stop = start, stop
        self._valid_until: dict[int, float] = {}
        self._take = redis.register_script(_TAKE)
        self._release = redis.register_script(_RELEASE)
        self._members = redis.register_script(_MEMBERS)
        self.preference = sorted(range(count), key=lambda p: zlib.crc32(f"{instance}:{p}".encode()))
        """This replica's partitions, most preferred first (rendezvous hashing)."""

    def _key(self, partition: int) -> str:
        return f"{self.prefix}:coordinator:partition:{partition}"

    @property
    def owned(self) -> list[int]:
        return sorted(self._valid_until)

    def owns(self, partition: int) -> bool:
        """Whether this replica may handle the partition's messages now (its lease is valid, with a margin)."""
        return self._valid_until.get(partition, 0.0) > time.monotonic()

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the share up to date until ``stop``; then release everything (the consumers stop first)."""
        try:
            while not stop.is_set():
                try:
                    await self.rebalance()
                except Exception as exc:
                    log.warning("partition leases: %r; consumers whose lease runs out stop", exc)
                    await self._drop_expired()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.lease_s / 3)
        finally:
            await self.release_all()

    async def rebalance(self) -> None:
        ttl_ms = int(self.lease_s * 1000)
        live = max(
            1, int(await self._members(keys=[f"{self.prefix}:coordinator:members"], args=[self.instance, ttl_ms]))
        )
        share = math.ceil(self.count / live)
        for p in list(self._valid_until):  # renew what is held
            await self._hold(p, ttl_ms)
        held = [p for p in self.preference if p in self._valid_until]
        for p in held[share:]:  # the least preferred beyond the share go to the others
            await self._give_up(p)
        for p in self.preference:
            if len(self._valid_until) >= share:
                break
            if p not in self._valid_until:
                await self._hold(p, ttl_ms)

    async def _hold(self, partition: int, ttl_ms: int) -> None:
        asked = time.monotonic()
        if int(await self._take(keys=[self._key(partition)], args=[self.instance, ttl_ms])):
            new = partition not in self._valid_until
            self._valid_until[partition] = asked + 0.8 * self.lease_s
            if new:
                log.info("coordinator: took partition %d", partition)
                await self._start(partition)
        elif partition in self._valid_until:
            log.warning("coordinator: lost partition %d to another replica", partition)
            self._valid_until.pop(partition)
            await self._stop(partition)

    async def _give_up(self, partition: int) -> None:
        self._valid_until.pop(partition, None)
        await self._stop(partition)  # a running handler finishes before the lease goes
        await self._release(keys=[self._key(partition)], args=[self.instance])
        log.info("coordinator: released partition %d", partition)

    async def _drop_expired(self) -> None:
        for p in [p for p in self._valid_until if not self.owns(p)]:
            self._valid_until.pop(p)
            await self._stop(p)

    async def release_all(self) -> None:
        for p in list(self._valid_until):
            with contextlib.suppress(Exception):
                await self._give_up(p)
        with contextlib.suppress(Exception):
            await self.redis.zrem(f"{self.prefix}:coordinator:members", self.instance)
