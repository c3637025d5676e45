"""Each failure mode the real 1.5B model showed, scripted: the fix for it, asserted on what the model is sent.

Tool results reach the model; a reply's results share one token budget and no prompt passes the window; history is
folded at stable points; an LLM error ends the work as failed with the reason; an identical prompt is changed before
it is sent; a fix claimed with no write is refused; end_transaction among other calls is refused; a workload's name
works where a pod is needed; a repeated read is answered with a pointer; every call is a timeline step, scrubbed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stratus.contracts import DiagnoseRequest, Lease, MitigateRequest, ReasoningStep
from stratus.llm import LLMClient, context_overflow
from stratus.reasoners.budget import SUMMARY_HEADER, Budget, TokenMeter, fold, prompt_chars
from stratus.reasoners.llm import LLMDiagnosisReasoner, LLMFailed, LLMMitigationReasoner, LLMOptions
from stratus.reasoning import scrub
from tests.llm_server import MemoryTools, Reply, ScriptedLLM, http_error, tool_call, tool_calls

NS = "shop"
GOOD = {"localisation": ["web"], "system_level": "Virtualization", "fault_type": "Operation Error", "summary": "s"}


def pod(name: str, owner: str, ready: bool = True, restarts: int = 0) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NS,
            "ownerReferences": [{"kind": "ReplicaSet", "name": f"{owner}-5d9f8"}],
        },
        "status": {"phase": "Running", "containerStatuses": [{"name": "c", "ready": ready, "restartCount": restarts}]},
    }


@pytest.fixture
def tools() -> MemoryTools:
    t = MemoryTools(
        [
            pod("web-5d9f8-aaaaa", "web"),
            pod("web-5d9f8-bbbbb", "web", ready=False, restarts=7),
            pod("db-77c4d-ccccc", "db"),
            {"kind": "Deployment", "metadata": {"name": "web", "namespace": NS}, "spec": {"replicas": 2}},
        ]
    )
    t.pod_logs[(NS, "web-5d9f8-bbbbb")] = "FATAL: authentication failed for user app"
    return t


@pytest.fixture
async def llm() -> AsyncIterator[ScriptedLLM]:
    async with ScriptedLLM() as server:
        yield server


def client(server: ScriptedLLM, **kw: Any) -> LLMClient:
    return LLMClient(base_url=server.base_url, model="scripted", backoff_s=0.01, max_backoff_s=0.02, **kw)


def mitigate_request(attempt: int = 1, reflections: list[str] | None = None) -> MitigateRequest:
    lease = Lease(scope=NS, holder="t", token=1, expires_at=datetime.now(UTC) + timedelta(minutes=1))
    return MitigateRequest(
        incident_id="inc-1", scope=NS, tx_id=f"tx{attempt}", attempt=attempt, lease=lease, reflections=reflections or []
    )


def results(body: dict[str, Any]) -> list[str]:
    return [str(m["content"]) for m in body["messages"] if m["role"] == "tool"]


async def test_a_tool_result_is_in_the_next_prompt_as_a_tool_message(llm: ScriptedLLM, tools: MemoryTools) -> None:
    llm.push(tool_call("get_logs", {"namespace": NS, "pod": "web-5d9f8-bbbbb"}), tool_call("submit_diagnosis", GOOD))
    reasoner = LLMDiagnosisReasoner(client(llm), LLMOptions(max_steps=4, context_tokens=4096))
    await reasoner.diagnose(DiagnoseRequest(incident_id="inc-1", scope=NS), tools)
    call, result = llm.requests[1]["messages"][-2:]
    assert result == {
        "role": "tool",
        "tool_call_id": call["tool_calls"][0]["id"],
        "content": "FATAL: authentication failed for user app",
    }
    await reasoner.aclose()


async def test_several_results_share_one_budget_and_no_prompt_passes_the_window(
    llm: ScriptedLLM, tools: MemoryTools
) -> None:
    big = "\n".join(f"line {i} " + "x" * 90 for i in range(400))  # ~40k characters each
    tools.pod_logs[(NS, "web-5d9f8-aaaaa")] = big
    tools.pod_logs[(NS, "db-77c4d-ccccc")] = big
    context = 3072
    llm.push(
        tool_calls(
            ("get_logs", {"namespace": NS, "pod": "web-5d9f8-aaaaa", "tail": 1000}),
            ("get_logs", {"namespace": NS, "pod": "db-77c4d-ccccc", "tail": 1000}),
        ),
        *[tool_call("get_logs", {"namespace": NS, "pod": "web", "tail": 900 - i}) for i in range(6)],
        tool_call("submit_diagnosis", GOOD),
    )
    options = LLMOptions(max_steps=10, context_tokens=context, reply_tokens=256, max_output_chars=100_000)
    reasoner = LLMDiagnosisReasoner(client(llm), options)
    await reasoner.diagnose(DiagnoseRequest(incident_id="inc-1", scope=NS), tools)
    limit = Budget(context=context, reply=256).limit
    for body in llm.requests:  # the server counts a token per 4 characters of the request (messages and tools)
        assert prompt_chars(body["messages"], body["tools"]) // 4 <= limit, "no prompt passes the limit"
        assert body["max_tokens"] == 256
    two = results(llm.requests[1])
    assert len(two) == 2 and all("characters cut" in r for r in two)
    assert abs(len(two[0]) - len(two[1])) < 50  # equal shares
    assert sum(len(r) for r in two) < Budget(context=context).results_tokens(0, 1) * 4 + 200
    later = llm.requests[-1]["messages"]
    assert later[2]["content"].startswith(SUMMARY_HEADER), "old turns were folded into one summary"
    await reasoner.aclose()


def test_folding_keeps_the_prefix_stable_between_folds() -> None:
    head = [{"role": "system", "content": "s" * 100}, {"role": "user", "content": "task"}]
    messages = list(head)
    for i in range(6):
        call = {"id": f"c{i}", "type": "function", "function": {"name": "get_events", "arguments": "{}"}}
        messages += [
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": f"c{i}", "content": f"result {i}\n" + "y" * 500},
        ]
    assert fold(messages, head=2, keep_turns=2, too_big=lambda m: prompt_chars(m, []) > 1500)
    assert messages[:2] == head and messages[2]["content"].startswith(SUMMARY_HEADER)
    assert "get_events({}) -> result 0" in messages[2]["content"]
    prefix = json.dumps(messages[:3])
    call = {"id": "c9", "type": "function", "function": {"name": "get_logs", "arguments": "{}"}}
    messages += [{"role": "assistant", "content": "", "tool_calls": [call]}]
    assert json.dumps(messages[:3]) == prefix  # appending leaves the folded prefix as it was: the server's cache hits
    assert not fold(messages, head=2, keep_turns=5, too_big=lambda m: True)


def test_the_meter_calibrates_to_the_servers_count() -> None:
    meter = TokenMeter()
    assert meter.tokens(3000) == 1000
    meter.calibrate(chars=4000, tokens=1000)
    assert meter.tokens(3800) == 1000
    meter.calibrate(chars=100, tokens=1000)  # nonsense is bounded
    assert meter.chars_per_token == 1.5


async def test_a_context_overflow_ends_the_attempt_as_failed_with_the_reason(
    llm: ScriptedLLM, tools: MemoryTools
) -> None:
    llm.push(
        tool_call("get_events", {"namespace": NS}),
        http_error(400, "Requested tokens (5000) exceed context window of 4096"),
    )
    reasoner = LLMMitigationReasoner(client(llm), LLMOptions(max_steps=6, context_tokens=8192, typed_writes=False))
    out = await reasoner.mitigate(mitigate_request(), tools)
    assert out.failed and not out.done
    assert "HTTP 400" in out.reason and "context window of 4096" in out.reason
    assert out.usage.llm_errors == 1 and len(llm.requests) == 2  # a 400 is not retried
    assert context_overflow("Requested tokens (5000) exceed context window of 4096") == (True, 4096)
    assert context_overflow("This model's maximum context length is 8192 tokens") == (True, 8192)
    assert context_overflow("invalid api key") == (False, None)
    await reasoner.aclose()


async def test_a_prompt_that_cannot_fit_is_never_sent(llm: ScriptedLLM, tools: MemoryTools) -> None:
    reasoner = LLMMitigationReasoner(client(llm), LLMOptions(max_steps=3, context_tokens=512, reply_tokens=128))
    out = await reasoner.mitigate(mitigate_request(reflections=["z" * 4000]), tools)
    assert out.failed and "over the limit" in out.reason and "it was not sent" in out.reason
    assert llm.requests == []
    await reasoner.aclose()


async def test_the_context_window_is_discovered_from_the_server(llm: ScriptedLLM, tools: MemoryTools) -> None:
    c = client(llm)
    assert await c.context_tokens() is None  # this one publishes none: the settings (or 8192) decide
    await c.close()
    async with ScriptedLLM(context_window=4096) as small:
        llm_small = LLMMitigationReasoner(client(small), LLMOptions(max_steps=3, reply_tokens=512, typed_writes=False))
        small.push(tool_call("get_events", {"namespace": NS}), tool_call("end_transaction", {"reason": "x"}))
        await llm_small.mitigate(mitigate_request(), tools)
        assert small.requests[0]["max_tokens"] == 512
        assert llm_small._last_budget is not None and llm_small._last_budget.context == 4096
        await llm_small.aclose()


async def test_an_identical_prompt_is_changed_before_it_is_sent(llm: ScriptedLLM, tools: MemoryTools) -> None:
    reasoner = LLMMitigationReasoner(client(llm), LLMOptions(max_steps=2, context_tokens=8192, typed_writes=False))
    for _ in (1, 2):
        llm.push(tool_call("get_events", {"namespace": NS}), tool_call("end_transaction", {"reason": "x"}))
        await reasoner.mitigate(mitigate_request(attempt=1), tools)  # the same request twice: the same prompt
    first, second = llm.requests[0], llm.requests[2]
    assert first["temperature"] == 0 and second["temperature"] == 0.7
    assert "this exact situation happened before" in second["messages"][-1]["content"]
    assert "get_events" in second["messages"][-1]["content"]
    await reasoner.aclose()


async def test_a_claimed_fix_without_a_write_is_refused(llm: ScriptedLLM, tools: MemoryTools) -> None:
    llm.push(
        tool_call("end_transaction", {"reason": "Fixed the authentication issue"}),
        tool_call("kubectl", {"command": f"kubectl -n {NS} scale deployment web --replicas=3"}),
        tool_call("end_transaction", {"reason": "scaled web"}),
    )
    reasoner = LLMMitigationReasoner(client(llm), LLMOptions(max_steps=5, context_tokens=8192, typed_writes=False))
    out = await reasoner.mitigate(mitigate_request(), tools)
    refusal = results(llm.requests[1])[0]
    assert refusal.startswith("Refused: you made no write in this transaction, so nothing was fixed")
    assert "fixed=false" in refusal
    assert out.done and out.reason == "scaled web" and len(tools.executed) == 1
    await reasoner.aclose()


async def test_end_transaction_among_other_calls_is_refused(llm: ScriptedLLM, tools: MemoryTools) -> None:
    llm.push(
        tool_calls(
            ("kubectl", {"command": f"kubectl -n {NS} scale deployment web --replicas=3"}),
            ("end_transaction", {"reason": "scaled"}),
        ),
        tool_call("end_transaction", {"reason": "scaled web, checked"}),
    )
    reasoner = LLMMitigationReasoner(client(llm), LLMOptions(max_steps=5, context_tokens=8192, typed_writes=False))
    out = await reasoner.mitigate(mitigate_request(), tools)
    write, refusal = results(llm.requests[1])
    assert "scale" in write and refusal.startswith("Refused: end_transaction must be called alone")
    assert out.done and out.reason == "scaled web, checked"
    # the model's intent, in the right order: its next call is end_transaction alone
    assert llm.requests[1]["tool_choice"] == {"type": "function", "function": {"name": "end_transaction"}}
    assert llm.requests[0]["tool_choice"] == "auto"
    await reasoner.aclose()


async def test_a_workload_name_works_where_a_pod_is_needed(llm: ScriptedLLM, tools: MemoryTools) -> None:
    llm.push(
        tool_call("get_logs", {"namespace": NS, "pod": "web"}),
        tool_call("get_object", {"kind": "Pod", "namespace": NS, "name": "web"}),
        tool_call("get_logs", {"namespace": NS, "pod": "nothing"}),
        tool_call("submit_diagnosis", GOOD),
    )
    reasoner = LLMDiagnosisReasoner(client(llm), LLMOptions(max_steps=6, context_tokens=4096))
    await reasoner.diagnose(DiagnoseRequest(incident_id="inc-1", scope=NS), tools)
    logs, obj, missing = results(llm.requests[-1])
    assert "showing pod web-5d9f8-bbbbb of workload web" in logs  # the least healthy pod first
    assert "authentication failed" in logs and "web-5d9f8-aaaaa" in logs
    assert "web-5d9f8-bbbbb" in obj and "restartCount: 7" in obj
    assert missing.startswith("No pod or workload named nothing") and "db-77c4d-ccccc" in missing
    await reasoner.aclose()


async def test_a_repeated_read_points_to_the_earlier_answer(llm: ScriptedLLM, tools: MemoryTools) -> None:
    llm.push(*[tool_call("get_events", {"namespace": NS})] * 3, tool_call("submit_diagnosis", GOOD))
    reasoner = LLMDiagnosisReasoner(client(llm), LLMOptions(max_steps=6, context_tokens=4096))
    await reasoner.diagnose(DiagnoseRequest(incident_id="inc-1", scope=NS), tools)
    replies = results(llm.requests[-1])
    assert replies[1].startswith("You already called get_events with these arguments at step 1")
    await reasoner.aclose()


async def test_every_call_is_a_timeline_step_scrubbed_of_credentials(llm: ScriptedLLM, tools: MemoryTools) -> None:
    tools.pod_logs[(NS, "db-77c4d-ccccc")] = "connecting with password=hunter2 to mongodb://root:s3cr3t@db:27017"
    llm.push(
        tool_call("get_logs", {"namespace": NS, "pod": "db-77c4d-ccccc"}),
        tool_call("exec_shell", {"token": "abc"}),
        tool_call("submit_diagnosis", GOOD),
    )
    reasoner = LLMDiagnosisReasoner(client(llm), LLMOptions(max_steps=6, context_tokens=4096))
    steps: list[ReasoningStep] = []

    async def sink(step: ReasoningStep) -> None:
        steps.append(step)

    reasoner.on_event = sink
    await reasoner.diagnose(DiagnoseRequest(incident_id="inc-1", scope=NS), tools)
    assert [(s.step, s.tool, s.ok) for s in steps] == [
        (1, "get_logs", True),
        (2, "exec_shell", False),
        (3, "submit_diagnosis", True),
    ]
    assert "hunter2" not in steps[0].result and "s3cr3t" not in steps[0].result and "password=***" in steps[0].result
    assert steps[1].arguments == '{"token": "***"}'
    assert len({s.id for s in steps}) == 3 and all(s.incident_id == "inc-1" for s in steps)
    await reasoner.aclose()


def test_scrub() -> None:
    assert scrub("-u admin -p s3cret") == "-u admin -p ***"
    assert scrub("Authorization: Bearer abc.def") == "Authorization: ***"
    assert scrub("kubectl -n shop get pods") == "kubectl -n shop get pods"


async def test_a_step_limit_diagnosis_is_a_failure(llm: ScriptedLLM, tools: MemoryTools) -> None:
    llm.default = Reply(content="I am thinking about it.")
    reasoner = LLMDiagnosisReasoner(client(llm), LLMOptions(max_steps=2, context_tokens=4096, force_final=False))
    with pytest.raises(LLMFailed, match="step limit reached"):
        await reasoner.diagnose(DiagnoseRequest(incident_id="inc-1", scope=NS), tools)
    await reasoner.aclose()


def test_a_step_reads_well_in_incidents_show() -> None:
    from stratus.audit import describe

    step = ReasoningStep(
        incident_id="inc-1",
        service="mitigator",
        step=3,
        tool="kubectl",
        arguments='{"command": "kubectl -n shop scale deployment web --replicas=1"}',
        result="deployment.apps/web scaled\n(writes left: 4)",
        tx_id="inc-1-tx2",
        attempt=2,
    )
    line = describe(step)
    assert line.startswith("  mitigator inc-1-tx2 step 3: kubectl(") and "-> deployment.apps/web scaled (writes" in line


def test_where_servers_publish_their_window() -> None:
    from stratus.llm import _window_in

    assert _window_in({"data": [{"id": "m", "max_model_len": 6144}]}) == 6144  # vLLM
    assert _window_in({"default_generation_settings": {"n_ctx": 8192}}) == 8192  # llama.cpp /props
    assert _window_in({"data": [{"id": "m", "context_length": 4096}]}) == 4096  # LM Studio
    assert _window_in({"data": [{"id": "m", "meta": {"n_ctx_train": 32768}}]}) is None  # trained, not served


def test_localisation_is_by_component_name() -> None:
    from stratus.reasoners.toolkit import DiagnosisArgs

    args = DiagnosisArgs.model_validate({**GOOD, "localisation": ["Deployment/user-service", "ns/db"]})
    assert args.localisation == ["user-service", "db"]


async def test_candidates_are_offered_and_applied_once(llm: ScriptedLLM, tools: MemoryTools) -> None:
    from stratus.actions import Scale
    from stratus.reasoners.toolkit import Candidate

    async def advisor(t: Any, scope: str, reflections: list[str]) -> list[Candidate]:
        fix = Scale(kind="Deployment", namespace=NS, name="web", replicas=2)
        return [Candidate(1, "web: scaled to zero [Virtualization / Operation Error] -> fix: scale web", [fix])]

    llm.push(
        tool_call("apply_candidate", {"number": 1}),
        tool_call("apply_candidate", {"number": 1}),
        tool_call("apply_candidate", {"number": 7}),
        tool_call("end_transaction", {"reason": "applied candidate 1"}),
    )
    options = LLMOptions(max_steps=6, context_tokens=8192, typed_writes=False)
    reasoner = LLMMitigationReasoner(client(llm), options, advisor=advisor)
    out = await reasoner.mitigate(mitigate_request(), tools)
    prompt = str(llm.requests[0]["messages"][1]["content"])
    assert "1. web: scaled to zero" in prompt and "apply_candidate(number=N)" in prompt
    assert "apply_candidate" in {t["function"]["name"] for t in llm.requests[0]["tools"]}
    first, again, missing = results(llm.requests[3])
    assert "scale" in first and again.startswith("Refused: candidate 1 is already applied")
    assert missing.startswith("Refused: there is no candidate 7; the candidates are: 1")
    assert out.done and len(tools.executed) == 1 and tools.executed[0].replicas == 2
    await reasoner.aclose()


async def test_typed_writes_work_unadvertised_and_a_failed_batch_is_not_ended_for_the_model(
    llm: ScriptedLLM, tools: MemoryTools
) -> None:
    llm.push(
        tool_calls(("exec_shell", {"command": "x"}), ("end_transaction", {"reason": "done"})),
        tool_call("scale", {"kind": "Deployment", "name": "web", "replicas": 2}),  # not in the compact tool list
        tool_call("end_transaction", {"reason": "scaled web"}),
    )
    reasoner = LLMMitigationReasoner(client(llm), LLMOptions(max_steps=5, context_tokens=8192, typed_writes=False))
    out = await reasoner.mitigate(mitigate_request(), tools)
    assert "scale" not in {t["function"]["name"] for t in llm.requests[0]["tools"]}
    assert llm.requests[1]["tool_choice"] == "auto"  # the batch failed: the model is not made to end
    assert "scale" in results(llm.requests[2])[-1] and out.done and len(tools.executed) == 1
    await reasoner.aclose()
