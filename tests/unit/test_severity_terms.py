"""mu's terms for faults that leave every pod Ready: stuck deletions, operator SLO queries, latency regressions."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from stratus.latency import (
    MAX_VIOLATIONS,
    JaegerSpans,
    LatencyOracle,
    LatencyPolicy,
    add_sample,
    entry_latencies,
    latest_latency,
    parse_samples,
    regressions,
)
from stratus.settings import SeveritySettings
from stratus.severity import SeverityMeter, Snapshot, assess, stuck_deletion

Obj = dict[str, Any]
NOW = 1_800_000_000.0


def stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def terminating(name: str, ago: float, finalizers: list[str] | None) -> Obj:
    meta: Obj = {"name": name, "deletionTimestamp": stamp(NOW - ago)}
    if finalizers is not None:
        meta["finalizers"] = finalizers
    return {"metadata": meta}


# -- stuck deletions ---------------------------------------------------------------------------------------------


def test_a_deletion_waiting_on_a_finalizer_past_the_bound_is_unhealthy() -> None:
    cm = terminating("token", 120, ["cleanup.example.io/pending"])
    assert stuck_deletion(cm, NOW, 60) == "deletion stuck 120s on finalizers [cleanup.example.io/pending]"
    sev = assess(Snapshot(others=[("ConfigMap", cm)], now=NOW, stuck_deletion_s=60))
    assert sev.mu == 1 and sev.unhealthy == [
        "configmap/token: deletion stuck 120s on finalizers [cleanup.example.io/pending]"
    ]


@pytest.mark.parametrize(
    "obj",
    [
        terminating("young", 30, ["f"]),  # within the bound: a controller may still be working
        terminating("nofinalizer", 600, None),  # nothing holds it: the API server removes it
        terminating("emptyfinalizers", 600, []),
        {"metadata": {"name": "alive", "finalizers": ["f"]}},  # not being deleted
        {"metadata": {"name": "garbage", "deletionTimestamp": "x" * 1000, "finalizers": ["f"]}},
        {"metadata": {"name": "garbage2", "deletionTimestamp": 17, "finalizers": "f"}},
    ],
)
def test_what_is_not_a_stuck_deletion(obj: Obj) -> None:
    assert stuck_deletion(obj, NOW, 60) is None
    assert assess(Snapshot(others=[("ConfigMap", obj)], now=NOW, stuck_deletion_s=60)).mu == 0


def test_stuck_deletion_off_and_every_read_kind_checked() -> None:
    pvc = {**terminating("data", 600, ["kubernetes.io/pvc-protection"]), "status": {"phase": "Bound"}}
    assert assess(Snapshot(pvcs=[pvc], now=NOW, stuck_deletion_s=0)).mu == 0
    sev = assess(Snapshot(pvcs=[pvc], now=NOW, stuck_deletion_s=60))
    assert sev.unhealthy == ["pvc/data: deletion stuck 600s on finalizers [kubernetes.io/pvc-protection]"]
    many = terminating("m", 90, [f"f{i}" for i in range(50)])
    assert stuck_deletion(many, NOW, 60) == "deletion stuck 90s on finalizers [f0, f1, f2, ...]"


def test_the_meter_reads_terminating_objects_and_tolerates_unreadable_kinds() -> None:
    class Lister:
        async def list_objects(self, kind: str, namespace: str | None) -> list[Obj]:
            if kind == "Secret":
                raise PermissionError("forbidden")
            if kind == "ConfigMap":
                old = {"name": "token", "deletionTimestamp": stamp(time.time() - 600), "finalizers": ["f"]}
                return [{"metadata": old}, {"metadata": {"name": "fine"}}]
            return []

    sev = asyncio.run(SeverityMeter(Lister(), stuck_deletion_s=60).measure("shop"))
    assert len(sev.unhealthy) == 1 and sev.unhealthy[0].startswith("configmap/token: deletion stuck")
    assert asyncio.run(SeverityMeter(Lister()).measure("shop")).mu == 0  # off unless configured


def test_settings_default_to_a_minute() -> None:
    assert SeveritySettings().stuck_deletion_s == 60


# -- operator SLO queries ------------------------------------------------------------------------------------------


class NoObjects:
    async def list_objects(self, kind: str, namespace: str | None) -> list[Obj]:
        return []


def prometheus(answer: Any, seen: list[str] | None = None, raw: bytes | None = None) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request.url.params["query"])
        return httpx.Response(200, content=raw if raw is not None else json.dumps(answer).encode())

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def test_a_violated_slo_query_counts_with_the_scope_substituted() -> None:
    seen: list[str] = []
    result = {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, "40"]}]}}
    meter = SeverityMeter(
        NoObjects(),
        prometheus_url="http://prom",
        slo_queries=[("consumer-lag", 'kafka_consumergroup_lag{namespace="$scope"} > 10')],
        http=prometheus(result, seen),
    )
    sev = asyncio.run(meter.measure("shop"))
    assert sev.mu == 1 and sev.violations == ["consumer-lag: 1 series"]
    assert seen == ['kafka_consumergroup_lag{namespace="shop"} > 10']


def test_a_met_slo_query_is_zero_and_hostile_answers_are_bounded() -> None:
    empty = {"status": "success", "data": {"resultType": "vector", "result": []}}
    meter = SeverityMeter(NoObjects(), prometheus_url="http://p", slo_queries=[("q", "up")], http=prometheus(empty))
    assert asyncio.run(meter.measure("shop")).mu == 0
    huge = SeverityMeter(
        NoObjects(), prometheus_url="http://p", slo_queries=[("q", "up")], http=prometheus(None, raw=b" " * 2_000_000)
    )
    assert asyncio.run(huge.measure("shop")).violations == ["q: answer over 1000000 bytes"]
    odd = SeverityMeter(NoObjects(), prometheus_url="http://p", slo_queries=[("q", "up")], http=prometheus(["x"]))
    assert asyncio.run(odd.measure("shop")).violations == ["q: unexpected answer"]


def test_slo_query_settings_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATUS_SLO_QUERIES", json.dumps({"lag": "kafka_consumergroup_lag > 10"}))
    settings = SeveritySettings()
    assert settings.slo_queries == {"lag": "kafka_consumergroup_lag > 10"}
    assert SeverityMeter.from_settings(settings, NoObjects()).slo_queries == [("lag", "kafka_consumergroup_lag > 10")]
    for bad in ({f"q{i}": "up" for i in range(21)}, {"q": "x" * 2001}, {"": "up"}, {"q": " "}):
        monkeypatch.setenv("STRATUS_SLO_QUERIES", json.dumps(bad))
        with pytest.raises(ValueError):
            SeveritySettings()


# -- latency regressions -------------------------------------------------------------------------------------------

POLICY = LatencyPolicy(factor=3.0, min_delta_s=0.025, window_s=30, burst_s=3, min_samples=3, max_samples=5)


def test_entry_spans_are_those_whose_parent_is_elsewhere() -> None:
    spans = [
        ("a", "frontend", None, 100.0, 0.050),
        ("b", "ad", "a", 100.001, 0.040),
        ("c", "ad", "b", 100.002, 0.030),  # ad's own child span: not an entry
        ("d", "ad", "zz", 100.5, 0.020),  # parent not read: an entry
    ]
    assert entry_latencies(spans) == {"frontend": [(100.0, 0.050)], "ad": [(100.001, 0.040), (100.5, 0.020)]}


def test_the_latest_round_of_requests_counts_not_the_window() -> None:
    entries = {
        "ad": [(NOW - 20, 2.0), (NOW - 19, 2.0), (NOW - 1.5, 0.001), (NOW - 1.0, 0.002), (NOW - 0.5, 0.001)],
        "stale": [(NOW - 100, 5.0)],
    }
    assert latest_latency(entries, NOW, POLICY) == {"ad": 0.001}


def test_a_regression_needs_a_ratio_a_margin_and_enough_healthy_samples() -> None:
    samples = {"ad": [0.0006, 0.0007, 0.0006], "frontend": [0.003, 0.003, 0.003], "new": [0.001]}
    assert regressions({"ad": 0.0020, "frontend": 0.004, "new": 9.0}, samples, POLICY) == []  # jitter; too new
    assert regressions({"ad": 0.069}, samples, POLICY) == ["latency: ad 69ms, healthy 0.6ms (x115)"]
    assert regressions({"ad": 0.020}, samples, POLICY) == []  # x33 but under the 25 ms margin
    many = {f"s{i}": [0.001] * 3 for i in range(10)}
    assert len(regressions({s: 1.0 for s in many}, many, POLICY)) == MAX_VIOLATIONS


def test_healthy_samples_are_bounded_and_stored_values_validated() -> None:
    samples: dict[str, list[float]] = {}
    for i in range(10):
        samples = add_sample(samples, {"ad": 0.001 * (i + 1)}, POLICY)
    assert samples == {"ad": pytest.approx([0.006, 0.007, 0.008, 0.009, 0.010])}
    assert parse_samples(b'{"ad": [0.001, "x", -1, 1e9, true], "b": "no", "c": []}') == {"ad": [0.001, 1.0]}
    assert parse_samples(b"not json") == {} and parse_samples(b"[1]") == {} and parse_samples(b"x" * 100_000) == {}


def jaeger(traces: dict[str, list[Obj]], calls: list[str] | None = None) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if calls is not None:
            calls.append(request.url.path)
        if request.url.path == "/api/services":
            return httpx.Response(200, json={"data": sorted(traces)})
        return httpx.Response(200, json={"data": traces.get(request.url.params["service"], [])})

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def trace(tid: str, start: float, frontend_s: float, ad_s: float) -> Obj:
    procs = {"p1": {"serviceName": "frontend", "tags": []}, "p2": {"serviceName": "ad", "tags": []}}
    spans = [
        {
            "traceID": tid,
            "spanID": f"{tid}f",
            "processID": "p1",
            "startTime": int(start * 1e6),
            "duration": int(frontend_s * 1e6),
            "operationName": "GET",
        },
        {
            "traceID": tid,
            "spanID": f"{tid}a",
            "processID": "p2",
            "startTime": int((start + 0.001) * 1e6),
            "duration": int(ad_s * 1e6),
            "operationName": "GetAds",
            "references": [{"refType": "CHILD_OF", "spanID": f"{tid}f"}],
        },
    ]
    return {"traceID": tid, "spans": spans, "processes": procs}


class MemoryStore:
    def __init__(self) -> None:
        self.data: dict[str, dict[str, list[float]]] = {}

    async def get(self, scope: str) -> dict[str, list[float]]:
        return self.data.get(scope, {})

    async def put(self, scope: str, samples: dict[str, list[float]]) -> bool:
        self.data[scope] = samples
        return True


def test_the_oracle_learns_while_healthy_then_flags_the_slow_service() -> None:
    clock = [NOW]
    traces: dict[str, list[Obj]] = {"frontend": [], "ad": []}
    store = MemoryStore()
    oracle = LatencyOracle(JaegerSpans("http://j", http=jaeger(traces)), store, POLICY, clock=lambda: clock[0])  # type: ignore[arg-type]

    async def run() -> list[str]:
        for i in range(3):  # three healthy rounds, one sample each
            traces["frontend"] = traces["ad"] = [trace(f"h{i}", clock[0] - 0.5, 0.003, 0.0006)]
            assert await oracle.violations("shop") == []
            await oracle.learn("shop")
            await oracle.learn("shop")  # within the learn interval: no second sample
            clock[0] += 20
        assert store.data["shop"] == {"ad": [0.0006] * 3, "frontend": [0.003] * 3}
        traces["frontend"] = traces["ad"] = [trace("slow", clock[0] - 0.5, 1.7, 1.66)]
        return await oracle.violations("shop")

    assert asyncio.run(run()) == [
        "latency: ad 1660ms, healthy 0.6ms (x2767)",  # the slowest against its own healthy latency first
        "latency: frontend 1700ms, healthy 3.0ms (x567)",
    ]


def test_a_broken_trace_source_adds_nothing() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"{not json")

    oracle = LatencyOracle(
        JaegerSpans("http://j", http=httpx.AsyncClient(transport=httpx.MockTransport(handler))), MemoryStore(), POLICY
    )  # type: ignore[arg-type]
    assert asyncio.run(oracle.violations("shop")) == []
    garbage = {"ad": [{"traceID": "t", "spans": ["x", {"spanID": "s", "startTime": "bad"}], "processes": []}]}
    oracle = LatencyOracle(JaegerSpans("http://j", http=jaeger(garbage)), MemoryStore(), POLICY)  # type: ignore[arg-type]
    assert asyncio.run(oracle.violations("shop")) == []


def test_latency_is_off_by_default() -> None:
    from stratus.latency import from_settings

    assert SeveritySettings().latency_slo_enabled is False
    assert from_settings(SeveritySettings(), js=None) is None
