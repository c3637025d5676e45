"""Wiring of the detector: Redis (scope claims), the cluster observer, the alert consumer and the probe loop."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from pydantic import TypeAdapter

from services.detector.handlers import Detector
from stratus.bus import Bus
from stratus.contracts import Alert
from stratus.gateway import ReadGateway
from stratus.kubeapi import kube_api
from stratus.observer import ClusterObserver
from stratus.registry import Registry
from stratus.runtime import ServiceRuntime, configure_logging
from stratus.settings import DetectorSettings

ALERT_ADAPTER: TypeAdapter[Alert] = TypeAdapter(Alert)


def build(settings: DetectorSettings) -> ServiceRuntime:
    runtime = ServiceRuntime("detector", settings)
    redis = aioredis.Redis.from_url(str(settings.redis_url))

    async def start(bus: Bus) -> None:
        await redis.ping()
        observer = ClusterObserver.from_settings(settings, ReadGateway(kube_api(settings)))
        detector = Detector(bus, Registry(redis, prefix=settings.redis_prefix), observer, settings)
        runtime.consumer(ALERT_ADAPTER, detector.on_alert)

        async def probes() -> None:
            await detector.run_probes(runtime.stop)

        runtime.task(probes)

    runtime.startup(start)
    runtime.health_details(lambda: {"scopes": ",".join(settings.scopes) or "all"})
    return runtime


def main() -> None:
    settings = DetectorSettings()
    configure_logging(settings.log_level, "detector")
    asyncio.run(build(settings).run())
