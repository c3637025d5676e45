"""Wiring of the diagnoser: the read-only gateway, the reasoner, the work consumer."""

from __future__ import annotations

import asyncio

from services.diagnoser.handlers import DiagnoseHandler, DiagnoserDeps
from services.diagnoser.policies import make_reasoner
from stratus.bus import Bus
from stratus.contracts import DiagnoseRequest, DiagnosisReady, ReasoningStep, WorkFailed
from stratus.dependencies import kube_probe, llm_probe
from stratus.embedding.hooks import from_settings as embedding_from_settings
from stratus.gateway import ReadGateway
from stratus.kubeapi import kube_api
from stratus.lastgood import attach, store_from_settings
from stratus.memory.diagnosis import MemoryRecall
from stratus.memory.store import MemoryStore
from stratus.reasoning import publish_steps
from stratus.runtime import Deferred, ServiceRuntime, configure_logging, report_dropped_work
from stratus.settings import DiagnoserSettings


def build(settings: DiagnoserSettings) -> ServiceRuntime:
    runtime = ServiceRuntime("diagnoser", settings)
    runtime.publishes_event(DiagnosisReady, "The diagnosis of an incident: localisation and root cause.")
    runtime.publishes_event(WorkFailed, "A diagnosis request was dropped, with the reason.")
    runtime.publishes_event(ReasoningStep, "One tool call of the LLM and its result (truncated, scrubbed).")
    reasoner = make_reasoner(settings)
    if settings.llm_base_url and settings.diagnosis_policy in ("auto", "llm", "hybrid"):
        runtime.depends_on("llm", llm_probe(str(settings.llm_base_url)))

    handler: Deferred[DiagnoseRequest] = Deferred()
    runtime.consumer(
        DiagnoseRequest,
        handler,
        description="Diagnose an incident's scope with read-only tools; answers with a DiagnosisReady event, or "
        "a WorkFailed event when the request is dropped.",
        on_dropped=report_dropped_work(runtime.bus),
    )

    async def start(bus: Bus) -> None:
        publish_steps(reasoner, bus)  # each LLM tool call on the incident's timeline
        if settings.lastgood_enabled:
            attach(reasoner, store_from_settings(bus.js, settings).latest)
        api = kube_api(settings)
        runtime.depends_on("kubernetes", kube_probe(api))
        jaeger = str(settings.jaeger_url) if settings.jaeger_url else None
        deps = DiagnoserDeps(
            bus=bus,
            gateway=ReadGateway(api),
            reasoner=reasoner,
            jaeger_url=jaeger,
            embedding=embedding_from_settings(settings, api, jaeger) if settings.embedding_enabled else None,
            memory=MemoryRecall(
                MemoryStore(bus.js, settings.memory_bucket_name(bus.topology.stream_prefix)),
                k=settings.memory_k,
                min_similarity=settings.memory_min_similarity,
                propose_at=settings.memory_propose_at,
            )
            if settings.memory_enabled
            else None,
        )
        handler.bind(DiagnoseHandler(deps))

    runtime.startup(start)
    runtime.health_details(lambda: {"policy": settings.diagnosis_policy})
    return runtime


def main() -> None:
    settings = DiagnoserSettings()
    configure_logging(settings.log_level, "diagnoser", settings.log_format, settings.instance or "")
    asyncio.run(build(settings).run())
