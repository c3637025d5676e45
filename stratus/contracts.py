"""Every message that crosses the bus, with the subjects and JetStream streams it travels on.

One module on purpose: a reader finds here the whole conversation between the services. Messages are pydantic v2
models; the events of an incident form one union discriminated on ``kind`` and decoded by one ``TypeAdapter``.

Streams (all JetStream, file storage):

- ``STRATUS_ALERTS``  ``stratus.alerts.<scope>``: normalised alerts, bridge -> detector (limits retention).
- ``STRATUS_WORK``    ``stratus.work.<service>``: work requests, coordinator -> agents. Work-queue retention: each
  request is taken by exactly one replica of the service through the service's durable pull consumer.
- ``STRATUS_EVENTS``  ``stratus.events.<incident_id>.<kind>``: everything that happens to an incident, in order.
  The coordinator consumes it; ``stratus incidents show`` replays it; it is the audit trail.
- ``STRATUS_JOURNAL`` ``stratus.journal.<tx_id>``: the write-ahead journal, one subject per transaction.

Health is plain NATS request/reply on ``stratus.health.<service>`` (every replica answers).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

SCHEMA_VERSION: Literal[1] = 1

# --- subjects and streams -------------------------------------------------------------------------------------

SUBJECT_PREFIX = "stratus"

ALERTS_STREAM = "STRATUS_ALERTS"
WORK_STREAM = "STRATUS_WORK"
EVENTS_STREAM = "STRATUS_EVENTS"
JOURNAL_STREAM = "STRATUS_JOURNAL"

SERVICES = ("bridge", "detector", "coordinator", "diagnoser", "mitigator", "undoer")
"""Every Stratus service, in the order ``stratus up`` starts them."""


def token(value: str) -> str:
    """Make ``value`` safe as one NATS subject token (no dots, spaces or wildcards)."""
    out = "".join(c if c.isalnum() or c in "-_" else "_" for c in value)
    return out or "_"


def alerts_subject(scope: str) -> str:
    return f"{SUBJECT_PREFIX}.alerts.{token(scope)}"


def work_subject(service: str) -> str:
    return f"{SUBJECT_PREFIX}.work.{service}"


def events_subject(incident_id: str, kind: str) -> str:
    return f"{SUBJECT_PREFIX}.events.{token(incident_id)}.{kind}"


def journal_subject(tx_id: str) -> str:
    return f"{SUBJECT_PREFIX}.journal.{token(tx_id)}"


def health_subject(service: str) -> str:
    return f"{SUBJECT_PREFIX}.health.{service}"


ALL_ALERTS = f"{SUBJECT_PREFIX}.alerts.>"
ALL_WORK = f"{SUBJECT_PREFIX}.work.>"
ALL_EVENTS = f"{SUBJECT_PREFIX}.events.>"
ALL_JOURNAL = f"{SUBJECT_PREFIX}.journal.>"


class StreamSpec(BaseModel):
    """A JetStream stream the services rely on; ``stratus.bus`` creates it when missing."""

    model_config = ConfigDict(frozen=True)

    name: str
    subjects: tuple[str, ...]
    retention: Literal["limits", "workqueue"] = "limits"
    max_age_s: float = Field(default=7 * 24 * 3600, description="How long messages are kept, in seconds.")


STREAMS: tuple[StreamSpec, ...] = (
    StreamSpec(name=ALERTS_STREAM, subjects=(ALL_ALERTS,)),
    StreamSpec(name=WORK_STREAM, subjects=(ALL_WORK,), retention="workqueue"),
    StreamSpec(name=EVENTS_STREAM, subjects=(ALL_EVENTS,), max_age_s=30 * 24 * 3600),
    StreamSpec(name=JOURNAL_STREAM, subjects=(ALL_JOURNAL,), max_age_s=30 * 24 * 3600),
)


class ConsumerSpec(BaseModel):
    """A durable pull consumer shared by every replica of one service (work-queue semantics)."""

    model_config = ConfigDict(frozen=True)

    durable: str
    stream: str
    filter_subject: str
    ack_wait_s: float = Field(default=30.0, description="Redelivery after this long without an ack.")
    max_deliver: int = Field(default=20, description="Deliveries before the message is given up.")


CONSUMERS: dict[str, ConsumerSpec] = {
    "detector": ConsumerSpec(durable="detector", stream=ALERTS_STREAM, filter_subject=ALL_ALERTS),
    "coordinator": ConsumerSpec(durable="coordinator", stream=EVENTS_STREAM, filter_subject=ALL_EVENTS),
    "diagnoser": ConsumerSpec(
        durable="diagnoser", stream=WORK_STREAM, filter_subject=work_subject("diagnoser"), ack_wait_s=120
    ),
    "mitigator": ConsumerSpec(
        durable="mitigator", stream=WORK_STREAM, filter_subject=work_subject("mitigator"), ack_wait_s=120
    ),
    "undoer": ConsumerSpec(durable="undoer", stream=WORK_STREAM, filter_subject=work_subject("undoer"), ack_wait_s=60),
}
"""What each consuming service reads. The bridge only produces."""


# --- shared pieces --------------------------------------------------------------------------------------------


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="strings")


class Message(Model):
    """Fields every message carries."""

    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, description="Contract version of this message.")
    id: str = Field(default_factory=lambda: new_id("msg"), description="Unique id; duplicates are no-ops.")
    ts: datetime = Field(default_factory=utcnow, description="When the message was produced (UTC).")


class Severity(Model):
    """A measurement of ``mu(s) = w1*|A| + w2*|V| + w3*|L|`` with what it counted."""

    mu: float = Field(description="The severity; ``inf`` when the API is unreachable or the scope is down.")
    alerts: list[str] = Field(default_factory=list, description="Firing alerts in scope (A).")
    violations: list[str] = Field(default_factory=list, description="SLO violations (V).")
    unhealthy: list[str] = Field(default_factory=list, description="Unhealthy capacity: pods, PVCs, nodes (L).")
    crashed: bool = Field(default=False, description="True when mu is infinite.")


class Lease(Model):
    """Writer permission on a scope from the A-Lock; the fencing token is checked before every write."""

    scope: str
    holder: str = Field(description="Who holds the lease (incident and attempt).")
    token: int = Field(description="Fencing token: monotonically increasing per scope.")
    expires_at: datetime


class Usage(Model):
    """LLM accounting for one piece of work."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    steps: int = Field(default=0, description="Reasoning steps (assistant messages / tool calls).")


