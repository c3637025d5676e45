"""LLM reasoners: a bounded tool loop over an OpenAI-compatible model, for diagnosis and for mitigation.

Why it is shaped this way: the loop must survive the models it will really meet, including small local ones.

- A tool call may arrive natively (``tool_calls``) or as JSON text in the content: a fenced ```json block, Qwen's
  ``<tool_call>...</tool_call>``, ``{"name": ..., "arguments": ...}`` or ``{"tool": ..., "args": ...}``. Both are
  run; a call found in text is answered with a user message, since it has no call id to quote.
- Nothing the model sends crashes the loop: invalid JSON, wrong types, unknown tools and plain prose each get a
  corrective message naming what was wrong and what to send instead, and the loop goes on. The model's budget is
  ``max_steps`` calls; a model that never calls the terminal tool ends there with a reason that says so.
- The mitigator's prompt carries only the short reflections of earlier failed attempts, never their transcripts:
  a transcript would anchor the model on the plan that already failed, and it would not fit a small context.
- Every call's usage is summed into the piece of work's ``Usage`` (tokens, cost, steps).
"""

from __future__ import annotations

import ast
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Self

from stratus.contracts import DiagnoseRequest, DiagnosisReady, MitigateRequest, RootCause, Usage
from stratus.errors import StratusError
from stratus.llm import (
    LLMClient,
    LLMRequestRejected,
    LLMUnavailable,
    ToolCall,
    ToolChoice,
    add_usage,
    force_tool,
)
from stratus.reasoners.toolkit import (
    DEFAULT_MAX_OUTPUT_CHARS,
    FAULT_TYPES,
    SYSTEM_LEVELS,
    Toolbox,
    diagnosis_toolbox,
    mitigation_toolbox,
    truncate,
)
from stratus.reasoning import ClusterTools, MitigationResult, MitigationTools
from stratus.settings import ReasonerSettings

log = logging.getLogger(__name__)

MAX_REFLECTION_CHARS = 400

# --- tool calls written as text ---------------------------------------------------------------------------------

_NAME_KEYS = ("name", "tool", "tool_name", "function", "action")
_ARG_KEYS = ("arguments", "args", "parameters", "params", "input", "tool_input")
_DECODER = json.JSONDecoder()


def _as_call(obj: Any, known: set[str]) -> tuple[str, Any] | None:
    """``(name, arguments)`` if ``obj`` has the shape of a tool call, else None."""
    if not isinstance(obj, dict):
        return None
    for wrapper in ("tool_call", "function_call", "call"):
        if isinstance(obj.get(wrapper), dict):
            return _as_call(obj[wrapper], known)
    if isinstance(obj.get("function"), dict):  # {"type": "function", "function": {"name":..., "arguments":...}}
        return _as_call(obj["function"], known)
    name = next((obj[k] for k in _NAME_KEYS if isinstance(obj.get(k), str)), None)
    if name is None:
        return None
    args = next((obj[k] for k in _ARG_KEYS if k in obj), None)
    if args is None:
        if name not in known:
            return None
        # {"name": "get_logs", "namespace": ..., "pod": ...}: the arguments are the other keys
        key = next(k for k in _NAME_KEYS if obj.get(k) == name)
        args = {k: v for k, v in obj.items() if k != key}
    return name, args


def calls_in_text(content: str, known: set[str]) -> list[ToolCall]:
    """Tool calls a model wrote as JSON in its text; an empty list when there are none."""
    calls: list[ToolCall] = []
    i = 0
    while i < len(content) and len(calls) < 8:
        start = min((p for p in (content.find("{", i), content.find("[", i)) if p >= 0), default=-1)
        if start < 0:
            break
        try:
            obj, end = _DECODER.raw_decode(content, start)
        except json.JSONDecodeError:
            i = start + 1
            continue
        found = [_as_call(item, known) for item in (obj if isinstance(obj, list) else [obj])]
        hits = [f for f in found if f is not None]
        if not hits:
            i = start + 1  # maybe a call nested further in
            continue
        for name, args in hits:
            text = args if isinstance(args, str) else json.dumps(args)
            calls.append(ToolCall(id=f"text_call_{len(calls)}", name=name, arguments=text))
        i = end
    return calls


