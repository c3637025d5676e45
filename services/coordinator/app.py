"""Wiring of the coordinator: Redis (records, A-Lock), the cluster observer, the engine, its watchdog."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

import redis.asyncio as aioredis

from services.coordinator.engine import Engine
from services.coordinator.handlers import EventHandler, incident_key
from stratus.alock import ALock
from stratus.bus import Bus
from stratus.contracts import EVENT_ADAPTER
from stratus.gateway import ReadGateway
from stratus.kubeapi import kube_api
from stratus.metrics import set_open_incidents
from stratus.observer import ClusterObserver
from stratus.runtime import ServiceRuntime, configure_logging
from stratus.settings import CoordinatorSettings


def build(settings: CoordinatorSettings) -> ServiceRuntime:
    runtime = ServiceRuntime("coordinator", settings)
    redis = aioredis.Redis.from_url(str(settings.redis_url))

    async def start(bus: Bus) -> None:
        await redis.ping()
        observer = ClusterObserver.from_settings(settings, ReadGateway(kube_api(settings)))
        alock = ALock(redis, prefix=settings.redis_prefix)
        engine = Engine(bus, redis, alock, observer, settings, prefix=settings.redis_prefix)
        runtime.keyed_consumer(EVENT_ADAPTER, EventHandler(engine), incident_key)

        async def watchdog() -> None:
            await engine.watchdog(runtime.stop)

        async def incident_gauge() -> None:  # stratus_incidents{state}: a full count from the durable store
            while not runtime.stop.is_set():
                with contextlib.suppress(Exception):
                    records = [await engine.store.load(i) for i in await engine.store.open_ids()]
                    set_open_incidents(Counter(r.state for r in records if r is not None))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(runtime.stop.wait(), timeout=5.0)

        runtime.task(watchdog)
        runtime.task(incident_gauge)

    runtime.startup(start)
    runtime.health_details(lambda: {"redis": str(settings.redis_url)})
    return runtime


def main() -> None:
    settings = CoordinatorSettings()
    configure_logging(settings.log_level, "coordinator")
    asyncio.run(build(settings).run())
