"""Telemetry of the app plane: the Jaeger query API with error spans, Prometheus /metrics with app and kube-state
series, pod logs through the API, and the mongo shell through the real kubectl exec."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from arena.scenarios.engine import Engine, Registry, wait_for
from arena.telemetry.plane import AppsArena
from arena.workload.generator import WorkloadSpec

from .conftest import healthy

pytestmark = [pytest.mark.integration]
HOTEL = "test-hotel-reservation"


def test_jaeger_api_and_error_spans(arena: AppsArena, engine: Engine, registry: Registry) -> None:
    healthy(engine, "social-network")
    engine._plane().workload("test-social-network", WorkloadSpec(rate=10, duration_s=2))
    with httpx.Client(base_url=arena.plane_url) as http:
        services = http.get("/api/services").json()["data"]
        assert {"nginx-web-server", "compose-post-service", "user-service", "text-service"} <= set(services)
        ops = http.get("/api/services/compose-post-service/operations").json()["data"]
        assert "compose_post_server" in ops
        found = http.get("/api/traces", params={"service": "nginx-web-server", "lookback": "5m", "limit": 3}).json()
        assert len(found["data"]) == 3
        trace = found["data"][0]
        one = http.get(f"/api/traces/{trace['traceID']}").json()["data"][0]
        assert one["traceID"] == trace["traceID"]
        services_in_trace = {p["serviceName"] for p in one["processes"].values()}
        assert {"nginx-web-server", "compose-post-service", "unique-id-service"} <= services_in_trace
        assert http.get("/api/traces", params={"lookback": "5m"}).status_code == 400

        scenario, _ = registry.get("k8s_target_port-misconfig-mitigation-1")
        engine.inject(scenario)
        try:
            engine._plane().workload("test-social-network", WorkloadSpec(rate=10, duration_s=1))
            bad = http.get(
                "/api/traces",
                params={"service": "compose-post-service", "tags": json.dumps({"error": "true"}), "limit": 5},
            ).json()["data"]
            assert bad, "error spans expected from compose-post-service"
            spans = bad[0]["spans"]
            by_pid = bad[0]["processes"]
            failing = [s for s in spans if any(t["key"] == "error" and t["value"] is True for t in s["tags"])]
            assert any(by_pid[s["processID"]]["serviceName"] == "nginx-web-server" for s in failing)
            root = next(s for s in spans if not s["references"])
            assert {"key": "http.status_code", "type": "int64", "value": 500} in root["tags"]
            assert not any(by_pid[s["processID"]]["serviceName"] == "user-service" for s in spans)
        finally:
            engine.recover(scenario)
    healthy(engine, "social-network")


def test_metrics_exposition(arena: AppsArena, engine: Engine) -> None:
    healthy(engine, "hotel-reservation")
    engine._plane().workload(HOTEL, WorkloadSpec(rate=10, duration_s=2))
    text = httpx.get(f"{arena.plane_url}/metrics").text
    for series in (
        "arena_requests_total{",
        "arena_request_duration_seconds_bucket{",
        "kube_pod_status_ready{",
        "kube_pod_container_status_restarts_total{",
        "kube_deployment_status_replicas_available{",
        "kube_persistentvolumeclaim_status_phase{",
        "kube_node_status_condition{",
        "# TYPE kube_pod_container_status_waiting_reason gauge",
    ):
        assert series in text, series
    assert (
        'arena_requests_total{namespace="test-hotel-reservation",service="frontend",operation="HTTP GET /hotels",'
        'code="200"}' in text
    )
    assert (
        'kube_persistentvolumeclaim_status_phase{namespace="test-hotel-reservation",persistentvolumeclaim='
        '"geo-pvc",phase="Bound"} 1' in text
    )
    from prometheus_client.parser import text_string_to_metric_families

    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"arena_requests", "kube_pod_status_ready", "kube_node_status_condition"} <= names


def test_kubectl_exec_mongo_and_logs(arena: AppsArena, engine: Engine, kubeconfig: Path) -> None:
    kubectl = shutil.which("kubectl") or str(Path(".venv/bin/kubectl").resolve())
    healthy(engine, "hotel-reservation")
    pod = engine.pods(HOTEL, {"io.kompose.service": "mongodb-geo"})[0]["metadata"]["name"]
    base = [kubectl, "--kubeconfig", str(kubeconfig), "-n", HOTEL]
    out = subprocess.run(
        [
            *base,
            "exec",
            pod,
            "--",
            "mongo",
            "admin",
            "-u",
            "root",
            "-p",
            "root",
            "--authenticationDatabase",
            "admin",
            "--quiet",
            "--eval",
            "printjson(db.getUser('admin'))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert '{ "role" : "readWrite", "db" : "geo-db" }' in out.stdout
    bad = subprocess.run(
        [*base, "exec", pod, "--", "mongo", "admin", "-u", "admin", "-p", "wrong", "--eval", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0 and "Authentication failed" in bad.stdout + bad.stderr
    logs = subprocess.run([*base, "logs", pod], capture_output=True, text=True, timeout=60)
    assert "Waiting for connections" in logs.stdout
    # mongod's own log line about the failed login shows up at the kubelet's next log collection
    wait_for(
        "mongod to log the failed authentication", lambda: "AuthenticationFailed" in engine.kube.logs(HOTEL, pod), 10
    )
