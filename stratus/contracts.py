"""Every message that crosses the bus, with the subjects and JetStream streams it travels on.

One module on purpose: a reader finds here the whole conversation between the services. Messages are pydantic v2
models; the events of an incident form one union discriminated on ``kind`` and decoded by one ``TypeAdapter``. A
cluster action travels as ``Action`` (``stratus.actions``): one model per verb with typed, validated fields,
discriminated on ``verb``.

Streams (all JetStream, file storage):

- ``STRATUS_ALERTS``  ``stratus.alerts.<scope>``: normalised alerts, bridge -> detector (limits retention).
- ``STRATUS_WORK``    ``stratus.work.<service>``: work requests, coordinator -> agents. Work-queue retention: each
  request is taken by exactly one replica of the service through the service's durable pull consumer.
- ``STRATUS_EVENTS``  ``stratus.events.<partition>.<incident_id>.<kind>``: everything that happens to an incident,
  in order. The coordinator consumes it, one serial consumer per partition; ``stratus incidents show`` replays it; it
  is the audit trail.
- ``STRATUS_JOURNAL`` ``stratus.journal.<tx_id>``: the write-ahead journal, one subject per transaction.
- ``STRATUS_DEADLETTER`` ``stratus.deadletter.<service>``: every piece of work a service dropped, with the reason.

Health is plain NATS request/reply on ``stratus.health.<service>`` (every replica answers). The names above are the
default ``Topology``; an install chooses its own prefix, stream and durable names (see ``Topology``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
import zlib
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from stratus.actions import Action as Action  # the wire form of a cluster action

SCHEMA_VERSION: Literal[1] = 1

# --- subjects and streams -------------------------------------------------------------------------------------

SERVICES = ("bridge", "detector", "coordinator", "diagnoser", "mitigator", "undoer")
"""Every Stratus service, in the order ``stratus up`` starts them."""

AGENTS = ("diagnoser", "mitigator", "undoer")
"""The services that take work requests from the ``WORK`` stream."""


TOKEN_MAX = 64
"""Longest subject token ``token`` makes: a subject must stay far below the server's control-line limit (4 KiB)."""


def token(value: str) -> str:
    """Make ``value`` safe as one NATS subject token: ASCII letters, digits, ``-`` and ``_`` only (no dots, spaces,
    wildcards or control characters), at most ``TOKEN_MAX`` characters. A longer value keeps its head and ends with
    a hash of the whole value, so distinct long values stay distinct."""
    out = "".join(c if (c.isascii() and c.isalnum()) or c in "-_" else "_" for c in value) or "_"
    if len(out) > TOKEN_MAX:
        out = f"{out[: TOKEN_MAX - 25]}-h{hashlib.sha256(value.encode(errors='surrogatepass')).hexdigest()[:23]}"
    return out


def partition_of(incident_id: str, partitions: int) -> int:
    """The coordinator partition of an incident: a stable hash (CRC-32, the same in every process) modulo
    ``partitions``. Every event of one incident lands in one partition, so one consumer sees them in order."""
    return zlib.crc32(incident_id.encode()) % partitions


class StreamSpec(BaseModel):
    """A JetStream stream the services rely on; ``stratus.bus`` creates it when missing."""

    model_config = ConfigDict(frozen=True)

    name: str
    subjects: tuple[str, ...]
    retention: Literal["limits", "workqueue"] = "limits"
    max_age_s: float = Field(default=7 * 24 * 3600, description="How long messages are kept, in seconds.")


class ConsumerSpec(BaseModel):
    """A durable pull consumer shared by every replica of one service (work-queue semantics)."""

    model_config = ConfigDict(frozen=True)

    durable: str
    stream: str
    filter_subject: str
    filter_subjects: tuple[str, ...] = Field(
        default=(), description="When set, the consumer takes only these subjects (within filter_subject)."
    )
    ack_wait_s: float = Field(default=30.0, description="Redelivery after this long without an ack or a heartbeat.")
    max_deliver: int = Field(
        default=20, description="Deliveries before the message is given up (and dead-lettered with the reason)."
    )
    max_ack_pending: int = Field(
        default=1000, description="Messages handed out and not yet acknowledged; 1 makes the consumer strictly serial."
    )
    deliver: Literal["all", "new"] = Field(
        default="all", description="Where a new durable starts: every message kept, or only those published after."
    )


