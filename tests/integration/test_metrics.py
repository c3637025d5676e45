"""Prometheus metrics: a service started with a metrics port serves /metrics (scraped with httpx) with the series the
bus loops count, and /healthz and /readyz for the Kubernetes probes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.parser import text_string_to_metric_families

from stratus import metrics
from stratus.bus import Bus
from stratus.contracts import Alert, alerts_subject
from stratus.errors import PermanentError, TemporaryError
from stratus.localinfra import LocalServer, free_port, start_nats
from stratus.runtime import ServiceRuntime
from stratus.settings import DetectorSettings

pytestmark = pytest.mark.integration

DECLARED = [m._name for m in vars(metrics).values() if isinstance(m, Counter | Gauge | Histogram)]


@pytest.fixture
def private_nats() -> Iterator[LocalServer]:
    """Its own server: the durable consumer this test uses must not see other tests' messages."""
    server = start_nats()
    yield server
    server.stop()


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scraped(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and labels.items() <= s.labels.items():
                total += s.value
    return total


def families(text: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(text)}


async def until(check: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def alert(name: str, scope: str) -> Alert:
    return Alert(fingerprint=name, status="firing", name=name, scope=scope)


def test_the_metrics_are_defined_once_and_reuse_the_lock_wait_histogram() -> None:
    assert metrics.LOCK_WAIT._name == "stratus_lock_wait_seconds"
    assert len(DECLARED) == len(set(DECLARED))
    for wanted in (
        "stratus_messages_handled",
        "stratus_messages_failed",
        "stratus_handler_seconds",
        "stratus_lock_wait_seconds",
        "stratus_incidents",
        "stratus_transactions",
        "stratus_undo_divergences",
        "stratus_llm_tokens",
    ):
        assert wanted in DECLARED


@pytest.mark.parametrize(
    ("subject", "kind"),
    [
        ("stratus.alerts.shop", "alerts"),
        ("stratus.events.inc-1a2b.incident_opened", "events.incident_opened"),
        ("stratus.events.3.inc-1a2b.incident_opened", "events.incident_opened"),
        ("blue.work.mitigator", "work.mitigator"),
        ("blue.deadletter.undoer", "deadletter.undoer"),
        ("stratus.work.mitigator", "work.mitigator"),
        ("stratus.journal.tx-9", "journal"),
        ("other.thing", "other"),
    ],
)
def test_subject_kind_is_bounded(subject: str, kind: str) -> None:
    assert metrics.subject_kind(subject) == kind


async def test_probes_follow_readiness() -> None:
    ready = False
    server = await metrics.start_metrics_server(0, host="127.0.0.1", ready=lambda: ready)
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/readyz")).status_code == 503
            ready = True
            assert (await http.get("/readyz")).json() == {"ready": True}
            r = await http.get("/metrics")
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    finally:
        await server.stop()


async def test_a_service_runtime_serves_the_bus_loop_counters(private_nats: LocalServer, uid: str) -> None:
    port = free_port()
    settings = DetectorSettings(nats_url=private_nats.url, metrics_port=port, instance=f"metrics-{uid}")  # type: ignore[arg-type]
    runtime = ServiceRuntime("detector", settings)
    retried: set[str] = set()

    async def handler(value: Alert) -> None:
        if value.name == "reject":
            raise PermanentError("refused on purpose")
        if value.name == "retry" and value.id not in retried:
            retried.add(value.id)
            raise TemporaryError("later", delay=0.1)

    runtime.consumer(Alert, handler, description="test")
    labels = {"service": "detector", "subject_kind": "alerts"}
    before = {
        "handled": sample("stratus_messages_handled_total", **labels),
        "rejected": sample("stratus_messages_failed_total", **labels, outcome="rejected"),
        "retry": sample("stratus_messages_failed_total", **labels, outcome="retry"),
        "malformed": sample("stratus_messages_failed_total", **labels, outcome="malformed"),
        "timed": sample("stratus_handler_seconds_count", **labels),
    }
    task = asyncio.create_task(runtime.run())
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url) as http:

            async def ready() -> bool:
                with contextlib.suppress(httpx.HTTPError):
                    return (await http.get("/readyz")).status_code == 200
                return False

            deadline = time.monotonic() + 15
            while not await ready():
                assert time.monotonic() < deadline and not task.done(), "the service never became ready"
                await asyncio.sleep(0.05)

            bus = await Bus.connect(private_nats.url)
            try:
                subject = alerts_subject(f"m-{uid}")
                for name in ("ok", "retry", "reject"):
                    await bus.publish(subject, alert(name, f"m-{uid}"))
                await bus.js.publish(subject, b'{"kind": "alert", "not": "an alert"}')
            finally:
                await bus.close()

            def counted() -> bool:
                return (
                    sample("stratus_messages_handled_total", **labels) - before["handled"] >= 2
                    and sample("stratus_messages_failed_total", **labels, outcome="malformed") > before["malformed"]
                    and sample("stratus_messages_failed_total", **labels, outcome="rejected") > before["rejected"]
                )

            await until(counted, what="the four messages to be counted")
            text = (await http.get("/metrics")).text

        assert scraped(text, "stratus_messages_handled_total", **labels) - before["handled"] == 2
        assert scraped(text, "stratus_messages_failed_total", **labels, outcome="rejected") - before["rejected"] == 1
        assert scraped(text, "stratus_messages_failed_total", **labels, outcome="retry") - before["retry"] == 1
        assert scraped(text, "stratus_messages_failed_total", **labels, outcome="malformed") - before["malformed"] == 1
        assert scraped(text, "stratus_handler_seconds_count", **labels) - before["timed"] == 4  # ok, retry x2, reject
        assert scraped(text, "stratus_service_info", service="detector", instance=f"metrics-{uid}") == 1
        assert set(DECLARED) <= families(text)
    finally:
        runtime.request_stop()
        await asyncio.wait_for(task, timeout=15)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):  # the runtime installed its own; give pytest its own back
            loop.remove_signal_handler(sig)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/metrics", timeout=1)


