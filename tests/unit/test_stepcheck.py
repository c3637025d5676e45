"""Agent-step failure detection: the shipped checker on steps it never saw, the re-prompt with the lesson in the
tool loop (and its timeline step), and the setting that turns it on (off by default)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from stratus.contracts import DiagnoseRequest, ReasoningStep
from stratus.llm import LLMClient
from stratus.reasoners.llm import LLMDiagnosisReasoner, LLMOptions, StepRecord
from stratus.settings import DiagnoserSettings, MitigatorSettings
from stratus.stepcheck.checker import StepChecker
from stratus.stepcheck.encoder import ngram_vectors, train_projection
from stratus.stepcheck.hook import StepCheckHook
from tests.llm_server import MemoryTools, ScriptedLLM, messages_text, tool_call

NS = "payments"
GOOD = {"localisation": ["ledger"], "system_level": "Application", "fault_type": "Misconfiguration", "summary": "s"}


@pytest.fixture(scope="module")
def checker() -> StepChecker:
    return StepChecker.load()


@pytest.mark.parametrize(
    ("tool", "arguments", "result", "kind"),
    [
        (
            "kubectl",
            '{"command": "kubectl logs ledger-6f7d9c8b5-qwert -n payments | grep ERROR"}',
            "Pipe detected: |. Such commands are not supported. Filter with -l SELECTOR, --field-selector, --tail=N "
            "or -o yaml, and read the output yourself.",
            "refused_command",
        ),
        ("restart_pod", '{"name": "x"}', "Unknown tool 'restart_pod'. The tools are: kubectl, get_logs.", "wrong_tool"),
        (
            "get_object",
            '{"kind": "Deployment", "name": "ledger-api"}',
            "Deployment ledger-api not found in namespace payments. List the objects of this kind to see what exists.",
            "hallucinated_name",
        ),
        (
            "get_logs",
            '{"pod": "ledger"',
            "Your call to get_logs was not run: the arguments are not valid JSON (Expecting ',' delimiter at "
            "position 16). Call get_logs again with a JSON object of arguments.",
            "malformed_call",
        ),
    ],
)  # fmt: skip
def test_failing_steps_of_an_unseen_app_are_flagged_with_their_kind(
    checker: StepChecker, tool: str, arguments: str, result: str, kind: str
) -> None:
    flag = checker.check(tool, arguments, result)
    assert flag is not None and flag.kind == kind, flag
    assert flag.lesson


def test_a_log_read_full_of_errors_is_a_good_step(checker: StepChecker) -> None:
    result = "ERROR dial tcp 10.4.0.9:5432: connect: connection refused\nretrying in 3s"
    assert checker.check("get_logs", '{"pod": "ledger", "tail": 50}', result) is None
    assert checker.check("list_objects", '{"kind": "Pod"}', "NAME READY STATUS\nledger-1 0/1 CrashLoopBackOff") is None


def test_the_contrastive_projection_pulls_reruns_together() -> None:
    texts = [f"get_logs(pod {s}) -> connection refused" for s in ("a", "b", "c", "d")] + [
        f"list_objects(kind {k}) -> NAME READY" for k in ("Pod", "Service", "Node", "PVC")
    ]
    x = ngram_vectors(texts)
    w = train_projection(x[[0, 1, 4, 5]], x[[2, 3, 6, 7]], out_dim=16, epochs=200, batch=4, seed=1)
    z = x @ w
    z /= (z**2).sum(axis=1, keepdims=True) ** 0.5
    assert z[0] @ z[2] > z[0] @ z[6] + 0.2


@pytest.fixture
async def llm() -> AsyncIterator[ScriptedLLM]:
    async with ScriptedLLM() as server:
        yield server


async def test_a_flagged_step_reprompts_with_the_lesson_and_is_on_the_timeline(
    llm: ScriptedLLM, checker: StepChecker
) -> None:
    llm.push(
        tool_call("fetch_pod_logs", {"name": "ledger"}),
        tool_call("list_objects", {"kind": "Pod"}),
        tool_call("submit_diagnosis", GOOD),
    )
    client = LLMClient(base_url=llm.base_url, model="scripted", backoff_s=0.01, max_backoff_s=0.02)
    reasoner = LLMDiagnosisReasoner(client, LLMOptions(max_steps=6, context_tokens=4096))
    reasoner.step_check = StepCheckHook(checker)
    steps: list[ReasoningStep] = []

    async def sink(step: ReasoningStep) -> None:
        steps.append(step)

    reasoner.on_event = sink
    await reasoner.diagnose(DiagnoseRequest(incident_id="inc-1", scope=NS), MemoryTools([]))
    second = messages_text(llm.requests[1])
    assert "Step check: your call to fetch_pod_logs matches a known failing step (wrong tool" in second
    assert "Lesson: You called a tool that does not exist" in second
    assert messages_text(llm.requests[2]).count("Step check:") == 1  # the good step after it: no new note
    assert [(s.tool, s.ok) for s in steps] == [
        ("fetch_pod_logs", False),
        ("step_check", False),
        ("list_objects", True),
        ("submit_diagnosis", True),
    ]
    assert "Lesson:" in steps[1].result and steps[1].arguments.startswith("fetch_pod_logs(")
    await reasoner.aclose()


async def test_a_broken_check_never_stops_the_work(llm: ScriptedLLM) -> None:
    async def broken(_: StepRecord) -> str | None:
        raise RuntimeError("boom")

    llm.push(tool_call("list_objects", {"kind": "Pod"}), tool_call("submit_diagnosis", GOOD))
    client = LLMClient(base_url=llm.base_url, model="scripted", backoff_s=0.01, max_backoff_s=0.02)
    reasoner = LLMDiagnosisReasoner(client, LLMOptions(max_steps=4, context_tokens=4096))
    reasoner.step_check = broken
    diagnosis = await reasoner.diagnose(DiagnoseRequest(incident_id="inc-1", scope=NS), MemoryTools([]))
    assert diagnosis.localisation == ["ledger"]
    await reasoner.aclose()


def test_the_step_check_is_off_by_default_and_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATUS_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    off = LLMDiagnosisReasoner.from_settings(DiagnoserSettings())
    assert off.step_check is None
    monkeypatch.setenv("STRATUS_STEP_CHECK_ENABLED", "true")
    on = LLMDiagnosisReasoner.from_settings(DiagnoserSettings())
    assert isinstance(on.step_check, StepCheckHook) and on.step_check.checker is None  # loaded on first use
    assert MitigatorSettings().step_check_enabled
