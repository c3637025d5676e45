"""The LLM reasoners' tool loop against the scripted server and an in-memory double of the tools seam.

Each case is a script of model replies: a normal submission, tool calls written as text, malformed and mistyped
arguments, unknown tools, prose, HTTP failures, the step limit, the accounting, and the mitigator's writes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from stratus.actions import Patch, Scale
from stratus.contracts import DiagnoseRequest, DiagnosisReady, Lease, MitigateRequest, RootCause
from stratus.llm import LLMClient, LLMUnavailable
from stratus.reasoners.llm import LLMDiagnosisReasoner, LLMFailed, LLMMitigationReasoner, LLMOptions
from tests.llm_server import (
    MemoryTools,
    ScriptedLLM,
    http_error,
    messages_text,
    text,
    text_call,
    tool_call,
    tool_calls,
)

NS = "test-hotel-reservation"
GOOD = {
    "localisation": ["geo"],
    "system_level": "Application",
    "fault_type": "Misconfiguration",
    "summary": "geo points at a wrong database port.",
}


def pod(name: str, phase: str = "Running", ready: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": "app", "image": "x"}]},
        "status": {"phase": phase, "containerStatuses": [{"name": "app", "ready": ready, "restartCount": 3}]},
    }


def deployment(name: str, replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "app", "image": "x"}]}}},
        "status": {"replicas": replicas, "readyReplicas": replicas},
    }


OPEN: list[LLMClient] = []


@pytest.fixture
async def llm() -> AsyncIterator[ScriptedLLM]:
    async with ScriptedLLM() as server:
        yield server
        while OPEN:
            await OPEN.pop().close()


@pytest.fixture
def tools() -> MemoryTools:
    t = MemoryTools([pod("geo-1", ready=False), pod("frontend-1"), deployment("geo", 0), deployment("frontend")])
    t.pod_logs[(NS, "geo-1")] = "starting\nerror: dial tcp mongodb-geo:27777: connection refused"
    return t


def diagnoser(server: ScriptedLLM, max_steps: int = 10, **client: Any) -> LLMDiagnosisReasoner:
    c = LLMClient(base_url=server.base_url, model="scripted", backoff_s=0.01, max_backoff_s=0.02, **client)
    OPEN.append(c)
    return LLMDiagnosisReasoner(c, LLMOptions(max_steps=max_steps))


def mitigator(server: ScriptedLLM, max_steps: int = 10) -> LLMMitigationReasoner:
    c = LLMClient(base_url=server.base_url, model="scripted", backoff_s=0.01, max_backoff_s=0.02)
    OPEN.append(c)
    return LLMMitigationReasoner(c, LLMOptions(max_steps=max_steps))


def diagnose_request() -> DiagnoseRequest:
    return DiagnoseRequest(incident_id="inc-1", scope=NS, evidence=["pod geo-1 not ready"])


def mitigate_request(attempt: int = 1, reflections: list[str] | None = None, k: int = 3) -> MitigateRequest:
    lease = Lease(scope=NS, holder="inc-1/1", token=4, expires_at=datetime.now(UTC))
    diagnosis = DiagnosisReady(
        incident_id="inc-1",
        localisation=["geo"],
        root_cause=RootCause(system_level="Virtualization", fault_type="Operation Error"),
        summary="geo is scaled to zero",
    )
    return MitigateRequest(
        incident_id="inc-1",
        scope=NS,
        tx_id=f"tx-{attempt}",
        attempt=attempt,
        lease=lease,
        diagnosis=diagnosis,
        reflections=reflections or [],
        max_actions=k,
    )


def tool_results(request: dict[str, Any]) -> list[str]:
    """What the loop told the model about its calls: tool messages and the user messages after the first."""
    msgs = request["messages"]
    return [str(m["content"]) for m in msgs[2:] if m["role"] in ("tool", "user")]


# --- diagnosis ---------------------------------------------------------------------------------------------------


async def test_normal_submission(llm: ScriptedLLM, tools: MemoryTools) -> None:
    llm.push(
        tool_call("list_objects", {"kind": "Pod", "namespace": NS}),
        tool_call("get_logs", {"namespace": NS, "pod": "geo-1", "tail": 5}),
        tool_call("submit_diagnosis", GOOD),
    )
    out = await diagnoser(llm).diagnose(diagnose_request(), tools)
    assert out.incident_id == "inc-1" and out.localisation == ["geo"]
    assert out.root_cause == RootCause(system_level="Application", fault_type="Misconfiguration")
    assert out.summary == GOOD["summary"] and out.evidence[0] == "pod geo-1 not ready"
    assert out.usage.steps == 3 and out.usage.prompt_tokens > 0 and out.usage.completion_tokens > 0
    # the tool results went back to the model as tool messages quoting the call ids
    second = llm.requests[1]["messages"]
    assert second[-1]["role"] == "tool" and "geo-1" in second[-1]["content"] and "frontend-1" in second[-1]["content"]
    assert second[-1]["tool_call_id"] == second[-2]["tool_calls"][0]["id"]
    assert "connection refused" in llm.requests[2]["messages"][-1]["content"]
    # the first request: system prompt with the vocabulary, the scope and evidence, the tools
    first = llm.requests[0]
    assert "Network/Storage Issue" in first["messages"][0]["content"]
    assert NS in first["messages"][1]["content"] and "pod geo-1 not ready" in first["messages"][1]["content"]
    names = {t["function"]["name"] for t in first["tools"]}
    reads = {"kubectl", "get_logs", "get_events", "get_traces", "list_objects", "get_object"}
    assert names == {*reads, "submit_diagnosis"}
    assert first["tool_choice"] == "auto" and first["temperature"] == 0


@pytest.mark.parametrize("style", ["fenced", "qwen", "tool_args"])
async def test_tool_call_written_as_json_text(llm: ScriptedLLM, tools: MemoryTools, style: str) -> None:
    llm.push(
        text_call("get_logs", {"namespace": NS, "pod": "geo-1"}, style=style),
        text_call("submit_diagnosis", GOOD, style=style),
    )
    out = await diagnoser(llm).diagnose(diagnose_request(), tools)
    assert out.localisation == ["geo"] and out.usage.steps == 2
    # the call goes back as a native call and its result as a tool message: the model's template renders both
    call, result = llm.requests[1]["messages"][-2:]
    assert call["tool_calls"][0]["function"]["name"] == "get_logs" and call["content"] == ""
    assert result["role"] == "tool" and result["tool_call_id"] == call["tool_calls"][0]["id"]
    assert "connection refused" in result["content"]


async def test_malformed_and_mistyped_arguments_get_corrections(llm: ScriptedLLM, tools: MemoryTools) -> None:
    llm.push(
        tool_call("get_logs", '{"namespace": "test-hotel-reservation", "pod": '),  # broken JSON
        tool_call("get_logs", {"namespace": NS}),  # missing pod
        tool_call("get_logs", {"namespace": NS, "pod": "geo-1", "tail": "many"}),  # wrong type
        tool_call("submit_diagnosis", {**GOOD, "fault_type": "Bad Luck"}),  # outside the vocabulary
        tool_call("submit_diagnosis", {**GOOD, "localisation": "geo", "system_level": "application"}),
    )
    out = await diagnoser(llm).diagnose(diagnose_request(), tools)
    replies = tool_results(llm.requests[-1])
    assert "not valid JSON" in replies[0] and "Call get_logs again" in replies[0]
    assert "Invalid arguments for get_logs: pod: Field required" in replies[1]
    assert "tail:" in replies[2] and "integer" in replies[2]
    assert "fault_type: fault_type must be one of: Misconfiguration, Code Defect" in replies[3]
    # lenient where it is safe: a single component as a string, the level in lower case
    assert out.localisation == ["geo"] and out.root_cause is not None
    assert out.root_cause.system_level == "Application" and out.usage.steps == 5


async def test_unknown_tool_and_prose_get_corrections(llm: ScriptedLLM, tools: MemoryTools) -> None:
    llm.push(
        tool_call("exec_shell", {"command": "kubectl get pods"}),
        text("I think the geo service is broken, let me look."),
        tool_call("functions.submit_diagnosis", GOOD),  # a namespaced spelling of a real tool
    )
    out = await diagnoser(llm).diagnose(diagnose_request(), tools)
    replies = tool_results(llm.requests[-1])
    assert replies[0].startswith("Unknown tool 'exec_shell'. The tools are: kubectl, get_logs")
    assert replies[1].startswith("You did not call a tool.") and "submit_diagnosis" in replies[1]
    assert out.localisation == ["geo"]


async def test_several_calls_in_one_message(llm: ScriptedLLM, tools: MemoryTools) -> None:
    llm.push(
        tool_calls(("kubectl", {"command": "kubectl get pods"}), ("get_events", {"namespace": NS})),
        tool_call("submit_diagnosis", GOOD),
    )
    await diagnoser(llm).diagnose(diagnose_request(), tools)
    msgs = llm.requests[1]["messages"]
    assert [m["role"] for m in msgs[-3:]] == ["assistant", "tool", "tool"]
    assert tools.commands == [f"kubectl -n {NS} get pods"]  # the scope is added when the line names none


async def test_http_500_is_retried_inside_the_loop(llm: ScriptedLLM, tools: MemoryTools) -> None:
    llm.push(http_error(500), tool_call("submit_diagnosis", GOOD))
    out = await diagnoser(llm).diagnose(diagnose_request(), tools)
    assert out.localisation == ["geo"] and out.usage.steps == 1 and len(llm.requests) == 2


async def test_endpoint_down_for_good_fails_the_work_as_temporary(llm: ScriptedLLM, tools: MemoryTools) -> None:
    llm.push(*[http_error(503)] * 5)
    with pytest.raises(LLMFailed, match="HTTP 503") as failed:
        await diagnoser(llm, max_retries=2).diagnose(diagnose_request(), tools)
    assert failed.value.temporary and isinstance(failed.value.cause, LLMUnavailable)
    assert failed.value.usage.steps == 0


async def test_step_limit_ends_with_a_clear_reason(llm: ScriptedLLM, tools: MemoryTools) -> None:
    llm.default = tool_call("list_objects", {"kind": "Pod", "namespace": NS})
    with pytest.raises(LLMFailed, match="step limit reached: the model made 4 calls") as failed:
        await diagnoser(llm, max_steps=4).diagnose(diagnose_request(), tools)
    assert failed.value.usage.steps == 4 and len(llm.requests) == 4 and not failed.value.temporary
    assert "This is your last step: call submit_diagnosis now" in messages_text(llm.requests[-1])
    assert llm.requests[-1]["tool_choice"] == {"type": "function", "function": {"name": "submit_diagnosis"}}
    assert all(r["tool_choice"] == "auto" for r in llm.requests[:-1])


async def test_usage_and_cost_are_summed_over_the_work(llm: ScriptedLLM, tools: MemoryTools) -> None:
    llm.push(
        tool_call("get_events", {"namespace": NS}, prompt_tokens=1200, completion_tokens=30),
        tool_call("submit_diagnosis", GOOD, prompt_tokens=1500, completion_tokens=80),
    )
    reasoner = diagnoser(llm, price_in_per_mtok=2.5, price_out_per_mtok=10.0)
    out = await reasoner.diagnose(diagnose_request(), tools)
    assert (out.usage.prompt_tokens, out.usage.completion_tokens, out.usage.steps) == (2700, 110, 2)
    assert out.usage.cost_usd == pytest.approx((2700 * 2.5 + 110 * 10.0) / 1e6)
    assert reasoner.client.total == out.usage  # the client's cumulative total saw the same calls


async def test_traces_are_summarised_for_the_model(llm: ScriptedLLM, tools: MemoryTools) -> None:
    tools.trace_list = [
        {
            "traceID": "t1",
            "processes": {"p1": {"serviceName": "frontend"}, "p2": {"serviceName": "geo"}},
            "spans": [
                {"spanID": "a", "operationName": "/hotels", "processID": "p1", "duration": 9000, "tags": []},
                {
                    "spanID": "b",
                    "operationName": "Nearby",
                    "processID": "p2",
                    "duration": 5000,
                    "references": [{"refType": "CHILD_OF", "spanID": "a"}],
                    "tags": [{"key": "error", "value": True}, {"key": "error.message", "value": "no db"}],
                },
            ],
        }
    ]
    llm.push(tool_call("get_traces", {"namespace": NS}), tool_call("submit_diagnosis", GOOD))
    await diagnoser(llm).diagnose(diagnose_request(), tools)
    summary = llm.requests[1]["messages"][-1]["content"]
    assert "1 traces, 1 with errors." in summary and "geo Nearby: no db" in summary


# --- mitigation --------------------------------------------------------------------------------------------------


async def test_mitigation_writes_through_execute_and_ends(llm: ScriptedLLM, tools: MemoryTools) -> None:
    llm.push(
        tool_call("kubectl", {"command": f"kubectl get deploy -n {NS}"}),
        tool_call("scale", {"kind": "deploy", "name": "geo", "replicas": 1}),
        tool_call("kubectl", {"command": 'kubectl patch deployment frontend -p \'{"spec":{"paused":false}}\''}),
        tool_call("end_transaction", {"reason": "geo scaled back to 1"}),
    )
    out = await mitigator(llm).mitigate(mitigate_request(), tools)
    assert out.done and out.reason == "geo scaled back to 1" and out.usage.steps == 4
    assert tools.commands == [f"kubectl get deploy -n {NS}"]  # the read went to the read tool
    assert tools.executed[0] == Scale(kind="Deployment", namespace=NS, name="geo", replicas=1)
    assert isinstance(tools.executed[1], Patch) and tools.executed[1].namespace == NS
    assert tools.objects[("Deployment", NS, "geo")]["spec"]["replicas"] == 1
    replies = tool_results(llm.requests[-1])
    assert "writes left in this transaction: 2" in replies[1] and "writes left in this transaction: 1" in replies[2]
    system = llm.requests[0]["messages"][0]["content"]
    assert "at most 3 writes" in system and "journaled and may be undone" in system
    user = llm.requests[0]["messages"][1]["content"]
    assert "geo is scaled to zero" in user and "Virtualization / Operation Error" in user
    names = {t["function"]["name"] for t in llm.requests[0]["tools"]}
    assert {"scale", "patch", "set_image", "set_env", "rollout_restart", "rollout_undo", "delete"} <= names
    assert {"apply", "create", "cordon", "uncordon", "exec", "end_transaction", "kubectl"} <= names
    scale_schema = next(t for t in llm.requests[0]["tools"] if t["function"]["name"] == "scale")["function"]
    assert "verb" not in scale_schema["parameters"]["properties"]
    assert scale_schema["parameters"]["required"] == ["kind", "name", "replicas"]


async def test_refusals_and_bad_writes_come_back_as_text(llm: ScriptedLLM, tools: MemoryTools) -> None:
    llm.push(
        tool_call("kubectl", {"command": f"kubectl delete namespace {NS}"}),
        tool_call("kubectl", {"command": "kubectl get pods | grep geo"}),
        tool_call("scale", {"kind": "Service", "name": "geo", "replicas": 1}),
        tool_call("scale", {"kind": "Deployment", "name": "geo", "replicas": -1}),
        tool_call("patch", {"kind": "Deployment", "name": "geo", "patch": "not an object"}),
        tool_call("end_transaction", {}),
        tool_call("end_transaction", {"reason": "nothing safe to do", "fixed": False}),
    )
    out = await mitigator(llm).mitigate(mitigate_request(), tools)
    assert out.done and not out.failed and tools.executed == []
    replies = tool_results(llm.requests[-1])
    assert replies[0].startswith("Namespace deletion detected")
    assert "Pipe detected" in replies[1]
    assert "scale does not apply to Service" in replies[2]
    assert "replicas" in replies[3] and "greater than or equal to 0" in replies[3]
    assert replies[4].startswith("Invalid arguments for patch")
    assert "reason: Field required" in replies[5]


async def test_gateway_refusal_and_exhausted_bound_reach_the_model(llm: ScriptedLLM, tools: MemoryTools) -> None:
    tools.max_writes = 1
    llm.push(
        tool_call("scale", {"kind": "Deployment", "name": "geo", "replicas": 1}),
        tool_call("scale", {"kind": "Deployment", "name": "frontend", "replicas": 2}),
        tool_call("end_transaction", {"reason": "bound reached"}),
    )
    out = await mitigator(llm).mitigate(mitigate_request(k=1), tools)
    replies = tool_results(llm.requests[-1])
    assert "bound of 1 writes is reached" in replies[1] and "(writes left: 0)" in replies[1]
    assert out.done and len(tools.executed) == 1


async def test_second_attempt_carries_only_the_reflection(llm: ScriptedLLM, tools: MemoryTools) -> None:
    secret = "I will delete the frontend deployment to force a clean start"
    llm.push(
        text(secret),
        tool_call("delete", {"kind": "Deployment", "name": "frontend"}),
        tool_call("end_transaction", {"reason": "deleted frontend"}),
    )
    reasoner = mitigator(llm)
    await reasoner.mitigate(mitigate_request(attempt=1), tools)
    first_attempt_requests = len(llm.requests)
    lesson = "Attempt 1 deleted Deployment frontend: mu rose from 2 to 5; it was undone. Do not delete frontend."
    llm.push(
        tool_call("scale", {"kind": "Deployment", "name": "geo", "replicas": 1}),
        tool_call("end_transaction", {"reason": "geo back to 1 replica"}),
    )
    out = await reasoner.mitigate(mitigate_request(attempt=2, reflections=[lesson]), tools)
    assert out.done and out.reason == "geo back to 1 replica"
    attempt2 = llm.requests[first_attempt_requests]
    prompt = messages_text(attempt2)
    assert lesson in prompt and "attempt 2" in prompt and "Earlier attempts failed" in prompt
    assert secret not in prompt and "deleted frontend" not in prompt  # never the earlier transcript
    assert len(attempt2["messages"]) == 2


async def test_mitigation_survives_the_endpoint_failing(llm: ScriptedLLM, tools: MemoryTools) -> None:
    llm.push(tool_call("scale", {"kind": "Deployment", "name": "geo", "replicas": 1}), *[http_error(500)] * 6)
    reasoner = mitigator(llm)
    reasoner.client.max_retries = 1
    out = await reasoner.mitigate(mitigate_request(), tools)
    assert out.failed and "the LLM failed after 1 steps" in out.reason and out.usage.steps == 1
    assert len(tools.executed) == 1  # the write stands; the coordinator measures and decides


async def test_mitigation_step_limit(llm: ScriptedLLM, tools: MemoryTools) -> None:
    llm.default = tool_call("get_events", {"namespace": NS})
    out = await mitigator(llm, max_steps=3).mitigate(mitigate_request(), tools)
    assert out.failed and out.reason.startswith("step limit reached: the model made 3 calls without calling end_")
    assert out.usage.steps == 3


def test_write_tool_schemas_are_json() -> None:
    from stratus.reasoners.toolkit import mitigation_toolbox

    box = mitigation_toolbox(MemoryTools(), NS)
    json.dumps(box.specs())
    assert len(box.names) == len(set(box.names))
