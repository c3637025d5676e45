"""The memory suite's pieces that need no system: the dataset is deterministic and labelled by construction, the
metrics compute what they say, and the report prints every table."""

from __future__ import annotations

from arena.bench.memory import dataset
from arena.bench.memory.evaluate import _snapshot, heuristic, raw_text, recall_at, scores
from arena.bench.memory.suite import tables
from stratus.memory.signature import signature_of, similarity


def test_the_dataset_is_regenerated_identically_and_split_by_app() -> None:
    one, two = dataset.steps(seeds=1), dataset.steps(seeds=1)
    assert one == two
    assert {s["split"] for s in one if s["app"] in dataset.TEST_APPS} == {"test"}
    labels = {s["label"] for s in one}
    assert labels == {"ok", *dataset.FAIL}
    refusals = [s for s in one if s["label"] == "refused_command"]
    assert refusals and all("not supported" in s["result"] for s in refusals)  # the real parser's answers


def test_incidents_of_one_fault_are_closer_to_each_other_than_to_others() -> None:
    a = signature_of(_snapshot(dataset.incident("oom_killed", "shop", "cart", 0)))
    b = signature_of(_snapshot(dataset.incident("oom_killed", "astronomy-shop", "paymentservice", 1)))
    c = signature_of(_snapshot(dataset.incident("wrong_binary", "shop", "cart", 0)))
    assert similarity(a, b) > similarity(a, c)
    assert "pod" in raw_text(dataset.incident("bad_image", "shop", "web", 0))


def test_metrics() -> None:
    truth = ["ok", "loop", "wrong_tool", "ok"]
    pred = ["ok", "loop", "loop", "wrong_tool"]
    s = scores(truth, pred)
    assert s["detection_precision"] == 2 / 3 and s["detection_recall"] == 1.0
    assert 0 < s["diagnosis_f1"] < 1
    assert scores(["ok", "loop"], ["ok", "loop"])["diagnosis_f1"] == 1.0  # kinds that never occur do not count
    assert recall_at([[1, 2, 3]], [{2, 9}], k=2) == 0.5
    assert heuristic({"result": "Unknown tool 'x'.", "arguments": "{}"}) == "wrong_tool"
    assert heuristic({"result": "ERROR connection refused", "arguments": "{}"}) == "refused_command"  # its weakness


def test_the_report_has_every_table() -> None:
    m = {
        "detection_precision": 1.0,
        "detection_recall": 1.0,
        "detection_f1": 1.0,
        "diagnosis_f1": 1.0,
        "recall_at_10": 1.0,
        "latency_ms_median": 1.0,
        "latency_ms_p95": 2.0,
    }
    result = {
        "steps": {"test_steps": 1, "failing": 1, "kb": 1, "step check": m},
        "incidents": {"incidents": 2, "fault_kinds": 1, "signature": {"recall_at_10": 1.0}},
        "recurring": {
            "delay_s": 1.0,
            "rows": [
                {
                    "scenario": "s",
                    "first_success": True,
                    "second_success": True,
                    "first_ttm_s": 9.0,
                    "second_ttm_s": 5.0,
                    "first_llm_calls": 6,
                    "second_llm_calls": 3,
                    "first_attempts": 1,
                    "second_attempts": 1,
                }
            ],
        },
    }
    text = tables(result)
    assert "| step check | 1.00 |" in text and "| signature | 1.00 |" in text
    assert "fewer LLM calls and a lower TTM: 1/1" in text
