"""Wiring of the bridge: an aiohttp server for the webhook, run as a task of the service runtime."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from services.bridge import handlers
from services.bridge.handlers import STATE, BridgeState
from stratus.runtime import ServiceRuntime, configure_logging
from stratus.settings import BridgeSettings

log = logging.getLogger(__name__)

MAX_BODY = 8 * 1024 * 1024
"""Largest webhook body accepted (Alertmanager groups can be large; beyond this the answer is 413)."""


def make_web_app(state: BridgeState) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    app[STATE] = state
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_post("/webhook", handlers.webhook)
    return app


def build(settings: BridgeSettings) -> ServiceRuntime:
    runtime = ServiceRuntime("bridge", settings)
    state = BridgeState(bus=None, token=settings.webhook_token)
    if settings.webhook_token is None:
        log.warning("bridge: STRATUS_WEBHOOK_TOKEN is unset: the webhook accepts unauthenticated requests (dev only)")

    async def serve() -> None:
        # Tasks start once the runtime is connected, so the webhook never answers before it can publish.
        state.bus = runtime.bus
        runner = web.AppRunner(make_web_app(state), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        log.info("bridge: webhook on http://%s:%d/webhook", settings.host, settings.port)
        try:
            await runtime.stop.wait()
        finally:
            await runner.cleanup()

    runtime.task(serve)
    runtime.health_details(
        lambda: {
            "webhook": f"http://{settings.host}:{settings.port}/webhook",
            "auth": "bearer" if settings.webhook_token is not None else "none",
        }
    )
    return runtime


def main() -> None:
    settings = BridgeSettings()
    configure_logging(settings.log_level, "bridge")
    asyncio.run(build(settings).run())