def parse_arguments(text: str) -> dict[str, Any] | str:
    """The arguments as a dict, or a message saying why they are not a JSON object."""
    if not text.strip():
        return {}
    try:
        value: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        try:  # a Python-literal dict ({'a': 1, 'b': True}) is a common small-model slip
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return f"the arguments are not valid JSON ({exc.msg} at position {exc.pos})"
    if isinstance(value, str):  # double-encoded
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return "the arguments are a string, not a JSON object"
    if not isinstance(value, dict):
        return f"the arguments must be a JSON object, not {type(value).__name__}"
    return value


def _normalise_name(name: str, known: set[str]) -> str | None:
    if name in known:
        return name
    candidate = re.sub(r"^(functions?|tools?)[.:]", "", name.strip()).strip().lower().replace("-", "_")
    return candidate if candidate in known else None


# --- the loop ---------------------------------------------------------------------------------------------------


@dataclass
class LoopResult:
    done: bool
    reason: str
    usage: Usage = field(default_factory=Usage)
    messages: list[dict[str, Any]] = field(default_factory=list)
    error: StratusError | None = None
    """Set when the endpoint failed for good (after its retries) and the loop could not go on."""


class ToolLoop:
    """Call the model, run its tool calls, feed back the results, until the terminal tool or ``max_steps``."""

    def __init__(
        self,
        client: LLMClient,
        *,
        max_steps: int = 30,
        tool_choice: ToolChoice = "auto",
        context_chars: int | None = None,
        max_tokens: int | None = None,
        force_final: bool = True,
    ) -> None:
        self.client = client
        self.force_final = force_final
        self.max_steps = max_steps
        self.tool_choice = tool_choice
        self.context_chars = context_chars
        self.max_tokens = max_tokens

    async def run(self, messages: list[dict[str, Any]], box: Toolbox) -> LoopResult:
        usage = Usage()
        specs = box.specs()
        known = set(box.names)
        for step in range(self.max_steps):
            choice: ToolChoice | dict[str, Any] = self.tool_choice
            if step == self.max_steps - 1 and self.max_steps > 1:
                messages.append(
                    {"role": "user", "content": f"This is your last step: call {box.terminal} now with your answer."}
                )
                if self.force_final:
                    choice = force_tool(box.terminal)
            self._compact(messages)
            try:
                reply = await self.client.chat(messages, tools=specs, tool_choice=choice, max_tokens=self.max_tokens)
            except (LLMUnavailable, LLMRequestRejected) as exc:
                return LoopResult(False, f"the LLM failed after {step} steps: {exc}", usage, messages, exc)
            usage = add_usage(usage, reply.usage)
            native = bool(reply.tool_calls)
            calls = reply.tool_calls or calls_in_text(reply.content, known)
            messages.append(reply.assistant_message())
            if not calls:
                messages.append({"role": "user", "content": self._no_call_message(box, reply.finish_reason)})
                continue
            text_results: list[str] = []
            for call in calls:
                result = await self._run_call(call, box, known)
                log.debug("tool %s(%s) -> %s", call.name, call.arguments[:200], result[:200])
                if native:
                    messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
                else:
                    text_results.append(f"Result of {call.name}:\n{result}")
                if box.outcome is not None:
                    break
            if text_results:
                messages.append({"role": "user", "content": "\n\n".join(text_results)})
            if box.outcome is not None:
                return LoopResult(True, f"{box.terminal} called after {step + 1} steps", usage, messages)
        reason = (
            f"step limit reached: the model made {self.max_steps} calls without calling {box.terminal}; "
            "its work was stopped there"
        )
        return LoopResult(False, reason, usage, messages)

    @staticmethod
    def _no_call_message(box: Toolbox, finish_reason: str | None) -> str:
        cut = "Your reply was cut off (too long). " if finish_reason == "length" else ""
        return (
            f"{cut}You did not call a tool. Reply with exactly one tool call, e.g. "
            '{"name": "list_objects", "arguments": {"kind": "Pod", "namespace": "..."}}. '
            f"Tools: {', '.join(box.names)}. When you are done, call {box.terminal}."
        )

    async def _run_call(self, call: ToolCall, box: Toolbox, known: set[str]) -> str:
        name = _normalise_name(call.name, known)
        if name is None:
            return f"Unknown tool {call.name!r}. The tools are: {', '.join(box.names)}. Call one of them."
        tool = box.get(name)
        assert tool is not None
        args = parse_arguments(call.arguments)
        if isinstance(args, str):
            return f"Your call to {name} was not run: {args}. Call {name} again with a JSON object of arguments."
        try:
            return await tool.run(args)
        except Exception as exc:  # the toolkit already turns failures into text; this is the last net
            log.exception("tool %s raised", name)
            return f"{name} failed: {type(exc).__name__}: {exc}"

    def _compact(self, messages: list[dict[str, Any]]) -> None:
        """Shorten the oldest tool results until the conversation fits ``context_chars`` (small local models)."""
        if self.context_chars is None:
            return
        total = sum(len(str(m.get("content") or "")) + len(json.dumps(m.get("tool_calls", ""))) for m in messages)
        for msg in messages[2:-2]:
            if total <= self.context_chars:
                return
            content = str(msg.get("content") or "")
            if msg["role"] in ("tool", "user") and len(content) > 300:
                short = content[:240] + " ... [older output shortened]"
                total -= len(content) - len(short)
                msg["content"] = short


