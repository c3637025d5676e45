"""Thin subscriber of the undoer: check the lease, read the journal, roll back, report."""

from __future__ import annotations

from dataclasses import dataclass

from services.undoer.undo import roll_back
from stratus.alock import ALock, lease_keeper
from stratus.bus import Bus
from stratus.contracts import JournalRecord, UndoRequest
from stratus.errors import PermanentError
from stratus.gateway import KubeApi, WriteGateway
from stratus.journal import Journal, checkpoint_of
from stratus.metrics import record_undo
from stratus.observer import scope_state


@dataclass
class UndoerDeps:
    bus: Bus
    alock: ALock
    api: KubeApi
    lease_ttl_s: float = 30.0


class UndoHandler:
    def __init__(self, deps: UndoerDeps) -> None:
        self.deps = deps

    async def __call__(self, request: UndoRequest) -> None:
        deps = self.deps
        lease = request.lease
        if not await deps.alock.check_fence(lease.scope, lease.token):
            raise PermanentError(
                f"undo of {request.tx_id} refused: lease token {lease.token} on {lease.scope!r} is no longer current; "
                "the coordinator re-issues the undo with a fresh lease"
            )
        async with lease_keeper(deps.alock, lease, deps.lease_ttl_s, release_on_exit=False) as keeper:
            gateway = WriteGateway(
                deps.api, lease=lease, check_fence=deps.alock.ensure_fence, default_namespace=request.scope
            )
            # The undo records and the checkpoint they restore come from one store, the transaction's journal.
            entries = await Journal(deps.bus).read_entries(request.tx_id)
            records = [e for e in entries if isinstance(e, JournalRecord)]
            completed = await roll_back(
                request,
                records,
                gateway,
                checkpoint_of(entries),
                lambda: scope_state(gateway, request.scope, lease.scope),
            )
            if keeper.lost.is_set():
                raise PermanentError(f"undo of {request.tx_id}: the lease was lost while undoing; not reporting")
        await deps.bus.publish(deps.bus.topology.events(completed.incident_id, completed.kind), completed)
        record_undo(len(completed.divergences))
