"""The audit trail: every incident's events, read back from the ``STRATUS_EVENTS`` stream.

``stratus incidents list`` and ``stratus incidents show ID`` use it; nothing here writes.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nats.errors import TimeoutError as NatsTimeout
from nats.js import api as js_api

from stratus.bus import Bus
from stratus.contracts import EVENT_ADAPTER, Event


@dataclass
class IncidentSummary:
    incident_id: str
    scope: str
    opened_at: datetime
    baseline: float
    state: str = "opened"
    outcome: str | None = None
    attempts: int = 0
    closed_at: datetime | None = None
    events: int = 0
    visible_mu: list[float] = field(default_factory=list)


async def read_events(bus: Bus, subject: str | None = None, limit: int = 100_000) -> list[Event]:
    """Events on ``subject`` (a filter on the events stream; default: all), oldest first."""
    subject = subject or bus.topology.all_events
    try:
        info = await bus.js.stream_info(bus.topology.events_stream)
    except Exception:
        return []
    if info.state.messages == 0:
        return []
    sub = await bus.js.subscribe(
        subject, stream=bus.topology.events_stream, ordered_consumer=True, deliver_policy=js_api.DeliverPolicy.ALL
    )
    out: list[Event] = []
    try:
        while len(out) < limit:
            try:
                msg = await sub.next_msg(timeout=1.0)
            except NatsTimeout:
                break
            with contextlib.suppress(ValueError):
                out.append(EVENT_ADAPTER.validate_json(msg.data))
            if msg.metadata and msg.metadata.num_pending == 0:
                break
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return out


async def incidents(bus: Bus) -> list[IncidentSummary]:
    summaries: dict[str, IncidentSummary] = {}
    for event in await read_events(bus):
        if event.kind == "incident_opened":
            summaries[event.incident_id] = IncidentSummary(
                incident_id=event.incident_id, scope=event.scope, opened_at=event.ts, baseline=event.baseline
            )
        summary = summaries.get(event.incident_id)
        if summary is None:
            continue
        summary.events += 1
        if event.kind == "state_changed":
            summary.state = event.state
            summary.attempts = max(summary.attempts, event.attempt)
        elif event.kind == "incident_closed":
            summary.outcome, summary.closed_at = event.outcome, event.ts
            summary.attempts, summary.visible_mu = event.attempts, event.visible_mu
    return sorted(summaries.values(), key=lambda s: s.opened_at)


async def timeline(bus: Bus, incident_id: str) -> list[Event]:
    return await read_events(bus, bus.topology.incident_events(incident_id))


def describe(event: Event) -> str:
    """One line a human reads in the timeline."""
    e: Any = event
    match event.kind:
        case "incident_opened":
            return f"opened on {e.scope}: b = {e.baseline:g}; " + "; ".join(e.evidence[:3])
        case "diagnosis":
            cause = f"{e.root_cause.system_level} / {e.root_cause.fault_type}" if e.root_cause else "no root cause"
            return f"diagnosis: {', '.join(e.localisation[:3]) or '?'} ({cause}) {e.summary[:120]}"
        case "state_changed":
            return f"{e.previous} -> {e.state}" + (f": {e.reason}" if e.reason else "")
        case "checkpointed":
            return f"checkpoint {e.tx_id}: mu = {e.severity.mu:g}, digest {e.digest[:12]}"
        case "action_executed":
            target = "/".join(p for p in (e.action.kind, e.action.name) if p)
            return f"  #{e.seq} {e.action.verb} {target} -> {'ok' if e.ok else 'failed'}, mu = {e.mu_after}"
        case "transaction_started":
            return f"{e.tx_id} taken by mitigator {e.worker or '?'}"
        case "transaction_ended":
            return f"{e.tx_id} ended ({e.outcome}): {e.actions} write(s), hidden mu {e.hidden_mu}"
        case "transaction_decided":
            return f"{e.decision.upper()} {e.tx_id}: mu {e.mu_pre:g} -> {e.mu_post:g} ({e.reason})"
        case "undo_completed":
            div = f"{len(e.divergences)} divergence(s)" if e.divergences else "digest restored"
            return f"undo of {e.tx_id}: {e.undone} action(s) undone, {div}"
        case "work_failed":
            return f"{e.service} failed: {e.reason[:160]}"
        case "reasoning_step":
            where = f"{e.tx_id} " if e.tx_id else ""
            answer = " ".join(e.result.split())[:120]
            return f"  {e.service} {where}step {e.step}: {e.tool}({e.arguments[:100]}) -> {answer}"
        case "alert_attached":
            return f"alert {e.alert.name} ({e.alert.status})"
        case "plan_proposed":
            failed = f"; failed: {e.failed[:120]}" if e.failed else ""
            return f"plan of {e.tx_id}: {len(e.actions)} write(s), dry-run on the server, none executed{failed}"
        case "approval_requested":
            return f"plan of {e.tx_id} ({len(e.actions)} write(s)) waits for approval until {e.deadline:%H:%M:%S}"
        case "approval_decided":
            verdict = "approved" if e.approved else "denied"
            return (
                f"plan of {e.tx_id} {verdict}" + (f" by {e.by}" if e.by else "") + (f": {e.reason}" if e.reason else "")
            )
        case "incident_closed":
            return f"closed: {e.outcome} after {e.attempts} attempt(s); visible mu {e.visible_mu}"
    return event.kind
