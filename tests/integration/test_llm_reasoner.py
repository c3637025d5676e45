"""The LLM reasoners, driven by the scripted OpenAI-compatible server, acting on the arena through the real gateway.

HotelReservation with ``misconfig_app_hotel_res-1`` injected (geo crash-loops on a bad image). The scripted model
diagnoses it from real logs; its first transaction makes things worse (after a malformed call it must survive and a
scale of the Ready frontend to zero that the gateway refuses, it points frontend's Service at no pods), mu rises, the
journal's undo restores the scope; the second transaction is shown the short reflection, fixes the image, and the
strict oracle passes. The coordinator's decisions are played by the test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from arena.apps import APPS
from arena.scenarios.engine import Engine, Registry, wait_for
from arena.workload.generator import WorkloadSpec
from stratus.agent_tools import GatewayTools, TransactionTools
from stratus.contracts import DiagnoseRequest, JournalRecord, Lease, MitigateRequest, utcnow
from stratus.gateway import ReadGateway, WriteGateway
from stratus.llm import LLMClient
from stratus.reasoners.llm import LLMDiagnosisReasoner, LLMMitigationReasoner, LLMOptions
from stratus.severity import SeverityMeter
from tests.fixtures_apps import engine_fixture
from tests.llm_server import Reply, ScriptedLLM, messages_text, text, tool_call

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PID = "misconfig_app_hotel_res-mitigation-1"
GOOD_IMAGE = "yinfangchen/hotelreservation:latest"
NOWHERE = '{"spec": {"selector": {"io.kompose.service": "nowhere"}}}'


engine = engine_fixture("module", time_scale=0.25)


@pytest.fixture
async def llm() -> AsyncIterator[ScriptedLLM]:
    async with ScriptedLLM() as server:
        yield server


def healthy(engine: Engine, app: str, timeout: float = 30.0) -> None:
    spec = APPS[app]
    if engine.kube.get("Namespace", None, spec.namespace) is None:
        engine.deploy(spec)
    engine.wait_ready(spec.namespace, timeout)
    probe = WorkloadSpec(rate=20, duration_s=1, connections=2)
    wait_for(f"{app} to serve", lambda: engine._plane().workload(spec.namespace, probe).clean, timeout, interval=0.25)


class Journal:
    def __init__(self) -> None:
        self.records: list[JournalRecord] = []

    async def append(self, record: JournalRecord) -> None:
        self.records.append(record)


async def no_fence(scope: str, token: int) -> None:
    return None


async def eventually(what: str, check: Any, timeout: float = 20.0) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not await check():
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def client(server: ScriptedLLM) -> LLMClient:
    return LLMClient(base_url=server.base_url, model="scripted", backoff_s=0.01)


async def test_diagnose_abort_undo_then_reflection_commits(
    llm: ScriptedLLM, engine: Engine, apps_kubeconfig: Path
) -> None:
    scenario, _ = Registry().get(PID)
    ns = APPS[scenario.app].namespace
    await asyncio.to_thread(healthy, engine, scenario.app)
    await asyncio.to_thread(engine.inject, scenario)
    await asyncio.to_thread(engine.wait_symptoms, scenario, 20)

    reader = ReadGateway.from_kubeconfig(apps_kubeconfig, default_namespace=ns)
    http = httpx.AsyncClient()
    meter = SeverityMeter(reader, http=http)
    clients: list[LLMClient] = []
    gateways: list[WriteGateway] = []

    def opened(c: LLMClient) -> LLMClient:
        clients.append(c)
        return c

    try:
        # --- diagnosis from the real cluster ------------------------------------------------------------------
        llm.push(
            tool_call("list_objects", {"kind": "Pod", "namespace": ns}),
            tool_call("kubectl", {"command": "kubectl logs deploy/geo --previous --tail=20"}),
            tool_call(
                "submit_diagnosis",
                {
                    "localisation": ["geo"],
                    "system_level": "Application",
                    "fault_type": "Misconfiguration",
                    "summary": "geo's image points at mongodb-geo:27777; it panics and crash-loops.",
                },
            ),
        )
        diagnoser = LLMDiagnosisReasoner(opened(client(llm)), LLMOptions(max_steps=6))
        diagnosis = await diagnoser.diagnose(
            DiagnoseRequest(incident_id="inc-llm", scope=ns), GatewayTools(reader, namespace=ns)
        )
        pods_table = llm.requests[1]["messages"][-1]["content"]
        assert pods_table.startswith("NAME") and "geo-" in pods_table
        logs = llm.requests[2]["messages"][-1]["content"]
        assert "panic" in logs.lower() or "no reachable servers" in logs, logs  # the model read the real log
        assert diagnosis.localisation == ["geo"] and diagnosis.usage.steps == 3 and len(llm.requests) == 3

        # --- attempt 1: a malformed call, a refused write, then a harmful one; mu rises, the journal undoes it ---
        mu_pre = (await meter.measure(ns)).mu
        journal = Journal()
        lease = Lease(scope=ns, holder="inc-llm/1", token=1, expires_at=utcnow())
        gw1 = WriteGateway.from_kubeconfig(
            apps_kubeconfig,
            lease=lease,
            check_fence=no_fence,
            journal_intent=journal.append,
            journal_outcome=journal.append,
            incident_id="inc-llm",
            tx_id="tx-1",
            attempt=1,
            max_writes=3,
            default_namespace=ns,
        )
        llm.push(
            tool_call("set_image", '{"kind": "Deployment", "name": "geo", "images": {'),
            text(
                "I think restarting the front door helps.\n```json\n"
                '{"name": "kubectl", "arguments": {"command": "kubectl scale deployment frontend --replicas=0"}}\n```'
            ),
            tool_call("kubectl", {"command": f"kubectl patch service frontend -p '{NOWHERE}'"}),
            tool_call("end_transaction", {"reason": "frontend restarted"}),
        )
        gateways.append(gw1)
        mitigator = LLMMitigationReasoner(opened(client(llm)), LLMOptions(max_steps=6))
        request1 = MitigateRequest(
            incident_id="inc-llm", scope=ns, tx_id="tx-1", attempt=1, lease=lease, diagnosis=diagnosis, max_actions=3
        )
        first = await mitigator.mitigate(request1, TransactionTools(gw1, namespace=ns))
        assert first.done
        assert "not valid JSON" in llm.requests[4]["messages"][-1]["content"]
        refusal = llm.requests[5]["messages"][-1]["content"]
        assert f"Write operation 'scale' on Deployment/{ns}/frontend refused: scaling it to 0 replicas" in refusal
        intents = [r for r in journal.records if r.phase == "intent"]
        assert [(r.action.verb, r.action.kind, r.action.name) for r in intents] == [("patch", "Service", "frontend")]

        async def worse() -> bool:
            return (await meter.measure(ns)).mu > mu_pre

        await eventually("mu to rise after frontend's Service lost its pods", worse)
        for record in reversed(intents):  # what the undoer does on abort
            for spec in record.undo:
                assert (await gw1.apply_undo(spec)).ok
        frontend = await reader.get_object("Service", ns, "frontend")
        assert frontend is not None and frontend["spec"]["selector"] == {"io.kompose.service": "frontend"}
        scaled = await reader.get_object("Deployment", ns, "frontend")
        assert scaled is not None and scaled["spec"]["replicas"] == 1

        # --- attempt 2: the reflection is in the prompt; the fix commits --------------------------------------
        lesson = (
            "Attempt 1 pointed frontend's Service at no pods: mu rose and it was undone. The fault is geo's image, "
            "not frontend."
        )

        def fix_if_reflected(body: dict[str, Any]) -> Reply:
            if lesson not in messages_text(body):
                return text("no lesson seen")
            return tool_call(
                "set_image", {"kind": "Deployment", "name": "geo", "images": {"hotel-reserv-geo": GOOD_IMAGE}}
            )

        llm.push(fix_if_reflected, tool_call("end_transaction", {"reason": "geo back on the good image"}))
        lease2 = Lease(scope=ns, holder="inc-llm/2", token=2, expires_at=utcnow())
        gw2 = WriteGateway.from_kubeconfig(
            apps_kubeconfig,
            lease=lease2,
            check_fence=no_fence,
            journal_intent=journal.append,
            journal_outcome=journal.append,
            incident_id="inc-llm",
            tx_id="tx-2",
            attempt=2,
            max_writes=3,
            default_namespace=ns,
        )
        gateways.append(gw2)
        before = len(llm.requests)
        request2 = request1.model_copy(update={"tx_id": "tx-2", "attempt": 2, "lease": lease2, "reflections": [lesson]})
        second = await mitigator.mitigate(request2, TransactionTools(gw2, namespace=ns))
        assert second.done and second.reason == "geo back on the good image"
        prompt = messages_text(llm.requests[before])
        assert lesson in prompt and "front door" not in prompt  # the reflection, never the earlier transcript
        written = llm.requests[-1]["messages"][-1]["content"]
        assert "writes left in this transaction: 2" in written, written
        verdict = await asyncio.to_thread(engine.wait_check, scenario, "strict", 30)
        assert verdict.passed, verdict.reasons
        assert (await meter.measure(ns)).mu <= mu_pre
    finally:
        for c in clients:
            await c.close()
        for gw in gateways:
            gw.close()
        await http.aclose()
        reader.close()
        await asyncio.to_thread(engine.recover, scenario)
