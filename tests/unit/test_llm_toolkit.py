"""Pure pieces of the LLM reasoner: tool calls found in text, argument parsing, kubectl lines, compaction, options."""

from __future__ import annotations

import json

import pytest

from stratus.reasoners.llm import LLMMitigationReasoner, LLMOptions, calls_in_text, parse_arguments
from stratus.reasoners.toolkit import diagnosis_toolbox, mitigation_toolbox, summarise_traces, truncate, with_namespace
from stratus.settings import ReasonerSettings
from tests.llm_server import MemoryTools

KNOWN = {"get_logs", "submit_diagnosis", "kubectl"}


@pytest.mark.parametrize(
    ("content", "name", "args"),
    [
        ('```json\n{"name": "get_logs", "arguments": {"pod": "a"}}\n```', "get_logs", {"pod": "a"}),
        ('<tool_call>\n{"name": "kubectl", "arguments": {"command": "kubectl get po"}}\n</tool_call>', "kubectl", None),
        ('{"tool": "get_logs", "args": {"pod": "a"}}', "get_logs", {"pod": "a"}),
        ('Sure! {"function": {"name": "get_logs", "arguments": "{\\"pod\\": \\"a\\"}"}}', "get_logs", {"pod": "a"}),
        ('{"name": "get_logs", "pod": "a"}', "get_logs", {"pod": "a"}),  # arguments inline
        ('[{"tool_call": {"name": "get_logs", "parameters": {"pod": "a"}}}]', "get_logs", {"pod": "a"}),
        ('{"thought": "x", "action": {"name": "get_logs", "args": {"pod": "a"}}}', None, None),
    ],
)
def test_calls_in_text(content: str, name: str | None, args: dict[str, str] | None) -> None:
    calls = calls_in_text(content, KNOWN)
    if name is None:
        assert calls == [] or calls[0].name == "get_logs"
        return
    assert calls and calls[0].name == name
    if args is not None:
        assert parse_arguments(calls[0].arguments) == args


def test_prose_and_plain_json_are_not_calls() -> None:
    assert calls_in_text("The pod geo is failing because of {reasons}.", KNOWN) == []
    assert calls_in_text('{"status": "ok", "items": [1, 2]}', KNOWN) == []
    assert calls_in_text('{"name": "geo", "namespace": "x"}', KNOWN) == []  # "name" but not a tool's


def test_two_calls_in_one_text() -> None:
    content = '{"name": "get_logs", "arguments": {"pod": "a"}}\n{"name": "kubectl", "arguments": {"command": "x"}}'
    assert [c.name for c in calls_in_text(content, KNOWN)] == ["get_logs", "kubectl"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ('{"a": 1}', {"a": 1}),
        ('"{\\"a\\": 1}"', {"a": 1}),  # double-encoded
        ("{'a': 1, 'b': True}", {"a": 1, "b": True}),  # a Python literal
    ],
)
def test_parse_arguments(text: str, expected: dict[str, object]) -> None:
    assert parse_arguments(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("{'a': ", "not valid JSON"), ("[1, 2]", "must be a JSON object, not list"), ('"x"', "a string, not")],
)
def test_parse_arguments_errors(text: str, message: str) -> None:
    out = parse_arguments(text)
    assert isinstance(out, str) and message in out


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("kubectl get pods", "kubectl -n ns get pods"),
        ("kubectl get pods -n other", "kubectl get pods -n other"),
        ("kubectl get pods --namespace=other", "kubectl get pods --namespace=other"),
        ("kubectl get pods -A", "kubectl get pods -A"),
        ("kubectl exec geo-1 -- ls -n", "kubectl -n ns exec geo-1 -- ls -n"),
        ("ls -l", "ls -l"),
        ("kubectl get 'unbalanced", "kubectl get 'unbalanced"),
    ],
)
def test_with_namespace(line: str, expected: str) -> None:
    assert with_namespace(line, "ns") == expected


def test_truncate_keeps_head_and_tail() -> None:
    text = "".join(str(i % 10) for i in range(1000))
    out = truncate(text, 100)
    assert out.startswith(text[:75]) and out.endswith(text[-25:]) and "characters cut" in out
    assert truncate("short", 100) == "short"


def test_compact_options_leave_out_typed_writes() -> None:
    full = mitigation_toolbox(MemoryTools(), "ns")
    small = mitigation_toolbox(MemoryTools(), "ns", typed_writes=False)
    assert "scale" in full.names and "scale" not in small.names and "kubectl" in small.names
    assert len(json.dumps(small.specs())) < len(json.dumps(full.specs())) / 2
    assert len(json.dumps(diagnosis_toolbox(MemoryTools(), "ns").specs())) < 6000


def test_from_settings_compact() -> None:
    settings = ReasonerSettings(
        llm_base_url="http://127.0.0.1:9/v1",  # type: ignore[arg-type]
        llm_model="local",
        llm_compact=True,
        llm_max_steps=12,
    )
    reasoner = LLMMitigationReasoner.from_settings(settings)
    assert reasoner.options == LLMOptions.compact(12)
    assert reasoner.client.model == "local"


def test_summarise_no_traces() -> None:
    assert summarise_traces([]).startswith("No traces found")
