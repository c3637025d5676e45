"""The diagnoser's side of incident memory: read the scope's signature and recall the nearest past incidents.

The recall happens before the reasoner runs, so the reasoner is shown what worked before (as evidence it may weigh,
never as an order), and its result is carried on the diagnosis for the mitigator's MemoryFirst step and for the
coordinator, which stores the signature when the incident closes. Memory is advice: any failure to read it leaves
the diagnosis as it would have been without it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from stratus.contracts import DiagnoseRequest, DiagnosisReady, IncidentSignature, RecalledIncident
from stratus.memory.recall import nearest
from stratus.memory.signature import signature_of
from stratus.memory.store import MemoryStore
from stratus.reasoners.rulebook.analyzers import changed_template
from stratus.reasoners.rulebook.snapshot import collect
from stratus.reasoning import ClusterTools

log = logging.getLogger(__name__)


def _describe_fix(r: RecalledIncident) -> str:
    return ", ".join(f"{a.verb} {a.kind}/{a.name}" for a in r.fix) or "no committed fix"


def hints(recalled: list[RecalledIncident]) -> list[str]:
    """Evidence lines for the reasoner and the timeline."""
    return [
        f"memory: past incident {r.key} (similarity {r.similarity:.2f}, {r.outcome}): {r.summary[:200]} "
        f"Fix that committed: {_describe_fix(r)}."
        for r in recalled[:3]
    ]


@dataclass
class MemoryRecall:
    store: MemoryStore
    k: int = 5
    min_similarity: float = 0.3
    propose_at: float = 0.7

    async def recall(self, scope: str, tools: ClusterTools) -> tuple[IncidentSignature, list[RecalledIncident]]:
        snap = await collect(tools, scope)
        changes = [f"{f.mechanism}:{f.target}" for f in changed_template(snap)][:5]
        signature = signature_of(snap, changes)
        memories = await self.store.all()
        found = nearest(signature, memories, k=self.k, min_similarity=self.min_similarity, propose_at=self.propose_at)
        return signature, found

    async def prepare(
        self, request: DiagnoseRequest, tools: ClusterTools
    ) -> tuple[DiagnoseRequest, IncidentSignature | None, list[RecalledIncident]]:
        """``request`` with the recalled incidents added to its evidence, the signature and the matches."""
        try:
            signature, recalled = await self.recall(request.scope, tools)
        except Exception as exc:  # memory is advice: diagnose without it
            log.warning("%s: incident memory unavailable: %r", request.incident_id, exc)
            return request, None, []
        log.log(
            logging.INFO if recalled else logging.DEBUG,
            "%s: signature %s / %s / %d template(s); recalled %s",
            request.incident_id,
            ",".join(signature.unhealthy) or "-",
            ",".join(signature.objects) or "-",
            len(signature.log_templates),
            ", ".join(f"{r.key} {r.similarity:.2f}{' (proposable)' if r.proposable else ''}" for r in recalled)
            or "nothing",
        )
        if recalled:
            request = request.model_copy(update={"evidence": [*request.evidence, *hints(recalled)]})
        return request, signature, recalled


def annotate(
    diagnosis: DiagnosisReady, signature: IncidentSignature | None, recalled: list[RecalledIncident]
) -> DiagnosisReady:
    if signature is None:
        return diagnosis
    return diagnosis.model_copy(
        update={"signature": signature, "recalled": recalled, "evidence": [*diagnosis.evidence, *hints(recalled)]}
    )
