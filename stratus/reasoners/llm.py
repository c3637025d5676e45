"""LLM reasoners: a bounded tool loop over an OpenAI-compatible model, for diagnosis and for mitigation.

Why it is shaped this way: the loop must survive the models it will really meet, including small local ones.

- A tool call may arrive natively (``tool_calls``) or as JSON text in the content: a fenced ```json block, Qwen's
  ``<tool_call>...</tool_call>``, ``{"name": ..., "arguments": ...}`` or ``{"tool": ..., "args": ...}``. Calls found
  in text are put back into the conversation as native calls with their results as ``tool`` messages, so the model's
  own chat template renders them the way the model was trained to read them.
- Nothing the model sends crashes the loop: invalid JSON, wrong types, unknown tools and plain prose each get a
  corrective message naming what was wrong and what to send instead, and the loop goes on.
- Guard rails teach rather than merely stop: a terminal call among other calls is refused (it must come alone, after
  the results); ``end_transaction`` claiming a fix with no write is refused with what to do instead; a call repeated
  with the same arguments is answered with a pointer to the earlier answer.
- Every prompt fits the context window (``stratus.reasoners.budget``): results are cut to their share of the window,
  and old turns are folded into a summary at rare, stable points. A prompt that cannot be made to fit is not sent:
  the work ends as failed, saying so.
- Failures are failures: an LLM error (HTTP 4xx/5xx after retries, a timeout, the budget exceeded, no answer within
  the step limit) ends the work with ``failed`` and the reason; the coordinator's reflection carries that reason.
- A prompt identical to one already sent for the same incident (temperature 0 would replay the same answer) is
  changed before it is sent: a note of what was already tried is added and the temperature raised.
- Every tool call is reported (``on_step``): an event on the incident's timeline and an INFO log line, both scrubbed
  of credentials.
- The mitigator's prompt carries only the short reflections of earlier failed attempts, never their transcripts.
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Self

from stratus.contracts import DiagnoseRequest, DiagnosisReady, MitigateRequest, ReasoningStep, RootCause, Usage
from stratus.errors import PermanentError, StratusError
from stratus.llm import (
    LLMClient,
    LLMContextExceeded,
    LLMReply,
    LLMRequestRejected,
    LLMUnavailable,
    ToolCall,
    ToolChoice,
    add_usage,
    force_tool,
)
from stratus.reasoners.budget import DEFAULT_CONTEXT_TOKENS, Budget, TokenMeter, fold, prompt_chars
from stratus.reasoners.toolkit import (
    DEFAULT_MAX_OUTPUT_CHARS,
    FAULT_TYPES,
    SYSTEM_LEVELS,
    Candidate,
    Toolbox,
    diagnosis_toolbox,
    mitigation_toolbox,
    truncate,
)
from stratus.reasoning import ClusterTools, MitigationResult, MitigationTools, scrub
from stratus.settings import ReasonerSettings

log = logging.getLogger(__name__)

MAX_REFLECTION_CHARS = 400
MAX_CALLS_PER_REPLY = 6
"""Calls of one reply that are run; a small model sometimes emits a dozen copies of one call."""
STEP_TEXT_CHARS = 1500
"""How much of a call's arguments and result goes on the timeline."""

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
class StepRecord:
    """One tool call of the loop and what it answered."""

    step: int
    tool: str
    arguments: str
    result: str
    ok: bool


StepSink = Callable[[StepRecord], Awaitable[None]]
StepCheck = Callable[[StepRecord], Awaitable[str | None]]
"""Judges a step after it ran; a returned text is a corrective note for the model (``stratus.stepcheck``)."""


@dataclass
class LoopResult:
    done: bool
    reason: str
    usage: Usage = field(default_factory=Usage)
    messages: list[dict[str, Any]] = field(default_factory=list)
    error: StratusError | None = None
    """Set when the endpoint failed for good (after its retries) or the prompt could not fit: the work failed."""
    failed: bool = False
    """The work ended without the terminal tool's answer (an LLM error, the budget, the step limit)."""