def test_a_service_process_exports_every_metric(nats_server: LocalServer, uid: str) -> None:
    """`python -m services.bridge` with STRATUS_METRICS_PORT: /metrics over HTTP, scraped with httpx."""
    metrics_port, port = free_port(), free_port()
    env = {
        **os.environ,
        "STRATUS_NATS_URL": nats_server.url,
        "STRATUS_PORT": str(port),
        "STRATUS_METRICS_PORT": str(metrics_port),
        "STRATUS_INSTANCE": f"bridge-{uid}",
        "STRATUS_WEBHOOK_TOKEN": "t",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.bridge"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 20
        text = ""
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{metrics_port}/readyz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "the bridge never became ready"
            time.sleep(0.05)
        r = httpx.post(f"http://127.0.0.1:{port}/webhook", json={}, headers={"Authorization": "Bearer t"})
        assert r.status_code == 422
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).text
        assert scraped(text, "stratus_service_info", service="bridge", instance=f"bridge-{uid}") == 1
        assert scraped(text, "stratus_webhook_requests_total", code="422") == 1
        assert set(DECLARED) <= families(text), "some metrics are not exported by the bridge process"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        if proc.stderr is not None:
            proc.stderr.close()


def test_domain_counters_record_what_the_services_report() -> None:
    committed = sample("stratus_transactions_total", outcome="committed")
    entered = sample("stratus_incident_transitions_total", state="committed")
    metrics.record_transition("committed")
    metrics.record_transition("validating")
    assert sample("stratus_transactions_total", outcome="committed") == committed + 1
    assert sample("stratus_incident_transitions_total", state="committed") == entered + 1

    metrics.set_open_incidents({"mitigating": 2, "diagnosing": 1})
    metrics.set_open_incidents({"mitigating": 1})
    assert sample("stratus_incidents", state="mitigating") == 1
    assert sample("stratus_incidents", state="diagnosing") == 0  # left the state: back to 0, not stale

    diverged, fields = sample("stratus_undo_runs_total", result="diverged"), sample("stratus_undo_divergences_total")
    metrics.record_undo(0)
    metrics.record_undo(3)
    assert sample("stratus_undo_runs_total", result="diverged") == diverged + 1
    assert sample("stratus_undo_divergences_total") == fields + 3

    prompt = sample("stratus_llm_tokens_total", service="mitigator", kind="prompt")
    metrics.record_llm_usage("mitigator", 1200, 80, 0.004)
    assert sample("stratus_llm_tokens_total", service="mitigator", kind="prompt") == prompt + 1200
