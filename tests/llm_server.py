"""A scripted OpenAI-compatible chat-completions server for tests (aiohttp on 127.0.0.1, a free port).

It replays a script, one entry per request: a tool call, several tool calls, plain text (which may hold a tool call
as JSON, or broken JSON), an HTTP error, or a function of the request that returns one of these. It records every
request body it received (``requests``) so a test can assert what the model was shown, and it reports usage: the
numbers a step gives, or an estimate (characters / 4) of the request and the reply.

Use it as a pytest plugin (``pytest_plugins = ["tests.llm_server"]``) for the ``scripted_llm`` fixture, or directly::

    async with ScriptedLLM([tool_call("list_objects", {"kind": "Pod"}), text("done")]) as llm:
        client = LLMClient(base_url=llm.base_url, model="scripted")
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from stratus.errors import PermanentError


@dataclass
class Reply:
    """One scripted answer: an assistant message, or an HTTP error when ``status`` is not 200."""

    content: str | None = None
    tool_calls: list[tuple[str, str]] = field(default_factory=list)
    """(name, arguments as JSON text: sent as-is, so it may be broken on purpose)."""
    status: int = 200
    error: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    function_call: tuple[str, str] | None = None
    """A legacy (pre-tools) ``function_call`` answer: (name, arguments)."""


Step = Reply | Callable[[dict[str, Any]], Reply]
"""A reply, or a function of the request body (``{"messages": ..., "tools": ...}``) that returns one."""


def _json_text(arguments: dict[str, Any] | str) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def tool_call(name: str, arguments: dict[str, Any] | str | None = None, **usage: Any) -> Reply:
    """A native tool call; a str ``arguments`` is sent verbatim (use it for malformed JSON)."""
    return Reply(tool_calls=[(name, _json_text(arguments or {}))], **usage)


def tool_calls(*calls: tuple[str, dict[str, Any] | str], **usage: Any) -> Reply:
    """Several native tool calls in one assistant message."""
    return Reply(tool_calls=[(n, _json_text(a)) for n, a in calls], **usage)


def text(content: str, **usage: Any) -> Reply:
    """A plain assistant message (a tool call written as JSON text, prose, or garbage)."""
    return Reply(content=content, **usage)


def text_call(name: str, arguments: dict[str, Any], *, style: str = "fenced", **usage: Any) -> Reply:
    """A tool call written in the content the way small models do: fenced, qwen, or tool_args."""
    if style == "qwen":
        body = f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"
    elif style == "tool_args":
        body = json.dumps({"tool": name, "args": arguments})
    else:
        body = f"I will call a tool.\n```json\n{json.dumps({'name': name, 'arguments': arguments})}\n```"
    return Reply(content=body, **usage)


def http_error(status: int = 500, message: str = "scripted failure", retry_after: float | None = None) -> Reply:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return Reply(status=status, error=message, headers=headers)


def messages_text(request: dict[str, Any]) -> str:
    """Every message's text of a recorded request, joined (for assertions on what the model was shown)."""
    return "\n".join(str(m.get("content") or "") for m in request.get("messages", []))