@dataclass
class IncidentMemory:
    """What the loop remembers of one incident across its pieces of work: the prompts sent and the calls made."""

    digests: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)


class BudgetExceeded(PermanentError):
    """The prompt cannot be made to fit the context window."""


_REFUSED_PREFIXES = ("Refused", "Unknown tool", "Invalid arguments", "Your call to", "Write ")


def _refused(result: str) -> bool:
    return result.startswith(_REFUSED_PREFIXES) or " refused" in result[:80] or " failed:" in result[:80]


def prompt_digest(messages: list[dict[str, Any]], specs: list[dict[str, Any]], choice: Any) -> str:
    body = json.dumps({"m": messages, "t": specs, "c": choice}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()


class ToolLoop:
    """Call the model, run its tool calls, feed back the results, until the terminal tool or ``max_steps``."""

    def __init__(
        self,
        client: LLMClient,
        *,
        max_steps: int = 30,
        tool_choice: ToolChoice = "auto",
        budget: Budget | None = None,
        meter: TokenMeter | None = None,
        force_final: bool = True,
        memory: IncidentMemory | None = None,
        on_step: StepSink | None = None,
        keep_turns: int = 2,
        step_check: StepCheck | None = None,
    ) -> None:
        self.client = client
        self.step_check = step_check
        self.force_final = force_final
        self.max_steps = max_steps
        self.tool_choice = tool_choice
        self.budget = budget or Budget()
        self.meter = meter or TokenMeter()
        self.memory = memory if memory is not None else IncidentMemory()
        """Prompts already sent and calls already made for this incident (shared across its pieces of work)."""
        self.on_step = on_step
        self.keep_turns = keep_turns
        self.head = 2
        """The system prompt and the task: never folded, the cacheable prefix."""

    def _tokens(self, messages: list[dict[str, Any]], specs: list[dict[str, Any]]) -> int:
        return self.meter.tokens(prompt_chars(messages, specs))

    def _fit(self, messages: list[dict[str, Any]], specs: list[dict[str, Any]]) -> None:
        """Fold old turns when the prompt is over the limit; raise ``BudgetExceeded`` when even that is not enough."""
        limit = self.budget.limit
        if self._tokens(messages, specs) <= limit:
            return
        low = int(limit * self.budget.low_water)
        fold(messages, head=self.head, keep_turns=self.keep_turns, too_big=lambda m: self._tokens(m, specs) > low)
        if self._tokens(messages, specs) > limit:  # the last turns alone are too big: keep only the newest one
            fold(messages, head=self.head, keep_turns=1, too_big=lambda m: self._tokens(m, specs) > low)
        size = self._tokens(messages, specs)
        if size > limit:
            raise BudgetExceeded(
                f"the prompt needs about {size} tokens even with its history folded, over the limit of {limit} "
                f"(context {self.budget.context} minus {self.budget.reply} for the reply); it was not sent"
            )

    async def run(self, messages: list[dict[str, Any]], box: Toolbox) -> LoopResult:
        usage = Usage()
        specs = box.specs()
        known = set(box.callable_names)
        earlier: dict[str, int] = {}
        deferred = False
        """The model called the terminal tool among other calls: refused, and its next call is that tool alone."""
        for step in range(self.max_steps):
            choice: ToolChoice | dict[str, Any] = self.tool_choice
            if deferred:
                choice = force_tool(box.terminal)  # what the model asked for, now in the right order
                deferred = False
            if step == self.max_steps - 1 and self.max_steps > 1:
                messages.append(
                    {"role": "user", "content": f"This is your last step: call {box.terminal} now with your answer."}
                )
                if self.force_final:
                    choice = force_tool(box.terminal)
            temperature = 0.0
            try:
                self._fit(messages, specs)
                digest = prompt_digest(messages, specs, choice)
                if digest in self.memory.digests:
                    messages.append({"role": "user", "content": self._repeat_note(self.memory.calls)})
                    temperature = 0.7
                    self._fit(messages, specs)
                    digest = prompt_digest(messages, specs, choice)
                self.memory.digests.add(digest)
                sent = prompt_chars(messages, specs)
                reply = await self.client.chat(
                    messages,
                    tools=specs,
                    tool_choice=choice,
                    max_tokens=self.budget.reply,
                    temperature=temperature,
                )
            except (LLMUnavailable, LLMRequestRejected) as exc:
                if isinstance(exc, LLMContextExceeded) and exc.window:
                    self.budget.context = exc.window
                usage = usage.model_copy(update={"llm_errors": usage.llm_errors + exc.errors})
                return self._failed(f"the LLM failed after {step} steps: {exc}", usage, messages, exc)
            except BudgetExceeded as exc:
                return self._failed(f"the LLM failed after {step} steps: {exc}", usage, messages, exc)
            usage = add_usage(usage, reply.usage)
            self.meter.calibrate(sent, reply.usage.prompt_tokens)
            calls = reply.tool_calls or calls_in_text(reply.content, known)
            if not calls:
                messages.append(reply.assistant_message())
                messages.append({"role": "user", "content": self._no_call_message(box, reply.finish_reason)})
                continue
            # Calls found in text go back as native calls: the model's template renders them and their results.
            calls = calls[:MAX_CALLS_PER_REPLY]
            assistant = LLMReply(content="" if not reply.tool_calls else reply.content, tool_calls=calls)
            messages.append(assistant.assistant_message())
            share = self.budget.results_tokens(self._tokens(messages, specs), len(calls))
            alone = len(calls) == 1
            terminal_among_others = not alone and any(_normalise_name(c.name, known) == box.terminal for c in calls)
            others_ok = True
            corrections: list[str] = []
            for call in calls:
                self.memory.calls.append(f"{call.name}({call.arguments[:80]})")
                del self.memory.calls[:-40]
                result = await self._run_call(call, box, known, alone=alone, earlier=earlier, step=step + 1)
                result = truncate(result, self.meter.chars(share))
                messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
                ok = not _refused(result)
                if _normalise_name(call.name, known) != box.terminal:
                    others_ok = others_ok and ok
                record = StepRecord(step + 1, call.name, call.arguments, result, ok)
                await self._record(record)
                if _normalise_name(call.name, known) != box.terminal:
                    corrections += await self._check(record)
            if corrections and box.outcome is None:
                messages.append({"role": "user", "content": "\n".join(dict.fromkeys(corrections))})
            # the model wanted to end after calls that worked: its next call is that, alone (forced)
            deferred = terminal_among_others and others_ok
            if box.outcome is not None:
                return LoopResult(True, f"{box.terminal} called after {step + 1} steps", usage, messages)
        reason = (
            f"step limit reached: the model made {self.max_steps} calls without calling {box.terminal}; "
            "its work was stopped there"
        )
        return LoopResult(False, reason, usage, messages, failed=True)

    @staticmethod
    def _failed(reason: str, usage: Usage, messages: list[dict[str, Any]], exc: StratusError) -> LoopResult:
        return LoopResult(False, reason, usage, messages, exc, failed=True)

    async def _record(self, record: StepRecord) -> None:
        if self.on_step is None:
            return
        try:
            await self.on_step(record)
        except Exception:  # the record is for people; the work goes on without it
            log.exception("could not record a reasoning step")

    async def _check(self, record: StepRecord) -> list[str]:
        """The step check's corrective note for this step, if it flags it; the flag is a timeline step too."""
        if self.step_check is None:
            return []
        try:
            note = await self.step_check(record)
        except Exception:  # a broken check must not stop the work
            log.exception("the step check failed")
            return []
        if not note:
            return []
        await self._record(
            StepRecord(record.step, "step_check", f"{record.tool}({record.arguments[:300]})", note, False)
        )
        return [note]

    @staticmethod
    def _repeat_note(calls: list[str]) -> str:
        done = "; ".join(dict.fromkeys(calls[-12:])) or "the same steps"
        return (
            "Note: this exact situation happened before in this incident and your answer then did not resolve it. "
            f"Do something different from what was already tried ({done[:600]})."
        )

    @staticmethod
    def _no_call_message(box: Toolbox, finish_reason: str | None) -> str:
        cut = "Your reply was cut off (too long). " if finish_reason == "length" else ""
        return (
            f"{cut}You did not call a tool. Reply with exactly one tool call, e.g. "
            '{"name": "list_objects", "arguments": {"kind": "Pod", "namespace": "..."}}. '
            f"Tools: {', '.join(box.names)}. When you are done, call {box.terminal}."
        )

    async def _run_call(
        self, call: ToolCall, box: Toolbox, known: set[str], *, alone: bool, earlier: dict[str, int], step: int
    ) -> str:
        name = _normalise_name(call.name, known)
        if name is None:
            return f"Unknown tool {call.name!r}. The tools are: {', '.join(box.names)}. Call one of them."
        tool = box.get(name)
        assert tool is not None
        args = parse_arguments(call.arguments)
        if isinstance(args, str):
            return f"Your call to {name} was not run: {args}. Call {name} again with a JSON object of arguments."
        if name == box.terminal and not alone:
            return (
                f"Refused: {name} must be called alone, after you have read the results of your other calls; it was "
                f"not run. Read the results above; your next reply is {name} alone."
            )
        key = f"{name}:{json.dumps(args, sort_keys=True)}"
        if name in box.reads and key in earlier:
            return (
                f"You already called {name} with these arguments at step {earlier[key]}; nothing you did since "
                "changes its answer. Use that result, or call a different tool."
            )
        try:
            result = await tool.run(args)
        except Exception as exc:  # the toolkit already turns failures into text; this is the last net
            log.exception("tool %s raised", name)
            return f"{name} failed: {type(exc).__name__}: {exc}"
        if name in box.reads:
            if not _refused(result):  # a refused call is answered with its refusal again, not a pointer
                earlier[key] = step
        else:
            earlier.clear()  # a write may change what the reads answer
        return result


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
    "- Pods belong to workloads: to act on a pod's code or configuration, change its Deployment or StatefulSet.\n"
    "- When your fix is in place, call end_transaction alone with the reason. If nothing safe can be done, call "
    "end_transaction with fixed=false and the reason."
)


