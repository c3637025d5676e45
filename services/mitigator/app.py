"""Wiring of the mitigator: settings, Redis (A-Lock), Kubernetes API, the reasoner, the work consumer."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from services.mitigator.handlers import MitigateHandler, MitigatorDeps
from services.mitigator.policies import make_reasoner
from stratus.alock import ALock
from stratus.bus import Bus
from stratus.contracts import (
    ActionExecuted,
    JournalRecord,
    MitigateRequest,
    PlanProposed,
    ReasoningStep,
    TransactionEnded,
    TransactionStarted,
    WorkFailed,
)
from stratus.dependencies import kube_probe, llm_probe, redis_probe
from stratus.gateway import ReadGateway
from stratus.kubeapi import kube_api
from stratus.lastgood import attach, store_from_settings
from stratus.reasoning import publish_steps
from stratus.runtime import Deferred, ServiceRuntime, configure_logging, report_dropped_work
from stratus.settings import MitigatorSettings
from stratus.severity import SeverityMeter


def build(settings: MitigatorSettings) -> ServiceRuntime:
    runtime = ServiceRuntime("mitigator", settings)
    runtime.publishes_event(TransactionStarted, "A mitigator took the transaction under a valid lease.")
    runtime.publishes_event(ActionExecuted, "One write of the transaction, with mu after it (the hidden mu-path).")
    runtime.publishes_event(TransactionEnded, "The transaction's writes are done (or it failed or was refused).")
    runtime.publishes_event(
        PlanProposed, "A transaction's plan, every write dry-run on the server and none executed (approve, shadow)."
    )
    runtime.publishes_event(WorkFailed, "A mitigation request was dropped, with the reason.")
    runtime.publishes_event(ReasoningStep, "One tool call of the LLM and its result (truncated, scrubbed).")
    runtime.publishes(
        JournalRecord,
        "{prefix}.journal.{tx_id}",
        "The write-ahead journal: each write's intent (with its undo) before it runs, and its outcome after (the "
        "outcome of a write the API accepted travels with the next intent as one message: a JournalBatch of the two, "
        "stratus.contracts).",
    )
    redis = aioredis.Redis.from_url(str(settings.redis_url))
    reasoner = make_reasoner(settings)
    runtime.depends_on("redis", redis_probe(redis))
    if settings.llm_base_url and settings.policy in ("auto", "llm", "hybrid"):
        runtime.depends_on("llm", llm_probe(str(settings.llm_base_url)))

    handler: Deferred[MitigateRequest] = Deferred()
    runtime.consumer(
        MitigateRequest,
        handler,
        description="Run one bounded transaction under the lease it carries (journaled writes through the "
        "gateway); answers with TransactionStarted, ActionExecuted and TransactionEnded events, or WorkFailed.",
        on_dropped=report_dropped_work(runtime.bus),
    )

    async def start(bus: Bus) -> None:
        publish_steps(reasoner, bus)  # each LLM tool call on the incident's timeline
        last_good = store_from_settings(bus.js, settings).latest if settings.lastgood_enabled else None
        if last_good is not None:
            attach(reasoner, last_good)
        await redis.ping()
        api = kube_api(settings)
        runtime.depends_on("kubernetes", kube_probe(api))
        deps = MitigatorDeps(
            bus=bus,
            alock=ALock(redis, prefix=settings.redis_prefix),
            api=api,
            meter=SeverityMeter.from_settings(settings, ReadGateway(api)),
            reasoner=reasoner,
            lease_ttl_s=settings.lease_ttl_s,
            jaeger_url=str(settings.jaeger_url) if settings.jaeger_url else None,
            instance=runtime.instance,
            last_good=last_good,
        )
        handler.bind(MitigateHandler(deps))

    runtime.startup(start)
    runtime.health_details(lambda: {"policy": settings.policy})
    return runtime


def main() -> None:
    settings = MitigatorSettings()
    configure_logging(settings.log_level, "mitigator", settings.log_format, settings.instance or "")
    asyncio.run(build(settings).run())
