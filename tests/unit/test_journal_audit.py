"""What the journal publishes, on an in-memory JetStream: every record's action scrubbed (a write's action once for its
intent and its outcome), batches bounded, and the JSON copies the gateway makes independent of their source."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from stratus import journal as journal_module
from stratus.actions import Patch
from stratus.contracts import DEFAULT_TOPOLOGY, JOURNAL_BATCH_MAX, JournalBatch, JournalRecord
from stratus.journal import Journal, JournalError
from stratus.writerequest import copy_json


class Ack:
    duplicate = False

    def __init__(self, seq: int) -> None:
        self.seq = seq


class FakeJetStream:
    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    async def publish(self, subject: str, payload: bytes, **_: Any) -> Ack:
        self.published.append(json.loads(payload))
        return Ack(len(self.published))


class FakeBus:
    topology = DEFAULT_TOPOLOGY

    def __init__(self) -> None:
        self.js = FakeJetStream()


def journal() -> tuple[Journal, FakeJetStream]:
    bus = FakeBus()
    j = Journal(bus)  # type: ignore[arg-type]
    j._last_seq["tx"] = 0
    return j, bus.js


def record(seq: int, phase: str, action: Patch) -> JournalRecord:
    return JournalRecord(
        incident_id="inc",
        tx_id="tx",
        attempt=1,
        seq=seq,
        phase=phase,
        action=action,
        message="m",  # type: ignore[arg-type]
    )


def patch_with_password(value: str) -> Patch:
    env = [{"name": "DB_PASSWORD", "value": value}]
    return Patch(kind="Deployment", namespace="shop", name="web", patch={"spec": {"env": env}})


async def test_an_intent_and_its_outcome_are_scrubbed_with_one_scrub_of_their_action(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scrubbed: list[Patch] = []
    real = journal_module.scrub_model

    def counting(model: Any) -> Any:
        scrubbed.append(model)
        return real(model)

    monkeypatch.setattr(journal_module, "scrub_model", counting)
    j, js = journal()
    first, second = patch_with_password("hunter2-first"), patch_with_password("hunter2-second")
    intent = record(1, "intent", first)
    await j.append(intent)
    await j.append_batch([intent.model_copy(update={"phase": "outcome", "ok": True}), record(2, "intent", second)])
    await j.append(record(2, "outcome", second))
    text = json.dumps(js.published)
    assert "hunter2" not in text and text.count("DB_PASSWORD") == 4
    assert scrubbed == [first, second]  # each action once, though each was journaled twice


async def test_a_batch_above_the_bound_is_refused_before_anything_is_sent() -> None:
    j, js = journal()
    action = patch_with_password("x")
    records = [record(seq, "intent", action) for seq in range(1, JOURNAL_BATCH_MAX + 2)]
    with pytest.raises(JournalError, match=f"at most {JOURNAL_BATCH_MAX}"):
        await j.append_batch(records)
    assert js.published == []
    await j.append_batch(records[:JOURNAL_BATCH_MAX])
    assert len(js.published) == 1 and len(js.published[0]["records"]) == JOURNAL_BATCH_MAX
    with pytest.raises(ValidationError):  # the contract itself: a reader refuses an unbounded batch
        JournalBatch(tx_id="tx", records=records)


def test_copy_json_is_an_independent_deep_copy() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    source: dict[str, Any] = {"a": [{"b": 1, "c": None}, "s", 2.5, True], "d": {"e": {"f": []}}, "t": when, "u": {1, 2}}
    copied = copy_json(source)
    assert copied == source
    copied["a"][0]["b"] = 2
    copied["d"]["e"]["f"].append(1)
    copied["u"].add(3)
    assert source["a"][0]["b"] == 1 and source["d"]["e"]["f"] == [] and source["u"] == {1, 2}


async def test_a_record_with_nothing_to_mask_is_journaled_as_it_is_and_a_credential_in_its_message_is_masked() -> None:
    j, js = journal()
    clean = Patch(kind="ConfigMap", namespace="shop", name="conf", patch={"data": {"k": "v"}})
    plain = record(1, "intent", clean)
    await j.append(plain)
    assert js.published[-1] == json.loads(plain.model_dump_json())
    leaky = record(1, "outcome", clean).model_copy(update={"message": "failed: password=hunter2 was refused"})
    await j.append(leaky)
    assert "hunter2" not in js.published[-1]["message"] and js.published[-1]["action"] == js.published[0]["action"]
