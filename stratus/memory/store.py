"""Incident memory on the bus: a JetStream key-value bucket, one key per closed incident.

The bucket is file-backed, so memory survives restarts of every service and of the NATS server. It is bounded
twice: by entries (the oldest are purged past ``max_entries``) and by bytes (JetStream refuses writes past
``max_bytes``; a refused write is logged, never fatal: memory is advice, the incident is already closed).
Updates (demote, count a replay) are compare-and-set on the entry's revision and retried, so two coordinator
replicas never lose each other's update.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from pydantic import ValidationError

from stratus.bus import key_value
from stratus.memory.records import IncidentMemory

log = logging.getLogger(__name__)


class MemoryStore:
    def __init__(self, js: Any, bucket: str, *, max_entries: int = 500, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.js = js
        self.bucket = bucket
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._kv: Any = None

    async def kv(self) -> Any:
        if self._kv is None:
            config = KeyValueConfig(
                bucket=self.bucket,
                description="Stratus incident memory: closed incidents, their signatures and fixes.",
                history=1,
                max_bytes=self.max_bytes,
                storage=StorageType.FILE,
            )
            self._kv = await key_value(self.js, config)
        return self._kv

    async def put(self, memory: IncidentMemory) -> None:
        kv = await self.kv()
        await kv.put(memory.key, memory.model_dump_json().encode())
        await self._trim()

    async def get(self, key: str) -> IncidentMemory | None:
        kv = await self.kv()
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            return None
        return _parse(entry.value)

    async def all(self) -> list[IncidentMemory]:
        kv = await self.kv()
        try:
            keys = await kv.keys()
        except NoKeysError:
            return []
        out = []
        for key in keys:
            try:
                entry = await kv.get(key)
            except KeyNotFoundError:
                continue
            memory = _parse(entry.value)
            if memory is not None:
                out.append(memory)
        return out

    async def update(self, key: str, change: Callable[[IncidentMemory], IncidentMemory]) -> IncidentMemory | None:
        """Apply ``change(memory) -> memory`` under compare-and-set; None when the key is gone."""
        kv = await self.kv()
        for _ in range(10):
            try:
                entry = await kv.get(key)
            except KeyNotFoundError:
                return None
            memory = _parse(entry.value)
            if memory is None:
                return None
            memory = change(memory)
            try:
                await kv.update(key, memory.model_dump_json().encode(), last=entry.revision)
                return memory
            except KeyWrongLastSequenceError:
                await asyncio.sleep(0.05)
        log.warning("memory %s: update lost to concurrent writers", key)
        return None

    async def demote(self, key: str) -> IncidentMemory | None:
        return await self.update(key, lambda m: m.model_copy(update={"demoted": True}))

    async def count_replay(self, key: str) -> IncidentMemory | None:
        return await self.update(key, lambda m: m.model_copy(update={"replays": m.replays + 1}))

    async def _trim(self) -> None:
        memories = await self.all()
        excess = len(memories) - self.max_entries
        if excess <= 0:
            return
        kv = await self.kv()
        for m in sorted(memories, key=lambda m: m.closed_at)[:excess]:
            await kv.purge(m.key)


def _parse(raw: bytes | None) -> IncidentMemory | None:
    if not raw:
        return None
    try:
        return IncidentMemory.model_validate_json(raw)
    except ValidationError as exc:
        log.warning("unreadable memory entry skipped: %s", exc.errors()[0]["msg"])
        return None
