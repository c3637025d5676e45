"""Every contract round-trips through JSON, and the unions decode by ``kind``."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import TypeAdapter, ValidationError

from stratus import contracts as c
from stratus.actions import Scale


def samples() -> list[c.Message]:
    lease = c.Lease(scope="ns1", holder="inc-1/1", token=7, expires_at=datetime.now(UTC) + timedelta(seconds=30))
    sev = c.Severity(mu=3.0, alerts=["HighErrorRate"], violations=["frontend p99"], unhealthy=["pod/geo-1"])
    diag = c.DiagnosisReady(
        incident_id="inc-1",
        localisation=["geo", "mongodb-geo"],
        root_cause=c.RootCause(system_level="Application", fault_type="Authentication Issue"),
        summary="geo cannot read geo-db",
    )
    action = Scale(kind="Deployment", namespace="ns1", name="geo", replicas=1)
    alert = c.Alert(fingerprint="abc", status="firing", name="PodNotReady", scope="ns1", labels={"namespace": "ns1"})
    return [
        alert,
        c.IncidentOpened(incident_id="inc-1", scope="ns1", s0=sev, baseline=3.0, evidence=["pod geo-1 CrashLoop"]),
        c.AlertAttached(incident_id="inc-1", alert=alert),
        diag,
        c.ActionExecuted(incident_id="inc-1", tx_id="tx-1", attempt=1, seq=1, action=action, ok=True, mu_after=2.0),
        c.TransactionEnded(incident_id="inc-1", tx_id="tx-1", attempt=1, actions=1, hidden_mu=[3.0, 2.0]),
        c.UndoCompleted(
            incident_id="inc-1",
            tx_id="tx-1",
            attempt=1,
            undone=1,
            restored_digest="d",
            divergences=[c.Divergence(object="Deployment/geo", field="spec.replicas", expected=1, found=0)],
        ),
        c.WorkFailed(incident_id="inc-1", service="diagnoser", request_id="r", reason="boom"),
        c.StateChanged(incident_id="inc-1", state="diagnosing", previous="opened"),
        c.Checkpointed(incident_id="inc-1", tx_id="tx-1", attempt=1, severity=sev, digest="d"),
        c.TransactionDecided(
            incident_id="inc-1", tx_id="tx-1", attempt=1, decision="abort", mu_pre=3.0, mu_post=math.inf
        ),
        c.IncidentClosed(incident_id="inc-1", outcome="resolved", attempts=1, visible_mu=[3.0, 0.0]),
        c.DiagnoseRequest(incident_id="inc-1", scope="ns1"),
        c.MitigateRequest(incident_id="inc-1", scope="ns1", tx_id="tx-1", attempt=1, lease=lease, diagnosis=diag),
        c.UndoRequest(incident_id="inc-1", scope="ns1", tx_id="tx-1", attempt=1, lease=lease, checkpoint_digest="d"),
        c.JournalRecord(
            incident_id="inc-1", tx_id="tx-1", attempt=1, seq=1, phase="intent", action=action, undo=[action]
        ),
    ]


@pytest.mark.parametrize("message", samples(), ids=lambda m: type(m).__name__)
def test_round_trip(message: c.Message) -> None:
    again = type(message).model_validate_json(message.model_dump_json())
    assert again == message
    assert again.schema_version == c.SCHEMA_VERSION


@pytest.mark.parametrize(
    "message", [m for m in samples() if isinstance(m, c.IncidentEvent)], ids=lambda m: type(m).__name__
)
def test_event_union_decodes_by_kind(message: c.IncidentEvent) -> None:
    decoded = c.EVENT_ADAPTER.validate_json(message.model_dump_json())
    assert type(decoded) is type(message)
    assert decoded == message


@pytest.mark.parametrize(
    "message", [m for m in samples() if isinstance(m, c.WorkRequest)], ids=lambda m: type(m).__name__
)
def test_work_union_decodes_by_kind(message: c.WorkRequest) -> None:
    assert c.WORK_ADAPTER.validate_json(message.model_dump_json()) == message


def test_unknown_kind_and_extra_fields_are_rejected_with_the_field() -> None:
    with pytest.raises(ValidationError, match="kind"):
        c.EVENT_ADAPTER.validate_json('{"kind": "teleport", "incident_id": "x"}')
    with pytest.raises(ValidationError, match="surprise"):
        c.DiagnoseRequest.model_validate({"incident_id": "i", "scope": "s", "surprise": 1})
    with pytest.raises(ValidationError, match="schema_version"):
        c.DiagnoseRequest.model_validate({"incident_id": "i", "scope": "s", "schema_version": 99})


def test_infinite_mu_survives_json() -> None:
    sev = c.Severity(mu=math.inf, crashed=True)
    assert TypeAdapter(c.Severity).validate_json(sev.model_dump_json()).mu == math.inf


def test_subjects_are_single_tokens() -> None:
    partition = c.partition_of("inc 1.a*", c.DEFAULT_TOPOLOGY.partitions)
    assert c.events_subject("inc 1.a*", "diagnosis") == f"stratus.events.{partition}.inc_1_a_.diagnosis"
    assert c.alerts_subject("test-hotel-reservation") == "stratus.alerts.test-hotel-reservation"
    assert c.journal_subject("tx-1") == "stratus.journal.tx-1"


def test_every_event_of_an_incident_lands_in_one_stable_partition() -> None:
    t = c.Topology(partitions=8)
    subjects = {t.events("inc-abc", kind).rsplit(".", 2)[0] for kind in ("incident_opened", "diagnosis")}
    assert subjects == {f"stratus.events.{t.partition('inc-abc')}"}
    # the same in every process: CRC-32, not Python's salted hash()
    import zlib

    assert t.partition("inc-abc") == zlib.crc32(b"inc-abc") % 8
    spread = {t.partition(f"inc-{i}") for i in range(200)}
    assert spread == set(range(8))


def test_two_topologies_share_no_subject_stream_or_durable() -> None:
    a = c.Topology()
    b = c.Topology(prefix="blue", stream_prefix="BLUE", durable_prefix="blue-")
    names_a = {s.name for s in a.streams()} | {a.consumer("mitigator").durable, a.coordinator_consumer(0).durable}
    names_b = {s.name for s in b.streams()} | {b.consumer("mitigator").durable, b.coordinator_consumer(0).durable}
    assert not names_a & names_b
    subjects_a = {subj for s in a.streams() for subj in s.subjects}
    assert all(not subj.startswith("stratus.") for s in b.streams() for subj in s.subjects), subjects_a
    assert b.events("i", "diagnosis").startswith("blue.events.") and b.health("detector") == "blue.health.detector"