def _bullets(items: list[str], limit: int = MAX_REFLECTION_CHARS) -> str:
    return "\n".join(f"- {truncate(item.strip(), limit)}" for item in items if item.strip())


def _candidates_text(candidates: list[Candidate], *, applicable: bool) -> str:
    lines = [f"{c.number}. {c.summary}" for c in candidates]
    how = (
        " Verify one with the read tools, then apply it with apply_candidate(number=N), or make your own fix."
        if applicable
        else ""
    )
    return "The rulebook's analyzers suggest (candidates, not certainties):" + how + "\n" + "\n".join(lines)


def diagnosis_prompt(request: DiagnoseRequest, candidates: list[Candidate] | None = None) -> str:
    parts = [f"Incident {request.incident_id} in namespace {request.scope}."]
    if request.evidence:
        parts.append("What the detector saw:\n" + _bullets(request.evidence))
    if candidates:
        parts.append(_candidates_text(candidates, applicable=False))
        parts.append("Check the candidate that best explains what the detector saw with a read or two, then submit.")
    else:
        parts.append(f"Start with list_objects(kind=Pod, namespace={request.scope}) or get_events({request.scope}).")
    return "\n\n".join(parts)


def mitigation_prompt(request: MitigateRequest, candidates: list[Candidate] | None = None) -> str:
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
    if candidates:
        parts.append(_candidates_text(candidates, applicable=True))
    parts.append("Check the current state first, then fix, then call end_transaction.")
    return "\n\n".join(parts)


