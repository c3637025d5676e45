"""The web console on a real NATS server: bearer authentication, the incident list, pending approvals, and the live
timeline (server-sent events: the incident's past events, then new ones as they are published)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from aiohttp import web
from pydantic import SecretStr

from services.console.web import ConsoleState, make_web_app
from stratus import contracts as c
from stratus.actions import Scale
from stratus.bus import Bus
from stratus.contracts import Topology
from stratus.localinfra import LocalServer, free_port

pytestmark = pytest.mark.integration
TOKEN = "console-token"


async def test_the_console_lists_incidents_and_streams_a_live_timeline(nats_server: LocalServer, uid: str) -> None:
    topology = Topology(prefix=f"c{uid}", stream_prefix=f"C{uid}")
    bus = await Bus.connect(nats_server.url, topology=topology)
    await bus.ensure_streams()
    incident = f"inc-{uid}"

    async def publish(event: c.IncidentEvent) -> None:
        await bus.publish(topology.events(incident, str(event.kind)), event)

    await publish(c.IncidentOpened(incident_id=incident, scope="shop", s0=c.Severity(mu=2), baseline=2))
    await publish(c.StateChanged(incident_id=incident, state="diagnosing", previous="opened"))
    plan = [c.PlannedAction(action=Scale(kind="Deployment", namespace="shop", name="web", replicas=1))]
    await publish(
        c.ApprovalRequested(
            incident_id=incident, scope="shop", tx_id="tx1", attempt=1, actions=plan, mu=2, deadline=c.utcnow()
        )
    )

    runner = web.AppRunner(make_web_app(ConsoleState(bus=bus, token=SecretStr(TOKEN), approvals=True)), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as http:
            assert "Stratus console" in (await http.get("/")).text  # the page carries no data
            assert (await http.get("/api/incidents")).status_code == 401
            assert (await http.get("/api/incidents", headers={"Authorization": "Bearer nope"})).status_code == 401
            listed = (await http.get("/api/incidents", headers=auth)).json()
            assert [(i["incident_id"], i["scope"], i["state"]) for i in listed] == [(incident, "shop", "diagnosing")]
            pending = (await http.get("/api/approvals", headers=auth)).json()
            assert [(p["incident_id"], p["tx_id"]) for p in pending] == [(incident, "tx1")]

            user = {**auth, "X-Auth-Request-User": "carol"}
            wrong = await http.post(f"/api/approvals/{incident}/approve", headers=user, json={"tx_id": "tx9"})
            assert wrong.status_code == 409 and "tx1" in wrong.text
            denied = await http.post(f"/api/approvals/{incident}/deny", headers=user, json={"tx_id": "tx1"})
            assert denied.status_code == 200 and denied.json()["by"] == "carol" and not denied.json()["approved"]

            seen: list[dict[str, Any]] = []
            async with http.stream("GET", f"/api/incidents/{incident}/events", headers=auth) as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                lines = stream.aiter_lines()

                async def next_event() -> dict[str, Any]:
                    async for line in lines:
                        if line.startswith("data: "):
                            return dict(json.loads(line[6:]))
                    raise AssertionError("the stream ended")

                for _ in range(4):
                    seen.append(await asyncio.wait_for(next_event(), 10))
                await publish(c.IncidentClosed(incident_id=incident, outcome="escalated", visible_mu=[2.0]))
                seen.append(await asyncio.wait_for(next_event(), 10))
            assert [e["kind"] for e in seen] == [
                "incident_opened",
                "state_changed",
                "approval_requested",
                "approval_decided",
                "incident_closed",
            ]
    finally:
        await runner.cleanup()
        await bus.close()
