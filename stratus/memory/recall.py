"""Which past incidents are close to this one, and whose fix may be replayed as attempt 1 (pure functions).

A fix is proposed only when replaying it is plausible *and* has not already been shown wrong:
- the match is close (similarity at least ``propose_at``);
- its memory is not demoted (its fix was replayed once and aborted);
- no memory closed after it aborted the same writes (a fix that stopped working is dropped for every memory that
  holds it, so a wrong memory is tried at most once, never forever);
- every object the fix writes is among this incident's implicated objects (the fix acts on what is broken now,
  not on a pod of last week).
TNR still guards the replay: it runs as an ordinary transaction and is undone if it does not help.
"""

from __future__ import annotations

from stratus.contracts import Action, IncidentSignature, RecalledIncident
from stratus.memory.records import IncidentMemory, fix_fingerprint
from stratus.memory.signature import similarity


def aborted_fixes(memories: list[IncidentMemory]) -> dict[str, float]:
    """Fingerprint of every aborted transaction -> when (timestamp) it was last aborted."""
    out: dict[str, float] = {}
    for m in memories:
        for tx in m.transactions:
            if tx.decision == "abort" and tx.actions:
                fp = fix_fingerprint(tx.actions)
                out[fp] = max(out.get(fp, 0.0), m.closed_at.timestamp())
    return out


def _targets_present(fix: list[Action], sig: IncidentSignature) -> bool:
    here = set(sig.objects)
    return all(a.namespace is None or f"{a.kind}/{a.name}" in here for a in fix)


def nearest(
    sig: IncidentSignature,
    memories: list[IncidentMemory],
    *,
    k: int = 5,
    min_similarity: float = 0.3,
    propose_at: float = 0.7,
) -> list[RecalledIncident]:
    """The ``k`` most similar memories (newest first among equals), each marked whether its fix may be proposed."""
    scored = sorted(
        ((similarity(sig, m.signature), m) for m in memories),
        key=lambda sm: (-sm[0], -sm[1].closed_at.timestamp()),
    )
    aborted = aborted_fixes(memories)
    out: list[RecalledIncident] = []
    for sim, m in scored[:k]:
        if sim < min_similarity:
            break
        fix = m.committed_fix()
        proposable = (
            bool(fix)
            and sim >= propose_at
            and not m.demoted
            and aborted.get(fix_fingerprint(fix), 0.0) <= m.closed_at.timestamp()
            and _targets_present(fix, sig)
        )
        out.append(
            RecalledIncident(
                key=m.key,
                similarity=round(sim, 4),
                scope=m.scope,
                outcome=m.outcome,
                summary=m.summary[:500],
                fix=fix,
                proposable=proposable,
            )
        )
    return out


def replay_actions(recalled: RecalledIncident, scope: str) -> list[Action]:
    """The fix's writes, moved from the past incident's namespace to this one's."""
    return [
        a.model_copy(update={"namespace": scope}) if a.namespace is not None and a.namespace == recalled.scope else a
        for a in recalled.fix
    ]