class RootCause(Model):
    system_level: str = Field(description="AIOpsLab level: Hardware, Operating System, Virtualization, Application.")
    fault_type: str = Field(description="AIOpsLab type: Misconfiguration, Code Defect, Authentication Issue, ...")


class ActionSpec(Model):
    """A typed cluster action as carried on the bus; ``stratus.actions`` gives it behaviour."""

    verb: str = Field(description="get, list, patch, scale, set_image, delete, apply, exec, ...")
    kind: str | None = Field(default=None, description="Kubernetes kind, e.g. Deployment.")
    namespace: str | None = None
    name: str | None = None
    params: dict[str, Any] = Field(default_factory=dict, description="Verb-specific arguments.")


# --- alerts ---------------------------------------------------------------------------------------------------


class Alert(Message):
    """A normalised Alertmanager alert."""

    kind: Literal["alert"] = "alert"
    fingerprint: str
    status: Literal["firing", "resolved"]
    name: str = Field(description="The alertname label.")
    scope: str = Field(description="Namespace from the alert's labels, or 'cluster'.")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime | None = None
    ends_at: datetime | None = None


# --- incident events ------------------------------------------------------------------------------------------


class IncidentEvent(Message):
    incident_id: str = Field(description="The incident this event belongs to.")


class IncidentOpened(IncidentEvent):
    kind: Literal["incident_opened"] = "incident_opened"
    scope: str
    s0: Severity = Field(description="The state at opening.")
    baseline: float = Field(description="b = mu(s0): TNR promises every visible state has mu <= b.")
    evidence: list[str] = Field(default_factory=list)
    source: Literal["alert", "probe", "manual"] = "probe"


class AlertAttached(IncidentEvent):
    kind: Literal["alert_attached"] = "alert_attached"
    alert: Alert


class DiagnosisReady(IncidentEvent):
    kind: Literal["diagnosis"] = "diagnosis"
    localisation: list[str] = Field(default_factory=list, description="Components, most likely first.")
    root_cause: RootCause | None = None
    summary: str = ""
    evidence: list[str] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)


class ActionExecuted(IncidentEvent):
    """One write inside a transaction, with mu measured after it (the hidden mu-path)."""

    kind: Literal["action_executed"] = "action_executed"
    tx_id: str
    attempt: int
    seq: int
    action: ActionSpec
    ok: bool
    message: str = ""
    mu_after: float | None = None


class TransactionStarted(IncidentEvent):
    """A mitigator picked the transaction up under a valid lease; from here it renews the lease itself.

    Until then the coordinator renews it: a request queued behind other work must not lose its lease before anyone
    could use it.
    """

    kind: Literal["transaction_started"] = "transaction_started"
    tx_id: str
    attempt: int
    worker: str = Field(default="", description="The mitigator instance that took it.")


class TransactionEnded(IncidentEvent):
    kind: Literal["transaction_ended"] = "transaction_ended"
    tx_id: str
    attempt: int
    actions: int = Field(description="Writes executed.")
    outcome: Literal["done", "failed", "refused"] = "done"
    reason: str = ""
    hidden_mu: list[float] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    needs_scope: str | None = Field(
        default=None, description="A write was refused because it needs a lease on this wider scope (e.g. cluster)."
    )