# --- the reasoners ----------------------------------------------------------------------------------------------


Advisor = Callable[[ClusterTools, str, list[str]], Awaitable[list[Candidate]]]
"""Candidate causes and fixes from elsewhere (the rulebook) for a scope, given the reflections of failed attempts."""


@dataclass
class LLMOptions:
    """Knobs shared by both reasoners."""

    max_steps: int = 30
    tool_choice: ToolChoice = "auto"
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS
    """A tool's own cap on its text; the loop then cuts each result to its share of the context window."""
    context_tokens: int | None = None
    """The context window; None: ask the server, else ``DEFAULT_CONTEXT_TOKENS``."""
    reply_tokens: int = 768
    """Tokens kept for each reply (``max_tokens``)."""
    typed_writes: bool = True
    """Offer one typed tool per write verb (else writes go through kubectl lines only)."""
    force_final: bool = True
    """On the last step, force the terminal tool (``tool_choice`` naming it) so the work ends with an answer."""
    keep_turns: int = 2
    """Turns kept verbatim when history is folded."""

    @classmethod
    def compact(cls, max_steps: int = 30) -> LLMOptions:
        """For a small local model: no typed write tools (their schemas cost ~3,000 tokens), one turn kept verbatim."""
        return cls(max_steps=max_steps, max_output_chars=3000, typed_writes=False, keep_turns=1)


