"""HTTP handlers of the bridge."""

from __future__ import annotations

from aiohttp import web


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def webhook(request: web.Request) -> web.Response:
    return web.json_response(
        {"error": "bridge: the Alertmanager webhook is not implemented yet; nothing was published"},
        status=501,
    )
