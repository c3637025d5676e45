"""Wiring of the undoer: settings, Redis (A-Lock), Kubernetes API, the work consumer."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from services.undoer.handlers import UndoerDeps, UndoHandler
from stratus.alock import ALock
from stratus.bus import Bus
from stratus.contracts import WORK_ADAPTER
from stratus.kubeapi import kube_api
from stratus.registry import Registry
from stratus.runtime import ServiceRuntime, configure_logging, report_rejected_work
from stratus.settings import UndoerSettings


def build(settings: UndoerSettings) -> ServiceRuntime:
    runtime = ServiceRuntime("undoer", settings)
    redis = aioredis.Redis.from_url(str(settings.redis_url))
    alock = ALock(redis, prefix=settings.redis_prefix)

    async def start(bus: Bus) -> None:
        await redis.ping()
        deps = UndoerDeps(bus, alock, Registry(redis, prefix=settings.redis_prefix), kube_api(settings))
        runtime.consumer(WORK_ADAPTER, UndoHandler(deps), on_rejected=report_rejected_work(runtime))

    runtime.startup(start)
    return runtime


def main() -> None:
    settings = UndoerSettings()
    configure_logging(settings.log_level, "undoer")
    asyncio.run(build(settings).run())
