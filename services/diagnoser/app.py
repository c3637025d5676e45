"""Wiring of the diagnoser: settings, runtime, consumer."""

from __future__ import annotations

import asyncio

from services.diagnoser import handlers
from stratus.contracts import WORK_ADAPTER
from stratus.runtime import ServiceRuntime, configure_logging, report_rejected_work
from stratus.settings import DiagnoserSettings


def build(settings: DiagnoserSettings) -> ServiceRuntime:
    runtime = ServiceRuntime("diagnoser", settings)
    runtime.consumer(WORK_ADAPTER, handlers.on_work, on_rejected=report_rejected_work(runtime))
    return runtime


def main() -> None:
    settings = DiagnoserSettings()
    configure_logging(settings.log_level, "diagnoser")
    asyncio.run(build(settings).run())