class Topology(BaseModel):
    """Where one Stratus install lives on a NATS server: subject prefix, stream names and durable consumer names.

    Two installs with different topologies share nothing on one server (not a subject, a stream or a consumer), so
    neither sees the other's work. Every service of one install must use the same topology (``STRATUS_SUBJECT_PREFIX``,
    ``STRATUS_STREAM_PREFIX``, ``STRATUS_DURABLE_PREFIX``, ``STRATUS_PARTITIONS``).

    Subjects:

    - ``<prefix>.alerts.<scope>``: normalised alerts, bridge -> detector (stream ``<S>_ALERTS``, limits retention).
    - ``<prefix>.work.<service>``: work requests, coordinator -> agents (stream ``<S>_WORK``, work-queue retention: each
      request is taken by exactly one replica of the service through the service's durable pull consumer).
    - ``<prefix>.events.<partition>.<incident_id>.<kind>``: everything that happens to an incident, in order (stream
      ``<S>_EVENTS``). The partition is a stable hash of the incident id; each coordinator partition is one serial
      durable consumer, owned by one coordinator replica at a time. ``stratus incidents`` replays it: the audit trail.
    - ``<prefix>.journal.<tx_id>``: the write-ahead journal, one subject per transaction (stream ``<S>_JOURNAL``).
    - ``<prefix>.deadletter.<service>``: what a service dropped, with the reason (stream ``<S>_DEADLETTER``).
    - ``<prefix>.health.<service>``: plain NATS request/reply; every replica answers.
    """

    model_config = ConfigDict(frozen=True)

    prefix: str = Field(default="stratus", description="First token of every subject.")
    stream_prefix: str = Field(default="STRATUS", description="Streams are named <stream_prefix>_ALERTS, ...")
    durable_prefix: str = Field(default="", description="Prepended to every durable consumer name.")
    partitions: int = Field(default=16, ge=1, le=1024, description="Coordinator partitions of the events stream.")

    # --- subjects ---

    def alerts(self, scope: str) -> str:
        return f"{self.prefix}.alerts.{token(scope)}"

    def work(self, service: str) -> str:
        return f"{self.prefix}.work.{service}"

    def partition(self, incident_id: str) -> int:
        return partition_of(incident_id, self.partitions)

    def events(self, incident_id: str, kind: str) -> str:
        return f"{self.prefix}.events.{self.partition(incident_id)}.{token(incident_id)}.{kind}"

    def incident_events(self, incident_id: str) -> str:
        """A filter for every event of one incident."""
        return f"{self.prefix}.events.{self.partition(incident_id)}.{token(incident_id)}.>"

    def partition_events(self, partition: int) -> str:
        return f"{self.prefix}.events.{partition}.>"

    def journal(self, tx_id: str) -> str:
        return f"{self.prefix}.journal.{token(tx_id)}"

    def health(self, service: str) -> str:
        return f"{self.prefix}.health.{service}"

    def deadletter(self, service: str) -> str:
        return f"{self.prefix}.deadletter.{token(service)}"

    @property
    def all_alerts(self) -> str:
        return f"{self.prefix}.alerts.>"

    @property
    def all_work(self) -> str:
        return f"{self.prefix}.work.>"

    @property
    def all_events(self) -> str:
        return f"{self.prefix}.events.>"

    @property
    def all_journal(self) -> str:
        return f"{self.prefix}.journal.>"

    @property
    def all_deadletter(self) -> str:
        return f"{self.prefix}.deadletter.>"

    # --- streams ---

    @property
    def alerts_stream(self) -> str:
        return f"{self.stream_prefix}_ALERTS"

    @property
    def work_stream(self) -> str:
        return f"{self.stream_prefix}_WORK"

    @property
    def events_stream(self) -> str:
        return f"{self.stream_prefix}_EVENTS"

    @property
    def journal_stream(self) -> str:
        return f"{self.stream_prefix}_JOURNAL"

    @property
    def deadletter_stream(self) -> str:
        return f"{self.stream_prefix}_DEADLETTER"

    def streams(self) -> tuple[StreamSpec, ...]:
        return (
            StreamSpec(name=self.alerts_stream, subjects=(self.all_alerts,)),
            StreamSpec(name=self.work_stream, subjects=(self.all_work,), retention="workqueue"),
            StreamSpec(name=self.events_stream, subjects=(self.all_events,), max_age_s=30 * 24 * 3600),
            StreamSpec(name=self.journal_stream, subjects=(self.all_journal,), max_age_s=30 * 24 * 3600),
            StreamSpec(name=self.deadletter_stream, subjects=(self.all_deadletter,), max_age_s=30 * 24 * 3600),
        )

    # --- durable consumers ---

    def consumer(self, service: str) -> ConsumerSpec:
        """The durable consumer of a service that takes work (agents) or alerts (detector)."""
        durable = f"{self.durable_prefix}{service}"
        if service == "detector":
            return ConsumerSpec(durable=durable, stream=self.alerts_stream, filter_subject=self.all_alerts)
        if service in AGENTS:
            ack_wait = 60.0 if service == "undoer" else 120.0
            return ConsumerSpec(
                durable=durable, stream=self.work_stream, filter_subject=self.work(service), ack_wait_s=ack_wait
            )
        raise ValueError(f"{service!r} has no work consumer (the coordinator consumes partitions)")

    def coordinator_consumer(self, partition: int, ack_wait_s: float = 30.0) -> ConsumerSpec:
        """One partition of the events stream: serial (one message at a time), so events of an incident are never
        handled out of order or by two replicas at once, even across a replica's death. It takes only the kinds the
        coordinator reacts to: its own timeline (``COORDINATOR_EVENT_KINDS``) stays in the stream for the audit
        trail and is never delivered back to it."""
        reacts_to = sorted(EVENT_KINDS - COORDINATOR_EVENT_KINDS)
        return ConsumerSpec(
            durable=f"{self.durable_prefix}coordinator-p{partition}",
            stream=self.events_stream,
            filter_subject=self.partition_events(partition),
            filter_subjects=tuple(f"{self.prefix}.events.{partition}.*.{kind}" for kind in reacts_to),
            ack_wait_s=ack_wait_s,
            max_ack_pending=1,
        )


