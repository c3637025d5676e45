"""The one way Stratus talks to a language model: an OpenAI-compatible chat-completions client with accounting.

Why it is shaped this way:

- Any OpenAI-compatible endpoint (OpenAI, Azure, vLLM, Ollama, llama.cpp's server) is reached through the ``openai``
  package with ``temperature=0``. Retries are ours, not the package's (``max_retries=0``): 429 and 5xx answers and
  dropped connections are retried with exponential back-off (honouring ``Retry-After``), so the policy is visible,
  testable against the scripted server and identical for every provider.
- Every call is accounted (prompt and completion tokens, cost from the price settings). A reply carries its own
  ``Usage`` so a reasoner can sum the calls of one piece of work (one diagnosis, one transaction) while the client
  keeps a cumulative total across all of them.
- Under pytest no test may reach a real model: the guard refuses any base URL that is not loopback *before* a request
  is built (pydantic-ai's ``ALLOW_MODEL_REQUESTS = False``). Tests script the model with ``tests/llm_server.py``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

import openai
from openai import AsyncOpenAI
from pydantic import BaseModel, ConfigDict, Field

from stratus.contracts import Usage
from stratus.errors import PermanentError, TemporaryError
from stratus.settings import ReasonerSettings

log = logging.getLogger(__name__)

ToolChoice = Literal["auto", "required", "none"]


def force_tool(name: str) -> dict[str, Any]:
    """A ``tool_choice`` that makes the model call this tool (every OpenAI-compatible server parses it)."""
    return {"type": "function", "function": {"name": name}}


GUARD_MESSAGE = "real LLM endpoints are disabled under pytest; use the scripted server in tests/llm_server.py"


class RealEndpointRefused(PermanentError):
    """A test tried to reach a model that is not on loopback."""


class LLMUnavailable(TemporaryError):
    """The endpoint kept failing (429, 5xx, connection errors) after every retry."""


class LLMRequestRejected(PermanentError):
    """The endpoint rejected the request (400, 401, 404...): retrying the same request is useless."""


class ToolCall(BaseModel):
    """One tool call as the model made it; ``arguments`` is the raw JSON text, parsed by the reasoner."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="The call id the tool result must quote; synthesised for calls found in text.")
    name: str = Field(description="The tool's name as the model spelled it.")
    arguments: str = Field(default="", description="The arguments as the model sent them (JSON text, maybe broken).")


class LLMReply(BaseModel):
    """One assistant message and what it cost."""

    model_config = ConfigDict(frozen=True)

    content: str = Field(default="", description="The text of the message (may hold a tool call as JSON text).")
    tool_calls: list[ToolCall] = Field(default_factory=list, description="Native tool calls of the message.")
    finish_reason: str | None = Field(default=None, description="Why the model stopped (stop, tool_calls, length).")
    usage: Usage = Field(default_factory=Usage, description="Tokens and cost of this call (steps = 1).")
    latency_s: float = Field(default=0.0, description="Wall time of the call, retries included.")

    def assistant_message(self) -> dict[str, Any]:
        """The message to append to the conversation so the next call sees what the model said."""
        # content "" rather than null: llama.cpp's server rejects a null content even beside tool calls
        msg: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            msg["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments or "{}"}}
                for c in self.tool_calls
            ]
        return msg


def add_usage(a: Usage, b: Usage) -> Usage:
    return Usage(
        prompt_tokens=a.prompt_tokens + b.prompt_tokens,
        completion_tokens=a.completion_tokens + b.completion_tokens,
        cost_usd=round(a.cost_usd + b.cost_usd, 8),
        steps=a.steps + b.steps,
    )


def under_pytest() -> bool:
    # PYTEST_CURRENT_TEST is read directly (not through a settings class) on purpose: it is pytest's own marker of a
    # running test, not configuration, and the guard must hold even when no settings object was built.
    return "pytest" in sys.modules or "PYTEST_CURRENT_TEST" in os.environ


