"""The tools an LLM reasoner hands to the model, built from the tool protocols of ``stratus.reasoning``.

Why it is shaped this way: a tool's result is always text for the model. A bad call (wrong types, a refusal, a
failed dry run, K exhausted, an API error) comes back as a message saying what went wrong and what to do instead; it
never raises out of the tool loop, because a model that reads its mistake can correct it and a crashed loop cannot.

Every write, whether a typed tool call or a ``kubectl`` line, ends in ``MitigationTools.execute``: one gateway path
with confinement, dry run, the lease and the journal, counted against the transaction's bound K. The typed write
tools take their JSON schemas from the action models themselves (``stratus.actions``), so the schema the model sees
is the validation the gateway applies.

The terminal tools (``submit_diagnosis``, ``end_transaction``) record the model's final answer in ``Toolbox.outcome``;
the loop stops when it is set. ``end_transaction`` claiming a fix (``fixed``, the default) when no write was made is
refused with a message saying so: a small model otherwise "fixes" incidents in prose.

Where a pod is needed (logs, a Pod by name) a workload's name is accepted and resolved to its pods, the one in the
worst state first; an unknown name is answered with the pods that do exist. Models name Deployments far more often
than the generated pod names.

Candidates (``Candidate``) are fixes another reasoner (the rulebook) proposes; ``apply_candidate`` runs one through
the same write path as every other write.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stratus.actions import ACTION_TYPES, Action, is_cluster_scoped, resolve_kind
from stratus.confinement import Refusal
from stratus.errors import PermanentError
from stratus.kubectl import parse_command, render_events, render_object, render_table
from stratus.reasoning import ClusterTools, MitigationTools, Obj, Tool

SYSTEM_LEVELS = ("Hardware", "Operating System", "Virtualization", "Application")
FAULT_TYPES = (
    "Misconfiguration",
    "Code Defect",
    "Authentication Issue",
    "Network/Storage Issue",
    "Operation Error",
    "Dependency Problem",
)
"""AIOpsLab's root-cause vocabulary (analysis task): both must match for a correct answer."""

TYPED_WRITE_VERBS = (
    "scale",
    "patch",
    "set_image",
    "set_env",
    "rollout_restart",
    "rollout_undo",
    "delete",
    "apply",
    "create",
    "cordon",
    "uncordon",
    "exec",
)
"""Write verbs offered as typed tools (``replace`` is left to undo plans)."""

DEFAULT_MAX_OUTPUT_CHARS = 4000


# --- arguments of the read and terminal tools ------------------------------------------------------------------


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KubectlArgs(_Args):
    command: str = Field(description="One kubectl command line, e.g. kubectl get pods -n NAMESPACE (no pipes).")


class KubectlWriteArgs(KubectlArgs):
    exec_inverse: list[str] | None = Field(
        default=None,
        description="Ignored: kubectl exec lines are refused; use the exec tool with a data-plane catalogue operation.",
    )


class LogsArgs(_Args):
    namespace: str | None = Field(default=None, description="Namespace; the incident's when omitted.")
    pod: str = Field(description="Pod name.")
    container: str | None = Field(default=None, description="Container; the first one when omitted.")
    tail: int = Field(default=50, ge=1, le=1000, description="Only the last N lines.")
    previous: bool = Field(default=False, description="Logs of the previous (crashed) instance.")


class EventsArgs(_Args):
    namespace: str | None = Field(default=None, description="Namespace; the incident's when omitted.")


class TracesArgs(_Args):
    namespace: str | None = Field(default=None, description="Namespace; the incident's when omitted.")
    service: str | None = Field(default=None, description="Only traces through this service.")
    limit: int = Field(default=30, ge=1, le=200, description="At most this many traces.")


class ListArgs(_Args):
    kind: str = Field(description="Kubernetes kind: Pod, Deployment, Service, ConfigMap, Node, ...")
    namespace: str | None = Field(default=None, description="Namespace; the incident's when omitted.")


class GetArgs(ListArgs):
    name: str = Field(description="Name of the object.")


