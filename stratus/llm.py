"""The one way Stratus talks to a language model: an OpenAI-compatible chat-completions client with accounting.

Why it is shaped this way:

- Any OpenAI-compatible endpoint (OpenAI, Azure, vLLM, Ollama, llama.cpp's server) is reached through the ``openai``
  package with ``temperature=0``. Retries are ours, not the package's (``max_retries=0``): 429 and 5xx answers and
  dropped connections are retried with exponential back-off (honouring ``Retry-After``), so the policy is visible,
  testable against the scripted server and identical for every provider.
- Retrying is bounded twice: at most ``max_retries`` retries, and none starts later than ``retry_budget_s`` after
  the first try. A dead endpoint therefore costs a piece of work a known, configured time before the reasoner gives
  up on it (and the rulebook takes over, see ``stratus.reasoners.hybrid``).
- A 400 that says the prompt is over the context window is its own error (``LLMContextExceeded``) carrying the
  window the server named: the reasoner learns the real size from it.
- Every call is accounted (prompt and completion tokens, cost from the price settings, HTTP errors, the largest
  prompt). A reply carries its own ``Usage`` so a reasoner can sum the calls of one piece of work (one diagnosis, one
  transaction) while the client keeps a cumulative total across all of them.
- ``context_tokens()`` asks the server for its context window where servers publish it (vLLM's ``max_model_len``,
  llama.cpp's ``/props``, LM Studio's ``context_length``...); None when none does.
- Under pytest no test may reach a real model: the guard refuses any base URL that is not loopback *before* a request
  is built (pydantic-ai's ``ALLOW_MODEL_REQUESTS = False``). Tests script the model with ``tests/llm_server.py``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

import openai
from openai import AsyncOpenAI
from pydantic import BaseModel, ConfigDict, Field

from stratus.contracts import Usage
from stratus.dependencies import record_llm_outcome
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

    errors = 0
    """HTTP errors and failed connections of the call that raised this (retries included)."""


class LLMRequestRejected(PermanentError):
    """The endpoint rejected the request (400, 401, 404...): retrying the same request is useless."""

    errors = 0
    """HTTP errors and failed connections of the call that raised this (retries included)."""


class LLMContextExceeded(LLMRequestRejected):
    """The prompt (plus the reply's room) is over the model's context window."""

    def __init__(self, message: str, window: int | None = None) -> None:
        super().__init__(message)
        self.window = window
        """The window the server named, when it did."""


_CONTEXT_PATTERNS = (
    re.compile(r"context (?:window|length|size) (?:of|is) (\d+)", re.I),  # llama-cpp-python, llama.cpp
    re.compile(r"maximum context length is (\d+)", re.I),  # OpenAI, vLLM
    re.compile(r"n_ctx[^\d]{0,12}(\d+)", re.I),
)
_OVERFLOW_WORDS = ("context", "n_ctx", "too long", "exceed", "maximum")


def context_overflow(message: str) -> tuple[bool, int | None]:
    """Whether an error message says the prompt was over the context window, and the window if it names one."""
    lowered = message.lower()
    if not ("context" in lowered or "n_ctx" in lowered) or not any(w in lowered for w in _OVERFLOW_WORDS[2:]):
        return False, None
    for pattern in _CONTEXT_PATTERNS:
        found = pattern.search(message)
        if found:
            return True, int(found.group(1))
    return True, None


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
        llm_errors=a.llm_errors + b.llm_errors,
        max_prompt_tokens=max(a.max_prompt_tokens, b.max_prompt_tokens),
    )


_WINDOW_KEYS = ("max_model_len", "context_length", "context_window", "max_context_length", "n_ctx")
"""Where servers publish the serving window (never ``n_ctx_train``: a server may serve less than the model knows)."""


def _window_in(data: Any, depth: int = 0) -> int | None:
    """The first context-window figure in a server's model listing or properties (bounded search)."""
    if depth > 4:
        return None
    if isinstance(data, dict):
        for key in _WINDOW_KEYS:
            value = data.get(key)
            if isinstance(value, int) and value > 0:
                return value
        for value in data.values():
            found = _window_in(value, depth + 1)
            if found:
                return found
    if isinstance(data, list):
        for item in data[:8]:
            found = _window_in(item, depth + 1)
            if found:
                return found
    return None


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
        retry_budget_s: float = 30.0,
    ) -> None:
        check_endpoint_allowed(base_url)
        self.base_url = base_url
        self.model = model
        self.price_in_per_mtok = price_in_per_mtok
        self.price_out_per_mtok = price_out_per_mtok
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.retry_budget_s = retry_budget_s
        self._context: int | None = None
        self._asked_context = False
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
            max_retries=settings.llm_max_retries,
            retry_budget_s=settings.llm_retry_budget_s,
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
        temperature: float = 0.0,
    ) -> LLMReply:
        """One chat completion (temperature 0 unless asked); raises ``LLMUnavailable`` or ``LLMRequestRejected``
        (``LLMContextExceeded`` when the prompt was over the context window)."""
        check_endpoint_allowed(self.base_url)
        kwargs: dict[str, Any] = {"model": self.model, "messages": list(messages), "temperature": temperature}
        if tools:
            kwargs["tools"] = list(tools)
            kwargs["tool_choice"] = tool_choice
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        loop = asyncio.get_running_loop()
        started = loop.time()
        errors = [0]
        try:
            completion = await self._create(kwargs, loop, started, errors)
        except (LLMUnavailable, LLMRequestRejected) as exc:
            exc.errors = errors[0]
            # too long a prompt is this request's fault, not the endpoint's
            record_llm_outcome(self.base_url, None if isinstance(exc, LLMContextExceeded) else str(exc))
            raise
        record_llm_outcome(self.base_url, None)
        reply = self._reply(completion, loop.time() - started)
        if errors[0]:
            reply = reply.model_copy(update={"usage": reply.usage.model_copy(update={"llm_errors": errors[0]})})
        return reply

    async def _create(
        self, kwargs: dict[str, Any], loop: asyncio.AbstractEventLoop, started: float, errors: list[int]
    ) -> Any:
        """The completion, retried as the policy says; ``errors[0]`` counts the failures on the way."""
        attempt = 0
        while True:
            try:
                return await self._client.chat.completions.create(**kwargs)
            except openai.APIStatusError as exc:
                self._count_error(errors)
                retryable = exc.status_code == 429 or exc.status_code >= 500
                if not retryable:
                    message = f"the LLM endpoint rejected the request: HTTP {exc.status_code}: {exc.message}"
                    overflow, window = context_overflow(str(exc.message))
                    if overflow:
                        if window:
                            self._context = window
                        raise LLMContextExceeded(message, window) from exc
                    raise LLMRequestRejected(message) from exc
                if self._give_up(attempt, started, loop.time()):
                    raise LLMUnavailable(
                        f"the LLM endpoint failed {attempt + 1} times in {loop.time() - started:.0f}s; last: "
                        f"HTTP {exc.status_code}: {exc.message}",
                        delay=self.max_backoff_s,
                    ) from exc
                delay = _retry_after(exc)
            except (openai.APIConnectionError, openai.APITimeoutError) as exc:
                self._count_error(errors)
                if self._give_up(attempt, started, loop.time()):
                    what = "timed out" if isinstance(exc, openai.APITimeoutError) else "is unreachable"
                    raise LLMUnavailable(
                        f"the LLM endpoint {what} ({self.base_url}) after {attempt + 1} tries in "
                        f"{loop.time() - started:.0f}s: {exc}",
                        delay=self.max_backoff_s,
                    ) from exc
                delay = None
            backoff = min(self.max_backoff_s, self.backoff_s * 2**attempt)
            delay = backoff if delay is None else min(delay, self.max_backoff_s)
            delay = max(0.0, min(delay, started + self.retry_budget_s - loop.time()))
            attempt += 1
            log.warning("LLM call failed; retry %d/%d in %.2fs", attempt, self.max_retries, delay)
            await asyncio.sleep(delay)

    def _give_up(self, attempt: int, started: float, now: float) -> bool:
        return attempt >= self.max_retries or now - started >= self.retry_budget_s

    def _count_error(self, errors: list[int]) -> None:
        errors[0] += 1
        self.total = self.total.model_copy(update={"llm_errors": self.total.llm_errors + 1})

    async def context_tokens(self) -> int | None:
        """The model's context window as the server publishes it (asked once), or None when it does not."""
        if self._context is not None or self._asked_context:
            return self._context
        self._asked_context = True
        check_endpoint_allowed(self.base_url)
        root = self.base_url.rstrip("/").removesuffix("/v1")
        http = self._client._client  # the package's own httpx client: same proxy and timeout rules
        for url in (f"{self.base_url.rstrip('/')}/models", f"{root}/props"):
            try:
                resp = await http.get(url, timeout=5.0)
                found = _window_in(resp.json()) if resp.status_code == 200 else None
            except Exception:  # an endpoint without it; the settings decide
                found = None
            if found:
                self._context = found
                return found
        return None

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
            max_prompt_tokens=prompt or 0,
        )
        self.total = add_usage(self.total, usage)
        return LLMReply(
            content=message.content or "",
            tool_calls=calls,
            finish_reason=choice.finish_reason,
            usage=usage,
            latency_s=latency_s,
        )
