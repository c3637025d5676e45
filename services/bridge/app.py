"""Wiring of the bridge: an aiohttp server for the webhook, run as a task of the service runtime."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from services.bridge import approvals, handlers
from services.bridge.handlers import STATE, BridgeState
from services.bridge.notifications import wire_notifier
from stratus.contracts import Alert, ApprovalDecided
from stratus.runtime import ServiceRuntime, configure_logging
from stratus.settings import BridgeSettings

log = logging.getLogger(__name__)

MAX_BODY = 8 * 1024 * 1024
"""Largest webhook body accepted (Alertmanager groups can be large; beyond this the answer is 413)."""


def make_web_app(state: BridgeState, *, max_body: int = MAX_BODY) -> web.Application:
    app = web.Application(client_max_size=max_body)
    app[STATE] = state
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/livez", handlers.livez)
    app.router.add_post("/webhook", handlers.webhook)
    approvals.add_routes(app)
    return app


def build(settings: BridgeSettings) -> ServiceRuntime:
    runtime = ServiceRuntime("bridge", settings)
    runtime.publishes(
        Alert,
        "{prefix}.alerts.{scope}",
        "A normalised Alertmanager alert, one per alert of a webhook notification (de-duplicated by its id).",
    )
    runtime.publishes_event(ApprovalDecided, "A human approved or denied a pending plan through /approvals.")
    state = BridgeState(
        bus=None,
        token=settings.webhook_token,
        scopes=frozenset(settings.scopes),
        approval_token=settings.approval_token,
    )
    if settings.webhook_token is None:
        log.warning("bridge: STRATUS_WEBHOOK_TOKEN is unset: the webhook accepts unauthenticated requests (dev only)")

    notifier = wire_notifier(runtime, settings)

    async def serve() -> None:
        # Tasks start once the runtime is connected, so the webhook never answers before it can publish.
        state.bus = runtime.bus
        runner = web.AppRunner(make_web_app(state, max_body=settings.max_body_bytes), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        log.info("bridge: webhook on http://%s:%d/webhook", settings.host, settings.port)
        try:
            await runtime.stop.wait()
        finally:
            await runner.cleanup()
            if notifier is not None:
                await notifier.aclose()

    runtime.task(serve)
    runtime.health_details(
        lambda: {
            "webhook": f"http://{settings.host}:{settings.port}/webhook",
            "auth": "bearer" if settings.webhook_token is not None else "none",
            "notify": ",".join(s.name for s in notifier.sinks) if notifier else "off",
            "approvals": "on" if settings.approval_token is not None else "off",
        }
    )
    return runtime


def main() -> None:
    settings = BridgeSettings()
    configure_logging(settings.log_level, "bridge", settings.log_format, settings.instance or "")
    asyncio.run(build(settings).run())
