"""Thin subscriber of the diagnoser: read-only tools for the scope, the reasoner, the diagnosis event."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nats.aio.msg import Msg

from stratus.agent_tools import GatewayTools
from stratus.bus import Bus
from stratus.contracts import DiagnoseRequest, Work, events_subject
from stratus.errors import PermanentError
from stratus.gateway import ReadGateway
from stratus.reasoning import DiagnosisReasoner

log = logging.getLogger(__name__)


@dataclass
class DiagnoserDeps:
    bus: Bus
    gateway: ReadGateway
    reasoner: DiagnosisReasoner
    jaeger_url: str | None = None


class DiagnoseHandler:
    def __init__(self, deps: DiagnoserDeps) -> None:
        self.deps = deps

    async def __call__(self, request: Work, msg: Msg) -> None:
        if not isinstance(request, DiagnoseRequest):
            raise PermanentError(f"diagnoser: cannot handle work of kind {request.kind!r} (sent to the wrong service?)")
        tools = GatewayTools(self.deps.gateway, namespace=request.scope, jaeger_url=self.deps.jaeger_url)
        diagnosis = await self.deps.reasoner.diagnose(request, tools)
        diagnosis = diagnosis.model_copy(update={"id": f"{request.id}:diagnosis", "incident_id": request.incident_id})
        await self.deps.bus.publish(events_subject(request.incident_id, diagnosis.kind), diagnosis)
        log.info(
            "%s: diagnosis %s (%s)",
            request.incident_id,
            ", ".join(diagnosis.localisation[:3]) or "?",
            diagnosis.root_cause.fault_type if diagnosis.root_cause else "no root cause",
        )
