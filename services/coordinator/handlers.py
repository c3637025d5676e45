"""Thin subscriber of the coordinator: every incident event of an owned partition goes to the engine."""

from __future__ import annotations

from services.coordinator.engine import Engine
from stratus.contracts import Event


class EventHandler:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def __call__(self, event: Event) -> None:
        await self.engine.handle(event)