class _LLMReasoner:
    service = "agent"

    def __init__(self, client: LLMClient, options: LLMOptions | None = None, *, advisor: Advisor | None = None) -> None:
        self.client = client
        self.options = options or LLMOptions()
        self.advisor = advisor
        self.last_messages: list[dict[str, Any]] = []
        """The conversation of the last piece of work (for logs and tests; never fed into a later prompt)."""
        self.on_event: Callable[[ReasoningStep], Awaitable[None]] | None = None
        """Where each tool call goes as a timeline event (set by the service's wiring to publish on the bus)."""
        self.step_check: StepCheck | None = None
        """Agent-step failure detection (``STRATUS_STEP_CHECK_ENABLED``): flags a step and re-prompts with a lesson."""
        self.meter = TokenMeter()
        self._memory: OrderedDict[str, IncidentMemory] = OrderedDict()
        self._last_budget: Budget | None = None
        """The budget of the last piece of work (for tests and logs)."""

    @classmethod
    def from_settings(
        cls, settings: ReasonerSettings, options: LLMOptions | None = None, *, advisor: Advisor | None = None
    ) -> Self:
        if options is None:
            steps = settings.llm_max_steps
            options = LLMOptions.compact(steps) if settings.llm_compact else LLMOptions(max_steps=steps)
            options.context_tokens = settings.llm_context_tokens
            options.reply_tokens = settings.llm_reply_tokens
        reasoner = cls(LLMClient.from_settings(settings), options, advisor=advisor)
        if settings.step_check_enabled:
            from stratus.stepcheck.hook import StepCheckHook

            reasoner.step_check = StepCheckHook(threshold=settings.step_check_threshold)
        return reasoner

    async def aclose(self) -> None:
        """Close the client's connections (a reasoner owns its client)."""
        await self.client.close()

    def _memory_of(self, incident_id: str) -> IncidentMemory:
        """What was sent and called for an incident (the last 64 incidents are remembered)."""
        if incident_id not in self._memory:
            self._memory[incident_id] = IncidentMemory()
            while len(self._memory) > 64:
                self._memory.popitem(last=False)
        self._memory.move_to_end(incident_id)
        return self._memory[incident_id]

    async def _loop(self, incident_id: str, tx_id: str | None = None, attempt: int | None = None) -> ToolLoop:
        o = self.options
        context = o.context_tokens or await self.client.context_tokens() or DEFAULT_CONTEXT_TOKENS
        reply = min(o.reply_tokens, context // 4)
        counter = [0]
        self._last_budget = Budget(context=context, reply=reply)

        async def on_step(record: StepRecord) -> None:
            args, result = scrub(record.arguments), scrub(record.result)
            log.info(
                "%s%s step %d: %s(%s) -> %s",
                incident_id,
                f" {tx_id}" if tx_id else "",
                record.step,
                record.tool,
                args[:300],
                " ".join(result[:300].split()),
            )
            if self.on_event is None:
                return
            seq = counter[0] = counter[0] + 1
            event = ReasoningStep(
                id=f"{tx_id or incident_id + ':diagnosis'}:step:{seq}",
                incident_id=incident_id,
                service=self.service,
                step=record.step,
                tool=record.tool[:100],
                arguments=truncate(args, STEP_TEXT_CHARS),
                result=truncate(result, STEP_TEXT_CHARS),
                ok=record.ok,
                tx_id=tx_id,
                attempt=attempt,
            )
            await self.on_event(event)

        return ToolLoop(
            self.client,
            max_steps=o.max_steps,
            tool_choice=o.tool_choice,
            budget=self._last_budget,
            meter=self.meter,
            force_final=o.force_final,
            memory=self._memory_of(incident_id),
            on_step=on_step,
            step_check=self.step_check,
            keep_turns=o.keep_turns,
        )

    async def _candidates(self, tools: ClusterTools, scope: str, reflections: list[str]) -> list[Candidate]:
        if self.advisor is None:
            return []
        try:
            return (await self.advisor(tools, scope, reflections))[:4]
        except Exception:  # advice is optional; the model can still investigate on its own
            log.exception("the advisor failed")
            return []


class LLMDiagnosisReasoner(_LLMReasoner):
    """Diagnose with read-only tools; the answer is the model's ``submit_diagnosis`` call.

    When the loop fails (the LLM unreachable, errors, over budget, no answer within the step limit) ``diagnose``
    raises ``LLMFailed`` with the reason, so a fallback can take over or the failure is reported as such.
    """

    service = "diagnoser"

    async def diagnose(self, request: DiagnoseRequest, tools: ClusterTools) -> DiagnosisReady:
        box = diagnosis_toolbox(tools, request.scope, limit=self.options.max_output_chars)
        candidates = await self._candidates(tools, request.scope, [])
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": DIAGNOSIS_SYSTEM},
            {"role": "user", "content": diagnosis_prompt(request, candidates)},
        ]
        result = await (await self._loop(request.incident_id)).run(messages, box)
        self.last_messages = result.messages
        if not result.done or box.outcome is None:
            raise LLMFailed(result.reason, result.usage, result.error)
        out = box.outcome
        return DiagnosisReady(
            incident_id=request.incident_id,
            localisation=list(out["localisation"]),
            root_cause=RootCause(system_level=out["system_level"], fault_type=out["fault_type"]),
            summary=out["summary"],
            evidence=[*request.evidence, *out.get("evidence", [])],
            usage=result.usage,
        )


