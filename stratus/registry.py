"""Small shared records in Redis that more than one service reads.

- Scope claims: at most one open incident per scope. The detector claims a scope with ``SET NX`` before it opens an
  incident, so repeated alerts and probes attach to the open one; the coordinator frees the claim when the incident
  closes.
- Checkpoints: the normalised state snapshot taken before a transaction (R1). The coordinator writes it; the undoer
  reads it to explain, field by field, any difference left after an undo.
"""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis


class Registry:
    def __init__(self, redis: aioredis.Redis, *, prefix: str = "stratus") -> None:
        self.redis = redis
        self.prefix = prefix

    def _claim_key(self, scope: str) -> str:
        return f"{self.prefix}:scope-incident:{scope}"

    async def claim_scope(self, scope: str, incident_id: str) -> str:
        """Claim ``scope`` for ``incident_id``; returns the incident that holds the scope (this one, or an older)."""
        key = self._claim_key(scope)
        if await self.redis.set(key, incident_id, nx=True):
            return incident_id
        holder = await self.redis.get(key)
        return _text(holder) if holder else await self.claim_scope(scope, incident_id)

    async def scope_incident(self, scope: str) -> str | None:
        value = await self.redis.get(self._claim_key(scope))
        return _text(value) if value else None

    async def release_scope(self, scope: str, incident_id: str) -> None:
        """Free the claim if ``incident_id`` still holds it (compare-and-delete)."""
        script = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
        await self.redis.eval(script, 1, self._claim_key(scope), incident_id)

    async def cool_down(self, scope: str, seconds: float) -> None:
        """After an escalation: no new incident on ``scope`` for ``seconds`` (a human has it)."""
        await self.redis.set(f"{self.prefix}:scope-cooldown:{scope}", "1", px=max(1, int(seconds * 1000)))

    async def cooling_down(self, scope: str) -> bool:
        return bool(await self.redis.exists(f"{self.prefix}:scope-cooldown:{scope}"))

    async def put_checkpoint(self, tx_id: str, snapshot: dict[str, Any], ttl_s: int = 7 * 24 * 3600) -> None:
        await self.redis.set(f"{self.prefix}:checkpoint:{tx_id}", json.dumps(snapshot, sort_keys=True), ex=ttl_s)

    async def get_checkpoint(self, tx_id: str) -> dict[str, Any] | None:
        raw = await self.redis.get(f"{self.prefix}:checkpoint:{tx_id}")
        return json.loads(raw) if raw else None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
