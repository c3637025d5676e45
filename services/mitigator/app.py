"""Wiring of the mitigator: settings, runtime, consumer."""

from __future__ import annotations

import asyncio

from services.mitigator import handlers
from stratus.contracts import WORK_ADAPTER
from stratus.runtime import ServiceRuntime, configure_logging, report_rejected_work
from stratus.settings import MitigatorSettings


def build(settings: MitigatorSettings) -> ServiceRuntime:
    runtime = ServiceRuntime("mitigator", settings)
    runtime.consumer(WORK_ADAPTER, handlers.on_work, on_rejected=report_rejected_work(runtime))
    return runtime


def main() -> None:
    settings = MitigatorSettings()
    configure_logging(settings.log_level, "mitigator")
    asyncio.run(build(settings).run())
