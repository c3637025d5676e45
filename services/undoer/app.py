"""Wiring of the undoer: settings, Redis (A-Lock), Kubernetes API, the work consumer."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from services.undoer.handlers import UndoerDeps, UndoHandler
from stratus.alock import ALock
from stratus.bus import Bus
from stratus.contracts import UndoCompleted, UndoRequest, WorkFailed
from stratus.dependencies import kube_probe, redis_probe
from stratus.kubeapi import kube_api
from stratus.runtime import Deferred, ServiceRuntime, configure_logging, report_dropped_work
from stratus.settings import UndoerSettings


def build(settings: UndoerSettings) -> ServiceRuntime:
    runtime = ServiceRuntime("undoer", settings)
    runtime.publishes_event(UndoCompleted, "A transaction was rolled back: the restored digest and any divergence.")
    runtime.publishes_event(WorkFailed, "An undo request was dropped, with the reason.")
    redis = aioredis.Redis.from_url(str(settings.redis_url))
    alock = ALock(redis, prefix=settings.redis_prefix)
    runtime.depends_on("redis", redis_probe(redis))

    handler: Deferred[UndoRequest] = Deferred()
    runtime.consumer(
        UndoRequest,
        handler,
        description="Roll a transaction back from its write-ahead journal under the lease it carries and verify "
        "the state digest; answers with UndoCompleted, or WorkFailed.",
        on_dropped=report_dropped_work(runtime.bus),
    )

    async def start(bus: Bus) -> None:
        await redis.ping()
        api = kube_api(settings)
        runtime.depends_on("kubernetes", kube_probe(api))
        deps = UndoerDeps(bus, alock, api)
        handler.bind(UndoHandler(deps))

    runtime.startup(start)
    return runtime


def main() -> None:
    settings = UndoerSettings()
    configure_logging(settings.log_level, "undoer", settings.log_format, settings.instance or "")
    asyncio.run(build(settings).run())
