"""Credentials never land in the audit trail on a real JetStream: events (typed and the outbox's raw JSON), dead
letters and the journal's audit fields are scrubbed; the journal keeps undo records exact and refuses Secret
pre-images."""

from __future__ import annotations

import json

import pytest

from stratus.actions import Replace, SetEnv
from stratus.audit import read_events
from stratus.bus import Bus
from stratus.contracts import DeadLetter, JournalRecord, WorkFailed
from stratus.journal import Journal, JournalError

pytestmark = pytest.mark.integration

PASSWORD = "r00tPw-9z"
ARGV = ["mongo", "admin", "-u", "root", "-p", PASSWORD, "--eval", "db.stats()"]


async def test_events_and_dead_letters_are_scrubbed(bus: Bus, uid: str) -> None:
    await bus.ensure_streams()
    incident = f"inc-{uid}"
    failed = WorkFailed(
        incident_id=incident,
        service="mitigator",
        request_id="r1",
        reason=f"exec {' '.join(ARGV)} failed; mongodb://root:{PASSWORD}@mongo:27017",
    )
    await bus.publish(bus.topology.events(incident, failed.kind), failed)
    raw = failed.model_copy(update={"id": f"{failed.id}-raw"}).model_dump_json()
    await bus.publish_json(bus.topology.events(incident, failed.kind), raw, msg_id=f"raw-{uid}")
    events = await read_events(bus, bus.topology.incident_events(incident))
    assert len(events) == 2
    for event in events:
        assert isinstance(event, WorkFailed)
        assert PASSWORD not in event.reason and "-p ***" in event.reason and "root:***@mongo" in event.reason

    letter = DeadLetter(
        service=f"svc-{uid}",
        subject="stratus.work.mitigator",
        cause="rejected",
        reason=f"DB_PASSWORD={PASSWORD}",
        payload=json.dumps({"command": ARGV, "lease": {"token": 3}}),
    )
    await bus.deadletter(letter)
    msg = await bus.js.get_last_msg(bus.topology.deadletter_stream, bus.topology.deadletter(letter.service))
    stored = DeadLetter.model_validate_json(msg.data)
    assert PASSWORD not in msg.data.decode()
    assert json.loads(stored.payload) == {"command": [*ARGV[:5], "***", *ARGV[6:]], "lease": {"token": 3}}


async def test_the_journal_scrubs_audit_fields_and_keeps_undo_exact(bus: Bus, uid: str) -> None:
    await bus.ensure_streams()
    journal = Journal(bus)
    tx = f"tx-{uid}"
    set_env = SetEnv(kind="Deployment", namespace="ns", name="db", env={"DB_PASSWORD": PASSWORD})
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "db", "namespace": "ns"},
        "spec": {"template": {"spec": {"containers": [{"name": "db", "env": [{"name": "X", "value": "1"}]}]}}},
    }
    inverse = Replace(manifest=manifest)
    intent = JournalRecord(
        incident_id="inc",
        tx_id=tx,
        attempt=1,
        seq=1,
        phase="intent",
        action=set_env,
        undo=[inverse],
        message=f"undo: restore, was run as mongo -p {PASSWORD}",
    )
    await journal.append(intent)
    (stored,) = await journal.read(tx)
    assert PASSWORD not in stored.message and PASSWORD not in stored.action.model_dump_json()
    assert isinstance(stored.action, SetEnv) and stored.action.env == {"DB_PASSWORD": "***"}
    assert stored.undo == intent.undo, "the undoer executes the undo: it is kept exact"

    secret = intent.model_copy(
        update={"seq": 2, "pre_image": {"kind": "Secret", "data": {"pw": "eA=="}}, "action": set_env}
    )
    with pytest.raises(JournalError, match="Secret"):
        await journal.append(secret)
