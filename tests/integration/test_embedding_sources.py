"""The embedding reads the arena the way it reads a cluster: a real Prometheus scraping ``/metrics`` over its HTTP
API, the Jaeger query API, pod logs from the Kubernetes API; then one window is featurised and encoded."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from arena.apps import APPS
from arena.scenarios.engine import Engine
from arena.telemetry.plane import AppsArena
from arena.workload.generator import WorkloadSpec
from stratus.embedding.features import TemplateLookup, featurise
from stratus.embedding.sources import arena_queries
from stratus.embedding.telemetry import JaegerSource, KubeLogSource, PrometheusSource, TelemetryReader
from stratus.gateway import KubeApi
from stratus.localinfra import LocalServer
from stratus.promstack import ensure_installed, start_prometheus
from tests.fixtures_apps import engine_fixture

pytestmark = pytest.mark.integration
engine = engine_fixture("module", time_scale=0.1)
APP = APPS["social-network"]


@pytest.fixture(scope="module")
def prometheus(apps_arena: AppsArena) -> Iterator[LocalServer]:
    ensure_installed()
    server = start_prometheus([apps_arena.plane_url.split("://", 1)[1]], scrape_interval="1s")
    yield server
    server.stop()


async def test_one_window_from_the_three_production_sources(
    apps_arena: AppsArena, apps_kubeconfig: Path, engine: Engine, prometheus: LocalServer
) -> None:
    t0 = time.time() - 1.0
    engine.deploy(APP)
    engine.wait_ready(APP.namespace, 60)
    assert engine.plane is not None
    # Wait on the very series the assertions need: the namespace having some traffic is not enough (a busy machine
    # lags the first scrapes, and the window's range query may still miss the service's first points).
    query = f'rate(arena_requests_total{{namespace="{APP.namespace}",service="compose-post-service"}}[10s]) > 0'
    api = KubeApi.from_kubeconfig(apps_kubeconfig)
    reader = TelemetryReader(
        # generous intervals and timeouts: scrapes and answers lag on a busy machine
        prometheus=PrometheusSource(prometheus.url, arena_queries(), rate="10s", http=httpx.AsyncClient(timeout=60)),
        jaeger=JaegerSource(apps_arena.plane_url, http=httpx.AsyncClient(timeout=60)),
        logs=KubeLogSource(api),
        step=1.0,
    )
    deadline = time.monotonic() + 180
    try:
        while True:
            engine.plane.workload(APP.namespace, WorkloadSpec(rate=20, duration_s=0.5))
            time.sleep(0.5)
            result = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": query}, timeout=60).json()
            if result["data"]["result"]:
                telemetry = await reader.read(APP.namespace, t0, time.time())
                if ("requests", "compose-post-service") in {(s.signal, s.service) for s in telemetry.series}:
                    break
            assert time.monotonic() < deadline, "Prometheus never returned the compose-post-service request series"
    finally:
        await reader.aclose()
        api.close()
    assert telemetry.missing == []
    assert "compose-post-service" in telemetry.services and "nginx-thrift" in telemetry.services
    signals = {(s.signal, s.service) for s in telemetry.series}
    assert ("requests", "compose-post-service") in signals
    assert ("not_ready", "compose-post-service") in signals  # a kube-state series, by pod, mapped to its workload
    assert telemetry.aliases.get("nginx-web-server") == "nginx-thrift"  # tracer name -> workload
    assert {s.service for s in telemetry.spans} >= {"nginx-thrift", "compose-post-service", "text-service"}
    assert any("Starting" in r.text for r in telemetry.logs)
    wf = featurise(telemetry, TemplateLookup(), telemetry.services)
    i = wf.services.index("compose-post-service")
    assert wf.traces[i, 0] > 0 and wf.metrics[i, 0] > 0
    assert any(e.caller == "nginx-thrift" and e.callee == "compose-post-service" for e in wf.edges)
