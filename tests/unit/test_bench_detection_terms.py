"""The bench with the detection terms: the SLO queries' Prometheus and settings, the latency term's wait."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from arena.apps import APPS
from arena.bench import detection_terms
from arena.bench.cli import app as bench_app
from arena.bench.detection_terms import example_slo_queries, latency_enabled, slo_query_env, wait_latency
from arena.bench.runner import Bench, BenchOptions

runner = CliRunner()


def test_the_example_queries_are_the_shipped_file() -> None:
    queries = json.loads(example_slo_queries())
    assert "consumer-lag" in queries and "$scope" in queries["consumer-lag"]
    assert slo_query_env("http://p") == {
        "STRATUS_PROMETHEUS_URL": "http://p",
        "STRATUS_SLO_QUERIES": example_slo_queries(),
    }
    assert slo_query_env("http://p", '{"q": "up"}')["STRATUS_SLO_QUERIES"] == '{"q": "up"}'


def test_latency_enabled_reads_a_boolean_setting() -> None:
    assert latency_enabled({"STRATUS_LATENCY_SLO_ENABLED": "1"})
    assert latency_enabled({"STRATUS_LATENCY_SLO_ENABLED": "True"})
    assert not latency_enabled({"STRATUS_LATENCY_SLO_ENABLED": "false"})
    assert not latency_enabled({})


def test_no_prometheus_and_no_terms_by_default(tmp_path: Path) -> None:
    opts = BenchOptions(suite="sregym", policies=["scripted"], out=tmp_path)
    assert not opts.slo_prometheus
    assert "STRATUS_SLO_QUERIES" not in opts.record_settings()
    bench = _bench(opts)
    env = bench._env(APPS["hotel-reservation"], "scripted", "none", 0, None)
    assert not {"STRATUS_SLO_QUERIES", "STRATUS_PROMETHEUS_URL", "STRATUS_LATENCY_SLO_ENABLED"} & set(env)


def test_slo_queries_start_a_prometheus_whose_url_the_services_get(tmp_path: Path) -> None:
    opts = BenchOptions(suite="sregym", policies=["scripted"], out=tmp_path, slo_queries=True)
    assert opts.slo_prometheus
    assert opts.record_settings()["STRATUS_PROMETHEUS_URL"] == "<prometheus>"
    bench = _bench(opts)
    bench.slo_prometheus = _Server("http://127.0.0.1:9")  # type: ignore[assignment]
    env = bench._env(APPS["hotel-reservation"], "scripted", "none", 0, None)
    assert env["STRATUS_PROMETHEUS_URL"] == "http://127.0.0.1:9"
    assert env["STRATUS_SLO_QUERIES"] == example_slo_queries()


def test_the_operators_queries_and_url_win(tmp_path: Path) -> None:
    queries = '{"lag": "kafka_consumergroup_lag > 0"}'
    implied = BenchOptions(suite="sregym", policies=["scripted"], out=tmp_path, env={"STRATUS_SLO_QUERIES": queries})
    assert implied.slo_prometheus  # queries without a Prometheus: the bench starts one
    bench = _bench(implied)
    bench.slo_prometheus = _Server("http://127.0.0.1:9")  # type: ignore[assignment]
    env = bench._env(APPS["hotel-reservation"], "scripted", "none", 0, None)
    assert env["STRATUS_SLO_QUERIES"] == queries and env["STRATUS_PROMETHEUS_URL"] == "http://127.0.0.1:9"
    own = BenchOptions(
        suite="sregym",
        policies=["scripted"],
        out=tmp_path,
        env={"STRATUS_SLO_QUERIES": queries, "STRATUS_PROMETHEUS_URL": "http://prom:9090"},
    )
    assert not own.slo_prometheus  # the operator's own Prometheus: none started
    assert _bench(own)._env(APPS["hotel-reservation"], "scripted", "none", 0, None)["STRATUS_PROMETHEUS_URL"] == (
        "http://prom:9090"
    )


def test_the_cli_passes_slo_queries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[BenchOptions] = []

    class Stop(Bench):
        def run(self) -> Any:
            seen.append(self.opts)
            raise ValueError("stopped")

    monkeypatch.setattr("arena.bench.runner.Bench", Stop)
    out = runner.invoke(
        bench_app,
        [
            *("--suite", "sregym", "--policy", "scripted", "--slo-queries"),
            *("--set", "STRATUS_LATENCY_SLO_ENABLED=1", "--out", str(tmp_path)),
        ],
    )
    assert out.exit_code == 2, out.output
    assert seen[0].slo_queries and seen[0].env == {"STRATUS_LATENCY_SLO_ENABLED": "1"}
    runner.invoke(bench_app, ["--suite", "sregym", "--policy", "scripted", "--out", str(tmp_path)])
    assert not seen[1].slo_queries and not seen[1].slo_prometheus


async def test_wait_latency_returns_once_a_service_has_three_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    reads = iter([{}, {"frontend": [0.1, 0.1]}, {"frontend": [0.1, 0.1, 0.2]}])

    class Store:
        def __init__(self, js: Any, bucket: str) -> None:
            pass

        async def get(self, scope: str) -> dict[str, list[float]]:
            return next(reads)

    monkeypatch.setattr(detection_terms, "SampleStore", Store)
    monkeypatch.setattr(detection_terms.asyncio, "sleep", _no_sleep)
    await wait_latency(None, "test-hotel-reservation", timeout=5)
    reads = iter(lambda: {}, None)  # type: ignore[assignment]
    with pytest.raises(TimeoutError, match="no healthy latency samples"):
        await wait_latency(None, "test-hotel-reservation", timeout=0.01)


async def _no_sleep(_: float) -> None:
    return None


class _Server:
    def __init__(self, url: str) -> None:
        self.url = url


class _Probes:
    def urls(self, app: Any) -> list[str]:
        return ["http://probe"]


def _bench(opts: BenchOptions) -> Bench:
    bench = Bench(opts)
    bench.kubeconfig, bench.probes, bench.plane_url = Path("kubeconfig"), _Probes(), "http://plane"  # type: ignore[assignment]
    return bench
