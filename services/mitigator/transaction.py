"""Run one transaction for the coordinator: at most K writes under the lease, then end it explicitly.

The mitigator does not decide commit or abort; it executes what its reasoner chooses, through tools that journal
every write before it runs and report each with mu measured right after (the hidden mu-path). If the lease is lost
mid-way (the keeper cannot renew it), the reasoner is cancelled: the gateway would refuse its writes anyway, and the
coordinator rolls the transaction back from the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from stratus.agent_tools import TransactionTools
from stratus.alock import ALock, lease_keeper
from stratus.contracts import ActionExecuted, MitigateRequest, Severity, TransactionEnded
from stratus.gateway import KubeApi, WriteGateway, WriteResult
from stratus.journal import Journal
from stratus.lastgood import LastGood
from stratus.reasoning import MitigationReasoner, MitigationResult

log = logging.getLogger(__name__)


async def run_transaction(
    request: MitigateRequest,
    *,
    api: KubeApi,
    alock: ALock,
    journal: Journal,
    reasoner: MitigationReasoner,
    measure: Callable[[str], Awaitable[Severity]],
    report: Callable[[ActionExecuted], Awaitable[None]],
    lease_ttl_s: float,
    jaeger_url: str | None = None,
    last_good: Callable[[str], Awaitable[LastGood | None]] | None = None,
) -> TransactionEnded:
    lease = request.lease
    existing = await journal.read(request.tx_id)
    first_seq = max((r.seq for r in existing), default=0) + 1
    hidden: list[float] = []

    async def after_write(result: WriteResult) -> None:
        mu = (await measure(request.scope)).mu
        hidden.append(mu)
        await report(
            ActionExecuted(
                id=f"{request.tx_id}:action:{result.seq}",
                incident_id=request.incident_id,
                tx_id=request.tx_id,
                attempt=request.attempt,
                seq=result.seq or 0,
                action=result.action,
                ok=result.ok,
                message=result.message[:2000],
                mu_after=mu,
            )
        )

    recorded = None
    if last_good is not None:
        try:  # what the scope's workloads ran while healthy counts as run before (writepolicy.recorded_programs)
            snap = await last_good(request.scope)
            recorded = snap.objects if snap is not None else None
        except Exception as exc:  # no memory: the revision history alone decides
            log.warning("the last-known-good memory of %s was not read: %r", request.scope, exc)
    async with lease_keeper(alock, lease, lease_ttl_s, release_on_exit=False) as keeper:
        gateway = WriteGateway(
            api,
            lease=lease,
            check_fence=alock.ensure_fence,
            journal_intent=journal.append,
            journal_outcome=journal.append,
            journal_batch=journal.append_batch,
            incident_id=request.incident_id,
            tx_id=request.tx_id,
            attempt=request.attempt,
            first_seq=first_seq,
            max_writes=request.max_actions - len([r for r in existing if r.phase == "intent"]),
            default_namespace=request.scope,
            recorded=recorded,
            journal_wire=journal,
            fence_wire=alock.blocking_fence(),
        )
        tools = TransactionTools(gateway, namespace=request.scope, jaeger_url=jaeger_url, after_write=after_write)
        work = asyncio.create_task(reasoner.mitigate(request, tools))
        lost = asyncio.create_task(keeper.lost.wait())
        await asyncio.wait([work, lost], return_when=asyncio.FIRST_COMPLETED)
        lost.cancel()
        outcome: str = "done"
        reason = ""
        result = MitigationResult()
        if not work.done():
            work.cancel()
            with contextlib.suppress(BaseException):
                await work
            outcome, reason = "failed", f"the lease was lost: {keeper.error!r}"
        else:
            try:
                result = work.result()
                reason = result.reason
                if result.failed:
                    outcome = "failed"
            except Exception as exc:
                log.exception("reasoner failed in %s", request.tx_id)
                outcome, reason = "failed", f"the reasoner failed: {exc!r}"
        try:
            await gateway.flush()  # the last write's outcome is in the journal before the transaction ends
        except Exception as exc:
            log.warning("the last outcome of %s was not journaled: %r", request.tx_id, exc)
            if outcome == "done":
                outcome, reason = "failed", f"the last write's outcome was not journaled: {exc!r}"
    return TransactionEnded(
        id=f"{request.tx_id}:ended",
        incident_id=request.incident_id,
        tx_id=request.tx_id,
        attempt=request.attempt,
        actions=gateway.writes,
        outcome=outcome,  # type: ignore[arg-type]
        reason=reason[:1000],
        hidden_mu=hidden,
        usage=result.usage,
        needs_scope=tools.needs_scope,
        recalled_from=result.recalled_from,
    )
