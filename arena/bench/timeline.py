"""Incident events of one scope, from the STRATUS_EVENTS JetStream stream, for one bench scenario.

NATS is shared by every scenario of a run, so the ordered consumer replays older incidents too: an incident belongs
to this scenario only if it opened on the scope at or after ``since`` (the moment of injection).
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

from stratus.bus import Bus
from stratus.contracts import ALL_EVENTS, EVENTS_STREAM


class Timeline:
    def __init__(self, bus: Bus, scope: str, since: datetime) -> None:
        self.bus, self.scope, self.since = bus, scope, since
        self.incidents: set[str] = set()
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._sub: Any = None

    async def start(self) -> Timeline:
        await self.bus.ensure_streams()
        self._sub = await self.bus.js.subscribe(ALL_EVENTS, stream=EVENTS_STREAM, cb=self._on, ordered_consumer=True)
        return self

    async def _on(self, msg: Any) -> None:
        data = json.loads(msg.data)
        kind, scope = data.get("kind"), data.get("scope")
        if kind == "incident_opened" and scope == self.scope and datetime.fromisoformat(data["ts"]) >= self.since:
            self.incidents.add(data["incident_id"])
        if data.get("incident_id") in self.incidents:
            self.events.append(data)
            self._changed.set()

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == kind]

    async def wait_for(self, kind: str, timeout: float) -> dict[str, Any] | None:
        """The first event of ``kind``, or None after ``timeout`` seconds."""

        async def until() -> dict[str, Any]:
            while True:
                found = self.of(kind)
                if found:
                    return found[0]
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(until(), timeout)
        except TimeoutError:
            return None

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
