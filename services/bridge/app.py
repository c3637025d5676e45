"""Wiring of the bridge: an aiohttp server for the webhook, run as a task of the service runtime."""

from __future__ import annotations

import asyncio

from aiohttp import web

from services.bridge import handlers
from stratus.runtime import ServiceRuntime, configure_logging
from stratus.settings import BridgeSettings


def make_web_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_post("/webhook", handlers.webhook)
    return app


def build(settings: BridgeSettings) -> ServiceRuntime:
    runtime = ServiceRuntime("bridge", settings)

    async def serve() -> None:
        runner = web.AppRunner(make_web_app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        try:
            await runtime.stop.wait()
        finally:
            await runner.cleanup()

    runtime.task(serve)
    runtime.health_details(lambda: {"webhook": f"http://{settings.host}:{settings.port}/webhook"})
    return runtime


def main() -> None:
    settings = BridgeSettings()
    configure_logging(settings.log_level, "bridge")
    asyncio.run(build(settings).run())