class DiagnosisArgs(_Args):
    localisation: list[str] = Field(
        min_length=1, description="The faulty components (service or workload names), most likely first."
    )
    system_level: str = Field(description="One of: " + ", ".join(SYSTEM_LEVELS) + ".")
    fault_type: str = Field(description="One of: " + ", ".join(FAULT_TYPES) + ".")
    summary: str = Field(description="Two or three sentences: what is wrong and the evidence for it.")
    evidence: list[str] = Field(default_factory=list, description="Short facts that support the diagnosis.")

    @field_validator("localisation", mode="before")
    @classmethod
    def _one_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("localisation")
    @classmethod
    def _bare_names(cls, value: list[str]) -> list[str]:
        """Components by name: ``Deployment/user-service`` or ``ns/user-service`` is ``user-service``."""
        return [item.strip().rsplit("/", 1)[-1] for item in value if item.strip().rsplit("/", 1)[-1]] or value

    @field_validator("system_level")
    @classmethod
    def _level(cls, value: str) -> str:
        return _vocabulary(value, SYSTEM_LEVELS, "system_level")

    @field_validator("fault_type")
    @classmethod
    def _fault(cls, value: str) -> str:
        return _vocabulary(value, FAULT_TYPES, "fault_type")


class EndArgs(_Args):
    reason: str = Field(description="What you changed and why you expect it fixed the incident (or why you stop).")
    fixed: bool = Field(default=True, description="false when you stop without a fix.")


class CandidateArgs(_Args):
    number: int = Field(ge=1, description="The candidate's number.")


def _vocabulary(value: str, allowed: tuple[str, ...], what: str) -> str:
    key = " ".join(value.replace("_", " ").split()).lower()
    for item in allowed:
        if item.lower() == key:
            return item
    raise ValueError(f"{what} must be one of: {', '.join(allowed)}")


# --- the toolbox ------------------------------------------------------------------------------------------------


@dataclass
class Candidate:
    """A fix proposed by another reasoner: what it explains, and the writes that make it."""

    number: int
    summary: str
    actions: list[Action]
    then: list[Action] = field(default_factory=list)
    """Writes to run once ``wait_for`` (a Service) has a ready endpoint (clients restarted after their upstream)."""
    wait_for: str | None = None


