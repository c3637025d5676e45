"""The per-incident state machine, as data and pure decisions (no I/O here).

    opened -> diagnosing -> mitigating(n) -> validating -> committed -> resolved
                                                       \\-> aborted -> undoing -> mitigating(n+1) ... -> escalated

In the ``approve`` mode, ``mitigating(n)`` first only makes the plan (nothing is written), then the incident waits in
``awaiting_approval`` until a human approves (back to ``mitigating(n)``, now running the plan under TNR), denies or
lets the request time out (``escalated``). In ``shadow`` the plan is recorded and the incident escalates; in
``observe`` it escalates once diagnosed.

An ``IncidentRecord`` is the whole durable state of one incident; the engine loads it, applies one event, and saves
it together with an *outbox* of messages to publish. Saving state and outbox in one write, then publishing and
clearing the outbox, makes every step crash-safe: a coordinator that dies after the save re-publishes the outbox
when it comes back, and the messages carry deterministic ids, so JetStream drops the copies.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from stratus.contracts import Action, DiagnosisReady, Lease, PlanProposed, Severity, utcnow

State = Literal[
    "opened",
    "diagnosing",
    "mitigating",
    "awaiting_approval",
    "validating",
    "committed",
    "aborted",
    "undoing",
    "resolved",
    "escalated",
]
OPEN_STATES: frozenset[str] = frozenset(
    {"opened", "diagnosing", "mitigating", "awaiting_approval", "validating", "committed", "aborted", "undoing"}
)
FINAL_STATES: frozenset[str] = frozenset({"resolved", "escalated"})

TRANSITIONS: dict[str, frozenset[str]] = {
    "opened": frozenset({"diagnosing", "escalated"}),
    "diagnosing": frozenset({"mitigating", "escalated", "resolved"}),
    "mitigating": frozenset({"validating", "aborted", "escalated", "awaiting_approval"}),
    "awaiting_approval": frozenset({"mitigating", "escalated", "resolved"}),
    "validating": frozenset({"committed", "aborted"}),
    "committed": frozenset({"resolved", "mitigating", "escalated"}),
    "aborted": frozenset({"undoing", "escalated", "mitigating"}),  # -> mitigating: naive-retry ablation only
    "undoing": frozenset({"mitigating", "escalated", "resolved"}),
    "resolved": frozenset(),
    "escalated": frozenset(),
}


class IllegalTransition(Exception):
    pass


class Outgoing(BaseModel):
    """A message the engine owes the bus (the outbox)."""

    subject: str
    payload: str = Field(description="The message as JSON.")
    msg_id: str = Field(description="Deterministic id: re-publishing after a crash is de-duplicated by JetStream.")


class Attempt(BaseModel):
    """One transaction: what was tried and what it did to mu."""

    model_config = ConfigDict(ser_json_inf_nan="strings")  # mu = inf (scope down) must survive Redis
    n: int
    tx_id: str
    mu_pre: float
    digest_pre: str
    actions: list[Action] = Field(default_factory=list)
    hidden_mu: list[float] = Field(default_factory=list)
    mu_post: float | None = None
    decision: Literal["commit", "abort"] | None = None
    reason: str = ""
    undo_divergences: int | None = None
    lease_scope: str = Field(default="", description="The scope the transaction's lease covered.")
    requested_at: datetime = Field(default_factory=utcnow, description="When the mitigation request was sent.")
    started: bool = Field(default=False, description="A mitigator took the request (TransactionStarted).")
    failure: str = Field(default="", description="Why the transaction failed, as its mitigator reported it.")
    undo_reissues: int = Field(
        default=0, description="Undo requests re-issued with a fresh lease (the undoer refused)."
    )
    recalled_from: str | None = Field(default=None, description="The incident memory whose fix it replayed.")
    writes: int | None = Field(default=None, description="Writes its mitigator reported (TransactionEnded).")
    planning: bool = Field(default=False, description="The request only makes the plan (approve, shadow): no write.")


class IncidentRecord(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="strings")  # b = inf when the whole scope was down at opening
    incident_id: str
    scope: str
    state: State = "opened"
    baseline: float = Field(description="b = mu(s0): at detection, then at the first checkpoint (mu held steady).")
    opened_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    diagnosis: DiagnosisReady | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    lease: Lease | None = None
    write_scope: str | None = Field(
        default=None, description="Scope of the next transactions' lease when wider than the incident's (cluster)."
    )
    visible_mu: list[float] = Field(
        default_factory=list, description="b, then mu at each commit and after each undo of executed writes."
    )
    reflections: list[str] = Field(default_factory=list)
    outbox: list[Outgoing] = Field(default_factory=list)
    report: str = ""
    attempt_pending: bool = Field(
        default=False,
        description="The next attempt waits for a write lease another incident holds (the watchdog retries).",
    )
    proposal: PlanProposed | None = Field(default=None, description="The plan waiting for a human (approve mode).")
    approval_deadline: datetime | None = Field(default=None, description="When the pending approval escalates.")
    approved_tx: str = Field(default="", description="The transaction whose plan a human approved; empty: none.")
    give_up: str = Field(
        default="", description="Escalate at the next attempt with this reason (an event was lost); empty: no."
    )
    version: int = Field(default=0, exclude=True, description="The store's version this record was loaded at.")

    @property
    def attempt(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    def move(self, new: State) -> str:
        """Change state (raising on an illegal move); returns the previous state."""
        if new not in TRANSITIONS[self.state]:
            raise IllegalTransition(f"incident {self.incident_id}: {self.state} -> {new} is not a legal transition")
        previous, self.state = self.state, new
        self.updated_at = utcnow()
        return previous


def healthy(severity: Severity) -> bool:
    """The oracles pass: nothing firing, no SLO violated, no unhealthy capacity."""
    return not severity.crashed and severity.mu == 0


def decide(mu_pre: float, post: Severity, baseline: float) -> tuple[Literal["commit", "abort"], str]:
    """R3: commit when the oracles pass or mu went down, and never above the baseline; otherwise abort."""
    mu_post = post.mu
    if post.crashed or math.isinf(mu_post):
        return "abort", "the scope is down after the transaction (mu = inf)"
    if mu_post > baseline:
        return "abort", f"mu {mu_post:g} is above the incident's baseline {baseline:g}"
    if healthy(post):
        return "commit", "the oracles pass"
    if mu_post < mu_pre:
        return "commit", f"mu went down from {mu_pre:g} to {mu_post:g}"
    return "abort", f"mu did not go down ({mu_pre:g} -> {mu_post:g})"


def reflection(attempt: Attempt, post: Severity | None) -> str:
    """A short lesson for the next attempt: what was tried, the hidden mu-path, why it was aborted."""
    tried = "; ".join(_describe(a) for a in attempt.actions) or "no write"
    path = " -> ".join(f"{m:g}" for m in [attempt.mu_pre, *attempt.hidden_mu])
    still = f" Still unhealthy: {', '.join(post.unhealthy[:5])}." if post and post.unhealthy else ""
    failed = f" It failed: {attempt.failure[:300]}; do not repeat what led there." if attempt.failure else ""
    return (
        f"Attempt {attempt.n} tried: {tried}.{failed} Hidden mu: {path}. Aborted and undone: {attempt.reason}.{still}"
    )


def _describe(a: Action) -> str:
    target = "/".join(p for p in (a.kind, a.namespace, a.name) if p)
    params = ", ".join(f"{k}={v}" for k, v in a.params.items() if k not in ("manifest", "pre_image"))
    return f"{a.verb} {target}" + (f" ({params})" if params else "")


def escalation_report(record: IncidentRecord) -> str:
    lines = [f"Incident {record.incident_id} in {record.scope} escalated after {len(record.attempts)} attempt(s)."]
    if record.diagnosis:
        lines.append(f"Diagnosis: {', '.join(record.diagnosis.localisation) or '?'} — {record.diagnosis.summary}")
    for a in record.attempts:
        failed = f"; it failed: {a.failure[:200]}" if a.failure else ""
        lines.append(f"- attempt {a.n}: {a.decision or 'unfinished'} ({a.reason}); {len(a.actions)} write(s){failed}")
    lines.append("The scope is at or below its baseline severity; a human should take over.")
    return "\n".join(lines)


def plan_text(plan: PlanProposed) -> str:
    """The plan for a human: each write, its undo, and its diff."""
    lines = [f"Plan of {plan.tx_id} ({len(plan.actions)} write(s)); expected effect: {plan.expected_effect or '-'}"]
    for i, planned in enumerate(plan.actions, 1):
        undo = "; ".join(_describe(u) for u in planned.undo) or "nothing to restore"
        lines.append(f"{i}. {_describe(planned.action)} (undo: {undo})")
        if planned.diff:
            lines.extend("   " + line for line in planned.diff.rstrip("\n").splitlines())
    return "\n".join(lines)
