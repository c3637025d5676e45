"""Wiring of the detector: settings, runtime, the alert consumer."""

from __future__ import annotations

import asyncio

from pydantic import TypeAdapter

from services.detector import handlers
from stratus.contracts import Alert
from stratus.runtime import ServiceRuntime, configure_logging
from stratus.settings import DetectorSettings

ALERT_ADAPTER: TypeAdapter[Alert] = TypeAdapter(Alert)


def build(settings: DetectorSettings) -> ServiceRuntime:
    runtime = ServiceRuntime("detector", settings)
    runtime.consumer(ALERT_ADAPTER, handlers.on_alert)
    return runtime


def main() -> None:
    settings = DetectorSettings()
    configure_logging(settings.log_level, "detector")
    asyncio.run(build(settings).run())
