"""The bridge's webhook against real NATS JetStream: auth, validation, normalisation, idempotency, partial failure."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiohttp import web
from nats.js.api import ConsumerConfig, DeliverPolicy, StreamConfig
from pydantic import SecretStr

from services.bridge.app import make_web_app
from services.bridge.handlers import BridgeState
from stratus.bus import Bus
from stratus.contracts import ALERTS_STREAM, Alert, alerts_subject
from stratus.localinfra import LocalServer, free_port, start_nats

pytestmark = pytest.mark.integration

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def am_alert(
    name: str, *, namespace: str | None, status: str = "firing", fp: str = "", **labels: str
) -> dict[str, Any]:
    lbls = {"alertname": name, "severity": "page", **labels}
    if namespace is not None:
        lbls["namespace"] = namespace
    return {
        "status": status,
        "labels": lbls,
        "annotations": {"summary": f"{name} in {namespace}"},
        "startsAt": "2026-11-23T18:30:01.123456789Z",
        "endsAt": "2026-11-23T18:35:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph?g0.expr=up",
        "fingerprint": fp or f"fp{name}{namespace}",
    }


def payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": '{}:{alertname="x"}',
        "truncatedAlerts": 0,
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "receiver": "stratus",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


async def serve(state: BridgeState) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(make_web_app(state), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def bridge(bus: Bus) -> AsyncIterator[str]:
    await bus.ensure_streams()
    runner, url = await serve(BridgeState(bus=bus, token=SecretStr(TOKEN)))
    yield url
    await runner.cleanup()


async def read_alerts(bus: Bus, subject: str, n: int, timeout: float = 5.0) -> list[Alert]:
    """The first ``n`` messages stored on ``subject`` (an ephemeral pull consumer from the start)."""
    sub = await bus.js.pull_subscribe(
        subject, durable=None, stream=ALERTS_STREAM, config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
    )
    try:
        out: list[Alert] = []
        while len(out) < n:
            msgs = await sub.fetch(batch=n - len(out), timeout=timeout)
            for m in msgs:
                out.append(Alert.model_validate_json(m.data))
                await m.ack()
        return out
    finally:
        await sub.unsubscribe()


async def stored(bus: Bus, subject: str) -> int:
    info = await bus.js.stream_info(ALERTS_STREAM, subjects_filter=subject)
    return int((info.state.subjects or {}).get(subject, 0))


async def test_healthz(bridge: str) -> None:
    async with httpx.AsyncClient() as http:
        r = await http.get(f"{bridge}/healthz")
    assert r.status_code == 200 and r.json()["ok"] is True


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}, {"Authorization": "Bearer"}],
    ids=["missing", "wrong-token", "wrong-scheme", "empty"],
)
async def test_unauthenticated_requests_are_refused_and_publish_nothing(
    bridge: str, bus: Bus, uid: str, headers: dict[str, str]
) -> None:
    ns = f"auth-{uid}"
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{bridge}/webhook", json=payload(am_alert("A", namespace=ns)), headers=headers)
    assert r.status_code == 401
    assert "bearer token" in r.json()["error"] and r.json()["published"] == 0
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert await stored(bus, alerts_subject(ns)) == 0


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"{not json", 400, "not JSON"),
        (json.dumps({**payload(am_alert("A", namespace="NS")), "version": "3"}).encode(), 422, "version"),
        (json.dumps({"alerts": "nope"}).encode(), 422, "alerts"),
        (
            json.dumps(payload({**am_alert("A", namespace="NS"), "labels": {"namespace": "NS"}})).encode(),
            422,
            "alertname",
        ),
        (json.dumps(payload({**am_alert("A", namespace="NS"), "startsAt": "yesterday"})).encode(), 422, "startsAt"),
        (json.dumps(payload({**am_alert("A", namespace="NS"), "status": "pending"})).encode(), 422, "status"),
    ],
    ids=["not-json", "version-3", "wrong-shape", "no-alertname", "bad-time", "bad-status"],
)
async def test_malformed_requests_get_4xx_with_reason_and_publish_nothing(
    bridge: str, bus: Bus, uid: str, body: bytes, status: int, reason: str
) -> None:
    ns = f"bad-{uid}"
    body = body.replace(b'"NS"', f'"{ns}"'.encode())
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{bridge}/webhook", content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == status, r.text
    answer = r.json()
    assert answer["published"] == 0
    assert reason in answer["error"] + json.dumps(answer.get("details", []))
    assert await stored(bus, alerts_subject(ns)) == 0


async def test_alerts_are_normalised_and_published_per_scope(bridge: str, bus: Bus, uid: str) -> None:
    ns = f"shop-{uid}"
    body = payload(
        am_alert("PodNotReady", namespace=ns, pod="cart-0", fp=f"a{uid}"),
        am_alert("NodeNotReady", namespace=None, node="n1", fp=f"b{uid}"),
    )
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{bridge}/webhook", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["published"] == 2

    [alert] = await read_alerts(bus, alerts_subject(ns), 1)
    assert alert.name == "PodNotReady" and alert.scope == ns and alert.status == "firing"
    assert alert.fingerprint == f"a{uid}"
    assert alert.labels["pod"] == "cart-0" and alert.annotations["summary"] == f"PodNotReady in {ns}"
    assert alert.starts_at == datetime(2026, 11, 23, 18, 30, 1, 123456, tzinfo=UTC)
    assert alert.ends_at is None  # Go's zero time: not set
    last = await bus.js.get_last_msg(ALERTS_STREAM, alerts_subject("cluster"))
    cluster = Alert.model_validate_json(last.data or b"")
    assert cluster.fingerprint == f"b{uid}" and cluster.scope == "cluster" and cluster.name == "NodeNotReady"


async def test_duplicates_are_idempotent_and_resolution_is_forwarded(bridge: str, bus: Bus, uid: str) -> None:
    ns = f"dup-{uid}"
    firing = payload(am_alert("HighErrorRate", namespace=ns, service="cart"))
    async with httpx.AsyncClient() as http:
        first = await http.post(f"{bridge}/webhook", json=firing, headers=AUTH)
        again = await http.post(f"{bridge}/webhook", json=firing, headers=AUTH)  # Alertmanager's re-send
        resolved = await http.post(
            f"{bridge}/webhook",
            json=payload(am_alert("HighErrorRate", namespace=ns, status="resolved", service="cart")),
            headers=AUTH,
        )
    assert first.status_code == again.status_code == resolved.status_code == 200
    assert first.json()["ids"] == again.json()["ids"] != resolved.json()["ids"]

    alerts = await read_alerts(bus, alerts_subject(ns), 2)
    assert [a.status for a in alerts] == ["firing", "resolved"]
    assert alerts[0].fingerprint == alerts[1].fingerprint
    assert alerts[1].ends_at == datetime(2026, 11, 23, 18, 35, tzinfo=UTC)
    assert await stored(bus, alerts_subject(ns)) == 2  # the duplicate was not stored


@pytest.fixture
def private_nats() -> Iterator[LocalServer]:
    """A NATS server of this test's own, whose streams the test may break."""
    server = start_nats()
    yield server
    server.stop()


