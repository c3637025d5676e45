"""The rulebook over evaluation cases: data folders captured from the arena (``rulebook_cases/*/``).

Each case holds what the read tools returned for one fault's symptoms (or a healthy app) and ``expected.yaml``: the
component localised first, the root cause, and the writes the mitigation must make (or have refused), in order.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stratus.actions import Exec
from stratus.contracts import DiagnoseRequest, DiagnosisReady, Lease, MitigateRequest
from stratus.dataplane import inverse_of, render
from stratus.reasoners.rulebook import RulebookDiagnosisReasoner, RulebookMitigationReasoner

from .rulebook_cases.casetools import CaseTools, case_dirs, namespace_lease

CASES = case_dirs()


def namespace_of(tools: CaseTools) -> str:
    return str(next(o["metadata"]["namespace"] for o in tools.objects if o["kind"] == "Pod"))


def mitigate_request(ns: str, diagnosis: DiagnosisReady | None = None, **kw: Any) -> MitigateRequest:
    lease = Lease(
        scope=kw.pop("scope", ns), holder="test", token=1, expires_at=datetime.now(UTC) + timedelta(minutes=1)
    )
    return MitigateRequest(
        incident_id="inc-1", scope=ns, tx_id="tx-1", attempt=1, lease=lease, diagnosis=diagnosis, **kw
    )


def test_every_catalogue_mitigation_mechanism_has_a_case() -> None:
    names = {c.name for c in CASES}
    assert len(names) >= 19
    assert {"healthy-hotel", "healthy-social"} <= names
    assert all((c / "expected.yaml").exists() for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
async def test_diagnosis(case: Path) -> None:
    tools = CaseTools(case)
    expected = tools.expected
    ns = namespace_of(tools)
    diagnosis = await RulebookDiagnosisReasoner().diagnose(DiagnoseRequest(incident_id="inc-1", scope=ns), tools)
    if expected["localisation"] is None:
        assert diagnosis.localisation == [] and diagnosis.root_cause is None, diagnosis.summary
        return
    assert diagnosis.localisation[0] == expected["localisation"], diagnosis.summary
    if expected["root_cause"] != "any":  # faults below Kubernetes (network, chaos) have no rulebook category
        assert diagnosis.root_cause is not None
        assert diagnosis.root_cause.model_dump() == expected["root_cause"]
    assert diagnosis.evidence and diagnosis.summary


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
async def test_mitigation(case: Path) -> None:
    ns = namespace_of(CaseTools(case))
    tools = CaseTools(case, refuse=namespace_lease(ns))
    expected = tools.expected
    result = await RulebookMitigationReasoner(settle_timeout_s=0).mitigate(mitigate_request(ns), tools)
    done = [f"{a.verb} {a.target}" for a in tools.executed]
    assert done == [w["action"] for w in expected["writes"]], result.reason
    assert [f"{a.verb} {a.target}" for a in tools.refused] == expected["refused"]
    for action, want in zip(tools.executed, expected["writes"], strict=True):
        params = action.model_dump(mode="json")
        for key, value in (want.get("params") or {}).items():
            assert params[key] == value, (action.target, key)
        if action.verb == "exec":
            assert inverse_of(params["operation"], params["args"]), "an exec must have a catalogue inverse"
    if expected["refused"]:
        assert "needs a writer on scope cluster" in result.reason
        assert not result.done
    if not expected["writes"] and not expected["refused"]:
        assert "nothing to do" in result.reason and tools.executed == []


async def test_cluster_scoped_fix_runs_under_a_cluster_lease() -> None:
    case = next(c for c in CASES if c.name == "released-volumes-with-stale-claims")
    ns = namespace_of(CaseTools(case))
    tools = CaseTools(case, refuse=namespace_lease("cluster"))
    result = await RulebookMitigationReasoner(settle_timeout_s=0).mitigate(mitigate_request(ns, scope="cluster"), tools)
    assert [f"{a.verb} {a.target}" for a in tools.executed] == tools.expected["refused"] and tools.refused == []
    assert all(a.patch == {"spec": {"claimRef": None}} for a in tools.executed)  # type: ignore[union-attr]
    assert result.done and "needs a writer on scope test-hotel-reservation" in result.reason  # client restarts


async def test_database_repair_inverse_undoes_it() -> None:
    case = next(c for c in CASES if c.name == "database-user-dropped")
    ns = namespace_of(CaseTools(case))
    tools = CaseTools(case)
    await RulebookMitigationReasoner(settle_timeout_s=0).mitigate(mitigate_request(ns), tools)
    exe = tools.executed[0]
    assert isinstance(exe, Exec) and exe.operation == "mongodb.create_declared_user"
    assert inverse_of(exe.operation, exe.args) == ("mongodb.drop_user", {"db": "admin", "user": "admin"})
    pod = await tools.get_object("Pod", ns, exe.name)
    assert pod is not None
    container = next(c for c in pod["spec"]["containers"] if c["name"] == exe.container)
    cms = {o["metadata"]["name"]: o for o in tools.objects if o["kind"] == "ConfigMap"}
    argv = render(exe.operation, exe.args, pod, container, lambda _ns, name: cms.get(name))
    # The admin credentials are the container's own env, expanded in the container: never on the command line.
    assert argv[:2] == ["sh", "-c"] and '-p "$MONGO_INITDB_ROOT_PASSWORD"' in argv[2]
    root_pwd = next(e["value"] for e in container["env"] if e["name"] == "MONGO_INITDB_ROOT_PASSWORD")
    assert all(f"-p {root_pwd}" not in a and a != root_pwd for a in argv)
    assert '"user":"admin"' in argv[-1] and '"role":"readWrite","db":"geo-db"' in argv[-1]
