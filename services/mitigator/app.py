"""Wiring of the mitigator: settings, Redis (A-Lock), Kubernetes API, the reasoner, the work consumer."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from services.mitigator.handlers import MitigateHandler, MitigatorDeps
from services.mitigator.policies import make_reasoner
from stratus.alock import ALock
from stratus.bus import Bus
from stratus.contracts import WORK_ADAPTER
from stratus.gateway import ReadGateway
from stratus.kubeapi import kube_api
from stratus.runtime import ServiceRuntime, configure_logging, report_rejected_work
from stratus.settings import MitigatorSettings
from stratus.severity import SeverityMeter


def build(settings: MitigatorSettings) -> ServiceRuntime:
    runtime = ServiceRuntime("mitigator", settings)
    redis = aioredis.Redis.from_url(str(settings.redis_url))
    reasoner = make_reasoner(settings)

    async def start(bus: Bus) -> None:
        await redis.ping()
        api = kube_api(settings)
        deps = MitigatorDeps(
            bus=bus,
            alock=ALock(redis, prefix=settings.redis_prefix),
            api=api,
            meter=SeverityMeter.from_settings(settings, ReadGateway(api)),
            reasoner=reasoner,
            lease_ttl_s=settings.lease_ttl_s,
            jaeger_url=str(settings.jaeger_url) if settings.jaeger_url else None,
            instance=runtime.instance,
        )
        runtime.consumer(WORK_ADAPTER, MitigateHandler(deps), on_rejected=report_rejected_work(runtime))

    runtime.startup(start)
    runtime.health_details(lambda: {"policy": settings.policy})
    return runtime


def main() -> None:
    settings = MitigatorSettings()
    configure_logging(settings.log_level, "mitigator")
    asyncio.run(build(settings).run())