async def test_partial_failure_answers_503_and_the_retry_loses_and_duplicates_nothing(
    private_nats: LocalServer, uid: str
) -> None:
    bus = await Bus.connect(private_nats.url)
    ok_ns, broken_ns = f"ok-{uid}", f"broken-{uid}"
    # Only one namespace's subject is stored: the other alert's publish gets no JetStream ack.
    await bus.js.add_stream(StreamConfig(name=ALERTS_STREAM, subjects=[alerts_subject(ok_ns)], duplicate_window=120))
    runner, url = await serve(BridgeState(bus=bus, token=SecretStr(TOKEN)))
    body = payload(am_alert("A", namespace=ok_ns), am_alert("B", namespace=broken_ns))
    try:
        async with httpx.AsyncClient() as http:
            r = await http.post(f"{url}/webhook", json=body, headers=AUTH)
            assert r.status_code == 503, r.text
            answer = r.json()
            assert answer["published"] == 1 and [f["fingerprint"] for f in answer["failed"]] == [f"fpB{broken_ns}"]

            await bus.js.update_stream(
                StreamConfig(name=ALERTS_STREAM, subjects=["stratus.alerts.>"], duplicate_window=120)
            )
            retry = await http.post(f"{url}/webhook", json=body, headers=AUTH)  # what Alertmanager does on 503
            assert retry.status_code == 200 and retry.json()["published"] == 2
        assert await stored(bus, alerts_subject(ok_ns)) == 1
        assert await stored(bus, alerts_subject(broken_ns)) == 1
    finally:
        await runner.cleanup()
        await bus.close()
