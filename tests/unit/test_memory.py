"""Incident memory without a bus: templates, signatures, recall, MemoryFirst, and the demotion of a wrong memory."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from services.coordinator.machine import Attempt, IncidentRecord
from services.coordinator.memory import memory_of
from services.mitigator.policies import make_reasoner
from stratus.actions import RolloutRestart, Scale
from stratus.contracts import (
    Action,
    DiagnosisReady,
    IncidentSignature,
    Lease,
    MitigateRequest,
    RecalledIncident,
    utcnow,
)
from stratus.errors import PermanentError
from stratus.memory.first import MemoryFirstMitigationReasoner
from stratus.memory.recall import nearest, replay_actions
from stratus.memory.records import IncidentMemory, RememberedTransaction, fix_fingerprint, memory_key
from stratus.memory.signature import signature_of, similarity
from stratus.memory.templates import mask, mine
from stratus.reasoners.rulebook.snapshot import Snapshot
from stratus.reasoning import MitigationResult
from stratus.settings import MitigatorSettings

Obj = dict[str, Any]


def test_mask_hides_what_varies_between_occurrences() -> None:
    a = mask("2026-01-01T10:00:00Z web-5d8f7c9b4-x7k2p: dial tcp 10.0.0.12:5432: connection refused after 3 tries")
    b = mask("2026-03-04T11:22:33Z web-77c9d5f8b-qq2zz: dial tcp 10.9.8.7:5432: connection refused after 12 tries")
    assert a == b
    assert "<IP>" in a and "web-<POD>" in a and "<NUM>" in a


def test_mine_merges_lines_that_differ_in_a_word() -> None:
    lines = [f"user {u} logged in from 10.1.1.{i}" for i, u in enumerate(["alice", "bob", "carol"])] + [
        "connection refused to db:5432"
    ] * 2
    templates = mine(lines)
    assert templates[0] == "user <*> logged in from <IP>"
    assert "connection refused to db:<NUM>" in templates


def _pod(name: str, app: str, waiting: str | None = None) -> Obj:
    state = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    return {
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": app}},
        "status": {
            "phase": "Running",
            "containerStatuses": [{"name": app, "state": state, "restartCount": 3 if waiting else 0}],
            "conditions": [{"type": "Ready", "status": "False" if waiting else "True"}],
        },
    }


def _deploy(name: str, replicas: int, available: int) -> Obj:
    return {
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}},
        },
        "status": {"availableReplicas": available},
    }


def _svc(name: str) -> Obj:
    return {"kind": "Service", "metadata": {"name": name}, "spec": {"selector": {"app": name}}}


def crashloop_snapshot(ns: str, pod_hash: str, ip: str) -> Snapshot:
    snap = Snapshot(namespace=ns)
    snap.objects = {
        "Pod": [_pod(f"cart-{pod_hash}-abcde", "cart", "CrashLoopBackOff"), _pod("web-1a2b3c4d5-zzzzz", "web")],
        "Deployment": [_deploy("cart", 1, 0), _deploy("web", 1, 1)],
        "Service": [_svc("cart"), _svc("web")],
    }
    snap.events = [{"reason": "BackOff", "type": "Warning", "involvedObject": {"kind": "Pod", "name": "cart-x"}}]
    snap.logs = {f"cart-{pod_hash}-abcde/cart#previous": f"FATAL: cannot connect to {ip}:5432: password rejected\n"}
    return snap


def test_the_same_failure_on_another_day_has_the_same_signature() -> None:
    one = signature_of(crashloop_snapshot("a", "5d8f7c9b4", "10.0.0.1"))
    two = signature_of(crashloop_snapshot("b", "77c9d5f8b", "10.2.3.4"))
    assert one == two and similarity(one, two) == 1.0
    assert "Pod:CrashLoopBackOff" in one.unhealthy and "Deployment:Unavailable" in one.unhealthy
    assert "Deployment/cart" in one.objects and one.event_reasons == ["BackOff"]
    assert one.log_templates == ["FATAL: cannot connect to <IP>: password rejected"]
    scaled = Snapshot(namespace="c")
    scaled.objects = {"Deployment": [_deploy("web", 0, 0)], "Service": [_svc("web")], "Pod": []}
    other = signature_of(scaled)
    assert other.unhealthy == ["Deployment:ScaledToZero", "Service:NoEndpoints"]
    assert similarity(one, other) < 0.2


SIG = IncidentSignature(unhealthy=["Deployment:ScaledToZero", "Service:NoEndpoints"], objects=["Deployment/web"])
FIX = [Scale(kind="Deployment", namespace="old", name="web", replicas=1)]
WRONG = [RolloutRestart(kind="Deployment", namespace="old", name="web")]


def remembered(key: str, txs: list[tuple[list[Action], str]], minutes: int, **kw: Any) -> IncidentMemory:
    return IncidentMemory(
        key=key,
        incident_id=key,
        scope="old",
        outcome="resolved",
        closed_at=utcnow() - timedelta(minutes=60 - minutes),
        signature=kw.pop("signature", SIG),
        transactions=[
            RememberedTransaction(tx_id=f"{key}-tx{i}", attempt=i, actions=a, mu_pre=1.0, decision=d)  # type: ignore[arg-type]
            for i, (a, d) in enumerate(txs, 1)
        ],
        **kw,
    )


def test_a_close_match_with_a_committed_fix_is_proposable_and_moved_to_this_namespace() -> None:
    found = nearest(SIG, [remembered("i1", [(FIX, "commit")], 1)])
    assert [r.key for r in found] == ["i1"] and found[0].proposable and found[0].similarity == 1.0
    assert replay_actions(found[0], "new")[0].namespace == "new"


def test_what_is_not_proposable() -> None:
    far = IncidentSignature(unhealthy=["Pod:CrashLoopBackOff"], objects=["Deployment/web"])
    elsewhere = SIG.model_copy(update={"objects": ["Deployment/cart"]})
    assert not nearest(SIG, [remembered("i1", [(FIX, "commit")], 1, demoted=True)])[0].proposable
    assert not nearest(SIG, [remembered("i1", [(FIX, "abort")], 1)])[0].proposable  # no committed fix
    assert nearest(SIG, [remembered("i1", [(FIX, "commit")], 1, signature=far)], min_similarity=0.9) == []
    assert not nearest(elsewhere, [remembered("i1", [(FIX, "commit")], 1)])[0].proposable  # targets absent


def test_a_fix_aborted_later_is_not_proposed_from_any_memory() -> None:
    older = remembered("i1", [(FIX, "commit")], 1)
    newer = remembered("i2", [(FIX, "abort"), (WRONG, "commit")], 2)
    found = {r.key: r for r in nearest(SIG, [older, newer])}
    assert not found["i1"].proposable and found["i2"].proposable
    assert fix_fingerprint(found["i2"].fix) == fix_fingerprint(WRONG)


class FakeTools:
    def __init__(self) -> None:
        self.executed: list[Action] = []

    async def execute(self, action: Any) -> str:
        self.executed.append(action)
        return "scaled"


class Inner:
    def __init__(self) -> None:
        self.calls = 0

    async def mitigate(self, request: MitigateRequest, tools: Any) -> MitigationResult:
        self.calls += 1
        return MitigationResult(reason="the reasoner acted")


def request(attempt: int, recalled: list[RecalledIncident]) -> MitigateRequest:
    diagnosis = DiagnosisReady(incident_id="inc", recalled=recalled)
    lease = Lease(scope="new", token=1, holder="o", expires_at=utcnow())
    return MitigateRequest(
        incident_id="inc", scope="new", tx_id=f"inc-tx{attempt}", attempt=attempt, lease=lease, diagnosis=diagnosis
    )


async def test_memory_first_replays_a_proposable_fix_on_attempt_1_only() -> None:
    recalled = nearest(SIG, [remembered("i1", [(FIX, "commit")], 1)])
    inner, tools = Inner(), FakeTools()
    first = MemoryFirstMitigationReasoner(inner)
    result = await first.mitigate(request(1, recalled), tools)  # type: ignore[arg-type]
    assert result.recalled_from == "i1" and inner.calls == 0
    assert [(a.verb, a.namespace) for a in tools.executed] == [("scale", "new")]
    result = await first.mitigate(request(2, recalled), tools)  # type: ignore[arg-type]
    assert result.recalled_from is None and inner.calls == 1
    not_proposable = [r.model_copy(update={"proposable": False}) for r in recalled]
    await first.mitigate(request(1, not_proposable), tools)  # type: ignore[arg-type]
    assert inner.calls == 2


def test_memory_first_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STRATUS_LLM_BASE_URL", raising=False)
    on = make_reasoner(MitigatorSettings(policy="rulebook"))
    off = make_reasoner(MitigatorSettings(policy="rulebook", memory_enabled=False))
    assert isinstance(on, MemoryFirstMitigationReasoner)
    assert not isinstance(off, MemoryFirstMitigationReasoner)
    monkeypatch.setenv("STRATUS_MEMORY_ENABLED", "false")
    assert not isinstance(make_reasoner(MitigatorSettings(policy="rulebook")), MemoryFirstMitigationReasoner)


def closed_record(n: int, attempts: list[tuple[list[Action], str, str | None]]) -> IncidentRecord:
    record = IncidentRecord(
        incident_id=f"inc-{n}",
        scope="new",
        baseline=2.0,
        state="resolved",
        diagnosis=DiagnosisReady(incident_id=f"inc-{n}", signature=SIG, summary="web scaled to zero"),
    )
    for i, (actions, decision, recalled) in enumerate(attempts, 1):
        record.attempts.append(
            Attempt(
                n=i,
                tx_id=f"inc-{n}-tx{i}",
                mu_pre=2.0,
                digest_pre="d",
                actions=actions,
                decision=decision,  # type: ignore[arg-type]
                recalled_from=recalled,
            )
        )
    return record


def test_the_coordinator_keeps_every_transaction_and_its_decision() -> None:
    memory = memory_of(closed_record(1, [(WRONG, "abort", None), (FIX, "commit", None)]))
    assert memory is not None and memory.key == "inc-1" and memory.summary == "web scaled to zero"
    assert [(t.attempt, t.decision) for t in memory.transactions] == [(1, "abort"), (2, "commit")]
    assert memory.committed_fix() == FIX
    no_signature = closed_record(2, [])
    no_signature.diagnosis = DiagnosisReady(incident_id="inc-2")
    assert memory_of(no_signature) is None
    assert memory_key("inc/a b:c") == "inc_a_b_c"


async def test_a_wrong_memory_is_tried_once_then_never_again() -> None:
    """The fix that committed once no longer works: every later occurrence aborts it. Simulate ten occurrences
    with the same recall -> MemoryFirst -> commit/abort -> keep loop as the services run it: the stale fix is
    replayed exactly once; from then on the fix that committed instead is the one replayed."""
    store: dict[str, IncidentMemory] = {"inc-0": remembered("inc-0", [(WRONG, "commit")], 0)}
    works = {fix_fingerprint(FIX)}  # the cluster changed: only FIX helps now
    replays: list[str] = []
    for n in range(1, 11):
        recalled = nearest(SIG, list(store.values()))
        tools, inner = FakeTools(), Inner()
        result = await MemoryFirstMitigationReasoner(inner).mitigate(request(1, recalled), tools)  # type: ignore[arg-type]
        attempts: list[tuple[list[Action], str, str | None]] = []
        if result.recalled_from is not None:
            replayed = [a.model_copy(update={"namespace": "old"}) for a in tools.executed]
            replays.append(fix_fingerprint(replayed))
            ok = fix_fingerprint(replayed) in works
            attempts.append((replayed, "commit" if ok else "abort", result.recalled_from))
            if not ok:
                attempts.append((FIX, "commit", None))  # the reasoner finds the fix on attempt 2
        else:
            attempts.append((FIX, "commit", None))
        record = closed_record(n, attempts)
        for a in record.attempts:  # what MemoryKeeper.closed does
            if a.recalled_from and a.decision == "abort":
                store[a.recalled_from] = store[a.recalled_from].model_copy(update={"demoted": True})
        kept = memory_of(record)
        assert kept is not None
        store[kept.key] = kept.model_copy(update={"closed_at": utcnow() + timedelta(seconds=n)})
    assert replays.count(fix_fingerprint(WRONG)) == 1
    assert replays[0] == fix_fingerprint(WRONG) and set(replays[1:]) == {fix_fingerprint(FIX)}
    assert store["inc-0"].demoted


async def test_a_refused_replay_stops_and_still_names_its_memory() -> None:
    class Refusing(FakeTools):
        async def execute(self, action: Any) -> str:
            raise PermanentError("refused: the dry run failed")

    recalled = nearest(SIG, [remembered("i1", [(FIX + FIX, "commit")], 1)])
    result = await MemoryFirstMitigationReasoner(Inner()).mitigate(request(1, recalled), Refusing())  # type: ignore[arg-type]
    assert result.recalled_from == "i1" and "refused" in result.reason
