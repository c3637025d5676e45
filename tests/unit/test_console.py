"""The console without a bus: the page is served without data, every /api call needs the bearer token, and an
authorised call without NATS answers 503 (the live behaviour is tests/integration/test_console.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web
from pydantic import SecretStr

from services.console.web import ConsoleState, make_web_app
from stratus.localinfra import free_port


@pytest.fixture
async def console() -> AsyncIterator[str]:
    runner = web.AppRunner(make_web_app(ConsoleState(bus=None, token=SecretStr("tok"))), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_every_api_call_needs_the_bearer_token(console: str) -> None:
    async with httpx.AsyncClient(base_url=console) as http:
        page = await http.get("/")
        assert page.status_code == 200 and "textContent" in page.text and "innerHTML" not in page.text
        for path in ("/api/incidents", "/api/approvals", "/api/incidents/x/events"):
            refused = await http.get(path)
            assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
            assert (await http.get(path, headers={"Authorization": "Basic dG9r"})).status_code == 401
            assert (await http.get(path, headers={"Authorization": "Bearer tok"})).status_code == 503
    read_only = make_web_app(ConsoleState(bus=None, token=SecretStr("t")))
    assert {r.method for r in read_only.router.routes()} <= {"GET", "HEAD"}
    deciding = make_web_app(ConsoleState(bus=None, token=SecretStr("t"), approvals=True))
    assert {r.method for r in deciding.router.routes()} == {"GET", "HEAD", "POST"}
