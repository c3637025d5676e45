"""The rulebook takes over when the LLM fails or makes no progress; with the fallback off the failure is reported;
the hybrid policy asks the LLM only for what the rulebook cannot explain; a failed transaction's reason reaches the
next attempt's reflection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.coordinator.machine import Attempt, IncidentRecord, escalation_report, reflection
from stratus.actions import Scale
from stratus.contracts import DiagnoseRequest, DiagnosisReady, Lease, MitigateRequest, RootCause
from stratus.llm import LLMClient
from stratus.reasoners.hybrid import (
    FallbackDiagnosisReasoner,
    FallbackMitigationReasoner,
    HybridDiagnosisReasoner,
    HybridMitigationReasoner,
)
from stratus.reasoners.llm import LLMDiagnosisReasoner, LLMFailed, LLMMitigationReasoner, LLMOptions
from stratus.reasoning import ClusterTools, MitigationResult, MitigationTools, publish_steps
from tests.llm_server import MemoryTools, ScriptedLLM, http_error, tool_call

NS = "shop"


class Rulebook:
    """A stand-in rulebook: diagnoses ``web`` (or nothing) and scales it up (or has nothing to do)."""

    def __init__(self, explains: bool = True) -> None:
        self.explains = explains
        self.calls = 0

    async def diagnose(self, request: DiagnoseRequest, tools: ClusterTools) -> DiagnosisReady:
        self.calls += 1
        if not self.explains:
            return DiagnosisReady(incident_id=request.incident_id, summary="no fault found", evidence=["ev"])
        rc = RootCause(system_level="Virtualization", fault_type="Operation Error")
        return DiagnosisReady(incident_id=request.incident_id, localisation=["web"], root_cause=rc, summary="zero")

    async def mitigate(self, request: MitigateRequest, tools: MitigationTools) -> MitigationResult:
        self.calls += 1
        if not self.explains:
            return MitigationResult(done=True, reason="rulebook: nothing to do")
        await tools.execute(Scale(kind="Deployment", namespace=NS, name="web", replicas=1))
        return MitigationResult(done=True, reason="rulebook: scaled web")


@pytest.fixture
async def llm() -> AsyncIterator[ScriptedLLM]:
    async with ScriptedLLM() as server:
        yield server


def client(server: ScriptedLLM) -> LLMClient:
    return LLMClient(base_url=server.base_url, model="m", max_retries=1, backoff_s=0.01, retry_budget_s=1)


def options() -> LLMOptions:
    return LLMOptions(max_steps=3, context_tokens=8192, typed_writes=False)


def request(attempt: int = 1) -> MitigateRequest:
    lease = Lease(scope=NS, holder="t", token=1, expires_at=datetime.now(UTC) + timedelta(minutes=1))
    return MitigateRequest(incident_id="inc-1", scope=NS, tx_id=f"tx{attempt}", attempt=attempt, lease=lease)


def tools() -> MemoryTools:
    web: dict[str, Any] = {"kind": "Deployment", "metadata": {"name": "web", "namespace": NS}, "spec": {"replicas": 0}}
    return MemoryTools([web], max_writes=5)


async def test_the_rulebook_diagnoses_when_the_llm_is_unavailable(llm: ScriptedLLM) -> None:
    llm.push(*[http_error(503)] * 4)
    rulebook = Rulebook()
    reasoner = FallbackDiagnosisReasoner(LLMDiagnosisReasoner(client(llm), options()), rulebook=rulebook)
    out = await reasoner.diagnose(DiagnoseRequest(incident_id="inc-1", scope=NS), tools())
    assert out.localisation == ["web"] and "diagnosed by the rulebook: the LLM failed" in out.summary
    assert "HTTP 503" in out.summary and out.usage.llm_errors == 2
    await reasoner.aclose()


async def test_without_the_fallback_the_failure_is_raised(llm: ScriptedLLM) -> None:
    llm.push(*[http_error(503)] * 4)
    reasoner = FallbackDiagnosisReasoner(
        LLMDiagnosisReasoner(client(llm), options()), fallback=False, rulebook=Rulebook()
    )
    with pytest.raises(LLMFailed, match="HTTP 503"):
        await reasoner.diagnose(DiagnoseRequest(incident_id="inc-1", scope=NS), tools())
    await reasoner.aclose()


async def test_the_rulebook_acts_in_the_transaction_the_llm_failed(llm: ScriptedLLM) -> None:
    llm.push(http_error(400, "bad request"))
    t, rulebook = tools(), Rulebook()
    reasoner = FallbackMitigationReasoner(LLMMitigationReasoner(client(llm), options()), rulebook=rulebook)
    out = await reasoner.mitigate(request(), t)
    assert out.done and not out.failed and len(t.executed) == 1
    assert out.reason.startswith("rulebook: scaled web (the rulebook acted: the LLM failed after 0 steps")
    assert out.usage.llm_errors == 1
    await reasoner.aclose()


async def test_without_the_fallback_the_transaction_fails_with_the_reason(llm: ScriptedLLM) -> None:
    llm.push(http_error(400, "bad request"))
    t = tools()
    reasoner = FallbackMitigationReasoner(
        LLMMitigationReasoner(client(llm), options()), fallback=False, rulebook=Rulebook()
    )
    out = await reasoner.mitigate(request(), t)
    assert out.failed and "HTTP 400" in out.reason and t.executed == []
    await reasoner.aclose()


async def test_the_rulebook_takes_over_when_the_llm_makes_no_progress(llm: ScriptedLLM) -> None:
    rulebook = Rulebook()
    reasoner = FallbackMitigationReasoner(LLMMitigationReasoner(client(llm), options()), after=2, rulebook=rulebook)
    for attempt in (1, 2):  # two transactions that end without a write
        llm.push(tool_call("end_transaction", {"reason": f"nothing safe {attempt}", "fixed": False}))
        out = await reasoner.mitigate(request(attempt), tools())
        assert out.done and rulebook.calls == 0
    served = llm.served
    out = await reasoner.mitigate(request(3), tools())
    assert "the LLM made no progress in 2 transaction(s)" in out.reason and rulebook.calls == 1
    assert llm.served == served  # the LLM was not asked
    await reasoner.aclose()


async def test_hybrid_asks_the_llm_only_for_what_the_rulebook_cannot_explain(llm: ScriptedLLM) -> None:
    explained = HybridDiagnosisReasoner(
        FallbackDiagnosisReasoner(LLMDiagnosisReasoner(client(llm), options())), rulebook=Rulebook()
    )
    out = await explained.diagnose(DiagnoseRequest(incident_id="inc-1", scope=NS), tools())
    assert out.localisation == ["web"] and llm.served == 0
    submit = {"localisation": ["db"], "system_level": "Application", "fault_type": "Code Defect", "summary": "s"}
    llm.push(tool_call("submit_diagnosis", submit))
    unexplained = HybridDiagnosisReasoner(
        FallbackDiagnosisReasoner(LLMDiagnosisReasoner(client(llm), options())), rulebook=Rulebook(explains=False)
    )
    out = await unexplained.diagnose(DiagnoseRequest(incident_id="inc-1", scope=NS), tools())
    assert out.localisation == ["db"] and llm.served == 1
    assert "ev" in str(llm.requests[0]["messages"][1]["content"])  # the rulebook's evidence is in the prompt

    llm.push(tool_call("end_transaction", {"reason": "no idea", "fixed": False}))
    hybrid = HybridMitigationReasoner(
        FallbackMitigationReasoner(LLMMitigationReasoner(client(llm), options())), rulebook=Rulebook(explains=False)
    )
    result = await hybrid.mitigate(request(), tools())
    assert result.reason == "no idea" and llm.served == 2
    published: list[tuple[str, Any]] = []

    class Bus:
        async def publish(self, subject: str, message: Any) -> None:
            published.append((subject, message))

    assert publish_steps(hybrid, Bus()) == 1 and publish_steps(Rulebook(), Bus()) == 0
    assert hybrid.llm.llm.on_event is not None
    for r in (explained, unexplained, hybrid):
        await r.aclose()


def test_a_failed_transaction_s_reason_is_in_the_reflection() -> None:
    attempt = Attempt(n=2, tx_id="tx2", mu_pre=3, digest_pre="d", reason="mu did not go down (3 -> 3)")
    attempt.failure = "the LLM failed after 1 steps: HTTP 400: context window of 4096 exceeded"
    text = reflection(attempt, None)
    assert "It failed: the LLM failed after 1 steps: HTTP 400: context window of 4096 exceeded" in text
    assert "do not repeat what led there" in text and text.startswith("Attempt 2 tried: no write.")

    record = IncidentRecord(incident_id="inc-1", scope=NS, baseline=3, attempts=[attempt])
    assert "it failed: the LLM failed after 1 steps: HTTP 400" in escalation_report(record)
