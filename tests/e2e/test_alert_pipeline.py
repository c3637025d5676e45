"""The real alerting path: a /metrics endpoint -> Prometheus (the shipped rules) -> Alertmanager -> the bridge process
-> a normalised Alert on NATS JetStream, then its resolution. Also promtool/amtool checks of the shipped configs.

Prometheus and Alertmanager are Debian's packages; the session fixture installs them (scripts/install-promstack.sh)
when missing. The bridge runs as a real process (``python -m services.bridge``) configured by environment variables.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiohttp import web
from nats.js.api import ConsumerConfig, DeliverPolicy

from stratus.bus import Bus
from stratus.contracts import ALERTS_STREAM, Alert, alerts_subject
from stratus.localinfra import LocalServer, free_port
from stratus.promstack import (
    SHIPPED_RULES,
    binary,
    ensure_installed,
    rules_with_for,
    start_alertmanager,
    start_prometheus,
)
from stratus.severity import SeverityMeter

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
TOKEN = "e2e-webhook-token"


@pytest.fixture(scope="session")
def promstack_installed() -> None:
    ensure_installed()  # apt-get install on a fresh machine; raises with the reason when it cannot


def run(*cmd: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, cwd=cwd, timeout=60, check=False)


# --- static checks of the shipped configuration ----------------------------------------------------------------


def test_shipped_rules_pass_promtool_check_and_unit_tests(promstack_installed: None) -> None:
    promtool = binary("promtool")
    assert promtool is not None
    check = run(promtool, "check", "rules", str(SHIPPED_RULES))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 6 rules found" in check.stdout
    tests = run(promtool, "test", "rules", "rules.test.yml", cwd=DEPLOY)
    assert tests.returncode == 0, tests.stdout + tests.stderr


def test_every_shipped_alert_carries_a_namespace(promstack_installed: None) -> None:
    doc = yaml.safe_load(SHIPPED_RULES.read_text())
    alerts = [r for g in doc["groups"] for r in g["rules"] if "alert" in r]
    assert {a["alert"] for a in alerts} == {
        "StratusHighErrorRate",
        "StratusHighLatency",
        "StratusPodNotReady",
        "StratusPodCrashLooping",
        "StratusPVCPending",
        "StratusReplicasUnavailable",
    }
    # Each expression aggregates "by (namespace, ...)": the result keeps the namespace label, nothing else leaks.
    for a in alerts:
        assert "by (namespace" in a["expr"], a["alert"]


def test_example_prometheus_and_alertmanager_configs_are_valid(promstack_installed: None, tmp_path: Path) -> None:
    promtool, amtool = binary("promtool"), "/usr/bin/amtool"
    assert promtool is not None
    prom = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    prom["rule_files"] = [str(SHIPPED_RULES)]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(prom))
    check = run(promtool, "check", "config", str(tmp_path / "prometheus.yml"))
    assert check.returncode == 0, check.stdout + check.stderr

    if Path(amtool).exists():
        (tmp_path / "token").write_text("t")
        full = yaml.safe_load((DEPLOY / "alertmanager.yml").read_text())
        full["receivers"][0]["webhook_configs"][0]["http_config"]["authorization"]["credentials_file"] = str(
            tmp_path / "token"
        )
        (tmp_path / "am.yml").write_text(yaml.safe_dump(full))
        assert run(amtool, "check-config", str(tmp_path / "am.yml")).returncode == 0
        # The snippet, merged into a minimal configuration with a default receiver, is valid too.
        snippet = yaml.safe_load((DEPLOY / "alertmanager-receiver.yml").read_text())
        merged = {
            "route": {"receiver": "default", **snippet["route"]},
            "receivers": [{"name": "default"}, *snippet["receivers"]],
        }
        merged["receivers"][1]["webhook_configs"][0]["http_config"]["authorization"]["credentials_file"] = str(
            tmp_path / "token"
        )
        (tmp_path / "merged.yml").write_text(yaml.safe_dump(merged))
        result = run(amtool, "check-config", str(tmp_path / "merged.yml"))
        assert result.returncode == 0, result.stdout + result.stderr


# --- the live pipeline -----------------------------------------------------------------------------------------


@dataclass
class FakeKubeState:
    """A /metrics endpoint with kube-state-style ``kube_pod_status_ready`` gauges the test flips."""

    namespace: str
    ready: dict[str, int] = field(default_factory=dict)
    changed_at: dict[str, float] = field(default_factory=dict)

    def flip(self, pod: str, value: int) -> None:
        self.ready[pod] = value
        self.changed_at[pod] = time.time()

    def render(self) -> str:
        lines = ["# TYPE kube_pod_status_ready gauge"]
        for pod, v in sorted(self.ready.items()):
            lines.append(f'kube_pod_status_ready{{namespace="{self.namespace}",pod="{pod}",condition="true"}} {v}')
        return "\n".join(lines) + "\n"


@pytest.fixture
async def kube_state(uid: str) -> AsyncIterator[tuple[FakeKubeState, str]]:
    state = FakeKubeState(namespace=f"e2e-{uid}")

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=state.render(), content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield state, f"127.0.0.1:{port}"
    await runner.cleanup()


@dataclass
class BridgeProcess:
    url: str
    metrics_url: str
    process: subprocess.Popen[bytes]
    log: Path


@pytest.fixture
def bridge_process(nats_server: LocalServer, tmp_path: Path) -> Iterator[BridgeProcess]:
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "STRATUS_NATS_URL": nats_server.url,
        "STRATUS_HOST": "127.0.0.1",
        "STRATUS_PORT": str(port),
        "STRATUS_METRICS_PORT": str(metrics_port),
        "STRATUS_WEBHOOK_TOKEN": TOKEN,
        "STRATUS_INSTANCE": "bridge-e2e",
    }
    log = tmp_path / "bridge.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.bridge"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    bridge = BridgeProcess(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}", proc, log)
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, f"the bridge exited: {log.read_text()[-2000:]}"
        try:
            if httpx.get(f"{bridge.url}/healthz", timeout=0.5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"the bridge did not come up: {log.read_text()[-2000:]}"
        time.sleep(0.05)
    yield bridge
    proc.terminate()
    try:
        code = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert code == 0, f"the bridge did not stop cleanly (exit {code}): {log.read_text()[-2000:]}"


async def next_alert(sub: Any, timeout: float) -> tuple[Alert, float]:
    msgs = await sub.fetch(batch=1, timeout=timeout)
    received = time.time()
    await msgs[0].ack()
    return Alert.model_validate_json(msgs[0].data), received


class NoObjects:
    """A cluster with nothing in it: mu then counts only Alertmanager's firing alerts."""

    async def list_objects(self, kind: str, namespace: str | None) -> list[dict[str, Any]]:
        return []


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def test_metric_change_fires_and_resolves_an_alert_on_nats(
    promstack_installed: None,
    bus: Bus,
    bridge_process: BridgeProcess,
    kube_state: tuple[FakeKubeState, str],
    tmp_path: Path,
) -> None:
    state, target = kube_state
    pods = [f"cart-{i}" for i in range(4)]
    for pod in pods:
        state.flip(pod, 1)
    await bus.ensure_streams()
    sub = await bus.js.pull_subscribe(
        alerts_subject(state.namespace),
        durable=None,
        stream=ALERTS_STREAM,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, inactive_threshold=300),  # outlive the set-up
    )
    am = start_alertmanager(f"{bridge_process.url}/webhook", token=TOKEN)
    rules = rules_with_for(SHIPPED_RULES, tmp_path / "rules.yml", "0s")
    prom = start_prometheus([target], rule_files=[rules], alertmanager_url=am.url)
    meter = SeverityMeter(NoObjects(), alertmanager_url=am.url)
    try:
        async with httpx.AsyncClient() as http:
            # Wait until Prometheus has scraped the healthy state (so the flip is a change it sees).
            deadline = time.monotonic() + 20
            while True:
                r = await http.get(f"{prom.url}/api/v1/query", params={"query": "kube_pod_status_ready"})
                if len(r.json()["data"]["result"]) == len(pods):
                    break
                assert time.monotonic() < deadline, "Prometheus never scraped the test's /metrics"
                await asyncio.sleep(0.2)

        for pod in pods:
            state.flip(pod, 0)
        broke_at = dict(state.changed_at)
        firing: dict[str, tuple[Alert, float]] = {}
        while len(firing) < len(pods):
            alert, received = await next_alert(sub, timeout=30)
            assert alert.status == "firing", alert
            firing[alert.labels["pod"]] = (alert, received)
        for pod, (alert, _) in firing.items():
            assert alert.name == "StratusPodNotReady" and alert.scope == state.namespace
            assert alert.labels == {
                "alertname": "StratusPodNotReady",
                "namespace": state.namespace,
                "pod": pod,
                "severity": "warning",
                "stratus_signal": "capacity",
            }
            assert alert.annotations["summary"] == f"Pod {state.namespace}/{pod} is not ready"
            assert alert.starts_at is not None and alert.ends_at is None

        # The firing alerts count in mu through Alertmanager's API (the detector's and coordinator's meter).
        severity = await meter.measure(state.namespace)
        assert severity.mu == len(pods) and all(a.startswith("StratusPodNotReady{") for a in severity.alerts)

        for pod in pods:
            state.flip(pod, 1)
        resolved: dict[str, tuple[Alert, float]] = {}
        while len(resolved) < len(pods):
            alert, received = await next_alert(sub, timeout=30)
            if alert.status == "firing":  # a re-notification of a still-firing alert: same id, deduplicated
                continue
            resolved[alert.labels["pod"]] = (alert, received)
        for pod, (alert, _) in resolved.items():
            assert alert.fingerprint == firing[pod][0].fingerprint
            assert alert.ends_at is not None and alert.starts_at == firing[pod][0].starts_at
            assert alert.id != firing[pod][0].id

        deadline = time.monotonic() + 15
        while (severity := await meter.measure(state.namespace)).mu != 0:
            assert time.monotonic() < deadline, f"Alertmanager still reports {severity.alerts}"
            await asyncio.sleep(0.2)

        # The bridge's own metrics saw it all.
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"{bridge_process.metrics_url}/metrics")).text
        assert 'stratus_webhook_requests_total{code="200"}' in text
        assert 'stratus_alerts_published_total{status="resolved"}' in text

        metric_to_nats = [received - broke_at[p] for p, (_, received) in firing.items()]
        resolve_to_nats = [received - state.changed_at[p] for p, (_, received) in resolved.items()]
        print(
            f"\nmetric change -> firing Alert on NATS: p50 {statistics.median(metric_to_nats):.2f}s "
            f"max {max(metric_to_nats):.2f}s (n={len(metric_to_nats)}); "
            f"-> resolved: p50 {statistics.median(resolve_to_nats):.2f}s max {max(resolve_to_nats):.2f}s"
        )
    finally:
        await meter.http.aclose()
        prom.stop()
        am.stop()
        await sub.unsubscribe()


