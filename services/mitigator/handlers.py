"""Thin subscriber of the mitigator: check the lease, run the transaction, publish what happened."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from services.mitigator.proposal import propose_plan
from services.mitigator.transaction import run_transaction
from stratus.alock import ALock
from stratus.bus import Bus
from stratus.contracts import ActionExecuted, MitigateRequest, TransactionStarted
from stratus.errors import PermanentError
from stratus.gateway import KubeApi
from stratus.journal import Journal
from stratus.lastgood import LastGood
from stratus.metrics import record_llm_usage
from stratus.planning import ApprovedPlanReasoner
from stratus.reasoning import MitigationReasoner
from stratus.severity import SeverityMeter

log = logging.getLogger(__name__)


@dataclass
class MitigatorDeps:
    bus: Bus
    alock: ALock
    api: KubeApi
    meter: SeverityMeter
    reasoner: MitigationReasoner
    lease_ttl_s: float
    jaeger_url: str | None = None
    instance: str = ""
    last_good: Callable[[str], Awaitable[LastGood | None]] | None = None
    """The scope's last-known-good snapshot, when the memory is on (``stratus.lastgood``)."""


class MitigateHandler:
    def __init__(self, deps: MitigatorDeps) -> None:
        self.deps = deps

    async def __call__(self, request: MitigateRequest) -> None:
        deps = self.deps
        events = deps.bus.topology.events
        lease = request.lease
        if not await deps.alock.check_fence(lease.scope, lease.token):
            raise PermanentError(
                f"transaction {request.tx_id} refused: lease token {lease.token} on {lease.scope!r} is no longer "
                "current (it expired or the coordinator took over); nothing was written"
            )

        log.info(
            "%s: transaction %s (attempt %d) under lease token %d",
            request.incident_id,
            request.tx_id,
            request.attempt,
            lease.token,
        )

        started = TransactionStarted(
            id=f"{request.tx_id}:{'plan-' if request.plan_only else ''}started",
            incident_id=request.incident_id,
            tx_id=request.tx_id,
            attempt=request.attempt,
            worker=deps.instance,
        )
        await deps.bus.publish(events(started.incident_id, started.kind), started)

        if request.plan_only:
            proposed = await propose_plan(
                request,
                api=deps.api,
                alock=deps.alock,
                reasoner=deps.reasoner,
                lease_ttl_s=deps.lease_ttl_s,
                jaeger_url=deps.jaeger_url,
            )
            await deps.bus.publish(events(proposed.incident_id, proposed.kind), proposed)
            log.info("%s: plan of %s proposed (%d write(s))", request.incident_id, request.tx_id, len(proposed.actions))
            usage = proposed.usage
            record_llm_usage("mitigator", usage.prompt_tokens, usage.completion_tokens, usage.cost_usd)
            return

        async def report(event: ActionExecuted) -> None:
            await deps.bus.publish(events(event.incident_id, event.kind), event)

        journal = Journal(deps.bus)
        try:
            ended = await run_transaction(
                request,
                api=deps.api,
                alock=deps.alock,
                journal=journal,
                reasoner=ApprovedPlanReasoner() if request.plan is not None else deps.reasoner,
                measure=deps.meter.measure,
                report=report,
                lease_ttl_s=deps.lease_ttl_s,
                jaeger_url=deps.jaeger_url,
                last_good=deps.last_good,
            )
        finally:
            journal.close()  # its wire to NATS, if the transaction's writes opened one
        await deps.bus.publish(events(ended.incident_id, ended.kind), ended)
        log.info(
            "%s: transaction %s ended (%s, %d write(s))",
            request.incident_id,
            request.tx_id,
            ended.outcome,
            ended.actions,
        )
        usage = ended.usage
        record_llm_usage("mitigator", usage.prompt_tokens, usage.completion_tokens, usage.cost_usd)
