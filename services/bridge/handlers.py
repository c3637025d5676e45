"""HTTP handlers of the bridge: authenticate, validate, normalise, publish, and tell Alertmanager whether to retry.

Alertmanager retries a notification only when the receiver answers 5xx (or not at all), and it retries the whole
group. So the answer is 200 only when every alert of the request is in JetStream (acknowledged publish); if any publish
fails the answer is 503 and Alertmanager sends the group again. The alerts that did make it are de-duplicated by their
stable ids (see ``normalise``), so a retry loses nothing and duplicates nothing. A request that can never succeed
(bad token, not JSON, not a version-4 payload) gets a 4xx with the reason and publishes nothing, so Alertmanager does
not retry it forever.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from dataclasses import dataclass

from aiohttp import web
from pydantic import SecretStr, ValidationError

from services.bridge.normalise import WebhookPayload, normalise_payload
from stratus.bus import Bus
from stratus.metrics import ALERTS_RECEIVED, WEBHOOK_REQUESTS, WEBHOOK_SECONDS

log = logging.getLogger(__name__)


@dataclass
class BridgeState:
    """What the handlers need: the bus (None until connected) and the expected bearer token (None: no auth)."""

    bus: Bus | None
    token: SecretStr | None


STATE: web.AppKey[BridgeState] = web.AppKey("bridge_state", BridgeState)


def _error(status: int, reason: str, **extra: object) -> web.Response:
    WEBHOOK_REQUESTS.labels(str(status)).inc()
    headers = {"WWW-Authenticate": 'Bearer realm="stratus-bridge"'} if status == 401 else None
    return web.json_response({"error": reason, "published": 0, **extra}, status=status, headers=headers)


def authorised(header: str | None, token: SecretStr) -> bool:
    """Constant-time check of an ``Authorization: Bearer <token>`` header."""
    if not header:
        return False
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), token.get_secret_value().encode())


async def healthz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    connected = state.bus is not None and state.bus.nc.is_connected
    return web.json_response(
        {"ok": connected, "nats": "connected" if connected else "disconnected"}, status=200 if connected else 503
    )


async def webhook(request: web.Request) -> web.Response:
    started = time.perf_counter()
    try:
        return await _webhook(request)
    finally:
        WEBHOOK_SECONDS.observe(time.perf_counter() - started)


async def _webhook(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state.token is not None and not authorised(request.headers.get("Authorization"), state.token):
        log.warning("webhook: refused a request from %s: missing or wrong bearer token", request.remote)
        return _error(401, "missing or wrong bearer token: send 'Authorization: Bearer <STRATUS_WEBHOOK_TOKEN>'")

    try:
        body = json.loads(await request.read())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return _error(400, f"the body is not JSON: {exc}")
    try:
        payload = WebhookPayload.model_validate(body)
        items = normalise_payload(payload)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in exc.errors()[:10]]
        return _error(422, "not an Alertmanager webhook payload (version 4)", details=problems)
    except ValueError as exc:
        return _error(422, str(exc))

    if payload.truncatedAlerts:
        log.warning(
            "webhook: Alertmanager left out %d alert(s) of %s (max_alerts); set max_alerts: 0 on the receiver",
            payload.truncatedAlerts,
            payload.groupKey,
        )
    bus = state.bus
    if bus is None or not bus.nc.is_connected:
        return _error(503, "not connected to NATS; Alertmanager will retry")

    results = await asyncio.gather(
        *(bus.publish(subject, alert, dedup_id=alert.id) for subject, alert in items), return_exceptions=True
    )
    published: list[str] = []
    failed: list[dict[str, str]] = []
    for (_, alert), result in zip(items, results, strict=True):
        if isinstance(result, BaseException):
            failed.append({"fingerprint": alert.fingerprint, "id": alert.id, "error": repr(result)})
        else:
            published.append(alert.id)
            if not result.duplicate:
                ALERTS_RECEIVED.labels(alert.status).inc()
    if failed:
        log.error(
            "webhook: %d of %d alerts not published; answering 503 so Alertmanager retries", len(failed), len(items)
        )
        return _error(
            503,
            "some alerts were not published; retry (the published ones are de-duplicated)",
            published=len(published),
            failed=failed,
        )
    WEBHOOK_REQUESTS.labels("200").inc()
    log.info("webhook: %s, %d alert(s) published", payload.groupKey, len(published))
    return web.json_response({"published": len(published), "ids": published})
