"""Wiring of the diagnoser: the read-only gateway, the reasoner, the work consumer."""

from __future__ import annotations

import asyncio

from services.diagnoser.handlers import DiagnoseHandler, DiagnoserDeps
from services.diagnoser.policies import make_reasoner
from stratus.bus import Bus
from stratus.contracts import WORK_ADAPTER
from stratus.gateway import ReadGateway
from stratus.kubeapi import kube_api
from stratus.runtime import ServiceRuntime, configure_logging, report_rejected_work
from stratus.settings import DiagnoserSettings


def build(settings: DiagnoserSettings) -> ServiceRuntime:
    runtime = ServiceRuntime("diagnoser", settings)
    reasoner = make_reasoner(settings)

    async def start(bus: Bus) -> None:
        deps = DiagnoserDeps(
            bus=bus,
            gateway=ReadGateway(kube_api(settings)),
            reasoner=reasoner,
            jaeger_url=str(settings.jaeger_url) if settings.jaeger_url else None,
        )
        runtime.consumer(WORK_ADAPTER, DiagnoseHandler(deps), on_rejected=report_rejected_work(runtime))

    runtime.startup(start)
    runtime.health_details(lambda: {"policy": settings.diagnosis_policy})
    return runtime


def main() -> None:
    settings = DiagnoserSettings()
    configure_logging(settings.log_level, "diagnoser")
    asyncio.run(build(settings).run())
