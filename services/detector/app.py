"""Wiring of the detector: Redis (scope claims), the cluster observer, the alert consumer and the probe loop."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from services.detector.handlers import Detector
from stratus.bus import Bus
from stratus.contracts import Alert, AlertAttached, IncidentOpened
from stratus.dependencies import kube_probe, redis_probe
from stratus.embedding.hooks import from_settings as embedding_from_settings
from stratus.gateway import ReadGateway
from stratus.kubeapi import kube_api
from stratus.lastgood import HealthyClock, LastGoodRecorder, store_from_settings
from stratus.latency import from_settings as latency_from_settings
from stratus.observer import ClusterObserver
from stratus.registry import Registry
from stratus.runtime import Deferred, ServiceRuntime, configure_logging
from stratus.settings import DetectorSettings


def build(settings: DetectorSettings) -> ServiceRuntime:
    runtime = ServiceRuntime("detector", settings)
    runtime.publishes_event(IncidentOpened, "A scope's severity stayed at or over the threshold: a new incident.")
    runtime.publishes_event(AlertAttached, "An alert on a scope that already has an open incident.")
    redis = aioredis.Redis.from_url(str(settings.redis_url))
    runtime.depends_on("redis", redis_probe(redis))

    on_alert: Deferred[Alert] = Deferred()
    runtime.consumer(
        Alert,
        on_alert,
        description="A normalised alert from the bridge: attached to its scope's open incident, or it opens one "
        "when the scope's severity is at or over the threshold.",
    )

    async def start(bus: Bus) -> None:
        await redis.ping()
        api = kube_api(settings)
        runtime.depends_on("kubernetes", kube_probe(api))
        observer = ClusterObserver.from_settings(settings, ReadGateway(api), latency_from_settings(settings, bus.js))
        embedding = embedding_from_settings(settings, api) if settings.embedding_enabled else None
        lastgood = None
        if settings.lastgood_enabled:
            clock = HealthyClock(settings.lastgood_settle_s, settings.lastgood_refresh_s)
            lastgood = LastGoodRecorder(store_from_settings(bus.js, settings), observer.gateway, clock)
        registry = Registry(redis, prefix=settings.redis_prefix, bus=bus)
        detector = Detector(bus, registry, observer, settings, embedding, lastgood)
        on_alert.bind(detector.on_alert)

        async def probes() -> None:
            await detector.run_probes(runtime.stop)

        runtime.task(probes)

    runtime.startup(start)
    runtime.health_details(
        lambda: {"scopes": ",".join(settings.scopes) or "all", "embedding": str(settings.embedding_enabled).lower()}
    )
    return runtime


def main() -> None:
    settings = DetectorSettings()
    configure_logging(settings.log_level, "detector", settings.log_format, settings.instance or "")
    asyncio.run(build(settings).run())