DEFAULT_TOPOLOGY = Topology()
"""The topology of an install that sets none of the topology settings."""

# The default topology's names, for callers that do not carry a topology (tests, tools).
SUBJECT_PREFIX = DEFAULT_TOPOLOGY.prefix
ALERTS_STREAM = DEFAULT_TOPOLOGY.alerts_stream
WORK_STREAM = DEFAULT_TOPOLOGY.work_stream
EVENTS_STREAM = DEFAULT_TOPOLOGY.events_stream
JOURNAL_STREAM = DEFAULT_TOPOLOGY.journal_stream
DEADLETTER_STREAM = DEFAULT_TOPOLOGY.deadletter_stream
ALL_ALERTS = DEFAULT_TOPOLOGY.all_alerts
ALL_WORK = DEFAULT_TOPOLOGY.all_work
ALL_EVENTS = DEFAULT_TOPOLOGY.all_events
ALL_JOURNAL = DEFAULT_TOPOLOGY.all_journal
STREAMS: tuple[StreamSpec, ...] = DEFAULT_TOPOLOGY.streams()
alerts_subject = DEFAULT_TOPOLOGY.alerts
work_subject = DEFAULT_TOPOLOGY.work
events_subject = DEFAULT_TOPOLOGY.events
journal_subject = DEFAULT_TOPOLOGY.journal
health_subject = DEFAULT_TOPOLOGY.health


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

    scope: str = Field(description="The scope (namespace, or 'cluster') the lease lets its holder write.")
    holder: str = Field(description="Who holds the lease (incident and attempt).")
    token: int = Field(description="Fencing token: monotonically increasing per scope.")
    expires_at: datetime = Field(description="When the lease lapses unless renewed (UTC).")


class Usage(Model):
    """LLM accounting for one piece of work."""

    prompt_tokens: int = Field(default=0, description="LLM prompt tokens used.")
    completion_tokens: int = Field(default=0, description="LLM completion tokens used.")
    cost_usd: float = Field(default=0.0, description="Estimated cost in USD from the configured prices.")
    steps: int = Field(default=0, description="Reasoning steps (assistant messages / tool calls).")
    llm_errors: int = Field(default=0, description="LLM calls answered with an HTTP error or not at all (retries too).")
    max_prompt_tokens: int = Field(default=0, description="The largest prompt of this piece of work, in tokens.")


class RootCause(Model):
    """A root cause in AIOpsLab's terms."""

    system_level: str = Field(description="AIOpsLab level: Hardware, Operating System, Virtualization, Application.")
    fault_type: str = Field(description="AIOpsLab type: Misconfiguration, Code Defect, Authentication Issue, ...")


# --- alerts ---------------------------------------------------------------------------------------------------


class Alert(Message):
    """A normalised Alertmanager alert."""

    kind: Literal["alert"] = Field(default="alert", description='Discriminator: always "alert".')
    fingerprint: str = Field(description="Alertmanager's fingerprint of the alert (its label set).")
    status: Literal["firing", "resolved"] = Field(description="firing or resolved.")
    name: str = Field(description="The alertname label.")
    scope: str = Field(description="Namespace from the alert's labels, or 'cluster'.")
    labels: dict[str, str] = Field(default_factory=dict, description="The alert's labels.")
    annotations: dict[str, str] = Field(
        default_factory=dict, description="The alert's annotations (summary, description, runbook)."
    )
    starts_at: datetime | None = Field(default=None, description="When the alert started firing.")
    ends_at: datetime | None = Field(default=None, description="When it ended (resolved alerts); None while firing.")


