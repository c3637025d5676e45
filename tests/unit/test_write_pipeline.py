"""The write pipeline's order on an in-memory API: pre-image, then the dry run of the one built request with (for an
update of an existing object) the journal intent and the fence beside it, then that same request for real, then the
outcome (acknowledged before the next intent). A failing dry run or a refusal sends nothing for real; an update's
intent journaled beside its dry run is voided (an ``ok=False`` outcome the undoer skips), and a create, delete or
exec is journaled only once it is judged."""

from __future__ import annotations

import asyncio
import copy
from typing import Any, cast

import pytest

from stratus.actions import Create, Delete, Patch
from stratus.confinement import Refusal
from stratus.contracts import JournalRecord, Lease, utcnow
from stratus.gateway import FencingRefused, KubeApi, KubeApiError, WriteGateway
from stratus.journal import undo_plan
from stratus.writerequest import WireRequest

Obj = dict[str, Any]


class FakeApi:
    def __init__(self, objects: dict[tuple[str, str, str], Obj]) -> None:
        self.objects = objects
        self.log: list[str] = []
        self.sent: list[WireRequest] = []

    def get(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        self.log.append("get")
        obj = self.objects.get((kind, namespace or "", name))
        return copy.deepcopy(obj) if obj else None

    def items(self, kind: str, namespace: str | None, **_: Any) -> list[Obj]:
        return []

    def send(self, req: WireRequest) -> Obj:
        self.sent.append(req)
        self.log.append("dry" if req.is_dry_run else "write")
        name = req.path.rsplit("/", 1)[-1]
        obj = self.objects.get(("ConfigMap", "shop", name))
        if obj is None:
            raise KubeApiError(404, "NotFound", f'configmaps "{name}" not found')
        return copy.deepcopy(obj)

    def prepare(self, req: WireRequest) -> WireRequest:
        return req

    def send_prepared(self, prepared: WireRequest, *, dry_run: bool) -> Obj:
        return self.send(prepared.dry_run() if dry_run else prepared)

    def close(self) -> None:
        pass


def gateway(api: FakeApi, log: list[str], *, journal_fails: bool = False, outcome_fails: bool = False) -> WriteGateway:
    async def fence(scope: str, token: int) -> None:
        log.append("fence")

    async def intent(record: JournalRecord) -> None:
        if journal_fails:
            raise ConnectionError("journal unavailable")
        log.append("intent")

    async def outcome(record: JournalRecord) -> None:
        if outcome_fails:
            raise ConnectionError("journal unavailable")
        log.append("outcome")

    lease = Lease(scope="shop", holder="t", token=1, expires_at=utcnow())
    return WriteGateway(
        cast(KubeApi, api), lease=lease, check_fence=fence, journal_intent=intent, journal_outcome=outcome
    )


CM = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "conf", "namespace": "shop", "resourceVersion": "3", "uid": "u"},
}


async def test_the_write_is_the_dry_run_request_without_dry_run() -> None:
    api = FakeApi({("ConfigMap", "shop", "conf"): CM})
    api.log = log = []
    gw = gateway(api, log)
    result = await gw.write(Patch(kind="ConfigMap", namespace="shop", name="conf", patch={"data": {"k": "v"}}))
    assert result.ok, result.message
    await gw.flush()
    assert log[0] == "get" and sorted(log[1:4]) == ["dry", "fence", "intent"] and log[4:] == ["write", "outcome"]
    dry, real = api.sent
    assert dry == real.dry_run() and not real.is_dry_run


