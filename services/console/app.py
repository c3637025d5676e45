"""Wiring of the console: an aiohttp server for the page and the read-only API, run as a task of the runtime."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from services.console.web import ConsoleState, make_web_app
from stratus.runtime import ServiceRuntime, configure_logging
from stratus.settings import ConsoleSettings

log = logging.getLogger(__name__)


def build(settings: ConsoleSettings) -> ServiceRuntime:
    runtime = ServiceRuntime("console", settings)
    state = ConsoleState(bus=None, token=settings.console_token, approvals=settings.console_approvals)

    async def serve() -> None:
        state.bus = runtime.bus
        runner = web.AppRunner(make_web_app(state), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, settings.host, settings.port).start()
        log.info("console: http://%s:%d/", settings.host, settings.port)
        try:
            await runtime.stop.wait()
        finally:
            await runner.cleanup()

    runtime.task(serve)
    runtime.health_details(lambda: {"console": f"http://{settings.host}:{settings.port}/"})
    return runtime


def main() -> None:
    settings = ConsoleSettings()  # the token comes from STRATUS_CONSOLE_TOKEN (required)
    configure_logging(settings.log_level, "console", settings.log_format, settings.instance or "")
    asyncio.run(build(settings).run())