class ScriptedLLM:
    """The server. ``default`` answers requests once the script is used up (otherwise HTTP 400 says so)."""

    def __init__(
        self,
        script: Iterable[Step] = (),
        *,
        default: Step | None = None,
        model: str = "scripted",
        context_window: int | None = None,
    ) -> None:
        self.context_window = context_window
        """Published as ``max_model_len`` in the model listing (as vLLM does) when set."""
        self.script: list[Step] = list(script)
        self.default = default
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.served = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def push(self, *steps: Step) -> None:
        self.script.extend(steps)

    async def start(self) -> ScriptedLLM:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> ScriptedLLM:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _models(self, request: web.Request) -> web.Response:
        entry: dict[str, Any] = {"id": self.model, "object": "model"}
        if self.context_window is not None:
            entry["max_model_len"] = self.context_window
        return web.json_response({"object": "list", "data": [entry]})

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        if self.script:
            step: Step | None = self.script.pop(0)
        else:
            step = self.default
        if step is None:
            return web.json_response(
                {"error": {"message": f"scripted LLM: script exhausted after {self.served} replies", "type": "test"}},
                status=400,
            )
        reply = step(body) if callable(step) else step
        self.served += 1
        if reply.status != 200:
            return web.json_response(
                {"error": {"message": reply.error, "type": "scripted", "code": reply.status}},
                status=reply.status,
                headers=reply.headers,
            )
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if reply.tool_calls:
            message["tool_calls"] = [
                {"id": f"call_{uuid.uuid4().hex[:8]}", "type": "function", "function": {"name": n, "arguments": a}}
                for n, a in reply.tool_calls
            ]
        if reply.function_call is not None:
            message["function_call"] = {"name": reply.function_call[0], "arguments": reply.function_call[1]}
        out_text = (reply.content or "") + "".join(n + a for n, a in reply.tool_calls)
        prompt = reply.prompt_tokens
        if prompt is None:
            prompt = max(1, (len(json.dumps(body.get("messages", []))) + len(json.dumps(body.get("tools", [])))) // 4)
        completion = reply.completion_tokens
        if completion is None:
            completion = max(1, len(out_text) // 4)
        finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        return web.json_response(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model", self.model),
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": usage,
            }
        )


@pytest.fixture
async def scripted_llm() -> AsyncIterator[ScriptedLLM]:
    """A running ``ScriptedLLM`` with an empty script: ``scripted_llm.push(...)`` the replies a test needs."""
    async with ScriptedLLM() as server:
        yield server


# --- an in-memory double of the tools seam (stratus.reasoning) ---------------------------------------------------


class MemoryTools:
    """``ClusterTools`` + ``MitigationTools`` over a dict of objects: records reads and writes, applies scale/patch.

    A double of the seam, for testing reasoners without a cluster; ``refuse`` makes every write raise the given
    message (as the gateway does on a refusal or a failed dry run).
    """

    def __init__(self, objects: Iterable[dict[str, Any]] = (), *, max_writes: int = 3) -> None:
        self.objects: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        for obj in objects:
            meta = obj["metadata"]
            self.objects[(obj["kind"], meta.get("namespace"), meta["name"])] = obj
        self.pod_logs: dict[tuple[str, str], str] = {}
        self.event_list: list[dict[str, Any]] = []
        self.trace_list: list[dict[str, Any]] = []
        self.max_writes = max_writes
        self.executed: list[Any] = []
        self.commands: list[str] = []
        self.refuse: str | None = None

    async def list_objects(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return [o for (k, ns, _), o in self.objects.items() if k == kind and (namespace is None or ns == namespace)]

    async def get_object(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, namespace, name))

    async def logs(
        self, namespace: str, pod: str, container: str | None = None, tail: int = 100, previous: bool = False
    ) -> str:
        return "\n".join(self.pod_logs.get((namespace, pod), "").splitlines()[-tail:])

    async def events(self, namespace: str) -> list[dict[str, Any]]:
        return [e for e in self.event_list if e.get("metadata", {}).get("namespace") == namespace]

    async def traces(self, namespace: str, service: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        return self.trace_list[:limit]

    async def kubectl(self, command: str) -> str:
        self.commands.append(command)
        return f"(kubectl output of: {command})"

    @property
    def writes_left(self) -> int:
        return self.max_writes - len(self.executed)

    async def execute(self, action: Any) -> str:
        if self.refuse is not None:
            raise PermanentError(self.refuse)
        if self.writes_left <= 0:
            raise PermanentError(f"the transaction's bound of {self.max_writes} writes is reached")
        self.executed.append(action)
        obj = self.objects.get((action.kind, action.namespace, action.name))
        if action.verb == "scale" and obj is not None:
            obj.setdefault("spec", {})["replicas"] = action.replicas
        return f"{action.verb} {action.target}: done"
