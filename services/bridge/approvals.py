"""The approvals HTTP API of the bridge: list pending plans, approve or deny one.

    GET  /approvals                       the pending plans (JSON list of ApprovalRequested)
    GET  /approvals/{incident_id}         one pending plan
    POST /approvals/{incident_id}/approve {"by": ..., "reason": ..., "tx_id": ...} (all optional)
    POST /approvals/{incident_id}/deny

Off (404) unless ``STRATUS_APPROVAL_TOKEN`` is set; every call then needs ``Authorization: Bearer <token>``. Behind
an OIDC proxy the decider's name comes from ``X-Auth-Request-User`` / ``X-Forwarded-User`` unless the body names one.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from services.bridge.handlers import STATE, authorised
from stratus import approvals
from stratus.errors import PermanentError

log = logging.getLogger(__name__)
USER_HEADERS = ("X-Auth-Request-User", "X-Forwarded-User", "X-Remote-User")


def _refused(request: web.Request) -> web.Response | None:
    state = request.app[STATE]
    if state.approval_token is None:
        return web.json_response({"error": "the approvals API is off: set STRATUS_APPROVAL_TOKEN"}, status=404)
    if not authorised(request.headers.get("Authorization"), state.approval_token):
        return web.json_response(
            {"error": "missing or wrong bearer token: send 'Authorization: Bearer <STRATUS_APPROVAL_TOKEN>'"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="stratus-approvals"'},
        )
    if state.bus is None or not state.bus.connected:
        return web.json_response({"error": "not connected to NATS; retry"}, status=503)
    return None


async def list_pending(request: web.Request) -> web.Response:
    if (refused := _refused(request)) is not None:
        return refused
    bus = request.app[STATE].bus
    assert bus is not None
    waiting = await approvals.pending(bus)
    return web.json_response([r.model_dump(mode="json") for r in waiting])


async def show(request: web.Request) -> web.Response:
    if (refused := _refused(request)) is not None:
        return refused
    bus = request.app[STATE].bus
    assert bus is not None
    incident = request.match_info["incident_id"]
    found = [r for r in await approvals.pending(bus) if r.incident_id == incident]
    if not found:
        return web.json_response({"error": f"no plan of incident {incident!r} waits for approval"}, status=404)
    return web.json_response(found[0].model_dump(mode="json"))


async def approve(request: web.Request) -> web.Response:
    return await _decide(request, approved=True)


async def deny(request: web.Request) -> web.Response:
    return await _decide(request, approved=False)


async def _decide(request: web.Request, *, approved: bool) -> web.Response:
    if (refused := _refused(request)) is not None:
        return refused
    bus = request.app[STATE].bus
    assert bus is not None
    body: dict[str, object] = {}
    raw = await request.read()
    if raw.strip():
        try:
            parsed = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return web.json_response({"error": f"the body is not JSON: {exc}"}, status=400)
        if not isinstance(parsed, dict):
            return web.json_response({"error": "the body must be a JSON object"}, status=400)
        body = parsed
    by = str(body.get("by") or next((request.headers[h] for h in USER_HEADERS if request.headers.get(h)), ""))
    incident = request.match_info["incident_id"]
    tx_id = body.get("tx_id")
    try:
        decided = await approvals.decide(
            bus,
            incident,
            approved=approved,
            by=by or "http",
            reason=str(body.get("reason") or ""),
            tx_id=str(tx_id) if tx_id else None,
        )
    except PermanentError as exc:
        return web.json_response({"error": str(exc)}, status=409)
    log.info("approvals: %s %s by %s", "approved" if approved else "denied", decided.tx_id, decided.by)
    return web.json_response(decided.model_dump(mode="json"))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/approvals", list_pending)
    app.router.add_get("/approvals/{incident_id}", show)
    app.router.add_post("/approvals/{incident_id}/approve", approve)
    app.router.add_post("/approvals/{incident_id}/deny", deny)