# --- incident events ------------------------------------------------------------------------------------------


class IncidentEvent(Message):
    """An event of one incident."""

    incident_id: str = Field(description="The incident this event belongs to.")


class IncidentOpened(IncidentEvent):
    """A new incident on a scope whose severity stayed at or over the threshold."""

    kind: Literal["incident_opened"] = Field(
        default="incident_opened", description='Discriminator: always "incident_opened".'
    )
    scope: str = Field(description="The namespace (or 'cluster') the incident is about; one open incident per scope.")
    s0: Severity = Field(description="The state at opening.")
    baseline: float = Field(description="b = mu(s0): TNR promises every visible state has mu <= b.")
    evidence: list[str] = Field(default_factory=list, description="Why it was opened: what mu counted, in short lines.")
    source: Literal["alert", "probe", "manual"] = Field(
        default="probe", description="What opened it: an alert, the detector's probes, or a human."
    )


class AlertAttached(IncidentEvent):
    """An alert on a scope that already has an open incident, kept in its timeline."""

    kind: Literal["alert_attached"] = Field(
        default="alert_attached", description='Discriminator: always "alert_attached".'
    )
    alert: Alert = Field(description="The alert, as the bridge normalised it.")


class IncidentSignature(Model):
    """What an incident looked like, normalised so that the same failure on another day compares equal."""

    unhealthy: list[str] = Field(
        default_factory=list, description="Unhealthy kinds and reasons (Pod:CrashLoopBackOff)."
    )
    objects: list[str] = Field(default_factory=list, description="Implicated objects (Kind/name), no namespace.")
    event_reasons: list[str] = Field(default_factory=list, description="Reasons of the scope's Warning events.")
    log_templates: list[str] = Field(
        default_factory=list, description="Log templates (hashes, IPs, numbers masked), most frequent first."
    )
    failing_edges: list[str] = Field(default_factory=list, description="Failing call-graph edges (caller->callee).")
    changes: list[str] = Field(default_factory=list, description="Top changes since the last known good state.")


class RecalledIncident(Model):
    """A past incident close to this one (incident memory), with the fix that committed there."""

    key: str = Field(description="The memory's key (the past incident's id).")
    similarity: float = Field(description="Similarity of the signatures, 0..1.")
    scope: str = Field(default="", description="The past incident's scope.")
    outcome: str = Field(default="", description="How the past incident closed: resolved or escalated.")
    summary: str = Field(default="", description="The past diagnosis in a few sentences.")
    fix: list[Action] = Field(default_factory=list, description="The writes of its committed transaction.")
    proposable: bool = Field(
        default=False, description="The fix may be proposed as attempt 1 (close enough, not demoted, targets exist)."
    )


class DiagnosisReady(IncidentEvent):
    """The diagnosis of an incident: components localised, root cause, evidence."""

    kind: Literal["diagnosis"] = Field(default="diagnosis", description='Discriminator: always "diagnosis".')
    localisation: list[str] = Field(default_factory=list, description="Components, most likely first.")
    root_cause: RootCause | None = Field(
        default=None, description="The root cause in AIOpsLab's terms, when the reasoner found one."
    )
    summary: str = Field(default="", description="The diagnosis in a few sentences.")
    evidence: list[str] = Field(default_factory=list, description="What the diagnosis rests on.")
    usage: Usage = Field(default_factory=Usage, description="LLM accounting of the diagnosis.")
    signature: IncidentSignature | None = Field(
        default=None, description="The incident's normalised signature (incident memory on)."
    )
    recalled: list[RecalledIncident] = Field(
        default_factory=list, description="The nearest past incidents, most similar first (incident memory on)."
    )


class ActionExecuted(IncidentEvent):
    """One write inside a transaction, with mu measured after it (the hidden mu-path)."""

    kind: Literal["action_executed"] = Field(
        default="action_executed", description='Discriminator: always "action_executed".'
    )
    tx_id: str = Field(description="The transaction.")
    attempt: int = Field(description="The incident's attempt number (1 for the first transaction).")
    seq: int = Field(description="Position of the write in the transaction (1-based).")
    action: Action = Field(description="The write.")
    ok: bool = Field(description="Whether the API accepted it.")
    message: str = Field(default="", description="The API's answer or the refusal.")
    mu_after: float | None = Field(
        default=None, description="mu measured right after the write (the hidden mu-path); None if not measured."
    )