def is_loopback(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint_allowed(base_url: str) -> None:
    """Raise ``RealEndpointRefused`` if a test is about to call a model that is not on loopback."""
    if under_pytest() and not is_loopback(base_url):
        raise RealEndpointRefused(f"{GUARD_MESSAGE} (refused base URL {base_url})")


def _retry_after(exc: openai.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class LLMClient:
    """Chat completions against one OpenAI-compatible endpoint, with retries, a test guard and accounting."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str = "unused",
        timeout_s: float = 120.0,
        price_in_per_mtok: float = 0.0,
        price_out_per_mtok: float = 0.0,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 10.0,
    ) -> None:
        check_endpoint_allowed(base_url)
        self.base_url = base_url
        self.model = model
        self.price_in_per_mtok = price_in_per_mtok
        self.price_out_per_mtok = price_out_per_mtok
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.total = Usage()
        """Cumulative usage of every call made through this client."""
        # A loopback endpoint must never go through an HTTP proxy taken from the environment.
        http_client = openai.DefaultAsyncHttpxClient(trust_env=False) if is_loopback(base_url) else None
        self._client = AsyncOpenAI(
            base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=0, http_client=http_client
        )

    @classmethod
    def from_settings(cls, settings: ReasonerSettings) -> LLMClient:
        if settings.llm_base_url is None:
            raise PermanentError("no LLM is configured: set STRATUS_LLM_BASE_URL (or use the rulebook reasoner)")
        return cls(
            base_url=str(settings.llm_base_url),
            model=settings.llm_model,
            api_key=settings.llm_api_key.get_secret_value(),
            timeout_s=settings.llm_timeout_s,
            price_in_per_mtok=settings.llm_price_in_per_mtok,
            price_out_per_mtok=settings.llm_price_out_per_mtok,
        )

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return round(
            (prompt_tokens * self.price_in_per_mtok + completion_tokens * self.price_out_per_mtok) / 1_000_000, 8
        )

    async def close(self) -> None:
        await self._client.close()

    async def chat(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        tools: Sequence[dict[str, Any]] | None = None,
        tool_choice: ToolChoice | dict[str, Any] = "auto",
        max_tokens: int | None = None,
    ) -> LLMReply:
        """One chat completion at temperature 0; raises ``LLMUnavailable`` or ``LLMRequestRejected``."""
        check_endpoint_allowed(self.base_url)
        kwargs: dict[str, Any] = {"model": self.model, "messages": list(messages), "temperature": 0}
        if tools:
            kwargs["tools"] = list(tools)
            kwargs["tool_choice"] = tool_choice
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        loop = asyncio.get_running_loop()
        started = loop.time()
        attempt = 0
        while True:
            try:
                completion = await self._client.chat.completions.create(**kwargs)
                break
            except openai.APIStatusError as exc:
                retryable = exc.status_code == 429 or exc.status_code >= 500
                if not retryable:
                    raise LLMRequestRejected(
                        f"the LLM endpoint rejected the request: HTTP {exc.status_code}: {exc.message}"
                    ) from exc
                if attempt >= self.max_retries:
                    raise LLMUnavailable(
                        f"the LLM endpoint failed {attempt + 1} times; last: HTTP {exc.status_code}: {exc.message}",
                        delay=self.max_backoff_s,
                    ) from exc
                delay = _retry_after(exc)
            except (openai.APIConnectionError, openai.APITimeoutError) as exc:
                if attempt >= self.max_retries:
                    raise LLMUnavailable(
                        f"the LLM endpoint is unreachable after {attempt + 1} tries: {exc}", delay=self.max_backoff_s
                    ) from exc
                delay = None
            backoff = min(self.max_backoff_s, self.backoff_s * 2**attempt)
            delay = backoff if delay is None else min(delay, self.max_backoff_s)
            attempt += 1
            log.warning("LLM call failed; retry %d/%d in %.2fs", attempt, self.max_retries, delay)
            await asyncio.sleep(delay)
        return self._reply(completion, loop.time() - started)

    def _reply(self, completion: Any, latency_s: float) -> LLMReply:
        if not completion.choices:
            raise LLMRequestRejected("the LLM endpoint returned no choices")
        choice = completion.choices[0]
        message = choice.message
        calls: list[ToolCall] = []
        for i, call in enumerate(message.tool_calls or []):
            function = getattr(call, "function", None)
            if function is None:
                continue
            arguments = function.arguments
            if not isinstance(arguments, str):  # some servers send an object instead of JSON text
                arguments = json.dumps(arguments)
            calls.append(ToolCall(id=call.id or f"call_{i}", name=function.name or "", arguments=arguments or ""))
        legacy = getattr(message, "function_call", None)  # servers that still answer in the pre-tools format
        if not calls and legacy is not None and getattr(legacy, "name", None):
            calls.append(ToolCall(id="call_0", name=legacy.name, arguments=legacy.arguments or ""))
        prompt = completion.usage.prompt_tokens if completion.usage else 0
        done = completion.usage.completion_tokens if completion.usage else 0
        usage = Usage(
            prompt_tokens=prompt or 0,
            completion_tokens=done or 0,
            cost_usd=self.cost(prompt or 0, done or 0),
            steps=1,
        )
        self.total = add_usage(self.total, usage)
        return LLMReply(
            content=message.content or "",
            tool_calls=calls,
            finish_reason=choice.finish_reason,
            usage=usage,
            latency_s=latency_s,
        )