@dataclass
class Toolbox:
    """The tools of one piece of work and the final answer once the terminal tool accepted it."""

    tools: list[Tool]
    terminal: str
    outcome: dict[str, Any] | None = None
    writes: list[str] = field(default_factory=list)
    """Messages of the writes the model made (mitigation only)."""
    reads: set[str] = field(default_factory=set)
    """Tools that only read: calling one again with the same arguments before any write gets the same answer."""
    hidden: list[Tool] = field(default_factory=list)
    """Tools that work when called but are not described to the model (their schemas would cost too many tokens):
    a model that calls ``patch`` or ``scale`` from its training gets them instead of an unknown-tool refusal."""

    def get(self, name: str) -> Tool | None:
        for tool in [*self.tools, *self.hidden]:
            if tool.name == name:
                return tool
        return None

    @property
    def callable_names(self) -> list[str]:
        return [t.name for t in [*self.tools, *self.hidden]]

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tools]

    def specs(self) -> list[dict[str, Any]]:
        """The tools in the OpenAI chat-completions format."""
        return [
            {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
            for t in self.tools
        ]


def _strip_titles(schema: Any) -> Any:
    """The schema without what a model does not need: pydantic's ``title``s, ``additionalProperties: false`` (the
    validation refuses extra keys anyway), ``default: null``, and ``anyOf [X, null]`` (an optional X is just X)."""
    if isinstance(schema, dict):
        options = schema.get("anyOf")
        if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
            other = next(o for o in options if o != {"type": "null"})
            rest = {k: v for k, v in schema.items() if k != "anyOf"}
            return _strip_titles({**other, **rest})
        out: dict[str, Any] = {}
        for key, value in schema.items():
            if key == "title" and isinstance(value, str):
                continue
            if (key, value) in (("additionalProperties", False), ("default", None)):
                continue
            if key == "properties" and isinstance(value, dict):
                out[key] = {k: _strip_titles(v) for k, v in value.items()}
            else:
                out[key] = _strip_titles(value)
        return out
    if isinstance(schema, list):
        return [_strip_titles(v) for v in schema]
    return schema


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = text[: limit * 3 // 4]
    tail = text[-(limit // 4) :]
    return f"{head}\n... [{len(text) - len(head) - len(tail)} characters cut] ...\n{tail}"


def validation_message(name: str, exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        problems.append(f"{where}: {str(err['msg']).removeprefix('Value error, ')}")
    return f"Invalid arguments for {name}: " + "; ".join(problems) + f". Call {name} again with corrected arguments."


def _tool(
    name: str,
    description: str,
    args_model: type[_Args],
    fn: Callable[[Any], Awaitable[str]],
    limit: int,
) -> Tool:
    async def run(args: dict[str, Any]) -> str:
        try:
            parsed = args_model.model_validate(args)
        except ValidationError as exc:
            return validation_message(name, exc)
        try:
            return truncate(await fn(parsed), limit)
        except PermanentError as exc:
            return str(exc)
        except ValueError as exc:
            return f"{name} refused: {exc}"
        except Exception as exc:  # a tool failure is information for the model, never a crash of the loop
            return f"{name} failed: {type(exc).__name__}: {exc}"

    schema = _strip_titles(args_model.model_json_schema())
    return Tool(name=name, description=description, parameters=schema, run=run)


def with_namespace(command: str, namespace: str) -> str:
    """``kubectl -n NAMESPACE ...`` when the line names no namespace (small models often forget it)."""
    try:
        tokens = shlex.split(command)
    except ValueError:
        return command
    if not tokens or tokens[0] != "kubectl":
        return command
    words = tokens[: tokens.index("--")] if "--" in tokens else tokens
    for tok in words:
        if tok in ("-n", "--namespace", "-A", "--all-namespaces") or tok.startswith(("--namespace=", "-n=")):
            return command
    return f"kubectl -n {shlex.quote(namespace)}" + command.strip()[len("kubectl") :]


# --- trace summaries --------------------------------------------------------------------------------------------


def _span_failed(span: Obj) -> bool:
    for tag in span.get("tags") or []:
        key, value = tag.get("key"), tag.get("value")
        if key == "error" and value in (True, "true", "True"):
            return True
        if key == "otel.status_code" and value == "ERROR":
            return True
        if key == "http.status_code":
            try:
                if int(value) >= 500:
                    return True
            except (TypeError, ValueError):
                pass
    return False


def _span_error_text(span: Obj) -> str:
    for tag in span.get("tags") or []:
        if tag.get("key") in ("error.message", "exception.message", "otel.status_description", "message"):
            return str(tag.get("value"))[:160]
    for entry in span.get("logs") or []:
        for fld in entry.get("fields") or []:
            if fld.get("key") in ("message", "error.message", "event"):
                return str(fld.get("value"))[:160]
    return ""


def summarise_traces(traces: list[Obj]) -> str:
    """Jaeger traces as text: calls, errors and latency per service operation, and the deepest failing spans."""
    if not traces:
        return "No traces found (tracing may not be set up for this namespace)."
    stats: dict[tuple[str, str], list[float]] = {}
    errors: dict[tuple[str, str], int] = {}
    leaves: dict[tuple[str, str], str] = {}
    failing_traces = 0
    for trace in traces:
        processes = trace.get("processes") or {}
        spans = trace.get("spans") or []
        failed_ids = {s.get("spanID") for s in spans if _span_failed(s)}
        if failed_ids:
            failing_traces += 1
        failed_parents = set()
        for span in spans:
            if span.get("spanID") not in failed_ids:
                continue
            for ref in span.get("references") or []:
                if ref.get("spanID") in failed_ids:
                    failed_parents.add(ref.get("spanID"))
        for span in spans:
            service = str((processes.get(span.get("processID")) or {}).get("serviceName", "?"))
            key = (service, str(span.get("operationName", "?")))
            stats.setdefault(key, []).append(float(span.get("duration") or 0) / 1000.0)
            if span.get("spanID") in failed_ids:
                errors[key] = errors.get(key, 0) + 1
                if span.get("spanID") not in failed_parents:
                    leaves.setdefault(key, _span_error_text(span))
    lines = [f"{len(traces)} traces, {failing_traces} with errors.", "service operation: calls, errors, max ms"]
    ranked = sorted(stats.items(), key=lambda kv: (-errors.get(kv[0], 0), -max(kv[1])))
    for (service, op), durations in ranked[:25]:
        lines.append(f"  {service} {op}: {len(durations)}, {errors.get((service, op), 0)}, {max(durations):.1f}")
    if leaves:
        lines.append("Deepest failing operations (errors not explained by a failing callee):")
        for (service, op), text in list(leaves.items())[:10]:
            lines.append(f"  {service} {op}" + (f": {text}" if text else ""))
    return "\n".join(lines)


# --- building the toolboxes -------------------------------------------------------------------------------------


def _owner_names(pod: Obj) -> set[str]:
    """The workload names a pod belongs to: its owners' names, and the Deployment's (a ReplicaSet's name minus its
    pod-template hash)."""
    names: set[str] = set()
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        name = str(ref.get("name") or "")
        if name:
            names.add(name)
            if ref.get("kind") == "ReplicaSet" and "-" in name:
                names.add(name.rsplit("-", 1)[0])
    return names


def _badness(pod: Obj) -> tuple[int, int]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    not_ready = sum(1 for c in statuses if not c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
    return (not_ready, restarts)


async def resolve_pod(tools: ClusterTools, namespace: str, name: str) -> tuple[str | None, str]:
    """The pod meant by ``name``: itself when it exists, else a pod of the workload of that name (the least healthy
    one) with a note saying so, else None and a message listing the pods that exist."""
    if await tools.get_object("Pod", namespace, name) is not None:
        return name, ""
    pods = await tools.list_objects("Pod", namespace)
    mine = [
        p
        for p in pods
        if name in _owner_names(p) or str((p.get("metadata") or {}).get("name", "")).startswith(f"{name}-")
    ]
    if mine:
        mine.sort(key=_badness, reverse=True)
        chosen = str(mine[0]["metadata"]["name"])
        others = [str(p["metadata"]["name"]) for p in mine[1:4]]
        also = f"; its other pods: {', '.join(others)}" if others else ""
        return chosen, f"(No pod is named {name}: showing pod {chosen} of workload {name}{also}.)\n"
    existing = ", ".join(str((p.get("metadata") or {}).get("name")) for p in pods[:30]) or "none"
    return None, f"No pod or workload named {name} in namespace {namespace}. Its pods: {existing}."


def read_tools(tools: ClusterTools, scope: str, *, limit: int = DEFAULT_MAX_OUTPUT_CHARS) -> list[Tool]:
    """The read-only tools both agents get (the diagnoser's ``kubectl`` is read-only: writes are refused)."""

    def now() -> datetime:
        return datetime.now(UTC)

    async def kubectl(a: KubectlArgs) -> str:
        return await tools.kubectl(with_namespace(a.command, scope))

    async def get_logs(a: LogsArgs) -> str:
        ns = a.namespace or scope
        pod, note = await resolve_pod(tools, ns, a.pod)
        if pod is None:
            return note
        text = await tools.logs(ns, pod, a.container, a.tail, a.previous)
        return note + (text or "(no log lines)")

    async def get_events(a: EventsArgs) -> str:
        return render_events(await tools.events(a.namespace or scope), now=now())

    async def get_traces(a: TracesArgs) -> str:
        return summarise_traces(await tools.traces(a.namespace or scope, a.service, a.limit))

    async def list_objects(a: ListArgs) -> str:
        kind = resolve_kind(a.kind)
        ns = None if is_cluster_scoped(kind) else a.namespace or scope
        objects = await tools.list_objects(kind, ns)
        return render_table(kind, objects, namespace_column=ns is None, now=now())

    async def get_object(a: GetArgs) -> str:
        kind = resolve_kind(a.kind)
        ns = None if is_cluster_scoped(kind) else a.namespace or scope
        obj = await tools.get_object(kind, ns, a.name)
        note = ""
        if obj is None and kind == "Pod" and ns:
            pod, note = await resolve_pod(tools, ns, a.name)
            if pod is None:
                return note
            obj = await tools.get_object(kind, ns, pod)
        if obj is None:
            where = f" in namespace {ns}" if ns else ""
            return f"{kind} {a.name} not found{where}. List the objects of this kind to see what exists."
        return note + render_object(obj, "yaml")

    return [
        _tool(
            "kubectl",
            "Run one read-only kubectl command line (get, describe, logs, events, rollout status/history). "
            "No pipes, no shell; one command per call.",
            KubectlArgs,
            kubectl,
            limit,
        ),
        _tool("get_logs", "Container logs of a pod.", LogsArgs, get_logs, limit),
        _tool("get_events", "Recent events of a namespace (warnings, failing pods).", EventsArgs, get_events, limit),
        _tool(
            "get_traces",
            "Summary of recent distributed traces: errors and latency per service operation, deepest failures.",
            TracesArgs,
            get_traces,
            limit,
        ),
        _tool("list_objects", "List the objects of a kind as a kubectl-like table.", ListArgs, list_objects, limit),
        _tool("get_object", "One object as YAML (spec and status).", GetArgs, get_object, limit),
    ]


def diagnosis_toolbox(tools: ClusterTools, scope: str, *, limit: int = DEFAULT_MAX_OUTPUT_CHARS) -> Toolbox:
    """Read tools plus ``submit_diagnosis``."""
    box = Toolbox(tools=read_tools(tools, scope, limit=limit), terminal="submit_diagnosis")
    box.reads = set(box.names)

    async def submit(a: DiagnosisArgs) -> str:
        box.outcome = a.model_dump()
        return "Diagnosis submitted."

    box.tools.append(
        _tool(
            "submit_diagnosis",
            "Submit your diagnosis once (this ends the investigation): the faulty components and the root cause "
            "in AIOpsLab's vocabulary.",
            DiagnosisArgs,
            submit,
            limit,
        )
    )
    return box


def _write_schema(verb: str) -> dict[str, Any]:
    schema: dict[str, Any] = _strip_titles(ACTION_TYPES[verb].model_json_schema())
    schema["properties"] = {k: v for k, v in schema.get("properties", {}).items() if k != "verb"}
    schema["required"] = [r for r in schema.get("required", []) if r != "verb"]
    schema.pop("description", None)
    return schema


def mitigation_toolbox(
    tools: MitigationTools,
    scope: str,
    *,
    limit: int = DEFAULT_MAX_OUTPUT_CHARS,
    typed_writes: bool = True,
    candidates: list[Candidate] | None = None,
) -> Toolbox:
    """Read tools, a read-or-write ``kubectl``, one typed tool per write verb, and ``end_transaction``.

    ``typed_writes=False`` leaves out the typed write tools (their schemas are ~3,000 tokens, too many for a small
    model's context): the model then writes through ``kubectl`` lines only.
    """
    reads = [t for t in read_tools(tools, scope, limit=limit) if t.name != "kubectl"]
    box = Toolbox(tools=[], terminal="end_transaction", reads={t.name for t in reads})

    async def execute(action: Action) -> str:
        try:
            message = await tools.execute(action)
        except PermanentError as exc:
            return f"Write {action.verb} on {action.target} was not done: {exc} (writes left: {tools.writes_left})"
        box.writes.append(message)
        return f"{message} (writes left in this transaction: {tools.writes_left})"

    async def kubectl(a: KubectlWriteArgs) -> str:
        line = with_namespace(a.command, scope)
        try:
            actions = parse_command(line, role="write", namespace=scope, exec_inverse=a.exec_inverse)
        except Refusal as exc:
            return str(exc)
        if not any(action.is_write for action in actions):
            return await tools.kubectl(line)
        return "\n\n".join([await execute(action) for action in actions])

    kubectl_tool = _tool(
        "kubectl",
        "Run one kubectl command line: reads (get, describe, logs, events, rollout status/history) or writes "
        "(scale, patch, set image/env, rollout restart/undo, delete, apply -f, create -f, cordon, uncordon, exec). "
        "Each write counts against your transaction's limit. No pipes, no shell; one command per call.",
        KubectlWriteArgs,
        kubectl,
        limit,
    )

    def typed(verb: str) -> Tool:
        model = ACTION_TYPES[verb]

        async def run(args: dict[str, Any]) -> str:
            data = {**args, "verb": verb}
            data.setdefault("namespace", scope)
            try:
                action = model.model_validate(data)
            except ValidationError as exc:
                return validation_message(verb, exc)
            except ValueError as exc:
                return f"{verb} refused: {exc}"
            try:
                return truncate(await execute(action), limit)  # type: ignore[arg-type]
            except Exception as exc:  # never out of the loop
                return f"{verb} failed: {type(exc).__name__}: {exc}"

        doc = (model.__doc__ or verb).strip().splitlines()[0]
        description = f"Write: {doc} Counts against the limit."
        return Tool(name=verb, description=description, parameters=_write_schema(verb), run=run)

    async def end(a: EndArgs) -> str:
        if a.fixed and not box.writes:
            return (
                "Refused: you made no write in this transaction, so nothing was fixed yet. Make the fix with a write "
                "(kubectl scale/patch/set/rollout ..." + (" or apply_candidate" if candidates else "") + "), then "
                "call end_transaction; or, if no safe fix exists, call end_transaction with fixed=false and why."
            )
        box.outcome = a.model_dump()
        return "Transaction ended."

    applied: set[int] = set()

    async def apply_candidate(a: CandidateArgs) -> str:
        chosen = next((c for c in candidates or [] if c.number == a.number), None)
        if chosen is None:
            numbers = ", ".join(str(c.number) for c in candidates or []) or "none"
            return f"Refused: there is no candidate {a.number}; the candidates are: {numbers}."
        if a.number in applied:
            return (
                f"Refused: candidate {a.number} is already applied in this transaction; applying it again changes "
                "nothing. Check its effect with a read, or call end_transaction."
            )
        applied.add(a.number)
        out = [await execute(action) for action in chosen.actions]
        if chosen.then and all("was not done" not in line for line in out):
            if chosen.wait_for:
                await wait_for_endpoints(tools, scope, chosen.wait_for)
            out += [await execute(action) for action in chosen.then]
        return "\n".join(out)

    extra: list[Tool] = []
    if candidates:
        extra.append(
            _tool(
                "apply_candidate",
                "Write: apply the fix of a numbered candidate (its writes count against the limit).",
                CandidateArgs,
                apply_candidate,
                limit,
            )
        )

    box.tools = [
        kubectl_tool,
        *reads,
        *(typed(verb) for verb in (TYPED_WRITE_VERBS if typed_writes else ())),
        *extra,
        _tool(
            "end_transaction",
            "End your transaction (call it alone, after your last write): the system then measures the incident's "
            "health and keeps or undoes your writes.",
            EndArgs,
            end,
            limit,
        ),
    ]
    if not typed_writes:
        box.hidden = [typed(verb) for verb in TYPED_WRITE_VERBS]
    return box


async def wait_for_endpoints(tools: ClusterTools, namespace: str, service: str, timeout_s: float = 30.0) -> None:
    """Wait (bounded) until ``service`` has a ready endpoint, so clients restarted after it find it up."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        try:
            ep = await tools.get_object("Endpoints", namespace, service)
            if ep is None or any(s.get("addresses") for s in ep.get("subsets") or []):
                return
        except Exception:  # a read failing while things restart: keep waiting until the deadline
            pass
        await asyncio.sleep(1.0)
