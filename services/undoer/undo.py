"""Roll one transaction back from its journal (A2: faithful undo).

The journal is replayed back to front (``stratus.journal.undo_plan``); each intent carries the actions that restore
its pre-image, recorded before the write ran, and ``WriteGateway.apply_undo`` executes them idempotently and fenced.
Then the scope's digest is compared with the checkpoint's: a mismatch is reported field by field, never hidden. The
checkpoint is read from the transaction's journal with the undo records (``stratus.journal.checkpoint_of``); a
transaction journaled before checkpoints were kept there falls back on the request's digest, without the snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from stratus.contracts import Divergence, JournalRecord, TransactionCheckpoint, UndoCompleted, UndoRequest
from stratus.crashpoints import crash_point
from stratus.digest import StateDigest, diff_snapshots
from stratus.errors import PermanentError
from stratus.gateway import WriteResult
from stratus.journal import undo_plan

log = logging.getLogger(__name__)


class UndoGateway(Protocol):
    async def apply_undo(self, spec: Any) -> WriteResult: ...


StateReader = Callable[[], Awaitable[StateDigest]]


async def roll_back(
    request: UndoRequest,
    records: list[JournalRecord],
    gateway: UndoGateway,
    checkpoint: TransactionCheckpoint | None,
    read_state: StateReader,
) -> UndoCompleted:
    undone = 0
    failures: list[Divergence] = []
    for record in undo_plan(records):
        for spec in record.undo:
            result = await gateway.apply_undo(spec)
            crash_point("undoer.after_undo_step")
            if not result.ok:
                failures.append(
                    Divergence(
                        object=f"{spec.kind}/{spec.name}", field="(undo)", expected=spec.verb, found=result.message
                    )
                )
                log.error("undo of %s #%d failed: %s", request.tx_id, record.seq, result.message)
        undone += 1
    state = await read_state()
    divergences = list(failures)
    expected = checkpoint.digest if checkpoint is not None else request.checkpoint_digest
    if checkpoint is not None and request.checkpoint_digest and checkpoint.digest != request.checkpoint_digest:
        log.warning(
            "undo of %s: the journal's checkpoint differs from the request's; the journal's is used", request.tx_id
        )
    if state.digest != expected:
        if checkpoint is None:
            divergences.append(Divergence(object=request.scope, field="digest", expected=expected, found=state.digest))
        else:
            divergences.extend(diff_snapshots(checkpoint.snapshot(), state.objects))
            if not divergences:
                raise PermanentError("digests differ but the snapshots do not: the checkpoint snapshot is inconsistent")
    return UndoCompleted(
        id=f"{request.tx_id}:undone:{request.lease.token}",
        incident_id=request.incident_id,
        tx_id=request.tx_id,
        attempt=request.attempt,
        undone=undone,
        restored_digest=state.digest,
        divergences=divergences,
    )
