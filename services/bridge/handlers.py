"""HTTP handlers of the bridge: authenticate, validate, normalise, publish, and tell Alertmanager whether to retry.

Alertmanager retries a notification only when the receiver answers 5xx (or not at all), and it retries the whole
group. So the answer is 200 only when every alert of the request is in JetStream (acknowledged publish); if any publish
fails the answer is 503 and Alertmanager sends the group again. The alerts that did make it are de-duplicated by their
stable ids (see ``normalise``), so a retry loses nothing and duplicates nothing. A request that can never succeed
(bad token, not JSON, not a version-4 payload) gets a 4xx with the reason and publishes nothing, so Alertmanager does
not retry it forever.

Nothing a client sends can make the answer a 5xx while NATS is up: the body is size-capped (413), must be JSON
of bounded nesting (400/422), and every field is validated, times included (422). Alerts whose namespace label names
no scope Stratus watches are dropped and counted (``stratus_alerts_dropped``), never published; the label becomes a
subject token only through ``contracts.token`` (escaped, bounded). A 5xx means only "NATS did not take it: retry".
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import SecretStr, ValidationError

from services.bridge.normalise import WebhookPayload, normalise_payload, refusal
from stratus.bus import Bus
from stratus.contracts import Alert
from stratus.metrics import ALERTS_DROPPED, ALERTS_RECEIVED, WEBHOOK_REQUESTS, WEBHOOK_SECONDS

log = logging.getLogger(__name__)


MAX_DEPTH = 16
"""Deepest JSON nesting accepted; an Alertmanager payload nests 4 levels."""

MAX_ANNOTATION = 4096
"""Annotation values longer than this are cut when an alert would not fit in one NATS message."""


@dataclass
class BridgeState:
    """What the handlers need: the bus (None until connected), the expected bearer token (None: no auth) and the
    scopes Stratus watches (``STRATUS_SCOPES``; empty: every namespace but the system ones)."""

    bus: Bus | None
    token: SecretStr | None
    scopes: frozenset[str] = field(default_factory=frozenset)
    approval_token: SecretStr | None = None
    """Bearer token of the approvals API; None: the API is off."""


def depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (iterative: no recursion on hostile input)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:
                stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def fit(alert: Alert, limit: int) -> Alert | None:
    """``alert`` made to fit in ``limit`` bytes of JSON by cutting long annotations (descriptive text), or ``None``
    when its identifying labels alone are too large."""
    if len(alert.model_dump_json()) <= limit:
        return alert
    cut = {
        k: v if len(v) <= MAX_ANNOTATION else f"{v[:MAX_ANNOTATION]} [cut by stratus]"
        for k, v in alert.annotations.items()
    }
    alert = alert.model_copy(update={"annotations": cut})
    return alert if len(alert.model_dump_json()) <= limit else None


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
    """Readiness: connected to NATS now."""
    state = request.app[STATE]
    connected = state.bus is not None and state.bus.connected
    return web.json_response(
        {"ok": connected, "nats": "connected" if connected else "disconnected"}, status=200 if connected else 503
    )


async def livez(request: web.Request) -> web.Response:
    """Liveness: false once the NATS connection is closed for good (a reconnect in progress is still alive)."""
    state = request.app[STATE]
    closed = state.bus is not None and state.bus.closed
    return web.json_response({"ok": not closed, "nats": "closed" if closed else "open"}, status=503 if closed else 200)


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
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        return _error(413, f"the body is too large ({exc.text}); lower max_alerts on the Alertmanager receiver")
    try:
        body = json.loads(raw)
    except RecursionError:
        return _error(400, f"the body is JSON nested too deeply (more than {MAX_DEPTH} levels)")
    except ValueError as exc:  # not UTF-8, not JSON, or a number too long to convert
        return _error(400, f"the body is not JSON: {str(exc)[:200]}")
    if depth(body) > MAX_DEPTH:
        return _error(422, f"the body nests more than {MAX_DEPTH} levels; an Alertmanager payload nests 4")
    try:
        payload = WebhookPayload.model_validate(body)
        items = normalise_payload(payload)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc'])[:200] or '(root)'}: {err['msg'][:200]}" for err in exc.errors()[:10]
        ]
        return _error(422, "not an Alertmanager webhook payload (version 4)", details=problems)
    except Exception as exc:  # the payload alone decides this: retrying the same body cannot help
        log.warning("webhook: refused a payload that could not be normalised: %r", exc)
        return _error(422, f"the payload could not be normalised: {str(exc)[:200]}")

    if payload.truncatedAlerts:
        log.warning(
            "webhook: Alertmanager left out %d alert(s) of %s (max_alerts); set max_alerts: 0 on the receiver",
            payload.truncatedAlerts,
            payload.groupKey,
        )
    kept = []
    for subject, alert in items:
        why = refusal(alert.scope, state.scopes)
        if why is None:
            kept.append((subject, alert))
        else:
            ALERTS_DROPPED.labels(why).inc()
            log.info("webhook: dropped alert %s (%s): %s", alert.name[:100], alert.scope[:100], why)
    dropped = len(items) - len(kept)
    items = kept
    bus = state.bus
    if bus is None or not bus.connected:
        return _error(503, "not connected to NATS; Alertmanager will retry")
    limit = bus.nc.max_payload - 4096  # room for the headers (message id, trace context)
    fitted = []
    for subject, alert in items:
        small = fit(alert, limit)
        if small is None:
            return _error(
                413,
                f"alert {alert.fingerprint[:100]!r} is larger than one NATS message ({limit} bytes) even with its "
                "annotations cut: shorten its labels",
            )
        fitted.append((subject, small))
    items = fitted

    results = await asyncio.gather(
        *(bus.publish(bus.topology.alerts(alert.scope), alert, dedup_id=alert.id) for _, alert in items),
        return_exceptions=True,
    )
    published: list[str] = []
    failed: list[dict[str, str]] = []
    for (_, alert), result in zip(items, results, strict=True):
        if isinstance(result, BaseException):
            failed.append({"fingerprint": alert.fingerprint, "id": alert.id, "error": repr(result)})
        else:
            published.append(alert.id)
            if result is None or not result.duplicate:
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
    return web.json_response({"published": len(published), "ids": published, "dropped": dropped})