async def test_the_next_intent_waits_for_the_last_outcome_and_a_lost_outcome_refuses_the_next_write() -> None:
    api = FakeApi({("ConfigMap", "shop", "conf"): CM})
    api.log = log = []
    gw = gateway(api, log)
    for value in ("a", "b"):
        assert (await gw.write(Patch(kind="ConfigMap", namespace="shop", name="conf", patch={"data": {"k": value}}))).ok
    await gw.flush()
    journal = [step for step in log if step in ("intent", "outcome")]
    assert journal == ["intent", "outcome", "intent", "outcome"]

    log.clear()
    failing = gateway(api, log, outcome_fails=True)
    first = await failing.write(Patch(kind="ConfigMap", namespace="shop", name="conf", patch={"data": {"k": "c"}}))
    assert first.ok and log.count("write") == 1
    with pytest.raises(ConnectionError):
        await failing.write(Patch(kind="ConfigMap", namespace="shop", name="conf", patch={"data": {"k": "d"}}))
    assert log.count("write") == 1 and log.count("intent") == 1  # the second write was never sent


async def test_a_failing_dry_run_or_journal_sends_nothing_for_real() -> None:
    api = FakeApi({("ConfigMap", "shop", "conf"): CM})
    api.log = log = []
    gw = gateway(api, log)
    missing = await gw.write(Delete(kind="ConfigMap", namespace="shop", name="nope"))
    assert not missing.ok and not missing.executed and "intent" not in log and "write" not in log
    failing = gateway(api, log, journal_fails=True)
    with pytest.raises(ConnectionError):
        await failing.write(Patch(kind="ConfigMap", namespace="shop", name="conf", patch={"data": {"k": "v"}}))
    assert "write" not in log


async def test_a_namespace_deletion_is_refused_before_any_request() -> None:
    api = FakeApi({})
    api.log = log = []
    with pytest.raises(Refusal):
        await gateway(api, log).write(Delete(kind="Namespace", name="victim"))
    assert log == []


async def test_an_accepted_writes_outcome_goes_with_the_next_intent_and_a_refused_ones_at_once() -> None:
    api = FakeApi({("ConfigMap", "shop", "conf"): CM})
    api.log = log = []
    batches: list[list[tuple[int, str, bool | None]]] = []
    gw = gateway(api, log)

    async def batch(records: list[JournalRecord]) -> None:
        batches.append([(r.seq, r.phase, r.ok) for r in records])
        log.append("batch")

    gw.journal_batch = batch
    for value in ("a", "b"):
        assert (await gw.write(Patch(kind="ConfigMap", namespace="shop", name="conf", patch={"data": {"k": value}}))).ok
    # The first write's outcome went out with the second intent, in one unit; the second's is held until flush.
    assert [s for s in log if s in ("intent", "outcome", "batch")] == ["intent", "batch"]
    assert batches == [[(1, "outcome", True), (2, "intent", None)]]
    assert log.index("batch") < log.index("write", log.index("write") + 1)  # acknowledged before the second write
    await gw.flush()
    assert log[-1] == "outcome"

    # A write the API refused after its dry run passed: its outcome (the undoer skips the write) is sent at once.
    log.clear()
    refusing = RefusingApi({("ConfigMap", "shop", "conf"): CM})
    refusing.log = log
    gw = gateway(refusing, log)
    gw.journal_batch = batch
    refused = await gw.write(Patch(kind="ConfigMap", namespace="shop", name="conf", patch={"data": {"k": "c"}}))
    assert not refused.ok and refused.executed
    await gw._acknowledged()
    assert [s for s in log if s in ("intent", "outcome", "batch")] == ["intent", "outcome"]


class RefusingApi(FakeApi):
    def send(self, req: WireRequest) -> Obj:
        if req.is_dry_run:
            return super().send(req)
        self.log.append("write")
        raise KubeApiError(403, "Forbidden", "admission refused the write")


async def test_a_failed_batch_refuses_the_write_and_keeps_the_outcome_due() -> None:
    api = FakeApi({("ConfigMap", "shop", "conf"): CM})
    api.log = log = []
    gw = gateway(api, log)
    fail = [False]

    async def batch(records: list[JournalRecord]) -> None:
        if fail[0]:
            raise ConnectionError("journal unavailable")
        log.append("batch")

    gw.journal_batch = batch
    assert (await gw.write(Patch(kind="ConfigMap", namespace="shop", name="conf", patch={"data": {"k": "a"}}))).ok
    fail[0] = True
    with pytest.raises(ConnectionError):
        await gw.write(Patch(kind="ConfigMap", namespace="shop", name="conf", patch={"data": {"k": "b"}}))
    assert log.count("write") == 1  # the second write was never sent
    await gw.flush()  # the first write's outcome is still appended
    assert log[-1] == "outcome"


