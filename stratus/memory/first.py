"""MemoryFirst: attempt 1 of an incident replays the committed fix of a close past incident, if one may be proposed.

The replay is an ordinary transaction: its writes go through the same tools (confinement, dry run, journal, lease,
K), the coordinator measures mu and commits or aborts it, and an abort is undone and demotes the memory. Any other
attempt, or an incident without a proposable match, goes to the wrapped reasoner untouched.
"""

from __future__ import annotations

import logging

from stratus.contracts import MitigateRequest
from stratus.errors import PermanentError
from stratus.memory.recall import replay_actions
from stratus.reasoning import MitigationReasoner, MitigationResult, MitigationTools

log = logging.getLogger(__name__)


class MemoryFirstMitigationReasoner:
    def __init__(self, inner: MitigationReasoner) -> None:
        self.inner = inner
        self.llm = inner  # ``publish_steps`` finds the LLM reasoner through ``.llm``
        self.replays = 0

    async def mitigate(self, request: MitigateRequest, tools: MitigationTools) -> MitigationResult:
        diagnosis = request.diagnosis
        match = None
        if request.attempt == 1 and diagnosis is not None:
            match = next((r for r in diagnosis.recalled if r.proposable), None)
        if match is None:
            return await self.inner.mitigate(request, tools)
        self.replays += 1
        notes: list[str] = []
        for action in replay_actions(match, request.scope):
            try:
                notes.append((await tools.execute(action)).splitlines()[0] if action else "")
            except PermanentError as exc:
                notes.append(f"refused: {exc}")
                break
        log.info("%s: attempt 1 replays the fix of %s (%s)", request.incident_id, match.key, match.similarity)
        reason = f"memory: replayed the committed fix of {match.key} (similarity {match.similarity:.2f}): " + "; ".join(
            n for n in notes if n
        )
        return MitigationResult(done=True, reason=reason[:900], recalled_from=match.key)
