"""The bridge cannot be poisoned: fuzzed webhook payloads against real NATS never get a 5xx, and the bridge stays
healthy; out-of-scope alerts are dropped and counted; liveness fails once the NATS connection is closed for good."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from pydantic import SecretStr

from services.bridge.app import make_web_app
from services.bridge.handlers import BridgeState
from stratus.bus import Bus
from stratus.contracts import alerts_subject
from stratus.localinfra import LocalServer, free_port, start_nats
from stratus.metrics import ALERTS_DROPPED
from tests.integration.test_bridge import AUTH, TOKEN, am_alert, payload, read_alerts, stored

pytestmark = pytest.mark.integration

MAX_BODY = 256 * 1024
PAYLOADS = 2000
SEED = 20261205


async def serve(state: BridgeState, max_body: int = MAX_BODY) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(make_web_app(state, max_body=max_body), access_log=None)
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


# --- a seeded generator of hostile payloads ----------------------------------------------------------------------


class Fuzz:
    """Random webhook bodies: valid payloads with hostile values spliced in, and raw byte soups.

    Numbers too long for ``json.dumps`` are written as raw text: a placeholder string is replaced after encoding.
    """

    ALPHABETS = (
        "abcdefghijklmnopqrstuvwxyz0123456789-",
        "ABC.*>$ /\\\t\r\n{}[]\":,#?%&;|`'",
        "\u0000\u001f\u007f\u2028\u2029\ufeff\u202e",
        "ａｂｃ０１２ёαß\u0301",
        "\U0001f525\U00010348",
    )

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.raw: dict[str, str] = {}

    def text(self) -> str:
        rng = self.rng
        n = rng.choice([0, 1, 5, 63, 64, 65, 253, 300, 1000, 5000, rng.randint(0, 8000)])
        pool = "".join(rng.sample(self.ALPHABETS, rng.randint(1, len(self.ALPHABETS))))
        return "".join(rng.choices(pool, k=n))

    def number(self) -> Any:
        rng = self.rng
        kind = rng.randrange(6)
        if kind == 0:
            return rng.randint(-(2**70), 2**70)
        if kind == 1:
            return rng.random() * 10 ** rng.randint(-300, 300)
        key = f"__raw{len(self.raw)}__"
        self.raw[key] = rng.choice(
            [
                "9" * rng.randint(300, 6000),
                "-" + "1" * rng.randint(4000, 5000),
                f"1e{rng.randint(300, 100000)}",
                "NaN",
                "-Infinity",
                "0." + "0" * 5000 + "1",
            ]
        )
        return key

    def time(self) -> Any:
        rng = self.rng
        return rng.choice(
            [
                "9999-12-31T23:59:59Z",
                f"9999-12-31T23:59:59-{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
                f"0001-01-01T00:00:00+{rng.randint(0, 23):02d}:00",
                "0000-01-01T00:00:00Z",
                "10000-01-01T00:00:00Z",
                "2026-02-30T00:00:00Z",
                "2026-11-23T18:30:01.1234567891234Z",
                rng.randint(-(2**63), 2**63),
                rng.random() * 1e20,
                self.number(),
                self.text(),
            ]
        )

    def deep(self) -> Any:
        n = self.rng.choice([17, 50, 500, 3000, 100_000])
        opens = "".join(self.rng.choices(["[", '{"a":'], k=16)) * (n // 16 + 1)
        closes = "".join("]" if c == "[" else "}" for c in reversed(opens.replace('{"a":', "{")))
        key = f"__raw{len(self.raw)}__"
        self.raw[key] = f"{opens}1{closes}"
        return key

    def anything(self) -> Any:
        rng = self.rng
        return rng.choice(
            [
                self.text,
                self.number,
                self.time,
                self.deep,
                lambda: None,
                lambda: rng.random() < 0.5,
                lambda: [self.text() for _ in range(rng.randint(0, 3))],
                lambda: {self.text()[:50]: self.text() for _ in range(rng.randint(0, 3))},
            ]
        )()

    def alert(self, scope: str) -> dict[str, Any]:
        rng = self.rng
        namespace = rng.choice([scope, scope, None, self.text(), "kube-system", "x" * 5000])
        alert = am_alert(self.text()[:40] or "A", namespace=namespace if isinstance(namespace, str) else None)
        alert["fingerprint"] = f"fz{rng.getrandbits(64):x}"
        for name in [*alert, "labels.extra", "annotations.extra"]:
            if rng.random() < 0.25:
                if name.startswith(("labels.", "annotations.")):
                    group, _, key = name.partition(".")
                    if isinstance(alert.get(group), dict):
                        alert[group][rng.choice([key, self.text()[:300]])] = rng.choice([self.text(), self.anything()])
                elif name in ("startsAt", "endsAt"):
                    alert[name] = self.time()
                else:
                    alert[name] = self.anything()
        if rng.random() < 0.1:
            del alert[rng.choice(list(alert))]
        return alert

    def body(self, scope: str) -> bytes:
        rng = self.rng
        self.raw = {}
        kind = rng.random()
        if kind < 0.08:  # not JSON at all, or broken JSON
            return rng.choice(
                [
                    bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200))),
                    b"[" * rng.randint(1, 200_000),
                    b'{"a":' * rng.randint(1, 50_000),
                    json.dumps(payload(am_alert("A", namespace=scope))).encode()[: rng.randint(0, 300)],
                    b"",
                    "\ud800".encode(errors="surrogatepass"),
                ]
            )
        if kind < 0.1:  # over the size limit
            return json.dumps(payload({**am_alert("Big", namespace=scope), "pad": "x" * MAX_BODY})).encode()
        body: Any = payload()
        body["alerts"] = [self.alert(scope) for _ in range(rng.randint(0, 4))]
        for name in list(body):
            if rng.random() < 0.1:
                body[name] = self.anything()
        if rng.random() < 0.05:
            body = self.anything()
        text = json.dumps(body)
        for key, raw in self.raw.items():
            text = text.replace(f'"{key}"', raw)
        return text.encode(errors="surrogatepass")


async def test_fuzzed_payloads_never_get_a_5xx_and_the_bridge_stays_healthy(bridge: str, bus: Bus, uid: str) -> None:
    scope = f"fz-{uid}"
    fuzz = Fuzz(SEED)
    statuses: dict[int, int] = {}
    bad: list[tuple[int, bytes, str]] = []
    limits = httpx.Limits(max_connections=16)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:

        async def send(body: bytes) -> None:
            r = await http.post(f"{bridge}/webhook", content=body, headers=AUTH)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            if r.status_code >= 500:
                bad.append((r.status_code, body[:300], r.text[:300]))

        bodies = [fuzz.body(scope) for _ in range(PAYLOADS)]
        for start in range(0, len(bodies), 16):
            await asyncio.gather(*(send(b) for b in bodies[start : start + 16]))

        assert not bad, f"{len(bad)} payload(s) got a 5xx, first: {bad[0]}"
        assert sum(statuses.values()) == PAYLOADS
        assert statuses.get(200, 0) > 50 and statuses.get(413, 0) > 0 and statuses.get(422, 0) > 0, statuses

        assert (await http.get(f"{bridge}/healthz")).status_code == 200
        assert (await http.get(f"{bridge}/livez")).status_code == 200
        ns = f"after-{uid}"
        r = await http.post(f"{bridge}/webhook", json=payload(am_alert("After", namespace=ns)), headers=AUTH)
        assert r.status_code == 200 and r.json()["published"] == 1
    assert bus.connected and not bus.closed
    assert await stored(bus, alerts_subject(ns)) == 1


async def test_long_and_hostile_namespace_labels_never_reach_a_subject(bridge: str, bus: Bus, uid: str) -> None:
    before = ALERTS_DROPPED.labels("invalid_namespace")._value.get()
    hostile = ["x" * 5000, "a.b", "ns.>", "Upper", "ns with space", "kube\u0000system", "-lead", "\u0430bc"]
    body = payload(*(am_alert("Bad", namespace=ns, fp=f"h{i}{uid}") for i, ns in enumerate(hostile)))
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{bridge}/webhook", json=body, headers=AUTH)
        assert r.status_code == 200, r.text
        assert r.json() == {"published": 0, "ids": [], "dropped": len(hostile)}
        assert (await http.get(f"{bridge}/livez")).status_code == 200
    assert ALERTS_DROPPED.labels("invalid_namespace")._value.get() - before == len(hostile)
    assert bus.connected


async def test_alerts_outside_the_scopes_are_dropped_and_counted(bus: Bus, uid: str) -> None:
    await bus.ensure_streams()
    mine, other = f"mine-{uid}", f"other-{uid}"
    runner, url = await serve(BridgeState(bus=bus, token=SecretStr(TOKEN), scopes=frozenset({mine})))
    before = ALERTS_DROPPED.labels("out_of_scope")._value.get()
    body = payload(
        am_alert("A", namespace=mine, fp=f"m{uid}"),
        am_alert("B", namespace=other, fp=f"o{uid}"),
        am_alert("C", namespace="kube-system", fp=f"k{uid}"),
        am_alert("D", namespace=None, fp=f"c{uid}"),  # the cluster scope passes only when listed
    )
    try:
        async with httpx.AsyncClient() as http:
            r = await http.post(f"{url}/webhook", json=body, headers=AUTH)
        assert r.status_code == 200 and r.json()["published"] == 1 and r.json()["dropped"] == 3
    finally:
        await runner.cleanup()
    assert ALERTS_DROPPED.labels("out_of_scope")._value.get() - before == 3
    assert await stored(bus, alerts_subject(mine)) == 1
    assert await stored(bus, alerts_subject(other)) == 0


async def test_an_alert_larger_than_a_nats_message_has_its_annotations_cut(bus: Bus, uid: str) -> None:
    await bus.ensure_streams()
    runner, url = await serve(BridgeState(bus=bus, token=SecretStr(TOKEN)), max_body=4 * bus.nc.max_payload)
    ns = f"big-{uid}"
    alert = am_alert("Big", namespace=ns)
    alert["annotations"] = {"description": "y" * (bus.nc.max_payload + 10), "summary": "short"}
    huge = am_alert("Huge", namespace=ns)
    huge["labels"]["pod"] = "z" * (bus.nc.max_payload + 10)
    try:
        async with httpx.AsyncClient() as http:
            r = await http.post(f"{url}/webhook", json=payload(alert), headers=AUTH)
            assert r.status_code == 200 and r.json()["published"] == 1
            r = await http.post(f"{url}/webhook", json=payload(huge), headers=AUTH)
            assert r.status_code == 413 and "labels" in r.json()["error"]
    finally:
        await runner.cleanup()
    [published] = await read_alerts(bus, alerts_subject(ns), 1)
    assert published.annotations["summary"] == "short"
    assert published.annotations["description"].endswith("[cut by stratus]")


async def test_liveness_fails_once_the_nats_connection_is_closed_for_good(uid: str) -> None:
    server: LocalServer = start_nats()
    bus = await Bus.connect(server.url)
    runner, url = await serve(BridgeState(bus=bus, token=SecretStr(TOKEN)))
    try:
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{url}/livez")).status_code == 200
            await bus.nc.close()  # what nats-py does when reconnects are exhausted or the server refuses the client
            assert (await http.get(f"{url}/livez")).status_code == 503
            assert (await http.get(f"{url}/healthz")).status_code == 503
            r = await http.post(f"{url}/webhook", json=payload(am_alert("A", namespace=f"x-{uid}")), headers=AUTH)
            assert r.status_code == 503  # NATS is down: Alertmanager must retry
    finally:
        await runner.cleanup()
        await bus.close()
        server.stop()


async def test_the_runtime_liveness_endpoint_follows_the_connection() -> None:
    from stratus.metrics import start_metrics_server

    closed = False
    metrics = await start_metrics_server(0, host="127.0.0.1", alive=lambda: not closed)
    try:
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{metrics.url}/healthz")).status_code == 200
            closed = True
            assert (await http.get(f"{metrics.url}/healthz")).status_code == 503
    finally:
        await metrics.stop()