class TransactionStarted(IncidentEvent):
    """A mitigator picked the transaction up under a valid lease; from here it renews the lease itself.

    Until then the coordinator renews it: a request queued behind other work must not lose its lease before anyone
    could use it.
    """

    kind: Literal["transaction_started"] = Field(
        default="transaction_started", description='Discriminator: always "transaction_started".'
    )
    tx_id: str = Field(description="The transaction.")
    attempt: int = Field(description="The incident's attempt number.")
    worker: str = Field(default="", description="The mitigator instance that took it.")


class TransactionEnded(IncidentEvent):
    """The mitigator finished a transaction's writes (or failed, or was refused)."""

    kind: Literal["transaction_ended"] = Field(
        default="transaction_ended", description='Discriminator: always "transaction_ended".'
    )
    tx_id: str = Field(description="The transaction.")
    attempt: int = Field(description="The incident's attempt number.")
    actions: int = Field(description="Writes executed.")
    outcome: Literal["done", "failed", "refused"] = Field(
        default="done",
        description="done: the plan ran; failed: the reasoner or a write failed; refused: a write was refused.",
    )
    reason: str = Field(default="", description="Why it failed or was refused.")
    hidden_mu: list[float] = Field(default_factory=list, description="mu after each write (the hidden mu-path).")
    usage: Usage = Field(default_factory=Usage, description="LLM accounting of the transaction.")
    needs_scope: str | None = Field(
        default=None, description="A write was refused because it needs a lease on this wider scope (e.g. cluster)."
    )
    recalled_from: str | None = Field(
        default=None, description="The incident memory whose committed fix this transaction replayed."
    )


class PlannedAction(Model):
    """One write of a plan: validated by the API server's dry run, never executed while planning."""

    action: Action = Field(description="The write.")
    diff: str = Field(
        default="",
        description="Unified diff of the object: its live state against the server-side dry run's result (both "
        "normalised, server fields stripped); empty when the dry run returns no object (exec, delete).",
    )
    undo: list[Action] = Field(default_factory=list, description="The undo recorded for it if it runs.")
    note: str = Field(default="", description="The dry run's outcome and how the write would be undone.")


class PlanProposed(IncidentEvent):
    """A transaction's plan, made by the mitigator with every write dry-run on the server and none executed (the
    ``approve`` and ``shadow`` modes): what Stratus would do."""

    kind: Literal["plan_proposed"] = Field(
        default="plan_proposed", description='Discriminator: always "plan_proposed".'
    )
    tx_id: str = Field(description="The transaction the plan is for.")
    attempt: int = Field(description="The incident's attempt number.")
    actions: list[PlannedAction] = Field(default_factory=list, description="The writes, in order.")
    expected_effect: str = Field(default="", description="What the plan is meant to achieve, for the reviewer.")
    failed: str = Field(
        default="", description="Why planning failed (a write refused, the reasoner failed); empty: ok."
    )
    usage: Usage = Field(default_factory=Usage, description="LLM accounting of the planning.")


class ApprovalDecided(IncidentEvent):
    """A human approved or denied a pending plan (CLI, HTTP API or console)."""

    kind: Literal["approval_decided"] = Field(
        default="approval_decided", description='Discriminator: always "approval_decided".'
    )
    tx_id: str = Field(description="The transaction whose plan was decided.")
    approved: bool = Field(description="True: run the plan under TNR; False: escalate.")
    by: str = Field(default="", description="Who decided (free text: a user name, an OIDC subject).")
    reason: str = Field(default="", description="Why, for the timeline.")


class Divergence(Model):
    """A field whose state after an undo differs from the checkpoint's."""

    object: str = Field(description="The object (Kind/namespace/name).")
    field: str = Field(description="The field whose value differs.")
    expected: Any = Field(default=None, description="The checkpoint's value.")
    found: Any = Field(default=None, description="The value after the undo.")


class UndoCompleted(IncidentEvent):
    """The undoer rolled a transaction back from its journal."""

    kind: Literal["undo_completed"] = Field(
        default="undo_completed", description='Discriminator: always "undo_completed".'
    )
    tx_id: str = Field(description="The transaction rolled back.")
    attempt: int = Field(description="The incident's attempt number.")
    undone: int = Field(description="Journaled writes undone.")
    restored_digest: str = Field(
        description="The scope's state digest after the undo (the checkpoint's, when restored)."
    )
    divergences: list[Divergence] = Field(
        default_factory=list,
        description="Fields that differ from the checkpoint (A2 violated): reported, never hidden.",
    )


