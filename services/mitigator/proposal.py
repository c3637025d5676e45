"""Make a transaction's plan without writing (``approve`` and ``shadow`` modes): the reasoner runs as usual, but its
writes go to a ``PlanningGateway``, which dry-runs each on the server and records it (see ``stratus.planning``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from stratus.agent_tools import TransactionTools
from stratus.alock import ALock, lease_keeper
from stratus.contracts import MitigateRequest, PlanProposed
from stratus.gateway import KubeApi
from stratus.planning import PlanningGateway
from stratus.reasoning import MitigationReasoner, MitigationResult

log = logging.getLogger(__name__)


async def propose_plan(
    request: MitigateRequest,
    *,
    api: KubeApi,
    alock: ALock,
    reasoner: MitigationReasoner,
    lease_ttl_s: float,
    jaeger_url: str | None = None,
) -> PlanProposed:
    gateway = PlanningGateway(api, lease=request.lease, max_writes=request.max_actions, default_namespace=request.scope)
    tools = TransactionTools(gateway, namespace=request.scope, jaeger_url=jaeger_url)
    result = MitigationResult()
    failed = ""
    # The lease is kept while planning (a slow reasoner must not look like a vanished writer to the watchdog).
    async with lease_keeper(alock, request.lease, lease_ttl_s, release_on_exit=False) as keeper:
        work = asyncio.create_task(reasoner.mitigate(request, tools))
        lost = asyncio.create_task(keeper.lost.wait())
        await asyncio.wait([work, lost], return_when=asyncio.FIRST_COMPLETED)
        lost.cancel()
        if not work.done():
            work.cancel()
            with contextlib.suppress(BaseException):
                await work
            failed = f"the lease was lost while planning: {keeper.error!r}"
        else:
            try:
                result = work.result()
                if result.failed:
                    failed = result.reason or "the reasoner failed"
            except Exception as exc:
                log.exception("reasoner failed while planning %s", request.tx_id)
                failed = f"the reasoner failed: {exc!r}"
    diagnosis = request.diagnosis
    expected = "; ".join(
        part
        for part in (
            f"fixes: {diagnosis.summary}" if diagnosis and diagnosis.summary else "",
            f"the reasoner: {result.reason}" if result.reason and not failed else "",
        )
        if part
    )
    return PlanProposed(
        id=f"{request.tx_id}:plan",
        incident_id=request.incident_id,
        tx_id=request.tx_id,
        attempt=request.attempt,
        actions=gateway.planned,
        expected_effect=expected[:2000],
        failed=failed[:1000],
        usage=result.usage,
    )
