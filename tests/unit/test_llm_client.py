"""LLMClient against the scripted server: the pytest guard, retries with back-off, token and cost accounting."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from stratus.errors import PermanentError
from stratus.llm import (
    GUARD_MESSAGE,
    LLMClient,
    LLMRequestRejected,
    LLMUnavailable,
    RealEndpointRefused,
    check_endpoint_allowed,
    is_loopback,
)
from stratus.settings import ReasonerSettings
from tests.llm_server import Reply, ScriptedLLM, http_error, text, tool_call


@pytest.fixture
async def scripted_llm() -> AsyncIterator[ScriptedLLM]:
    async with ScriptedLLM() as server:
        yield server


def client_for(server: ScriptedLLM, **kwargs: object) -> LLMClient:
    defaults: dict[str, object] = {"backoff_s": 0.01, "max_backoff_s": 0.05}
    defaults.update(kwargs)
    return LLMClient(base_url=server.base_url, model="scripted", **defaults)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    ["https://api.openai.com/v1", "http://10.0.0.5:8000/v1", "http://my-vllm.internal/v1", "http://0.0.0.0:8080/v1"],
)
def test_guard_refuses_non_loopback_endpoints_under_pytest(url: str) -> None:
    with pytest.raises(RealEndpointRefused, match="real LLM endpoints are disabled under pytest"):
        LLMClient(base_url=url, model="gpt-4o")
    with pytest.raises(RealEndpointRefused) as info:
        check_endpoint_allowed(url)
    assert GUARD_MESSAGE in str(info.value) and isinstance(info.value, PermanentError)


def test_guard_refuses_an_endpoint_from_settings() -> None:
    settings = ReasonerSettings(llm_base_url="https://example.openai.azure.com/openai/v1")  # type: ignore[arg-type]
    with pytest.raises(RealEndpointRefused):
        LLMClient.from_settings(settings)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080/v1", "http://127.3.4.5/v1", "http://localhost:11434/v1", "http://[::1]:8000/v1"],
)
def test_guard_allows_loopback(url: str) -> None:
    assert is_loopback(url)
    check_endpoint_allowed(url)
    LLMClient(base_url=url, model="local")


async def test_guard_checks_again_before_each_request(scripted_llm: ScriptedLLM) -> None:
    client = client_for(scripted_llm)
    client.base_url = "https://api.openai.com/v1"  # a client re-pointed after construction is still refused
    with pytest.raises(RealEndpointRefused):
        await client.chat([{"role": "user", "content": "hi"}])
    assert scripted_llm.requests == []
    await client.close()


async def test_reply_usage_and_cost_per_call_and_cumulative(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.push(
        tool_call("list_objects", {"kind": "Pod"}, prompt_tokens=1000, completion_tokens=100),
        text("hello", prompt_tokens=3000, completion_tokens=50),
    )
    client = client_for(scripted_llm, price_in_per_mtok=2.5, price_out_per_mtok=10.0)
    first = await client.chat([{"role": "user", "content": "look"}], tools=[])
    assert first.tool_calls[0].name == "list_objects" and first.tool_calls[0].arguments == '{"kind": "Pod"}'
    assert (first.usage.prompt_tokens, first.usage.completion_tokens, first.usage.steps) == (1000, 100, 1)
    assert first.usage.cost_usd == pytest.approx((1000 * 2.5 + 100 * 10) / 1e6)
    second = await client.chat([{"role": "user", "content": "again"}])
    assert second.content == "hello" and second.tool_calls == []
    assert client.total.prompt_tokens == 4000 and client.total.completion_tokens == 150
    assert client.total.steps == 2
    assert client.total.cost_usd == pytest.approx((4000 * 2.5 + 150 * 10) / 1e6)
    body = scripted_llm.requests[0]
    assert body["temperature"] == 0 and body["model"] == "scripted"
    await client.close()


async def test_5xx_and_429_are_retried_with_backoff(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.push(http_error(500), http_error(503), http_error(429, retry_after=0.01), text("ok"))
    client = client_for(scripted_llm)
    reply = await client.chat([{"role": "user", "content": "x"}])
    assert reply.content == "ok"
    assert len(scripted_llm.requests) == 4
    assert client.total.steps == 1  # only the successful call is a step
    await client.close()


async def test_retries_are_bounded(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.push(*[http_error(502)] * 3)
    client = client_for(scripted_llm, max_retries=2)
    with pytest.raises(LLMUnavailable, match=r"failed 3 times in .*; last: HTTP 502"):
        await client.chat([{"role": "user", "content": "x"}])
    await client.close()


async def test_4xx_is_not_retried(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.push(http_error(401, "bad key"), text("never"))
    client = client_for(scripted_llm)
    with pytest.raises(LLMRequestRejected, match="HTTP 401"):
        await client.chat([{"role": "user", "content": "x"}])
    assert len(scripted_llm.requests) == 1
    await client.close()


async def test_unreachable_endpoint_is_unavailable() -> None:
    server = ScriptedLLM()
    await server.start()
    url = server.base_url
    await server.stop()  # nothing listens there any more
    client = LLMClient(base_url=url, model="x", max_retries=1, backoff_s=0.01)
    with pytest.raises(LLMUnavailable, match=r"unreachable .* after 2 tries"):
        await client.chat([{"role": "user", "content": "x"}])
    await client.close()


async def test_legacy_function_call_is_a_tool_call(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.push(Reply(function_call=("get_logs", '{"pod": "a"}')))
    client = client_for(scripted_llm)
    reply = await client.chat([{"role": "user", "content": "x"}], tools=[])
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [("get_logs", '{"pod": "a"}')]
    await client.close()