class ReasoningStep(IncidentEvent):
    """One tool call of a reasoning agent and its result (both truncated and scrubbed of credentials)."""

    kind: Literal["reasoning_step"] = Field(
        default="reasoning_step", description='Discriminator: always "reasoning_step".'
    )
    service: str = Field(description="The agent that made the call (diagnoser, mitigator).")
    step: int = Field(description="The model call this tool call came from, from 1 within one piece of work.")
    tool: str = Field(description="The tool the model called, as it spelled it.")
    arguments: str = Field(default="", description="The call's arguments as the model sent them (truncated).")
    result: str = Field(default="", description="What the tool answered the model (truncated).")
    ok: bool = Field(default=True, description="False when the call was refused or failed.")
    tx_id: str | None = Field(default=None, description="The transaction, for the mitigator's steps.")
    attempt: int | None = Field(default=None, description="The incident's attempt number, for the mitigator's steps.")


class WorkFailed(IncidentEvent):
    """A service could not do what it was asked; the reason is meant for a human."""

    kind: Literal["work_failed"] = Field(default="work_failed", description='Discriminator: always "work_failed".')
    service: str = Field(description="The service that dropped the work.")
    request_id: str = Field(description="The id of the work request.")
    reason: str = Field(description="Why, for a human.")
    permanent: bool = Field(default=True, description="True: retrying the same request is useless.")
    tx_id: str | None = Field(default=None, description="The transaction, for mitigation and undo requests.")
    attempt: int | None = Field(
        default=None, description="The incident's attempt number, for mitigation and undo requests."
    )


# Events the coordinator writes itself (the timeline).


class StateChanged(IncidentEvent):
    """The incident's state machine moved (the coordinator's timeline)."""

    kind: Literal["state_changed"] = Field(
        default="state_changed", description='Discriminator: always "state_changed".'
    )
    state: str = Field(description="The state entered.")
    previous: str | None = Field(default=None, description="The state left.")
    reason: str = Field(default="", description="Why, for a human.")
    attempt: int = Field(
        default=0, description="The incident's attempt number at the change (0 before the first transaction)."
    )


class Checkpointed(IncidentEvent):
    """R1: mu and the state digest before a transaction, under the writer lease."""

    kind: Literal["checkpointed"] = Field(default="checkpointed", description='Discriminator: always "checkpointed".')
    tx_id: str = Field(description="The transaction about to run.")
    attempt: int = Field(description="The incident's attempt number.")
    severity: Severity = Field(description="mu(s_pre) and what it counted.")
    digest: str = Field(description="The scope's normalised state digest before the transaction.")


class TransactionDecided(IncidentEvent):
    """R3: the coordinator committed or aborted a transaction."""

    kind: Literal["transaction_decided"] = Field(
        default="transaction_decided", description='Discriminator: always "transaction_decided".'
    )
    tx_id: str = Field(description="The transaction.")
    attempt: int = Field(description="The incident's attempt number.")
    decision: Literal["commit", "abort"] = Field(
        description="commit (it helped, never above b) or abort (it is undone)."
    )
    mu_pre: float = Field(description="mu at the checkpoint.")
    mu_post: float = Field(description="mu after the system settled.")
    reason: str = Field(default="", description="Why, for a human.")


class ApprovalRequested(IncidentEvent):
    """The coordinator holds a transaction's plan for a human (``approve`` mode); nothing is written before the
    decision, and without one by ``deadline`` the incident escalates."""

    kind: Literal["approval_requested"] = Field(
        default="approval_requested", description='Discriminator: always "approval_requested".'
    )
    scope: str = Field(description="The incident's scope.")
    tx_id: str = Field(description="The transaction whose plan waits.")
    attempt: int = Field(description="The incident's attempt number.")
    actions: list[PlannedAction] = Field(default_factory=list, description="The plan, each write with its diff.")
    expected_effect: str = Field(default="", description="What the plan is meant to achieve.")
    mu: float = Field(description="mu when the plan was made.")
    deadline: datetime = Field(description="When the request times out into escalation (UTC).")


class IncidentClosed(IncidentEvent):
    """The incident is over: resolved or escalated, with its visible mu-path."""

    kind: Literal["incident_closed"] = Field(
        default="incident_closed", description='Discriminator: always "incident_closed".'
    )
    outcome: Literal["resolved", "escalated"] = Field(
        description="resolved (the oracles pass) or escalated (a human takes over)."
    )
    report: str = Field(default="", description="What happened, for the human who reads the escalation.")
    attempts: int = Field(default=0, description="Transactions tried.")
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
    | PlanProposed
    | ApprovalRequested
    | ApprovalDecided
    | ReasoningStep
    | WorkFailed
    | StateChanged
    | Checkpointed
    | TransactionDecided
    | IncidentClosed,
    Field(discriminator="kind"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)

