"""Wiring of the undoer: settings, runtime, consumer."""

from __future__ import annotations

import asyncio

from services.undoer import handlers
from stratus.contracts import WORK_ADAPTER
from stratus.runtime import ServiceRuntime, configure_logging, report_rejected_work
from stratus.settings import UndoerSettings


def build(settings: UndoerSettings) -> ServiceRuntime:
    runtime = ServiceRuntime("undoer", settings)
    runtime.consumer(WORK_ADAPTER, handlers.on_work, on_rejected=report_rejected_work(runtime))
    return runtime


def main() -> None:
    settings = UndoerSettings()
    configure_logging(settings.log_level, "undoer")
    asyncio.run(build(settings).run())
