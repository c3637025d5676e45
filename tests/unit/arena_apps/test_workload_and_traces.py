from __future__ import annotations

from arena.apps import WorkloadRoute
from arena.behaviour.requests import HttpResult, Span
from arena.telemetry.metrics import AppMetrics
from arena.telemetry.traces import TraceStore, jaeger_trace, parse_duration
from arena.workload.generator import WorkloadSpec, run_workload

ROUTES = [WorkloadRoute(method="GET", path="/a", weight=1)]


def test_workload_counts_rate_and_errors() -> None:
    calls = 0

    def send(method: str, path: str) -> HttpResult:
        nonlocal calls
        calls += 1
        return HttpResult(500 if calls % 4 == 0 else 200, 2.0)

    r = run_workload(send, ROUTES, WorkloadSpec(rate=100, duration_s=10, connections=2))
    assert 900 <= r.requests <= 1100 and r.requests == calls
    assert r.non_2xx == calls // 4 and r.socket_errors == 0
    assert 1.9 <= r.latency.p50_ms <= 2.1


def test_workload_latency_includes_queueing_behind_slow_responses() -> None:
    r = run_workload(
        lambda m, p: HttpResult(200, 10_000.0), ROUTES, WorkloadSpec(rate=10, duration_s=10, connections=2)
    )
    assert r.latency.p50_ms >= 10_000
    assert r.latency.max_ms > 100_000  # later requests wait for a free connection (wrk2 corrects for it)
    r = run_workload(
        lambda m, p: HttpResult(200, 3000.0), ROUTES, WorkloadSpec(rate=1, duration_s=10, connections=2, timeout_s=2)
    )
    assert r.socket_errors == r.requests > 0


def span(trace: str, sid: str, parent: str | None, service: str, op: str, error: bool = False) -> Span:
    s = Span(
        trace,
        sid,
        parent,
        service,
        op,
        1_000_000_000_000_000 // 1000 * 0 + 0,
        1500,
        "server",
        "pod-1",
        "10.0.0.1",
        "ns",
    )
    s.start_us = __import__("time").time_ns() // 1000
    if error:
        s.tags["error"] = True
    return s


def test_trace_store_answers_jaeger_queries() -> None:
    store = TraceStore()
    store.add([span("t1", "a", None, "frontend", "HTTP GET /hotels"), span("t1", "b", "a", "search", "Nearby", True)])
    store.add([span("t2", "c", None, "frontend", "HTTP GET /user")])
    assert store.services() == ["frontend", "search"]
    assert store.operations("frontend") == ["HTTP GET /hotels", "HTTP GET /user"]
    assert [t[0].trace_id for t in store.find(service="frontend")] == ["t2", "t1"]
    assert [t[0].trace_id for t in store.find(service="search", tags={"error": "true"})] == ["t1"]
    assert store.find(service="frontend", operation="HTTP GET /user", limit=1)[0][0].trace_id == "t2"
    doc = jaeger_trace(store.get("t1") or [])
    child = doc["spans"][1]
    assert child["references"] == [{"refType": "CHILD_OF", "traceID": "t1", "spanID": "a"}]
    assert {"key": "error", "type": "bool", "value": True} in child["tags"]
    assert doc["processes"][child["processID"]]["serviceName"] == "search"
    assert parse_duration("5m", 0) == 300 and parse_duration(None, 7) == 7


def test_app_metrics_histogram() -> None:
    m = AppMetrics()
    m.observe("ns", "frontend", "HTTP GET /hotels", "200", 0.003)
    m.observe("ns", "frontend", "HTTP GET /hotels", "500", 12.0)
    text = "\n".join(m.render())
    assert 'arena_requests_total{namespace="ns",service="frontend",operation="HTTP GET /hotels",code="500"} 1' in text
    assert 'le="0.005"} 1' in text and 'le="+Inf"} 2' in text