EVENT_KINDS: frozenset[str] = frozenset(m.model_fields["kind"].default for m in get_args(get_args(Event)[0]))
"""Every kind of incident event."""

COORDINATOR_EVENT_KINDS = frozenset(
    {"state_changed", "checkpointed", "transaction_decided", "incident_closed", "approval_requested"}
)
"""Kinds the coordinator writes; it does not react to its own timeline."""


# --- work requests --------------------------------------------------------------------------------------------


class WorkRequest(Message):
    """Work the coordinator asks of an agent."""

    incident_id: str = Field(description="The incident the work is for.")
    scope: str = Field(description="The incident's scope.")


class DiagnoseRequest(WorkRequest):
    """Diagnose an incident's scope."""

    kind: Literal["diagnose"] = Field(default="diagnose", description='Discriminator: always "diagnose".')
    evidence: list[str] = Field(default_factory=list, description="What the detector saw.")


class MitigateRequest(WorkRequest):
    """Run one bounded transaction (at most ``max_actions`` writes) under the enclosed lease."""

    kind: Literal["mitigate"] = Field(default="mitigate", description='Discriminator: always "mitigate".')
    tx_id: str = Field(description="The transaction to run.")
    attempt: int = Field(description="The incident's attempt number.")
    lease: Lease = Field(description="The writer lease on the scope; every write is fenced by its token.")
    diagnosis: DiagnosisReady | None = Field(default=None, description="The incident's diagnosis, if there is one.")
    reflections: list[str] = Field(default_factory=list, description="Short lessons of earlier failed attempts.")
    max_actions: int = Field(default=20, description="K: the transaction's bound on commands.")
    plan_only: bool = Field(
        default=False,
        description="Make the plan only: every write is dry-run on the server and recorded, none is executed; "
        "answered with PlanProposed (approve and shadow modes).",
    )
    plan: list[Action] | None = Field(
        default=None, description="An approved plan: run exactly these writes, in order, instead of reasoning."
    )


class UndoRequest(WorkRequest):
    """Roll a transaction back from its write-ahead journal under the enclosed lease."""

    kind: Literal["undo"] = Field(default="undo", description='Discriminator: always "undo".')
    tx_id: str = Field(description="The transaction to roll back.")
    attempt: int = Field(description="The incident's attempt number.")
    lease: Lease = Field(description="The writer lease on the scope; every undo write is fenced by its token.")
    checkpoint_digest: str = Field(description="The state digest the undo must restore.")


Work = Annotated[DiagnoseRequest | MitigateRequest | UndoRequest, Field(discriminator="kind")]
WORK_ADAPTER: TypeAdapter[Work] = TypeAdapter(Work)

WORK_KIND_SERVICE = {"diagnose": "diagnoser", "mitigate": "mitigator", "undo": "undoer"}


# --- the journal ----------------------------------------------------------------------------------------------


class JournalRecord(Message):
    """One entry of a transaction's write-ahead journal.

    ``intent`` is appended (and acknowledged by JetStream) before the write runs; ``outcome`` after it.
    """

    kind: Literal["journal"] = Field(default="journal", description='Discriminator: always "journal".')
    incident_id: str = Field(description="The incident.")
    tx_id: str = Field(description="The transaction.")
    attempt: int = Field(description="The incident's attempt number.")
    seq: int = Field(description="Position of the write in the transaction (1-based).")
    phase: Literal["intent", "outcome"] = Field(description="intent: written before the write runs; outcome: after it.")
    action: Action = Field(description="The write.")
    pre_image: dict[str, Any] | None = Field(default=None, description="The object before the write; None if absent.")
    undo: list[Action] = Field(default_factory=list, description="Actions that restore the pre-image.")
    dry_run: dict[str, Any] | None = Field(default=None, description="The server-side dry run's answer.")
    ok: bool | None = Field(default=None, description="outcome only: whether the write succeeded.")
    message: str = Field(default="", description="outcome only: the API's answer.")


