"""The checkpoint lives in the transaction's journal: the undoer reads it there, with the undo records, not in Redis.

A checkpoint is appended to a transaction's journal, then the scope changes in a way no journal record undoes. The
undoer, given a request that carries no digest and a Redis that holds nothing for the transaction, still finds the
checkpoint and reports the difference field by field.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from services.undoer.handlers import UndoerDeps, UndoHandler
from stratus.actions import Scale
from stratus.alock import ALock
from stratus.bus import Bus
from stratus.contracts import JournalRecord, TransactionCheckpoint, UndoCompleted, UndoRequest
from stratus.gateway import KubeApi, ReadGateway
from stratus.journal import Journal, checkpoint_of
from stratus.observer import scope_state

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.fixtures_arena"]


def checkpoint(tx: str, token: int, ns: str, digest: str, objects: dict[str, object]) -> TransactionCheckpoint:
    return TransactionCheckpoint(
        incident_id=f"inc-{tx}",
        tx_id=tx,
        attempt=1,
        lease_token=token,
        scope=ns,
        lease_scope=ns,
        mu=1.0,
        digest=digest,
        snapshot_z=TransactionCheckpoint.pack(objects),
    )


async def test_the_journal_keeps_the_checkpoint_the_writes_started_from(bus: Bus, uid: str) -> None:
    await bus.ensure_streams()
    journal, tx = Journal(bus), f"tx-{uid}"
    first = checkpoint(tx, 7, "ns", "before", {"ConfigMap/ns/conf": {"data": {"k": "v"}}})
    await journal.append_checkpoint(first)
    await journal.append_checkpoint(first)  # the coordinator retried: the same grant's checkpoint is kept once
    write = Scale(kind="Deployment", namespace="ns", name="web", replicas=0)
    intent = JournalRecord(incident_id="i", tx_id=tx, attempt=1, seq=1, phase="intent", action=write, undo=[write])
    await journal.append(intent)
    await journal.append_checkpoint(checkpoint(tx, 8, "ns", "after-a-write", {}))  # taken too late: not the start
    entries = await journal.read_entries(tx)
    assert [e.kind for e in entries] == ["checkpoint", "journal", "checkpoint"]
    assert [r.seq for r in await journal.read(tx)] == [1]  # the write records alone
    found = checkpoint_of(entries)
    assert found is not None and found.digest == "before" and found.lease_token == 7
    assert found.snapshot() == {"ConfigMap/ns/conf": {"data": {"k": "v"}}}


async def test_the_undoer_reads_the_checkpoint_from_the_transactions_journal(
    bus: Bus, redis: aioredis.Redis, arena_kubeconfig: Path, uid: str
) -> None:
    await bus.ensure_streams()
    ns, tx = f"cp-{uid}", f"tx-{uuid.uuid4().hex[:8]}"
    api = KubeApi.from_kubeconfig(arena_kubeconfig)
    await asyncio.to_thread(api.create, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    conf = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf", "namespace": ns}, "data": {"k": "v"}}
    await asyncio.to_thread(api.create, conf)
    alock = ALock(redis, prefix=f"t{uid}")
    lease = await alock.acquire_write(ns, "coordinator", 30)
    state = await scope_state(ReadGateway(api), ns, ns)
    await Journal(bus).append_checkpoint(checkpoint(tx, lease.token, ns, state.digest, state.objects))

    await asyncio.to_thread(api.patch, "ConfigMap", ns, "conf", {"data": {"k": "changed"}}, "merge")
    request = UndoRequest(incident_id=f"inc-{tx}", scope=ns, tx_id=tx, attempt=1, lease=lease, checkpoint_digest="")
    try:
        await UndoHandler(UndoerDeps(bus, alock, api))(request)
    finally:
        await alock.release(lease)
        await alock.aclose()
        api.close()
    msg = await bus.js.get_last_msg(
        bus.topology.events_stream, bus.topology.events(request.incident_id, "undo_completed")
    )
    completed = UndoCompleted.model_validate_json(msg.data)
    assert completed.undone == 0
    fields = {(d.object, d.field): (d.expected, d.found) for d in completed.divergences}
    assert [field for _, field in fields] != ["digest"], "the checkpoint's snapshot was not found"
    assert ("v", "changed") in fields.values(), completed.divergences
