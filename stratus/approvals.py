"""Pending approvals (the ``approve`` mode) and the human's decision, for the CLI, the HTTP API and the console.

The event stream is the one store of this fact: a plan is pending from its ``ApprovalRequested`` until the incident
leaves ``awaiting_approval`` or closes. A decision is an ``ApprovalDecided`` event published on the incident's own
subject, so it reaches the coordinator in order with the incident's other events; its id is derived from the
transaction, so a second decision on the same plan (a double click, a CLI and a browser at once) is dropped by
JetStream, and the coordinator ignores any decision on a plan that is no longer pending: the first one wins.
"""

from __future__ import annotations

from stratus.audit import read_events
from stratus.bus import Bus
from stratus.contracts import ApprovalDecided, ApprovalRequested
from stratus.errors import PermanentError


async def pending(bus: Bus) -> list[ApprovalRequested]:
    """The plans waiting for a human, oldest first."""
    waiting: dict[str, ApprovalRequested] = {}
    for event in await read_events(bus):
        match event.kind:
            case "approval_requested":
                waiting[event.incident_id] = event
            case "state_changed" if event.previous == "awaiting_approval":
                waiting.pop(event.incident_id, None)
            case "incident_closed":
                waiting.pop(event.incident_id, None)
    return sorted(waiting.values(), key=lambda r: r.ts)


async def decide(
    bus: Bus, incident_id: str, *, approved: bool, by: str = "", reason: str = "", tx_id: str | None = None
) -> ApprovalDecided:
    """Approve or deny the pending plan of ``incident_id`` (``tx_id``: only if it is still that plan's)."""
    request = next((r for r in await pending(bus) if r.incident_id == incident_id), None)
    if request is None:
        raise PermanentError(
            f"incident {incident_id!r} has no plan waiting for approval (decided, timed out or closed); "
            "see `stratus approvals list`"
        )
    if tx_id and tx_id != request.tx_id:
        raise PermanentError(f"the pending plan of {incident_id!r} is {request.tx_id}, not {tx_id}: review it first")
    decided = ApprovalDecided(
        id=f"{request.tx_id}:approval",
        incident_id=incident_id,
        tx_id=request.tx_id,
        approved=approved,
        by=by[:200],
        reason=reason[:1000],
    )
    await bus.publish(bus.topology.events(incident_id, decided.kind), decided)
    return decided
