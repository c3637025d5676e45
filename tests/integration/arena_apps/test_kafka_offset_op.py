"""``kafka.reset_group_offset`` through the product's write gateway on the arena's Kafka, and back through its undo.

The consumer (a Deployment whose pod stays Ready while it is stuck on a record) is stopped and restored inside the
operation; the undo record carries the committed offset read before the reset and the consumer's replicas, and the
undo puts that offset back. A consumer list that leaves a live member in the group is refused by Kafka: the command
fails, the Deployment it stopped is restored, and its undo stays due.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from arena.apps import APPS
from arena.scenarios.engine import CATALOGUE_DIR, Engine, Registry, wait_for
from stratus.actions import Exec
from stratus.confinement import Refusal
from stratus.contracts import JournalRecord, Lease, utcnow
from stratus.dataplane import committed_offset
from stratus.gateway import WriteGateway
from stratus.writepolicy import WritePolicy

from .conftest import healthy

pytestmark = [pytest.mark.integration]

SCENARIO = "kafka_poison_pill_hol_block"
GROUP, TOPIC, CONSUMER = "orders-validator", "orders-fulfillment", "orders-validator"
OP = "kafka.reset_group_offset"


def _writer(kubeconfig: Path, scope: str, records: list[JournalRecord]) -> WriteGateway:
    async def journal(record: JournalRecord) -> None:
        records.append(record)

    async def fence(_scope: str, _token: int) -> None:
        return None

    return WriteGateway.from_kubeconfig(
        kubeconfig,
        lease=Lease(scope=scope, holder="test", token=1, expires_at=utcnow()),
        check_fence=fence,
        journal_intent=journal,
        journal_outcome=journal,
        incident_id="inc-1",
        tx_id="tx-1",
        attempt=1,
        policy=WritePolicy(),
    )


def _offset(engine: Engine, ns: str, broker: str) -> int | None:
    argv = ["kafka-consumer-groups.sh", "--bootstrap-server", "localhost:9092", "--describe", "--group", GROUP]
    out, _err, code = engine.kube.exec(ns, broker, argv, None)
    assert code == 0, out
    return committed_offset(out, GROUP, TOPIC, 0)


def _ready_consumer(engine: Engine, ns: str) -> bool:
    dep = engine.kube.get("Deployment", ns, CONSUMER) or {}
    pods = [
        p for p in engine.pods(ns, {"opentelemetry.io/name": CONSUMER}) if not p["metadata"].get("deletionTimestamp")
    ]
    ready = [
        p
        for p in pods
        if any(c["type"] == "Ready" and c["status"] == "True" for c in (p.get("status") or {}).get("conditions") or [])
    ]
    return dep.get("spec", {}).get("replicas") == 1 and len(pods) == 1 and len(ready) == 1


def test_offset_reset_and_its_undo_round_trip(engine: Engine, kubeconfig: Path) -> None:
    scenario, _ = Registry([CATALOGUE_DIR / "sregym"]).get(SCENARIO)
    app = APPS[scenario.app]
    ns = app.namespace
    healthy(engine, scenario.app)
    try:
        engine.inject(scenario)
        missing = [r.check for r in engine.wait_symptoms(scenario, timeout=20) if not r.present]
        assert not missing, missing
        broker = next(
            p["metadata"]["name"]
            for p in engine.pods(ns, {"opentelemetry.io/name": "kafka"})
            if (p.get("status") or {}).get("phase") == "Running"
        )
        assert _offset(engine, ns, broker) == 20  # stuck on the poison record
        args = {"group": GROUP, "topic": TOPIC, "partition": 0, "offset": 21, "consumers": [CONSUMER]}
        records: list[JournalRecord] = []
        gw = _writer(kubeconfig, ns, records)
        try:
            with pytest.raises(Refusal, match="set only by an undo record"):
                asyncio.run(
                    gw.write(Exec(namespace=ns, name=broker, operation=OP, args={**args, "replicas": {CONSUMER: 5}}))
                )
            result = asyncio.run(gw.write(Exec(namespace=ns, name=broker, operation=OP, args=args)))
            assert result.ok, result.message
            asyncio.run(gw.flush())
            intent = next(r for r in records if r.phase == "intent")
            (undo,) = intent.undo
            assert isinstance(undo, Exec) and undo.operation == OP
            assert undo.args == {**args, "offset": 20, "replicas": {CONSUMER: 1}}
            assert 'recorded before the write: {"offset": 20, "replicas": {"orders-validator": 1}}' in intent.message
            # the consumer is back with its Ready pod, and it moves on past the skipped record
            assert _ready_consumer(engine, ns)
            wait_for("the consumer to commit past 21", lambda: (_offset(engine, ns, broker) or 0) > 21, 20)

            # a consumer list that leaves the group's member running: Kafka refuses, the stopped one is restored
            wrong = {**args, "consumers": ["order-stream"]}
            failed = asyncio.run(gw.write(Exec(namespace=ns, name=broker, operation=OP, args=wrong)))
            assert not failed.ok and "exit code 1" in failed.message, failed.message
            asyncio.run(gw.flush())
            assert records[-1].phase == "outcome" and records[-1].ok is None  # may have run: its undo stays due
            stream = engine.kube.get("Deployment", ns, "order-stream") or {}
            assert stream["spec"]["replicas"] == 1

            undone = asyncio.run(gw.apply_undo(undo))
            assert undone.ok, undone.message
        finally:
            gw.close()
        # the undo reset the offset recorded before the reset: the consumer is on the poison record again
        assert _offset(engine, ns, broker) == 20
        assert _ready_consumer(engine, ns)
    finally:
        engine.recover(scenario)
        try:
            healthy(engine, scenario.app)
        except TimeoutError:
            engine.redeploy(app)
            healthy(engine, scenario.app, 90)
