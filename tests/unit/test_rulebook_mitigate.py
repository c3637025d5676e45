"""How the rulebook's mitigation chooses: reflections skip what an aborted attempt tried, a blind restart only as a
last resort, the diagnosis orders independent fixes, K bounds the transaction; and the rules name no application."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from stratus.contracts import DiagnosisReady, Lease, MitigateRequest
from stratus.reasoners.rulebook import RulebookMitigationReasoner

from .rulebook_cases.casetools import CASES, CaseTools
from .test_rulebook_analyzers import dep, pod, svc

NS_CASE = "test-social-network"
REPO = Path(__file__).resolve().parents[2]


def request(ns: str, *, reflections: list[str] | None = None, first: str | None = None, k: int = 20) -> MitigateRequest:
    lease = Lease(scope=ns, holder="t", token=1, expires_at=datetime.now(UTC) + timedelta(minutes=1))
    diagnosis = DiagnosisReady(incident_id="i", localisation=[first]) if first else None
    return MitigateRequest(
        incident_id="i",
        scope=ns,
        tx_id="tx",
        attempt=2 if reflections else 1,
        lease=lease,
        diagnosis=diagnosis,
        reflections=reflections or [],
        max_actions=k,
    )


def folder(tmp_path: Path, *objects: dict[str, Any], logs: dict[str, str] | None = None) -> Path:
    (tmp_path / "objects.yaml").write_text(yaml.safe_dump_all(list(objects)))
    (tmp_path / "events.yaml").write_text("[]")
    (tmp_path / "logs.yaml").write_text(yaml.safe_dump(logs or {}))
    return tmp_path


def reflection(*tried: str) -> str:
    return f"Attempt 1 tried: {'; '.join(tried)}. Hidden mu: 3 -> 4. Aborted and undone: mu did not go down (3 -> 4)."


async def test_an_aborted_fix_is_not_tried_again() -> None:
    tools = CaseTools(CASES / "service-target-port-mismatch")
    tried = reflection("patch Service/test-social-network/user-service (patch_type=json, patch=[...])")
    result = await RulebookMitigationReasoner(settle_timeout_s=0).mitigate(request(NS_CASE, reflections=[tried]), tools)
    assert tools.executed == []
    assert "tried by an aborted attempt" in result.reason and "patch Service/test-social-network/user-service" in (
        result.reason
    )


async def test_restart_is_a_last_resort_and_not_repeated(tmp_path: Path) -> None:
    worker = dep("worker")
    crashing = pod(worker, waiting="CrashLoopBackOff", restarts=5)
    case = folder(tmp_path, worker, crashing, logs={"worker-x1/worker#previous": "segmentation fault"})
    tools = CaseTools(case)
    await RulebookMitigationReasoner(settle_timeout_s=0).mitigate(request("shop"), tools)
    assert [f"{a.verb} {a.target}" for a in tools.executed] == ["rollout_restart Deployment/shop/worker"]

    again = CaseTools(case)
    tried = reflection("rollout_restart Deployment/shop/worker")
    result = await RulebookMitigationReasoner(settle_timeout_s=0).mitigate(request("shop", reflections=[tried]), again)
    assert again.executed == [] and "nothing to do" in result.reason


async def test_no_blind_restart_beside_a_real_fix(tmp_path: Path) -> None:
    users = dep("users", replicas=0)
    web = dep("web")
    crashing = pod(web, waiting="CrashLoopBackOff", restarts=5)
    logs = {"web-x1/web#previous": "TSocket::open() connect() <Host: users Port: 8080>: Connection refused"}
    tools = CaseTools(folder(tmp_path, users, svc("users"), web, crashing, logs=logs))
    await RulebookMitigationReasoner(settle_timeout_s=0).mitigate(request("shop"), tools)
    # the scale fixes the cause; the crashed caller is restarted after it, as a follow-up of that fix
    assert [f"{a.verb} {a.target}" for a in tools.executed] == [
        "scale Deployment/shop/users",
        "rollout_restart Deployment/shop/web",
    ]


async def test_diagnosis_orders_independent_fixes_and_k_bounds_them(tmp_path: Path) -> None:
    a, b = dep("alpha", replicas=0), dep("beta")
    case = folder(tmp_path, a, svc("alpha"), b, pod(b), svc("beta", target=9999))
    tools = CaseTools(case)
    await RulebookMitigationReasoner(settle_timeout_s=0).mitigate(request("shop", first="beta"), tools)
    assert [a.target for a in tools.executed] == ["Service/shop/beta", "Deployment/shop/alpha"]

    bounded = CaseTools(case)
    result = await RulebookMitigationReasoner(settle_timeout_s=0).mitigate(request("shop", k=1), bounded)
    assert len(bounded.executed) == 1 and "bound K is reached" in result.reason


def test_the_rules_name_no_application() -> None:
    """The rulebook is written from Kubernetes semantics: no service, app or scenario names in its code."""
    names = re.compile(
        r"\b(geo|rate|hotel\w*|social\w*|frontend|nginx\w*|profile|url-shorten\w*|user-service|text-service|"
        r"post-storage\w*|mongodb-\w+|test-hotel-reservation|test-social-network|revoke_auth\w*|k8s_target_port\w*)\b"
    )
    sources = [*sorted((REPO / "stratus/reasoners/rulebook").glob("*.py")), REPO / "stratus/reasoners/bootstrap.py"]
    hits = [f"{p.name}: {m.group(0)}" for p in sources for m in names.finditer(p.read_text())]
    assert hits == []


async def test_traces_of_other_namespaces_are_left_out(tmp_path: Path) -> None:
    from stratus.reasoners.rulebook.snapshot import collect

    def tagged(tid: str, ns: str) -> dict[str, Any]:
        proc = {"serviceName": "web", "tags": [{"key": "k8s.namespace.name", "value": ns}]}
        return {"traceID": tid, "spans": [], "processes": {"p1": proc}}

    tools = CaseTools(folder(tmp_path))
    tools.trace_list = [tagged("a", "shop"), tagged("b", "other"), {"traceID": "c", "spans": [], "processes": {}}]
    snap = await collect(tools, "shop")
    assert [t["traceID"] for t in snap.traces] == ["a", "c"]