# --- prompts ----------------------------------------------------------------------------------------------------

VOCABULARY = (
    f"system_level is one of: {', '.join(SYSTEM_LEVELS)}. fault_type is one of: {', '.join(FAULT_TYPES)}. "
    "Use Application for faults in the application's own configuration, code or deployment; Virtualization for "
    "Kubernetes objects and scheduling; Operating System and Hardware for node faults."
)

DIAGNOSIS_SYSTEM = (
    "You are a site reliability engineer diagnosing an incident in a Kubernetes cluster. Your tools are read-only. "
    "Investigate step by step, one tool call at a time: look at the pods and their status, the events, the logs of "
    "failing pods, the traces, and the spec of the objects involved (Deployment, Service, ConfigMap...). Follow the "
    "failure to its origin: the component at fault, not the callers that suffer from it. Then call submit_diagnosis "
    "once with the faulty components (most likely first; ideally one), the root cause and a short summary. "
    + VOCABULARY
)

MITIGATION_SYSTEM = (
    "You are a site reliability engineer mitigating an incident in a Kubernetes cluster. You act inside one "
    "transaction with these rules:\n"
    "- You may make at most {k} writes (each write tool call or kubectl write counts one). Reads are unlimited; read "
    "before and between writes to check their effect.\n"
    "- Act only in namespace {scope}.\n"
    "- Every write is journaled and may be undone: if the incident is worse after your transaction than before it, "
    "all of your writes are rolled back and another attempt starts with a short lesson from yours.\n"
    "- Prefer the smallest fix that removes the root cause (restore a wrong field, roll back a bad change, scale a "
    "workload back up) over restarting or deleting things. Never delete a namespace.\n"
    "- When your fix is in place, or if nothing safe can be done, call end_transaction once with the reason."
)


def _bullets(items: list[str], limit: int = MAX_REFLECTION_CHARS) -> str:
    return "\n".join(f"- {truncate(item.strip(), limit)}" for item in items if item.strip())


def diagnosis_prompt(request: DiagnoseRequest) -> str:
    parts = [f"Incident {request.incident_id} in namespace {request.scope}."]
    if request.evidence:
        parts.append("What the detector saw:\n" + _bullets(request.evidence))
    parts.append(f"Start with list_objects(kind=Pod, namespace={request.scope}) or get_events({request.scope}).")
    return "\n\n".join(parts)


def mitigation_prompt(request: MitigateRequest) -> str:
    parts = [
        f"Incident {request.incident_id} in namespace {request.scope}; attempt {request.attempt}; "
        f"at most {request.max_actions} writes."
    ]
    d = request.diagnosis
    if d is not None:
        lines = []
        if d.localisation:
            lines.append(f"- Faulty components (most likely first): {', '.join(d.localisation)}")
        if d.root_cause is not None:
            lines.append(f"- Root cause: {d.root_cause.system_level} / {d.root_cause.fault_type}")
        if d.summary:
            lines.append(f"- Summary: {d.summary}")
        if d.evidence:
            lines.append("- Evidence:\n" + "\n".join(f"  - {truncate(e, 200)}" for e in d.evidence[:10]))
        parts.append("Diagnosis:\n" + "\n".join(lines))
    if request.reflections:
        parts.append(
            "Earlier attempts failed and were undone. Lessons from them (do not repeat what failed):\n"
            + _bullets(request.reflections)
        )
    parts.append("Check the current state first, then fix, then call end_transaction.")
    return "\n\n".join(parts)


