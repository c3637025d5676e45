"""Small shared records in Redis that more than one service reads.

- Scope claims: at most one open incident per scope. The detector claims a scope with ``SET NX`` before it opens an
  incident, so repeated alerts and probes attach to the open one; the coordinator frees the claim when the incident
  closes. Given a bus, claims live in the incidents' JetStream key-value bucket instead (create-if-absent, delete
  at the claimed revision), so a Redis that restarts empty does not let a second incident open on a scope whose
  incident is still open.
"""

from __future__ import annotations

import contextlib

import redis.asyncio as aioredis
from nats.js import api as js_api
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from stratus.bus import Bus, key_value
from stratus.contracts import token


async def incidents_bucket(bus: Bus) -> KeyValue:
    """The ``<stream_prefix>_INCIDENTS`` key-value bucket (incident records and scope claims), created if missing."""
    bucket = f"{bus.topology.stream_prefix}_INCIDENTS"
    return await key_value(bus.js, js_api.KeyValueConfig(bucket=bucket, history=1, storage=js_api.StorageType.FILE))


class Registry:
    def __init__(self, redis: aioredis.Redis, *, prefix: str = "stratus", bus: Bus | None = None) -> None:
        self.redis = redis
        self.prefix = prefix
        self.bus = bus
        self._kv: KeyValue | None = None

    def _claim_key(self, scope: str) -> str:
        return f"{self.prefix}:scope-incident:{scope}"

    async def _claims(self) -> KeyValue | None:
        if self.bus is not None and self._kv is None:
            self._kv = await incidents_bucket(self.bus)
        return self._kv

    def _kv_claim(self, scope: str) -> str:
        return f"{token(self.prefix)}.claim.{token(scope)}"

    async def claim_scope(self, scope: str, incident_id: str) -> str:
        """Claim ``scope`` for ``incident_id``; returns the incident that holds the scope (this one, or an older)."""
        kv = await self._claims()
        if kv is not None:
            for _ in range(10):
                try:
                    await kv.create(self._kv_claim(scope), incident_id.encode())
                    return incident_id
                except KeyWrongLastSequenceError:
                    holder = await self.scope_incident(scope)
                    if holder:
                        return holder
            raise RuntimeError(f"scope {scope!r}: the claim kept changing hands")
        key = self._claim_key(scope)
        if await self.redis.set(key, incident_id, nx=True):
            return incident_id
        value = await self.redis.get(key)
        return _text(value) if value else await self.claim_scope(scope, incident_id)

    async def scope_incident(self, scope: str) -> str | None:
        kv = await self._claims()
        if kv is not None:
            try:
                entry = await kv.get(self._kv_claim(scope))
            except KeyNotFoundError:
                return None
            return entry.value.decode() if entry.value else None
        value = await self.redis.get(self._claim_key(scope))
        return _text(value) if value else None

    async def release_scope(self, scope: str, incident_id: str) -> None:
        """Free the claim if ``incident_id`` still holds it (compare-and-delete)."""
        kv = await self._claims()
        if kv is not None:
            try:
                entry = await kv.get(self._kv_claim(scope))
            except KeyNotFoundError:
                return
            if entry.value and entry.value.decode() == incident_id:
                with contextlib.suppress(KeyWrongLastSequenceError):
                    await kv.delete(self._kv_claim(scope), last=entry.revision)
            return
        script = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
        await self.redis.eval(script, 1, self._claim_key(scope), incident_id)

    async def cool_down(self, scope: str, seconds: float) -> None:
        """After an escalation: no new incident on ``scope`` for ``seconds`` (a human has it)."""
        await self.redis.set(f"{self.prefix}:scope-cooldown:{scope}", "1", px=max(1, int(seconds * 1000)))

    async def cooling_down(self, scope: str) -> bool:
        return bool(await self.redis.exists(f"{self.prefix}:scope-cooldown:{scope}"))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