async def test_a_fence_refusal_beside_a_journaled_intent_sends_nothing() -> None:
    api = FakeApi({("ConfigMap", "shop", "conf"): CM})
    api.log = log = []
    gw = gateway(api, log)

    async def lost_lease(scope: str, token: int) -> bool:
        log.append("fence")
        return False

    gw.check_fence = lost_lease
    with pytest.raises(FencingRefused):
        await gw.write(Patch(kind="ConfigMap", namespace="shop", name="conf", patch={"data": {"k": "v"}}))
    assert "write" not in log and sorted(log[1:]) == ["dry", "fence", "intent"] and gw.writes == 0

    # Both fail: the journal's error is the one raised, and the fence's is settled, not left unretrieved.
    log.clear()
    failing = gateway(api, log, journal_fails=True)

    async def broken(scope: str, token: int) -> None:
        raise ConnectionError("redis unavailable")

    failing.check_fence = broken
    with pytest.raises(ConnectionError, match="journal"):
        await failing.write(Patch(kind="ConfigMap", namespace="shop", name="conf", patch={"data": {"k": "w"}}))
    assert "write" not in log


async def test_an_update_journaled_beside_a_failing_dry_run_or_a_refusal_is_voided() -> None:
    api = FakeApi({("ConfigMap", "shop", "conf"): CM})
    records: list[JournalRecord] = []

    async def record(r: JournalRecord) -> None:
        records.append(r)

    async def fence(scope: str, token: int) -> None:
        pass

    lease = Lease(scope="shop", holder="t", token=1, expires_at=utcnow())
    gw = WriteGateway(cast(KubeApi, api), lease=lease, check_fence=fence, journal_intent=record, journal_outcome=record)

    def failing_dry_run(req: WireRequest) -> Obj:
        raise KubeApiError(422, "Invalid", "data: Invalid value")

    api.send = failing_dry_run  # type: ignore[method-assign]
    result = await gw.write(Patch(kind="ConfigMap", namespace="shop", name="conf", patch={"data": {"k": "v"}}))
    assert not result.ok and not result.executed and gw.writes == 0
    await gw.flush()
    assert [(r.phase, r.ok) for r in records] == [("intent", None), ("outcome", False)]
    assert "Not sent: the dry run failed" in records[1].message and undo_plan(records) == []

    # A create or a delete is never journaled ahead of its checks: the undo of a create that never ran would delete
    # an object someone else made.
    records.clear()
    with_conflict = await gw.write(Create(manifest={**CM, "metadata": {"name": "new", "namespace": "shop"}}))
    gone = await gw.write(Delete(kind="ConfigMap", namespace="shop", name="conf"))
    assert not with_conflict.ok and not gone.ok and records == []


async def test_a_write_cancelled_while_its_intent_is_unacknowledged_is_never_sent() -> None:
    api = FakeApi({("ConfigMap", "shop", "conf"): CM})
    api.log = log = []
    gw = gateway(api, log)
    unblock = asyncio.Event()

    async def slow_intent(record: JournalRecord) -> None:
        log.append("intent")
        await unblock.wait()

    gw.journal_intent = slow_intent
    task = asyncio.create_task(gw.write(Patch(kind="ConfigMap", namespace="shop", name="conf", patch={"data": {}})))
    for _ in range(200):
        if "dry" in log and "intent" in log:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    unblock.set()  # an append that went on after the cancellation would open the gate now
    await asyncio.sleep(0.2)
    assert "dry" in log and "write" not in log and gw.writes == 0