async def test_webhook_to_nats_latency(bus: Bus, bridge_process: BridgeProcess, uid: str) -> None:
    """Alertmanager-shaped POSTs to the bridge process, timed until the Alert is delivered by NATS."""
    ns = f"lat-{uid}"
    await bus.ensure_streams()
    arrived: dict[str, float] = {}
    got = asyncio.Event()

    async def on_msg(msg: Any) -> None:
        arrived[Alert.model_validate_json(msg.data).fingerprint] = time.perf_counter()
        got.set()

    core = await bus.nc.subscribe(alerts_subject(ns), cb=on_msg)
    answered, delivered = [], []
    try:
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            for i in range(60):
                body = {
                    "version": "4",
                    "groupKey": f'{{}}:{{pod="p{i}"}}',
                    "status": "firing",
                    "receiver": "stratus",
                    "alerts": [
                        {
                            "status": "firing",
                            "labels": {"alertname": "StratusPodNotReady", "namespace": ns, "pod": f"p{i}"},
                            "annotations": {},
                            "startsAt": "2026-11-23T18:00:00Z",
                            "endsAt": "0001-01-01T00:00:00Z",
                            "fingerprint": f"{uid}{i:04d}",
                        }
                    ],
                }
                got.clear()
                t0 = time.perf_counter()
                r = await http.post(f"{bridge_process.url}/webhook", json=body)
                t1 = time.perf_counter()
                assert r.status_code == 200, r.text
                await asyncio.wait_for(got.wait(), timeout=5)
                answered.append(t1 - t0)
                delivered.append(arrived[f"{uid}{i:04d}"] - t0)
    finally:
        await core.unsubscribe()
    info = await bus.js.stream_info(ALERTS_STREAM, subjects_filter=alerts_subject(ns))
    assert (info.state.subjects or {}).get(alerts_subject(ns)) == 60
    ms = [1000 * x for x in delivered]
    print(
        f"\nwebhook POST -> Alert delivered on NATS (n={len(ms)}): "
        f"p50 {pct(ms, 0.5):.2f} ms, p99 {pct(ms, 0.99):.2f} ms; "
        f"POST answered (stored in JetStream): p50 {1000 * pct(answered, 0.5):.2f} ms, "
        f"p99 {1000 * pct(answered, 0.99):.2f} ms"
    )
