"""Thin subscriber of the coordinator: every incident event goes to the engine, keyed by incident."""

from __future__ import annotations

from nats.aio.msg import Msg

from services.coordinator.engine import Engine
from stratus.contracts import Event


class EventHandler:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def __call__(self, event: Event, msg: Msg) -> None:
        await self.engine.handle(event, msg)


def incident_key(event: Event) -> str:
    return event.incident_id
