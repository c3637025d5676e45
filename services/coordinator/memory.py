"""The coordinator's side of incident memory: when an incident closes, keep it, and judge the fix it replayed.

The coordinator is the one place that knows every transaction's actions, mu-paths and decision, so it writes the
memory. A replayed fix (MemoryFirst) that committed counts for its memory; one that aborted demotes it, and the new
memory records the aborted replay, so the same writes are never proposed again for that failure (see
``stratus.memory.recall``). Writing happens off the incident's path: a closed incident never waits on memory.
"""

from __future__ import annotations

import logging

from services.coordinator.machine import IncidentRecord
from stratus.memory.records import IncidentMemory, RememberedTransaction, memory_key
from stratus.memory.store import MemoryStore

log = logging.getLogger(__name__)


def memory_of(record: IncidentRecord) -> IncidentMemory | None:
    """What to keep of a closed incident; None when it has no signature (memory was off at its diagnosis)."""
    diagnosis = record.diagnosis
    if diagnosis is None or diagnosis.signature is None:
        return None
    rc = diagnosis.root_cause
    return IncidentMemory(
        key=memory_key(record.incident_id),
        incident_id=record.incident_id,
        scope=record.scope,
        outcome="resolved" if record.state == "resolved" else "escalated",
        signature=diagnosis.signature,
        localisation=diagnosis.localisation[:5],
        root_cause=f"{rc.system_level} / {rc.fault_type}" if rc else "",
        summary=diagnosis.summary[:1000],
        baseline=record.baseline,
        visible_mu=list(record.visible_mu),
        transactions=[
            RememberedTransaction(
                tx_id=a.tx_id,
                attempt=a.n,
                actions=list(a.actions),
                hidden_mu=list(a.hidden_mu),
                mu_pre=a.mu_pre,
                mu_post=a.mu_post,
                decision=a.decision,
                reason=a.reason[:500],
                recalled_from=a.recalled_from,
            )
            for a in record.attempts
        ],
    )


class MemoryKeeper:
    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    async def closed(self, record: IncidentRecord) -> None:
        try:
            for attempt in record.attempts:
                if attempt.recalled_from is None or attempt.decision is None:
                    continue
                if attempt.decision == "abort":
                    await self.store.demote(attempt.recalled_from)
                    log.info("%s: memory %s demoted (its fix aborted)", record.incident_id, attempt.recalled_from)
                else:
                    await self.store.count_replay(attempt.recalled_from)
            memory = memory_of(record)
            if memory is not None:
                await self.store.put(memory)
        except Exception:  # memory is advice: never let it disturb the coordinator
            log.exception("%s: could not write the incident memory", record.incident_id)
