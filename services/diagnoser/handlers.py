"""Thin subscriber of the diagnoser: read-only tools for the scope, the reasoner, the diagnosis event."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from stratus.agent_tools import GatewayTools
from stratus.bus import Bus
from stratus.contracts import DiagnoseRequest, IncidentSignature, RecalledIncident
from stratus.embedding.hooks import refine_diagnosis
from stratus.embedding.runtime import StateEmbedding
from stratus.gateway import ReadGateway
from stratus.memory.diagnosis import MemoryRecall, annotate
from stratus.reasoning import DiagnosisReasoner

log = logging.getLogger(__name__)


@dataclass
class DiagnoserDeps:
    bus: Bus
    gateway: ReadGateway
    reasoner: DiagnosisReasoner
    jaeger_url: str | None = None
    embedding: StateEmbedding | None = None
    memory: MemoryRecall | None = None


class DiagnoseHandler:
    def __init__(self, deps: DiagnoserDeps) -> None:
        self.deps = deps

    async def __call__(self, request: DiagnoseRequest) -> None:
        tools = GatewayTools(self.deps.gateway, namespace=request.scope, jaeger_url=self.deps.jaeger_url)
        signature: IncidentSignature | None = None
        recalled: list[RecalledIncident] = []
        if self.deps.memory is not None:
            request, signature, recalled = await self.deps.memory.prepare(request, tools)
        diagnosis = await self.deps.reasoner.diagnose(request, tools)
        diagnosis = annotate(diagnosis, signature, recalled)
        diagnosis = diagnosis.model_copy(update={"id": f"{request.id}:diagnosis", "incident_id": request.incident_id})
        if self.deps.embedding is not None:
            diagnosis = await refine_diagnosis(self.deps.embedding, request.scope, diagnosis)
        await self.deps.bus.publish(self.deps.bus.topology.events(request.incident_id, diagnosis.kind), diagnosis)
        log.info(
            "%s: diagnosis %s (%s)",
            request.incident_id,
            ", ".join(diagnosis.localisation[:3]) or "?",
            diagnosis.root_cause.fault_type if diagnosis.root_cause else "no root cause",
        )
