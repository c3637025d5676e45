"""The embedding's telemetry readers: parsing what Prometheus, Jaeger and the pod-log API return (hostile shapes
included), workload names, and the windows' slicing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stratus.embedding.telemetry import (
    LogRecord,
    MetricQuery,
    SeriesRecord,
    SpanRecord,
    Telemetry,
    Workloads,
    parse_log_lines,
    parse_matrix,
    parse_trace,
    workload_of,
)

HOSTILE = Path(__file__).parent / "embedding_cases" / "hostile_telemetry.json"


def _pod(name: str, owner: str | None, kind: str = "ReplicaSet", h: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {"pod-template-hash": h} if h else {}}
    if owner:
        meta["ownerReferences"] = [{"kind": kind, "name": owner}]
    return {"metadata": meta}


def test_workloads_from_owner_references_and_the_naming_rule() -> None:
    w = Workloads(
        [
            _pod("geo-7d9f8c6b5-abcde", "geo-7d9f8c6b5", h="7d9f8c6b5"),
            _pod("mongodb-0", "mongodb", kind="StatefulSet"),
            _pod("odd-name", None),
        ]
    )
    assert w.of("geo-7d9f8c6b5-abcde") == "geo"
    assert w.of("mongodb-0") == "mongodb"
    assert w.of("odd-name") == "odd-name"
    assert w.of("user-5c8f7d9b4-xk2lq") == "user"  # a pod that has gone: the naming rule
    assert workload_of("frontend") == "frontend"


def test_prometheus_matrix_per_service_with_pods_mapped_and_sums() -> None:
    q = MetricQuery(name="restarts", query="x", label="pod", label_is_pod=True)
    doc = {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {"metric": {"pod": "geo-7d9f8c6b5-abcde"}, "values": [[10, "1"], [11, "2"]]},
                {"metric": {"pod": "geo-7d9f8c6b5-fghij"}, "values": [[10, "1"], [11, "NaN"]]},
                {"metric": {}, "values": [[10, "5"]]},
            ],
        },
    }
    series = parse_matrix(q, doc, Workloads())
    assert series == [SeriesRecord("restarts", "geo", ((10.0, 2.0), (11.0, 2.0)))]


def test_jaeger_trace_spans_of_the_scope_with_workloads_and_aliases() -> None:
    trace = {
        "traceID": "t1",
        "spans": [
            {"spanID": "a", "processID": "p1", "operationName": "GET /", "startTime": 1_000_000, "duration": 5000,
             "tags": [{"key": "span.kind", "value": "server"}]},
            {"spanID": "b", "processID": "p2", "operationName": "Get", "startTime": 1_001_000, "duration": 2000,
             "references": [{"refType": "CHILD_OF", "spanID": "a"}],
             "tags": [{"key": "error", "value": True}]},
            {"spanID": "c", "processID": "p3", "operationName": "x", "startTime": 1, "duration": 1},
        ],
        "processes": {
            "p1": {"serviceName": "nginx-web-server",
                   "tags": [{"key": "hostname", "value": "nginx-thrift-5d8f9c7b6-abcde"},
                            {"key": "k8s.namespace.name", "value": "ns"}]},
            "p2": {"serviceName": "user", "tags": [{"key": "hostname", "value": "user-6f7c9d8b5-xyzab"}]},
            "p3": {"serviceName": "other", "tags": [{"key": "k8s.namespace.name", "value": "elsewhere"}]},
        },
    }  # fmt: skip
    aliases: dict[str, str] = {}
    spans = parse_trace(trace, "ns", Workloads(), aliases)
    assert [(s.service, s.parent_id, s.error) for s in spans] == [("nginx-thrift", None, False), ("user", "a", True)]
    assert spans[0].start == 1.0 and spans[0].duration == 0.005
    assert aliases == {"nginx-web-server": "nginx-thrift", "user": "user"}


def test_log_lines_inside_the_window_only_and_each_second_once() -> None:
    text = (
        "2026-01-01T00:00:10Z first\n"
        "2026-01-01T00:00:11.250000Z second\n"
        "not a timestamp at all\n"
        "2026-01-01T00:00:20Z later\n"
    )
    t10 = 1767225610.0
    first = parse_log_lines(text, "geo", "geo-1", t10, t10 + 1.0)
    second = parse_log_lines(text, "geo", "geo-1", t10 + 1.0, t10 + 2.0)
    assert [r.text for r in first] == ["first"] and first[0].time == t10 + 0.5
    assert [r.text for r in second] == ["second"]


def test_hostile_shapes_are_skipped_not_raised() -> None:
    cases = json.loads(HOSTILE.read_text())
    q = MetricQuery(name="requests", query="x")
    for doc in cases["prometheus"]:
        parse_matrix(q, doc, Workloads())
    for doc in cases["jaeger"]:
        if isinstance(doc, dict):
            parse_trace(doc, "ns", Workloads())
    for text in cases["logs"]:
        parse_log_lines(text, "s", "p", 0.0, 4e9)


def test_metric_query_rejects_unknown_fields() -> None:
    with pytest.raises(ValueError):
        MetricQuery.model_validate({"name": "a", "query": "b", "shell": "rm -rf /"})


def test_slice_merge_and_json_round_trip() -> None:
    a = Telemetry(
        0.0,
        10.0,
        series=[SeriesRecord("requests", "geo", ((1.0, 2.0), (9.0, 3.0)))],
        spans=[SpanRecord("t", "s1", None, "geo", "op", 2.0, 0.1, False, "server")],
        logs=[LogRecord(3.0, "geo", "geo-1", "hello")],
        services=["geo"],
        aliases={"geo-svc": "geo"},
    )
    b = Telemetry(10.0, 20.0, series=[SeriesRecord("requests", "geo", ((11.0, 4.0),))], services=["geo", "user"])
    merged = Telemetry.merge([a, b])
    assert merged.series[0].points == ((1.0, 2.0), (9.0, 3.0), (11.0, 4.0))
    assert merged.services == ["geo", "user"] and merged.aliases == {"geo-svc": "geo"}
    part = merged.slice(5.0, 15.0)
    assert part.series[0].points == ((9.0, 3.0), (11.0, 4.0)) and not part.spans and not part.logs
    assert Telemetry.from_json(json.loads(json.dumps(a.to_json()))) == a