class Divergence(Model):
    object: str
    field: str
    expected: Any = None
    found: Any = None


class UndoCompleted(IncidentEvent):
    kind: Literal["undo_completed"] = "undo_completed"
    tx_id: str
    attempt: int
    undone: int
    restored_digest: str
    divergences: list[Divergence] = Field(default_factory=list)


class WorkFailed(IncidentEvent):
    """A service could not do what it was asked; the reason is meant for a human."""

    kind: Literal["work_failed"] = "work_failed"
    service: str
    request_id: str
    reason: str
    permanent: bool = True
    tx_id: str | None = None
    attempt: int | None = None


# Events the coordinator writes itself (the timeline).


class StateChanged(IncidentEvent):
    kind: Literal["state_changed"] = "state_changed"
    state: str
    previous: str | None = None
    reason: str = ""
    attempt: int = 0


class Checkpointed(IncidentEvent):
    kind: Literal["checkpointed"] = "checkpointed"
    tx_id: str
    attempt: int
    severity: Severity
    digest: str


class TransactionDecided(IncidentEvent):
    kind: Literal["transaction_decided"] = "transaction_decided"
    tx_id: str
    attempt: int
    decision: Literal["commit", "abort"]
    mu_pre: float
    mu_post: float
    reason: str = ""


class IncidentClosed(IncidentEvent):
    kind: Literal["incident_closed"] = "incident_closed"
    outcome: Literal["resolved", "escalated"]
    report: str = ""
    attempts: int = 0
    baseline: float | None = Field(
        default=None,
        description="The b the transactions were held to: mu at the first checkpoint, taken once mu held steady "
        "(IncidentOpened.baseline, mu at detection, when the incident closed before any checkpoint). None only in "
        "events written before this field existed.",
    )
    visible_mu: list[float] = Field(
        default_factory=list, description="b, then mu at each point a transaction's writes left visible."
    )


Event = Annotated[
    IncidentOpened
    | AlertAttached
    | DiagnosisReady
    | ActionExecuted
    | TransactionStarted
    | TransactionEnded
    | UndoCompleted
    | WorkFailed
    | StateChanged
    | Checkpointed
    | TransactionDecided
    | IncidentClosed,
    Field(discriminator="kind"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)

COORDINATOR_EVENT_KINDS = frozenset({"state_changed", "checkpointed", "transaction_decided", "incident_closed"})
"""Kinds the coordinator writes; it does not react to its own timeline."""


# --- work requests --------------------------------------------------------------------------------------------


class WorkRequest(Message):
    incident_id: str
    scope: str


class DiagnoseRequest(WorkRequest):
    kind: Literal["diagnose"] = "diagnose"
    evidence: list[str] = Field(default_factory=list)


class MitigateRequest(WorkRequest):
    kind: Literal["mitigate"] = "mitigate"
    tx_id: str
    attempt: int
    lease: Lease
    diagnosis: DiagnosisReady | None = None
    reflections: list[str] = Field(default_factory=list, description="Short lessons of earlier failed attempts.")
    max_actions: int = Field(default=20, description="K: the transaction's bound on commands.")


class UndoRequest(WorkRequest):
    kind: Literal["undo"] = "undo"
    tx_id: str
    attempt: int
    lease: Lease
    checkpoint_digest: str


Work = Annotated[DiagnoseRequest | MitigateRequest | UndoRequest, Field(discriminator="kind")]
WORK_ADAPTER: TypeAdapter[Work] = TypeAdapter(Work)

WORK_KIND_SERVICE = {"diagnose": "diagnoser", "mitigate": "mitigator", "undo": "undoer"}


# --- the journal ----------------------------------------------------------------------------------------------


class JournalRecord(Message):
    """One entry of a transaction's write-ahead journal.

    ``intent`` is appended (and acknowledged by JetStream) before the write runs; ``outcome`` after it.
    """

    kind: Literal["journal"] = "journal"
    incident_id: str
    tx_id: str
    attempt: int
    seq: int
    phase: Literal["intent", "outcome"]
    action: ActionSpec
    pre_image: dict[str, Any] | None = Field(default=None, description="The object before the write; None if absent.")
    undo: list[ActionSpec] = Field(default_factory=list, description="Actions that restore the pre-image.")
    dry_run: dict[str, Any] | None = None
    ok: bool | None = None
    message: str = ""


# --- health ---------------------------------------------------------------------------------------------------


class HealthReply(Model):
    schema_version: Literal[1] = SCHEMA_VERSION
    service: str
    instance: str
    ok: bool
    version: str
    uptime_s: float
    details: dict[str, str] = Field(default_factory=dict)
