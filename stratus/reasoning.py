"""The seam between the agents (diagnoser, mitigator) and their reasoners (LLM, rulebook, scripted, chaos).

A reasoner never holds a client of its own: it acts only through the tools it is handed, and the tools go through
the cluster gateway, which enforces confinement, dry run, the lease and the journal. So whatever a reasoner decides,
hostile or mistaken, the safety contract is enforced in code underneath it.

- ``ClusterTools``: read-only access (both agents).
- ``MitigationTools``: ``ClusterTools`` plus ``execute`` of a write under the transaction's lease (mitigator only),
  counting against the transaction's bound K.
- ``Tool``: the same capabilities as named tools with JSON-schema parameters, for tool-calling LLMs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from stratus.contracts import DiagnoseRequest, DiagnosisReady, MitigateRequest, ReasoningStep, Usage, events_subject
from stratus.scrub import scrub_text

Obj = dict[str, Any]


class ClusterTools(Protocol):
    async def list_objects(self, kind: str, namespace: str | None = None) -> list[Obj]:
        """Objects of a kind (``Pod``, ``Service``...) as JSON-shaped dicts; cluster-scoped kinds take None."""
        ...

    async def get_object(self, kind: str, namespace: str | None, name: str) -> Obj | None: ...

    async def logs(
        self, namespace: str, pod: str, container: str | None = None, tail: int = 100, previous: bool = False
    ) -> str: ...

    async def events(self, namespace: str) -> list[Obj]: ...

    async def traces(self, namespace: str, service: str | None = None, limit: int = 50) -> list[Obj]:
        """Jaeger-shaped traces (``[{traceID, spans:[...], processes:{...}}]``); empty when no tracing is set up."""
        ...

    async def kubectl(self, command: str) -> str:
        """Run a confined kubectl command line and return its text (a refusal comes back as text, not raised)."""
        ...


class MitigationTools(ClusterTools, Protocol):
    async def execute(self, action: Any) -> str:
        """Run one write action (a ``stratus.actions`` model) under the lease: confine, dry-run, journal, write.

        Returns the gateway's message; raises ``stratus.errors.PermanentError`` (refusal, failed dry run, lost
        lease, K exhausted) with a message meant for the reasoner.
        """
        ...

    @property
    def writes_left(self) -> int: ...


@dataclass
class Tool:
    """A capability as an LLM tool: name, description, JSON-schema parameters and the coroutine that runs it."""

    name: str
    description: str
    parameters: dict[str, Any]
    run: Callable[[dict[str, Any]], Awaitable[str]]


@dataclass
class MitigationResult:
    """How a reasoner ended its transaction (the writes themselves were reported by the tools)."""

    done: bool = True
    reason: str = ""
    usage: Usage = field(default_factory=Usage)
    failed: bool = False
    """The reasoner could not do its work (e.g. the LLM failed): the transaction ends as failed, with ``reason``."""
    recalled_from: str | None = None
    """The incident memory whose committed fix this transaction replayed (MemoryFirst)."""


class DiagnosisReasoner(Protocol):
    async def diagnose(self, request: DiagnoseRequest, tools: ClusterTools) -> DiagnosisReady: ...


class MitigationReasoner(Protocol):
    async def mitigate(self, request: MitigateRequest, tools: MitigationTools) -> MitigationResult: ...


def scrub(text: str) -> str:
    """``text`` with anything that looks like a credential replaced by ``***`` (for logs and the timeline)."""
    return scrub_text(text)


class _Publisher(Protocol):
    async def publish(self, subject: str, message: Any) -> Any: ...


def publish_steps(reasoner: object, bus: _Publisher) -> int:
    """Put every tool call of the LLM reasoner inside ``reasoner`` (itself, or wrapped by the fallback and hybrid
    reasoners under ``.llm``) on its incident's timeline. Returns how many reasoners were wired (0 for the rulebook).
    Duck-typed on purpose: the wiring of a rulebook-only service must not import the LLM stack."""

    async def publish(step: ReasoningStep) -> None:
        topology = getattr(bus, "topology", None)  # the deployment's subject names, when the bus has them
        subject = (topology.events if topology is not None else events_subject)(step.incident_id, step.kind)
        await bus.publish(subject, step)

    wired = 0
    for _ in range(4):
        if reasoner is None:
            break
        if hasattr(reasoner, "on_event"):
            reasoner.on_event = publish
            wired += 1
            break
        reasoner = getattr(reasoner, "llm", None)
    return wired
