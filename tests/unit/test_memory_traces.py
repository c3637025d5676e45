"""The recorded-trace part of the memory suite: labels come from what happened to each step (the tool's answer, the
transaction's decision), the committed file is read defensively, and the suite prints the extra table from it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from arena.bench.memory import traces
from arena.bench.memory.evaluate import evaluate_recorded
from arena.bench.memory.suite import tables
from stratus.stepcheck.checker import MODEL_FILE
from stratus.stepcheck.encoder import save


def _step(n: int, tool: str, arguments: str, result: str, ok: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "reasoning_step",
        "incident_id": "inc-1",
        "service": extra.pop("service", "diagnoser"),
        "step": n,
        "tool": tool,
        "arguments": arguments,
        "result": result,
        "ok": ok,
        **extra,
    }


WRITE = "deployment.apps/web scaled (writes left in this transaction: 19)"
EVENTS: list[dict[str, Any]] = [
    _step(1, "list_objects", '{"kind": "Pod"}', "NAME READY STATUS\nweb-1 0/1 CrashLoopBackOff"),
    _step(2, "get_pod_logs", '{"name": "web"}', "Unknown tool 'get_pod_logs'. The tools are: kubectl.", False),
    _step(3, "get_logs", '{"pod": "web"', "Your call to get_logs was not run: not valid JSON.", False),
    _step(4, "get_object", '{"kind": "Deployment", "name": "web-svc"}',
          "Deployment web-svc not found in namespace shop. List the objects of this kind to see what exists."),
    _step(5, "get_logs", '{"pod": "web"}', 'ERROR user "bob" not found\nexit 1'),  # data, not the tool's answer
    _step(5, "get_logs", '{"pod": "web", "container": "db"}',
          "(no logs: Error from server (BadRequest): container db is not valid for pod web-1)"),
    _step(6, "kubectl", '{"command": "kubectl logs web | grep x"}',
          "Pipe detected: '|'. Such commands are not supported.", False),
    _step(7, "kubectl", '{"command": "kubectl logs web | grep x"}',
          "Pipe detected: '|'. Such commands are not supported.", False),
    _step(8, "list_objects", '{"kind": "Pod"}',
          "You already called list_objects with these arguments at step 1; nothing you did since changes its answer."),
    _step(9, "get_events", "{}", "LAST SEEN TYPE REASON\n1s Warning BackOff pod/web"),
    _step(10, "kubectl", '{"command": "kubectl get pods"}', "NAME READY\nweb-1 0/1"),
    _step(11, "get_events", "{}", "LAST SEEN TYPE REASON\n1s Warning BackOff pod/web"),  # the same answer again
    _step(12, "get_events", "{}", "LAST SEEN TYPE REASON\n1s Warning BackOff pod/web\n0s Normal Pulled pod/web"),
    _step(1, "scale", '{"name": "db", "replicas": 0}', WRITE.replace("web", "db"), service="mitigator",
          tx_id="tx-1", attempt=1),
    _step(2, "end_transaction", '{"fixed": true}', "Transaction ended.", service="mitigator", tx_id="tx-1", attempt=1),
    {"kind": "transaction_decided", "incident_id": "inc-1", "tx_id": "tx-1", "decision": "abort"},
    {"kind": "undo_completed", "incident_id": "inc-1", "tx_id": "tx-1"},
    _step(1, "scale", '{"name": "web", "replicas": 1}', WRITE, service="mitigator", tx_id="tx-2", attempt=2),
    _step(2, "step_check", "scale({})", "Step check: ...", False, service="mitigator", tx_id="tx-2", attempt=2),
    {"kind": "transaction_decided", "incident_id": "inc-1", "tx_id": "tx-2", "decision": "commit"},
]  # fmt: skip
EXPECTED = [
    "ok",
    "wrong_tool",
    "malformed_call",
    "hallucinated_name",
    "ok",
    "hallucinated_name",
    "refused_command",
    "loop",
    "loop",
    "ok",
    "ok",
    "loop",
    "ok",
    "preceded_abort",
    "ok",
    "ok",
]


def _bench_out(tmp_path: Path) -> Path:
    out = tmp_path / "run"
    (out / "logs").mkdir(parents=True)
    name = "p-mitigation-1.llm.none.0.timeline.jsonl"
    (out / "logs" / name).write_text("".join(json.dumps(e) + "\n" for e in EVENTS))
    run = {"scenario": "p-mitigation-1", "app": "shop", "policy": "llm", "repeat": 0, "success": True,
           "outcome": "resolved", "timeline_file": name}  # fmt: skip
    rulebook = {**run, "policy": "rulebook", "timeline_file": name}  # not an LLM run: not collected
    (out / "bench.json").write_text(json.dumps({"runs": [run, rulebook]}))
    return out


def test_labels_come_from_what_happened_to_each_step(tmp_path: Path) -> None:
    steps = traces.collect([_bench_out(tmp_path)], model="m", commit="abc")
    assert [s["label"] for s in steps] == EXPECTED  # the step check's own notes are not agent steps
    aborted = [s for s in steps if s["tx_decision"] == "abort"]
    assert aborted and all(s["undone"] for s in aborted)
    assert {s["oracle_success"] for s in steps} == {True} and {s["model"] for s in steps} == {"m"}
    assert len({s["trace"] for s in steps}) == 3  # the diagnosis and two transactions


def test_the_same_write_in_a_committed_transaction_is_ok() -> None:
    step = {"tool": "scale", "arguments": "{}", "result": WRITE, "ok": True}
    assert traces.label_of(step, set(), "commit") == "ok"
    assert traces.label_of(step, set(), "abort") == "preceded_abort"
    assert traces.label_of(step, set(), None) == "ok"


def test_the_recorded_file_is_read_defensively(tmp_path: Path) -> None:
    good = {"tool": "t", "arguments": "{}", "result": "x" * 10_000, "label": "ok", "trace": "a"}
    path = tmp_path / "f.jsonl"
    path.write_text(
        "\n".join([json.dumps(good), "not json", json.dumps({**good, "label": "made_up"}), json.dumps([1]), ""])
    )
    steps = traces.load(path)
    assert len(steps) == 1 and len(steps[0]["result"]) == traces.MAX_TEXT
    assert traces.load(tmp_path / "absent.jsonl") == []


def test_the_suite_scores_the_recorded_traces_and_prints_their_table(tmp_path: Path) -> None:
    steps = traces.collect([_bench_out(tmp_path)], model="local-model", commit="abc")
    path = traces.write(steps, tmp_path / "local-traces.jsonl")
    model = np.load(MODEL_FILE, allow_pickle=False)  # the trained projection, a small knowledge base
    labels = [str(x) for x in model["labels"]]
    keep = [labels.index(lab) for lab in dict.fromkeys(labels)][:8]
    small = tmp_path / "stepcheck.npz"
    save(small, model["w"], [str(model["texts"][i]) for i in keep], [labels[i] for i in keep], version="test")
    tables_of = evaluate_recorded(path=path, model_file=small)
    assert len(tables_of) == 1
    recorded = tables_of[0]
    assert recorded["steps"] == len(EXPECTED) and recorded["failing"] == sum(e != "ok" for e in EXPECTED)
    for name in ("step check (MiniLM + n-grams, contrastive projection)", "plain MiniLM (no training)",
                 "string heuristics"):  # fmt: skip
        m = recorded[name]
        assert 0 <= m["detection_f1"] <= 1 and 0 <= m["diagnosis_f1"] <= 1 and m["latency_ms_median"] >= 0
        assert m["recall_at_10"] is None
    assert evaluate_recorded(path=tmp_path / "absent.jsonl") == []
    empty = {"test_steps": 0, "failing": 0, "kb": 0}
    text = tables({"steps": empty, "incidents": {"incidents": 0, "fault_kinds": 0}, "recorded": tables_of})
    assert "recorded traces of local-model (16 steps in 3 traces of 1 scenarios, 9 failing" in text
    assert "| string heuristics |" in text


_DIAGNOSER = ("list_objects", "get_logs", "get_events", "get_object", "kubectl", "submit_diagnosis")
DIAGNOSIS_TOOLS = [{"type": "function", "function": {"name": n}} for n in _DIAGNOSER]
WRITER_TOOLS = [{"type": "function", "function": {"name": n}} for n in ("kubectl", "get_object", "end_transaction")]


def _call(reply: dict[str, Any]) -> tuple[str, str]:
    f = reply["choices"][0]["message"]["tool_calls"][0]["function"]
    return str(f["name"]), str(f["arguments"])


def test_the_failure_injecting_model_is_seeded_and_harms_only_its_first_transaction() -> None:
    from arena.bench.memory.injector import FailureInjectingModel, _names

    def model(seed: int) -> FailureInjectingModel:
        m = FailureInjectingModel(seed=seed, rate=0.5)
        m.reset("p-1", ["kubectl scale deployment web --replicas=1"], ["kubectl patch deployment web"], "shop")
        return m

    body = {"tools": DIAGNOSIS_TOOLS, "messages": [{"role": "user", "content": "diagnose"}]}
    assert [_call(model(3).decide(body)) for _ in range(3)] == [_call(model(3).decide(body)) for _ in range(3)]
    seen = {_call(model(s).decide(body))[0] for s in range(40)}
    assert "list_objects" in seen and seen - {"list_objects"}  # useful calls and mistakes
    calm = FailureInjectingModel(rate=0.0)
    calm.reset("p-1", ["fix"], ["harm"], "shop")
    first = {"tools": WRITER_TOOLS, "messages": [{"role": "user", "content": "Incident i; attempt 1; at most 20"}]}
    later = {"tools": WRITER_TOOLS, "messages": [{"role": "user", "content": "Incident i; attempt 2; at most 20"}]}
    assert _call(calm.decide(first)) == ("kubectl", json.dumps({"command": "harm"}))
    assert _call(calm.decide(later)) == ("kubectl", json.dumps({"command": "fix"}))
    table = {"role": "tool", "content": "NAME READY STATUS\nweb-5d9c 1/1 Running\n"}
    events = {"role": "tool", "content": "LAST SEEN TYPE REASON\n14s Normal Pulled\n"}
    assert _names([table, events]) == ["web-5d9c"]


def test_a_run_names_its_own_model(tmp_path: Path) -> None:
    out = _bench_out(tmp_path)
    (out / "model.txt").write_text("scripted failure-injecting model\n")
    steps = traces.collect([out, tmp_path / "no-such-run"], model="local", commit="abc")
    assert {s["model"] for s in steps} == {"scripted failure-injecting model"}
