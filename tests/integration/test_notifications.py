"""The bridge's notifier on a real NATS server: incident events published on the bus reach a local JSON webhook
receiver through the bridge's own durable consumer, which starts at the newest event (no replay of history)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import httpx
import pytest
from aiohttp import web

from services.bridge.app import build
from stratus import contracts as c
from stratus.bus import Bus
from stratus.localinfra import LocalServer, free_port
from stratus.settings import BridgeSettings

pytestmark = pytest.mark.integration


async def test_the_bridge_notifies_a_webhook_of_new_incident_events(nats_server: LocalServer, uid: str) -> None:
    received: list[dict[str, Any]] = []
    arrived = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        received.append(json.loads(await request.read()))
        arrived.set()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    hook_port, metrics_port = free_port(), free_port()
    await web.TCPSite(runner, "127.0.0.1", hook_port).start()

    prefix = f"n{uid}"
    settings = BridgeSettings(
        nats_url=nats_server.url,  # type: ignore[arg-type]
        subject_prefix=prefix,
        durable_prefix=prefix,
        port=free_port(),
        metrics_port=metrics_port,
        notify_webhook_url=f"http://127.0.0.1:{hook_port}/hook",  # type: ignore[arg-type]
        notify_events=["opened", "resolved"],
    )
    bus = await Bus.connect(nats_server.url, topology=settings.topology)
    await bus.ensure_streams()
    old = c.IncidentOpened(incident_id=f"old-{uid}", scope="ns", s0=c.Severity(mu=1), baseline=1)
    await bus.publish(settings.topology.events(old.incident_id, old.kind), old)  # before the bridge: never notified

    runtime = build(settings)
    task = asyncio.create_task(runtime.run())
    try:
        async with httpx.AsyncClient() as http:
            deadline = time.monotonic() + 15
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"http://127.0.0.1:{metrics_port}/readyz")).status_code == 200:
                        break
                assert time.monotonic() < deadline and not task.done(), "the bridge never became ready"
                await asyncio.sleep(0.05)
        incident = f"inc-{uid}"
        for event in (
            c.IncidentOpened(incident_id=incident, scope="shop", s0=c.Severity(mu=2), baseline=2),
            c.StateChanged(incident_id=incident, state="diagnosing"),
            c.DiagnosisReady(incident_id=incident, summary="not chosen: not sent"),
            c.IncidentClosed(incident_id=incident, outcome="resolved", visible_mu=[2, 0]),
        ):
            await bus.publish(settings.topology.events(incident, event.kind), event)
        async with asyncio.timeout(15):
            while len(received) < 2:
                arrived.clear()
                await arrived.wait()
        await asyncio.sleep(0.5)  # anything else would have arrived by now
        assert [(r["event"], r["incident_id"], r["scope"]) for r in received] == [
            ("opened", incident, "shop"),
            ("resolved", incident, "shop"),
        ]
    finally:
        runtime.request_stop()
        await asyncio.wait_for(task, 30)
        await bus.close()
        await runner.cleanup()
