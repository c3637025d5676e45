"""HTTP handlers of the console: the page, the incident list, pending approvals, and a live timeline as
server-sent events.

Read-only unless approvals are enabled (``STRATUS_CONSOLE_APPROVALS``): then, and only then, two routes publish a
human's decision on a pending plan (``stratus.approvals``). Every ``/api`` call needs
``Authorization: Bearer <STRATUS_CONSOLE_TOKEN>``; an OIDC proxy in front (oauth2-proxy and the like) can inject that
header after it authenticated the user. The page itself carries no data, so it is served without the token and asks
for it. The timeline stream replays the incident's events from the start of the event stream and then follows new
ones, one SSE ``data:`` line per event (``fetch`` reads it, since ``EventSource`` cannot send an Authorization
header).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from nats.js import api as js_api
from pydantic import SecretStr

from services.console.page import PAGE
from stratus import approvals
from stratus.audit import incidents
from stratus.bus import Bus
from stratus.errors import PermanentError

log = logging.getLogger(__name__)
KEEPALIVE_S = 15.0


@dataclass
class ConsoleState:
    bus: Bus | None
    token: SecretStr
    approvals: bool = False
    """Serve the approve and deny routes."""


STATE: web.AppKey[ConsoleState] = web.AppKey("console_state", ConsoleState)


def _authorised(request: web.Request) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    expected = request.app[STATE].token.get_secret_value().encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), expected)


@web.middleware
async def auth(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.path.startswith("/api/"):
        if not _authorised(request):
            return web.json_response(
                {"error": "missing or wrong bearer token: send 'Authorization: Bearer <STRATUS_CONSOLE_TOKEN>'"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="stratus-console"'},
            )
        bus = request.app[STATE].bus
        if bus is None or not bus.connected:
            return web.json_response({"error": "not connected to NATS; retry"}, status=503)
    response: web.StreamResponse = await handler(request)
    return response


def _bus(request: web.Request) -> Bus:
    bus = request.app[STATE].bus
    assert bus is not None  # the middleware answered 503 otherwise
    return bus


async def page(_request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html", headers={"Cache-Control": "no-store"})


async def list_incidents(request: web.Request) -> web.Response:
    summaries = await incidents(_bus(request))
    return web.json_response([dataclasses.asdict(s) for s in summaries], dumps=lambda o: json.dumps(o, default=str))


async def list_approvals(request: web.Request) -> web.Response:
    return web.json_response([r.model_dump(mode="json") for r in await approvals.pending(_bus(request))])


async def timeline(request: web.Request) -> web.StreamResponse:
    bus = _bus(request)
    incident = request.match_info["incident_id"]
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=1000)

    async def on_msg(msg: Any) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(msg.data)

    sub = await bus.js.subscribe(
        bus.topology.incident_events(incident),
        stream=bus.topology.events_stream,
        cb=on_msg,
        ordered_consumer=True,
        deliver_policy=js_api.DeliverPolicy.ALL,
    )
    try:
        while True:
            try:
                data = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            await response.write(b"data: " + data.replace(b"\n", b" ") + b"\n\n")
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return response


USER_HEADERS = ("X-Auth-Request-User", "X-Forwarded-User", "X-Remote-User")


async def decide(request: web.Request) -> web.Response:
    """Approve or deny a pending plan; the decider is the OIDC proxy's user header, else the body's ``by``."""
    try:
        body = await request.json() if request.can_read_body else {}
    except json.JSONDecodeError:
        return web.json_response({"error": "the body is not JSON"}, status=400)
    if not isinstance(body, dict):
        return web.json_response({"error": "the body must be a JSON object"}, status=400)
    user = next((request.headers[h] for h in USER_HEADERS if request.headers.get(h)), "") or str(body.get("by") or "")
    try:
        decided = await approvals.decide(
            _bus(request),
            request.match_info["incident_id"],
            approved=request.match_info["verdict"] == "approve",
            by=user or "console",
            reason=str(body.get("reason") or ""),
            tx_id=str(body["tx_id"]) if body.get("tx_id") else None,
        )
    except PermanentError as exc:
        return web.json_response({"error": str(exc)}, status=409)
    return web.json_response(decided.model_dump(mode="json"))


async def config(request: web.Request) -> web.Response:
    return web.json_response({"approvals": request.app[STATE].approvals})


def make_web_app(state: ConsoleState) -> web.Application:
    app = web.Application(middlewares=[auth])
    app[STATE] = state
    app.router.add_get("/", page)
    app.router.add_get("/api/incidents", list_incidents)
    app.router.add_get("/api/approvals", list_approvals)
    app.router.add_get("/api/incidents/{incident_id}/events", timeline)
    app.router.add_get("/api/config", config)
    if state.approvals:
        app.router.add_post("/api/approvals/{incident_id}/{verdict:approve|deny}", decide)
    return app
