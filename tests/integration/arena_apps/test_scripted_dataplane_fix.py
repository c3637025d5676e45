"""A documented fix that execs a data store's client (a database shell, Kafka's consumer-group tool), run as the
scripted plan carries it: the scenario's typed data-plane
operation (``op``) through the product's write gateway under the built-in write policy (the gateway renders the argv,
journals the catalogue inverse), then the plan's other steps; the strict oracle must pass.

``SAMPLE`` (one grant, one recreated user, one offset reset) runs in ``make test``; ``STRATUS_TEST_SREGYM_ALL=1`` runs
all five.
"""

from __future__ import annotations

import asyncio
import functools
import os
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from arena.apps import APPS
from arena.bench.runner import scripted_plan
from arena.scenarios import schema as s
from arena.scenarios.engine import CATALOGUE_DIR, Engine, Registry
from stratus.actions import Action, Exec
from stratus.contracts import JournalRecord, Lease, utcnow
from stratus.gateway import WriteGateway
from stratus.writepolicy import WritePolicy

from .conftest import healthy

pytestmark = [pytest.mark.integration]

SREGYM = Registry([CATALOGUE_DIR / "sregym"])
TYPED = [pid for sc, pid in SREGYM.scenarios() if any(isinstance(x, s.ExecStep) and x.op for x in sc.mitigation)]
SAMPLE = ["revoke_auth_mongodb-1", "storage_user_unregistered-2", "kafka_poison_pill_hol_block"]
INVERSES = {
    "mongodb.grant_roles": "mongodb.revoke_roles",
    "mongodb.create_declared_user": "mongodb.drop_user",
    "kafka.reset_group_offset": "kafka.reset_group_offset",
}
PARAMS = TYPED if os.environ.get("STRATUS_TEST_SREGYM_ALL") == "1" else [p for p in TYPED if p in SAMPLE]


def test_the_typed_scenarios_are_the_data_store_ones() -> None:
    assert sorted(TYPED) == sorted(
        [
            "revoke_auth_mongodb-1",
            "revoke_auth_mongodb-2",
            "storage_user_unregistered-1",
            "storage_user_unregistered-2",
            "kafka_poison_pill_hol_block",
        ]
    )


def _pod_names(engine: Engine, ns: str, selector: dict[str, str], kind: str = "Pod") -> list[str]:
    return sorted(
        p["metadata"]["name"]
        for p in engine.pods(ns, selector)
        if (p.get("status") or {}).get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    )


async def _run(kubeconfig: Path, scope: str, actions: list[Action]) -> list[JournalRecord]:
    records: list[JournalRecord] = []

    async def journal(record: JournalRecord) -> None:
        records.append(record)

    async def fence(_scope: str, _token: int) -> None:
        return None

    gw = WriteGateway.from_kubeconfig(
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
    try:
        for action in actions:
            result = await gw.write(action)
            assert result.ok, result.message
        await gw.flush()
    finally:
        gw.close()
    return records


@pytest.mark.parametrize("pid", PARAMS)
def test_typed_dataplane_fix_restores(pid: str, engine: Engine, kubeconfig: Path) -> None:
    scenario, _ = SREGYM.get(pid)
    app = APPS[scenario.app]
    healthy(engine, scenario.app)
    try:
        engine.inject(scenario)
        missing = [r.check for r in engine.wait_symptoms(scenario, timeout=20) if not r.present]
        assert not missing, missing
        plan = scripted_plan(scenario, app, pods_of=functools.partial(_pod_names, engine, app.namespace))
        actions = TypeAdapter(list[Action]).validate_python(plan["attempts"][0])
        assert isinstance(actions[0], Exec) and actions[0].operation in INVERSES
        records = asyncio.run(_run(kubeconfig, app.namespace, actions))
        intent = next(r for r in records if r.phase == "intent" and r.action.verb == "exec")
        undo = intent.undo[0]
        assert isinstance(undo, Exec) and undo.operation == INVERSES[actions[0].operation]
        verdict = engine.wait_check(scenario, "strict", timeout=30)
        assert verdict.passed, f"strict oracle after the typed fix: {verdict.reasons}"
    finally:
        engine.recover(scenario)
        try:
            healthy(engine, scenario.app)
        except TimeoutError:
            engine.redeploy(app)
            healthy(engine, scenario.app, 90)
