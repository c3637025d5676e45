"""Thin subscriber of the mitigator: check the lease, run the transaction, publish what happened."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nats.aio.msg import Msg

from services.mitigator.transaction import run_transaction
from stratus.alock import ALock
from stratus.bus import Bus
from stratus.contracts import ActionExecuted, MitigateRequest, TransactionStarted, Work, events_subject
from stratus.errors import PermanentError
from stratus.gateway import KubeApi
from stratus.journal import Journal
from stratus.metrics import record_llm_usage
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


class MitigateHandler:
    def __init__(self, deps: MitigatorDeps) -> None:
        self.deps = deps

    async def __call__(self, request: Work, msg: Msg) -> None:
        deps = self.deps
        if not isinstance(request, MitigateRequest):
            raise PermanentError(f"mitigator: cannot handle work of kind {request.kind!r} (sent to the wrong service?)")
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
            id=f"{request.tx_id}:started",
            incident_id=request.incident_id,
            tx_id=request.tx_id,
            attempt=request.attempt,
            worker=deps.instance,
        )
        await deps.bus.publish(events_subject(started.incident_id, started.kind), started)

        async def report(event: ActionExecuted) -> None:
            await deps.bus.publish(events_subject(event.incident_id, event.kind), event)

        ended = await run_transaction(
            request,
            api=deps.api,
            alock=deps.alock,
            journal=Journal(deps.bus),
            reasoner=deps.reasoner,
            measure=deps.meter.measure,
            report=report,
            lease_ttl_s=deps.lease_ttl_s,
            jaeger_url=deps.jaeger_url,
        )
        await deps.bus.publish(events_subject(ended.incident_id, ended.kind), ended)
        log.info(
            "%s: transaction %s ended (%s, %d write(s))",
            request.incident_id,
            request.tx_id,
            ended.outcome,
            ended.actions,
        )
        usage = ended.usage
        record_llm_usage("mitigator", usage.prompt_tokens, usage.completion_tokens, usage.cost_usd)