# --- the reasoners ----------------------------------------------------------------------------------------------


@dataclass
class LLMOptions:
    """Knobs shared by both reasoners."""

    max_steps: int = 30
    tool_choice: ToolChoice = "auto"
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS
    context_chars: int | None = None
    """Shorten the oldest tool results when the conversation's text exceeds this (None: never)."""
    typed_writes: bool = True
    """Offer one typed tool per write verb (else writes go through kubectl lines only)."""
    max_tokens: int | None = None
    """Cap on each reply's length."""
    force_final: bool = True
    """On the last step, force the terminal tool (``tool_choice`` naming it) so the work ends with an answer."""

    @classmethod
    def compact(cls, max_steps: int = 30) -> LLMOptions:
        """For a small local model with a ~4k-token context."""
        return cls(max_steps=max_steps, max_output_chars=1500, context_chars=7000, typed_writes=False, max_tokens=512)


class _LLMReasoner:
    def __init__(self, client: LLMClient, options: LLMOptions | None = None) -> None:
        self.client = client
        self.options = options or LLMOptions()
        self.last_messages: list[dict[str, Any]] = []
        """The conversation of the last piece of work (for logs and tests; never fed into a later prompt)."""

    @classmethod
    def from_settings(cls, settings: ReasonerSettings, options: LLMOptions | None = None) -> Self:
        if options is None:
            steps = settings.llm_max_steps
            options = LLMOptions.compact(steps) if settings.llm_compact else LLMOptions(max_steps=steps)
        return cls(LLMClient.from_settings(settings), options)

    async def aclose(self) -> None:
        """Close the client's connections (a reasoner owns its client)."""
        await self.client.close()

    def _loop(self) -> ToolLoop:
        o = self.options
        return ToolLoop(
            self.client,
            max_steps=o.max_steps,
            tool_choice=o.tool_choice,
            context_chars=o.context_chars,
            max_tokens=o.max_tokens,
            force_final=o.force_final,
        )


class LLMDiagnosisReasoner(_LLMReasoner):
    """Diagnose with read-only tools; the answer is the model's ``submit_diagnosis`` call."""

    async def diagnose(self, request: DiagnoseRequest, tools: ClusterTools) -> DiagnosisReady:
        box = diagnosis_toolbox(tools, request.scope, limit=self.options.max_output_chars)
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": DIAGNOSIS_SYSTEM},
            {"role": "user", "content": diagnosis_prompt(request)},
        ]
        result = await self._loop().run(messages, box)
        self.last_messages = result.messages
        if result.error is not None:
            raise result.error
        if not result.done or box.outcome is None:
            return DiagnosisReady(
                incident_id=request.incident_id,
                summary=f"No diagnosis: {result.reason}.",
                evidence=list(request.evidence),
                usage=result.usage,
            )
        out = box.outcome
        return DiagnosisReady(
            incident_id=request.incident_id,
            localisation=list(out["localisation"]),
            root_cause=RootCause(system_level=out["system_level"], fault_type=out["fault_type"]),
            summary=out["summary"],
            evidence=[*request.evidence, *out.get("evidence", [])],
            usage=result.usage,
        )


class LLMMitigationReasoner(_LLMReasoner):
    """Plan and run one transaction of at most K writes through the tools; ends with ``end_transaction``."""

    async def mitigate(self, request: MitigateRequest, tools: MitigationTools) -> MitigationResult:
        o = self.options
        box = mitigation_toolbox(tools, request.scope, limit=o.max_output_chars, typed_writes=o.typed_writes)
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": MITIGATION_SYSTEM.format(k=request.max_actions, scope=request.scope)},
            {"role": "user", "content": mitigation_prompt(request)},
        ]
        result = await self._loop().run(messages, box)
        self.last_messages = result.messages
        if result.done and box.outcome is not None:
            return MitigationResult(done=True, reason=str(box.outcome["reason"]), usage=result.usage)
        return MitigationResult(done=False, reason=result.reason, usage=result.usage)
