"""The local model end to end on the arena: throughput, then diagnosis and mitigation of catalogue scenarios.

It asserts outcomes: each case mitigated under the strict oracle and localised, with no LLM error and no prompt over
the configured window. The test plays the coordinator's part: it measures mu before and after each transaction,
judges with the strict oracle, undoes a failed attempt from the journal and hands the next attempt a short reflection
built from what the system can see (the writes made, mu, the unhealthy objects), never from the oracle's ground truth.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from arena.apps import APPS
from arena.scenarios.engine import Engine, Registry, wait_for
from arena.telemetry.plane import AppsArena
from arena.workload.generator import WorkloadSpec
from stratus.agent_tools import GatewayTools, TransactionTools
from stratus.contracts import DiagnoseRequest, DiagnosisReady, JournalRecord, Lease, MitigateRequest, utcnow
from stratus.gateway import ReadGateway, WriteGateway
from stratus.llm import LLMClient
from stratus.reasoners.hybrid import rulebook_candidates
from stratus.reasoners.llm import LLMDiagnosisReasoner, LLMFailed, LLMMitigationReasoner
from stratus.settings import ReasonerSettings
from stratus.severity import SeverityMeter

from .conftest import CASES

pytestmark = pytest.mark.slow


def healthy(engine: Engine, app: str, timeout: float = 60.0) -> None:
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

    @property
    def intents(self) -> list[JournalRecord]:
        return [r for r in self.records if r.phase == "intent"]


async def no_fence(scope: str, token: int) -> None:
    return None


async def test_throughput(llm_settings: ReasonerSettings, record: list[dict[str, Any]]) -> None:
    client = LLMClient.from_settings(llm_settings)
    try:
        filler = " ".join(f"pod-{i} Running ready 1/1 restarts 0;" for i in range(120))
        listing = [{"role": "user", "content": f"Here is a cluster listing: {filler}\nSay OK."}]
        read = await client.chat(listing, max_tokens=1)
        gen = await client.chat(
            [{"role": "user", "content": "Explain in about 150 words what a Kubernetes readiness probe does."}],
            max_tokens=200,
        )
    finally:
        await client.close()
    assert read.usage.prompt_tokens > 500 and gen.usage.completion_tokens > 20
    record.append(
        {
            "kind": "throughput",
            "prompt_tokens": read.usage.prompt_tokens,
            "prompt_s": read.latency_s,
            "prompt_tokens_per_s": read.usage.prompt_tokens / read.latency_s,
            "completion_tokens": gen.usage.completion_tokens,
            "generate_s": gen.latency_s,
            "tokens_per_s": gen.usage.completion_tokens / gen.latency_s,
        }
    )


@pytest.mark.parametrize("pid", CASES["cases"])
async def test_scenario(
    pid: str,
    llm_settings: ReasonerSettings,
    apps_arena: AppsArena,
    engine: Engine,
    apps_kubeconfig: Path,
    record: list[dict[str, Any]],
) -> None:
    scenario, task = Registry().get(pid)
    assert task == "mitigation"
    ns = APPS[scenario.app].namespace
    plane = apps_arena.plane_url
    await asyncio.to_thread(healthy, engine, scenario.app)
    await asyncio.to_thread(engine.inject, scenario)
    await asyncio.to_thread(engine.wait_symptoms, scenario, 30)

    reader = ReadGateway.from_kubeconfig(apps_kubeconfig, default_namespace=ns)
    http = httpx.AsyncClient()
    meter = SeverityMeter(reader, http=http)
    diagnoser = LLMDiagnosisReasoner.from_settings(llm_settings, advisor=rulebook_candidates)
    mitigator = LLMMitigationReasoner.from_settings(llm_settings, advisor=rulebook_candidates)
    diagnoser.options.max_steps = mitigator.options.max_steps = int(CASES["max_steps"])
    gateways: list[WriteGateway] = []
    try:
        s0 = await meter.measure(ns)
        t0 = time.monotonic()
        request = DiagnoseRequest(incident_id=f"inc-{pid}", scope=ns, evidence=s0.unhealthy[:8])
        try:
            diagnosis = await diagnoser.diagnose(request, GatewayTools(reader, namespace=ns, jaeger_url=plane))
        except LLMFailed as exc:  # recorded as a failed diagnosis; the mitigation still runs without one
            diagnosis = DiagnosisReady(incident_id=request.incident_id, summary=f"failed: {exc}", usage=exc.usage)
        diagnose_s = time.monotonic() - t0
        assert diagnosis.usage.steps >= 1

        truth = scenario.ground_truth
        accepted = [truth.localization, *truth.localization_alternatives]
        localisation_ok = any(
            diagnosis.localisation == want or (len(diagnosis.localisation) == 1 and diagnosis.localisation[0] in want)
            for want in accepted
        )
        rc = diagnosis.root_cause
        rca_ok = rc is not None and (rc.system_level.lower(), rc.fault_type.lower()) == (
            str(truth.system_level).lower(),
            str(truth.fault_type).lower(),
        )

        reflections: list[str] = []
        mitigated = False
        writes: list[str] = []
        usage = [diagnosis.usage]
        t1 = time.monotonic()
        attempt = 0
        for attempt in range(1, int(CASES["max_attempts"]) + 1):
            journal = Journal()
            lease = Lease(scope=ns, holder=f"{pid}/{attempt}", token=attempt, expires_at=utcnow())
            gw = WriteGateway.from_kubeconfig(
                apps_kubeconfig,
                lease=lease,
                check_fence=no_fence,
                journal_intent=journal.append,
                journal_outcome=journal.append,
                incident_id=f"inc-{pid}",
                tx_id=f"tx-{attempt}",
                attempt=attempt,
                max_writes=int(CASES["max_actions"]),
                default_namespace=ns,
            )
            gateways.append(gw)
            request = MitigateRequest(
                incident_id=f"inc-{pid}",
                scope=ns,
                tx_id=f"tx-{attempt}",
                attempt=attempt,
                lease=lease,
                diagnosis=diagnosis,
                reflections=reflections,
                max_actions=int(CASES["max_actions"]),
            )
            result = await mitigator.mitigate(request, TransactionTools(gw, namespace=ns, jaeger_url=plane))
            usage.append(result.usage)
            done = [f"{r.action.verb} {r.action.kind}/{r.action.name}" for r in journal.intents]
            writes.extend(done)
            verdict = await asyncio.to_thread(engine.wait_check, scenario, "strict", 20)
            if verdict.passed:
                mitigated = True
                break
            after = await meter.measure(ns)
            for intent in reversed(journal.intents):
                for spec in intent.undo:
                    await gw.apply_undo(spec)
            reflections.append(
                f"Attempt {attempt} wrote {', '.join(done) or 'nothing'} and did not resolve the incident "
                f"(mu {s0.mu:g} -> {after.mu:g}; still unhealthy: {', '.join(after.unhealthy[:4]) or 'none'}); "
                "its writes were undone."
            )
        mitigate_s = time.monotonic() - t1
        record.append(
            {
                "kind": "case",
                "pid": pid,
                "localisation": diagnosis.localisation,
                "root_cause": rc.model_dump() if rc else None,
                "summary": diagnosis.summary,
                "localisation_ok": localisation_ok,
                "rca_ok": rca_ok,
                "diagnose_s": diagnose_s,
                "diagnosis_steps": diagnosis.usage.steps,
                "mitigated": mitigated,
                "attempts": attempt,
                "mitigate_s": mitigate_s,
                "writes": writes,
                "reflections": reflections,
                "prompt_tokens": sum(u.prompt_tokens for u in usage),
                "completion_tokens": sum(u.completion_tokens for u in usage),
                "steps": sum(u.steps for u in usage),
                "llm_errors": sum(u.llm_errors for u in usage),
                "max_prompt_tokens": max(u.max_prompt_tokens for u in usage),
            }
        )
        # outcomes, not machinery: the scenario is mitigated under the strict oracle and the fault localised; no
        # LLM call failed and no prompt passed the configured window
        window = llm_settings.llm_context_tokens or 8192
        assert max(u.max_prompt_tokens for u in usage) <= window
        assert sum(u.llm_errors for u in usage) == 0, "LLM HTTP errors"
        assert localisation_ok, f"localised {diagnosis.localisation}, want {truth.localization}"
        assert mitigated, f"not mitigated after {attempt} attempt(s): {reflections}"
    finally:
        await diagnoser.aclose()
        await mitigator.aclose()
        for gw in gateways:
            gw.close()
        reader.close()
        await http.aclose()
        await asyncio.to_thread(engine.recover, scenario)