class TransactionCheckpoint(Message):
    """R1, kept in the transaction's journal: the scope's state before the transaction, which an undo must restore.

    The coordinator appends it to the transaction's journal subject before it asks for any write, so the undoer reads
    the checkpoint and the undo records from one store (and both survive the loss of Redis).
    """

    kind: Literal["checkpoint"] = Field(default="checkpoint", description='Discriminator: always "checkpoint".')
    incident_id: str = Field(description="The incident.")
    tx_id: str = Field(description="The transaction.")
    attempt: int = Field(description="The incident's attempt number.")
    lease_token: int = Field(description="Fencing token of the write lease the checkpoint was taken under.")
    scope: str = Field(description="The incident's scope, whose state was taken.")
    lease_scope: str = Field(description="The lease's scope; under a cluster lease the state covers the cluster too.")
    mu: float = Field(description="mu at the checkpoint.")
    digest: str = Field(description="The normalised state digest (``stratus.digest``) the undo must restore.")
    snapshot_z: str = Field(
        description="The normalised snapshot (object key -> declared state; Secret values hashed) as canonical JSON, "
        "zlib-compressed and base64-encoded: it explains a digest mismatch field by field."
    )

    @staticmethod
    def pack(snapshot: dict[str, Any]) -> str:
        canonical = json.dumps(snapshot, sort_keys=True, separators=(",", ":"), default=str)
        return base64.b64encode(zlib.compress(canonical.encode(), 6)).decode()

    def snapshot(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(zlib.decompress(base64.b64decode(self.snapshot_z)))
        return data


JOURNAL_BATCH_MAX = 16
"""The most records one ``JournalBatch`` holds (the gateway sends two: an accepted write's outcome and the next
intent); a reader never holds an unbounded message."""


class JournalBatch(Message):
    """Records appended as one JetStream message, in order: the outcome of a write the API accepted travels with the
    next write's intent (``stratus.journal``). Readers see its records, never the batch (``Journal.read_entries``)."""

    kind: Literal["batch"] = Field(default="batch", description='Discriminator: always "batch".')
    tx_id: str = Field(description="The transaction every record belongs to.")
    records: list[JournalRecord] = Field(
        min_length=1,
        max_length=JOURNAL_BATCH_MAX,
        description=f"The records, in append order (at most {JOURNAL_BATCH_MAX}).",
    )


JournalEntry = Annotated[JournalRecord | TransactionCheckpoint, Field(discriminator="kind")]
"""What a transaction's journal holds, as its readers see it: its checkpoint and its write records."""
JOURNAL_ENTRY_ADAPTER: TypeAdapter[JournalEntry] = TypeAdapter(JournalEntry)
JournalMessage = Annotated[JournalRecord | TransactionCheckpoint | JournalBatch, Field(discriminator="kind")]
"""One message on a transaction's journal subject: an entry, or a batch of records."""
JOURNAL_MESSAGE_ADAPTER: TypeAdapter[JournalMessage] = TypeAdapter(JournalMessage)


# --- health ---------------------------------------------------------------------------------------------------


class HealthReply(Model):
    """One replica's answer to a health request."""

    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, description="Contract version of this message.")
    service: str = Field(description="The service.")
    instance: str = Field(description="The replica.")
    ok: bool = Field(description="Ready: connected and its dependencies up.")
    version: str = Field(description="The Stratus version it runs.")
    uptime_s: float = Field(description="Seconds since it started.")
    details: dict[str, str] = Field(
        default_factory=dict, description="Service-specific facts (policy, owned partitions, what it waits for)."
    )
    dependencies: dict[str, str] = Field(
        default_factory=dict,
        description="What the replica depends on (nats, redis, kubernetes, llm): ok, or degraded with the reason.",
    )


# --- the dead-letter stream -----------------------------------------------------------------------------------


class DeadLetter(Model):
    """A message a service dropped, kept with the reason so nothing is lost silently.

    Published on ``<prefix>.deadletter.<service>`` for every message that failed validation, was refused
    (``PermanentError``) or exhausted its deliveries; the original is then terminated on its stream.
    """

    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, description="Contract version of this message.")
    kind: Literal["dead_letter"] = Field(default="dead_letter", description='Discriminator: always "dead_letter".')
    service: str = Field(description="The service that dropped the message.")
    subject: str = Field(description="The subject the message was published on.")
    cause: Literal["malformed", "rejected", "exhausted"] = Field(
        description="malformed: it failed validation against its contract; rejected: its handler raised "
        "PermanentError; exhausted: it failed on every allowed delivery."
    )
    reason: str = Field(description="What went wrong, for a human.")
    payload: str = Field(description="The message body as received (UTF-8, undecodable bytes replaced).")
    deliveries: int = Field(default=1, description="How many times the message had been delivered.")
    stream_seq: int | None = Field(default=None, description="The message's sequence number in its stream.")
    incident_id: str | None = Field(default=None, description="The incident, when the body names one.")
    tx_id: str | None = Field(default=None, description="The transaction, when the body names one.")
    ts: datetime = Field(default_factory=utcnow, description="When the message was dead-lettered (UTC).")
