"""Trace bootstrapping: the call graph, error tags, and the deepest failure (or the silent callee) first."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stratus.reasoners.bootstrap import build_call_graph, is_error, rank_failing_services

from .rulebook_cases.casetools import CASES

Obj = dict[str, Any]


def span(sid: str, service: str, op: str, parent: str | None = None, kind: str = "server", **tags: Any) -> Obj:
    s: Obj = {
        "spanID": sid,
        "operationName": op,
        "references": [{"refType": "CHILD_OF", "spanID": parent}] if parent else [],
        "tags": [{"key": "span.kind", "value": kind}]
        + [{"key": k.replace("_", "."), "value": v} for k, v in tags.items()],
        "processID": service,
        "logs": [],
    }
    return s


def trace(tid: str, *spans: Obj, hosts: dict[str, str] | None = None) -> Obj:
    services = {s["processID"] for s in spans}
    processes = {
        svc: {"serviceName": svc, "tags": [{"key": "hostname", "value": (hosts or {}).get(svc, f"{svc}-pod")}]}
        for svc in services
    }
    return {"traceID": tid, "spans": list(spans), "processes": processes}


def with_log(s: Obj, message: str) -> Obj:
    s["logs"] = [{"timestamp": 1, "fields": [{"key": "event", "value": "error"}, {"key": "message", "value": message}]}]
    return s


def test_error_tags() -> None:
    assert is_error({"tags": [{"key": "error", "value": True}]})
    assert is_error({"tags": [{"key": "error", "value": "true"}]})
    assert is_error({"tags": [{"key": "http.status_code", "value": 503}]})
    assert is_error({"tags": [{"key": "otel.status_code", "value": "ERROR"}]})
    assert not is_error({"tags": [{"key": "http.status_code", "value": 404}]})
    assert not is_error({"tags": [{"key": "otel.status_code", "value": "OK"}]})


def test_deepest_failing_service_ranks_first_and_graph_has_edges() -> None:
    failing = trace(
        "t1",
        span("a", "frontend", "HTTP GET /hotels", http_status_code=500),
        span("b", "frontend", "Nearby", "a", kind="client", error=True),
        span("c", "search", "/search.Search/Nearby", "b", error=True),
        span("d", "search", "GetRates", "c", kind="client"),
        span("e", "rate", "/rate.Rate/GetRates", "d"),
        span("f", "search", "Nearby", "c", kind="client", error=True),
        span("g", "geo", "/geo.Geo/Nearby", "f", error=True),
    )
    graph = build_call_graph([failing, failing | {"traceID": "t2"}])
    assert graph.failing_traces == 2
    top = graph.hypotheses[0]
    assert (top.service, top.operation, top.traces, top.inferred) == ("geo", "/geo.Geo/Nearby", 2, False)
    assert top.pods == ["geo-pod"]
    edges = {(e.caller, e.callee): (e.calls, e.errors) for e in graph.edges}
    assert edges[("frontend", "search")] == (2, 2)
    assert edges[("search", "rate")] == (2, 0)
    assert edges[("search", "geo")] == (2, 2)
    assert rank_failing_services([failing]) == ["geo"]


def test_client_span_without_child_blames_the_callee_learned_from_healthy_traces() -> None:
    ok = trace(
        "ok",
        span("a", "compose-post-service", "compose_post_server"),
        span("b", "compose-post-service", "ComposeText", "a", kind="client"),
        span("c", "text-service", "compose_text_server", "b"),
    )
    broken = trace(
        "bad",
        span("a", "compose-post-service", "compose_post_server", error=True),
        with_log(
            span("b", "compose-post-service", "ComposeText", "a", kind="client", error=True),
            "TSocket::open() connect() <Host: text-service Port: 9090>: Connection refused",
        ),
    )
    graph = build_call_graph([ok, broken])
    top = graph.hypotheses[0]
    assert (top.service, top.inferred) == ("text-service", True)
    assert top.pods == []
    assert "Connection refused" in top.evidence[0]


def test_callee_from_peer_tag_then_from_the_error_log() -> None:
    tagged = trace(
        "p",
        span("a", "checkout", "PlaceOrder", error=True),
        span("b", "checkout", "Charge", "a", kind="client", error=True, peer_service="payment"),
    )
    logged = trace(
        "l",
        span("a", "nginx-web-server", "/wrk2-api/user/login", error=True),
        with_log(
            span("b", "nginx-web-server", "Login", "a", kind="client", error=True),
            "TSocket::open() connect() <Host: user-service Port: 9090>: Connection refused",
        ),
    )
    assert rank_failing_services([tagged]) == ["payment"]
    assert rank_failing_services([logged]) == ["user-service"]


def test_parent_span_id_field_and_no_failure() -> None:
    spans = [
        {"spanID": "1", "operationName": "GET /", "processID": "p1", "tags": []},
        {"spanID": "2", "parentSpanID": "1", "operationName": "q", "processID": "p2", "tags": {"error": True}},
    ]
    t = {"traceID": "x", "spans": spans, "processes": {"p1": {"serviceName": "web"}, "p2": {"serviceName": "db"}}}
    graph = build_call_graph([t])
    assert graph.hypotheses[0].service == "db" and graph.hypotheses[0].depth == 1
    healthy = {"traceID": "y", "spans": [spans[0]], "processes": t["processes"]}
    assert build_call_graph([healthy]).hypotheses == []
    assert build_call_graph([]).total_traces == 0
    assert build_call_graph([t, t]).total_traces == 1  # Jaeger answers a trace once per service queried


@pytest.mark.parametrize(
    ("case", "service"),
    [
        ("service-target-port-mismatch", "user-service"),
        ("deployment-scaled-to-zero", "user-service"),
        ("network-loss-to-a-service", "user"),
        ("network-delay-to-a-service", "user"),
    ],
)
def test_captured_traces_point_at_the_silent_service(case: str, service: str) -> None:
    traces = json.loads((CASES / case / "traces.json").read_text())
    assert rank_failing_services(traces)[0] == service


def timed(s: Obj, start: int, duration: int) -> Obj:
    return s | {"startTime": start, "duration": duration}


def test_a_slow_hop_without_errors_is_a_latency_hypothesis() -> None:
    def call(tid: str, callee: str, hop_us: int) -> Obj:
        return trace(
            tid,
            timed(span("a", "frontend", "HTTP GET /x"), 0, hop_us + 2_000),
            timed(span("b", "frontend", "Check", "a", kind="client"), 100, hop_us + 1_000),
            timed(span("c", callee, f"/{callee}/Check", "b"), 200, 800),
        )

    traces = [call(f"ok{i}", "search", 300) for i in range(5)] + [call("slow", "user", 10_000_000)]
    graph = build_call_graph(traces)
    [h] = graph.hypotheses
    assert (h.service, h.signal, h.pods) == ("user", "latency", ["user-pod"])
    assert graph.failing_traces == 0


def test_an_earlier_failure_episode_is_ignored() -> None:
    old = trace("old", timed(span("a", "user", "Login", error=True), 0, 10))
    new = trace("new", timed(span("a", "geo", "Nearby", error=True), 600_000_000, 10))
    assert rank_failing_services([old, new]) == ["geo"]
    healthy_now = trace("now", timed(span("a", "web", "GET /"), 600_000_000, 10))
    assert rank_failing_services([old, healthy_now]) == []


def test_a_burst_that_is_over_localises_nothing_but_an_intermittent_fault_does() -> None:
    def call(tid: str, start: int, bad: bool) -> Obj:
        tags = {"error": True} if bad else {}
        return trace(
            tid, timed(span("a", "web", "GET /"), start, 10), timed(span("b", "geo", "Nearby", "a", **tags), start, 5)
        )

    burst = [call(f"b{i}", i, True) for i in range(3)] + [call(f"ok{i}", 100 + i, False) for i in range(10)]
    assert rank_failing_services(burst) == []
    flaky = [call(f"x{i}", i, i % 5 == 0) for i in range(20)]
    assert rank_failing_services(flaky) == ["geo"]