class LLMFailed(PermanentError):
    """The LLM could not do a piece of work; the reason says why (an error, the budget, the step limit)."""

    def __init__(self, reason: str, usage: Usage, cause: StratusError | None = None) -> None:
        super().__init__(reason)
        self.usage = usage
        self.cause = cause

    @property
    def temporary(self) -> bool:
        """The endpoint was unavailable (it may come back), as opposed to the model failing at the task."""
        return isinstance(self.cause, LLMUnavailable)


class LLMMitigationReasoner(_LLMReasoner):
    """Plan and run one transaction of at most K writes through the tools; ends with ``end_transaction``.

    The result is ``failed`` (with the reason) when the loop failed; ``done`` with ``fixed=False`` when the model
    ended the transaction saying it found no safe fix.
    """

    service = "mitigator"

    async def mitigate(self, request: MitigateRequest, tools: MitigationTools) -> MitigationResult:
        o = self.options
        candidates = await self._candidates(tools, request.scope, request.reflections)
        box = mitigation_toolbox(
            tools, request.scope, limit=o.max_output_chars, typed_writes=o.typed_writes, candidates=candidates
        )
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": MITIGATION_SYSTEM.format(k=request.max_actions, scope=request.scope)},
            {"role": "user", "content": mitigation_prompt(request, candidates)},
        ]
        loop = await self._loop(request.incident_id, request.tx_id, request.attempt)
        result = await loop.run(messages, box)
        self.last_messages = result.messages
        if result.done and box.outcome is not None:
            return MitigationResult(done=True, reason=str(box.outcome["reason"]), usage=result.usage)
        return MitigationResult(done=False, reason=result.reason, usage=result.usage, failed=True)
