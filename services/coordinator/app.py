"""Wiring of the coordinator: settings, runtime, Redis, the event consumer."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from services.coordinator import handlers
from stratus.bus import Bus
from stratus.contracts import EVENT_ADAPTER
from stratus.runtime import ServiceRuntime, configure_logging
from stratus.settings import CoordinatorSettings


def build(settings: CoordinatorSettings) -> ServiceRuntime:
    runtime = ServiceRuntime("coordinator", settings)
    redis = aioredis.Redis.from_url(str(settings.redis_url))

    async def check_redis(bus: Bus) -> None:
        await redis.ping()

    runtime.consumer(EVENT_ADAPTER, handlers.on_event)
    runtime.health_details(lambda: {"redis": str(settings.redis_url)})
    runtime.startup(check_redis)
    return runtime


def main() -> None:
    settings = CoordinatorSettings()
    configure_logging(settings.log_level, "coordinator")
    asyncio.run(build(settings).run())
