"""Notifications against a local HTTP receiver: the seven moments, Slack and JSON bodies, no secret in any of them,
retries with backoff (429/5xx/no answer, Retry-After), no retry on other refusals, and the rate limit."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from stratus import contracts as c
from stratus.actions import Scale
from stratus.localinfra import free_port
from stratus.notify import MOMENTS, Notifier, Sink, notification_of, slack_body

SECRET = "hunter2-s3cr3t"


class Receiver:
    """A local webhook receiver: answers with the statuses queued in ``script`` (then 200) and keeps every body."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.script: list[tuple[int, dict[str, str]]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(json.loads(await request.read()))
        self.headers.append(dict(request.headers))
        status, headers = self.script.pop(0) if self.script else (200, {})
        return web.Response(status=status, text="ok", headers=headers)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    r = Receiver()
    app = web.Application()
    app.router.add_post("/hook", r.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield r, f"http://127.0.0.1:{port}/hook"
    await runner.cleanup()


def events(incident: str = "inc-1") -> list[c.IncidentEvent]:
    plan = [c.PlannedAction(action=Scale(kind="Deployment", namespace="ns", name="web", replicas=1))]
    return [
        c.IncidentOpened(
            incident_id=incident,
            scope="ns",
            s0=c.Severity(mu=2),
            baseline=2,
            evidence=[f"pod web crash-loops: DB_PASSWORD={SECRET}", f"Authorization: Bearer {SECRET}"],
        ),
        c.DiagnosisReady(incident_id=incident, localisation=["web"], summary=f"web fails; password: {SECRET}"),
        c.ApprovalRequested(
            incident_id=incident, scope="ns", tx_id="tx1", attempt=1, actions=plan, mu=2, deadline=c.utcnow()
        ),
        c.TransactionDecided(incident_id=incident, tx_id="tx2", attempt=2, decision="commit", mu_pre=2, mu_post=0),
        c.TransactionDecided(incident_id=incident, tx_id="tx1", attempt=1, decision="abort", mu_pre=2, mu_post=3),
        c.IncidentClosed(incident_id=incident, outcome="escalated", report=f"token={SECRET}", visible_mu=[2, 2]),
        c.IncidentClosed(incident_id=incident, outcome="resolved", visible_mu=[2, 0]),
    ]


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def test_each_moment_has_a_notification_and_none_carries_a_secret() -> None:
    made = [notification_of(e, "ns") for e in events()]
    assert [n.event for n in made if n] == list(MOMENTS)
    for n in made:
        assert n is not None
        for text in (n.model_dump_json(), json.dumps(slack_body(n))):
            assert SECRET not in text
    assert notification_of(c.StateChanged(incident_id="i", state="mitigating")) is None


def test_slack_text_is_escaped() -> None:
    n = notification_of(c.DiagnosisReady(incident_id="i", localisation=["<a&b>"], summary="x"), "ns")
    assert n is not None
    assert "&lt;a&amp;b&gt;" in slack_body(n)["text"] and "<a&b>" not in slack_body(n)["text"]


async def test_both_sinks_receive_every_moment(receiver: tuple[Receiver, str]) -> None:
    r, url = receiver
    notifier = Notifier(
        [Sink("slack", SecretStr(url)), Sink("webhook", SecretStr(url), token=SecretStr("tok"))],
        frozenset(MOMENTS),
    )
    for event in events():
        assert await notifier.handle(event) in ([], ["sent", "sent"])
    await notifier.aclose()
    slack = [b for b in r.bodies if "text" in b and "event" not in b]
    hooks = [b for b in r.bodies if "event" in b]
    assert len(slack) == len(hooks) == len(MOMENTS)
    assert [h["event"] for h in hooks] == list(MOMENTS)
    assert {h["scope"] for h in hooks} == {"ns"} and hooks[0]["source"] == "stratus"
    assert all(SECRET not in json.dumps(b) for b in r.bodies)
    assert [h.get("Authorization") for h in r.headers if h.get("Authorization")] == ["Bearer tok"] * len(MOMENTS)


async def test_only_the_chosen_moments_are_sent(receiver: tuple[Receiver, str]) -> None:
    r, url = receiver
    notifier = Notifier([Sink("webhook", SecretStr(url))], frozenset({"escalated", "approval_needed"}))
    for event in events():
        await notifier.handle(event)
    await notifier.aclose()
    assert [b["event"] for b in r.bodies] == ["approval_needed", "escalated"]


async def test_retried_with_backoff_on_5xx_and_429_then_sent(receiver: tuple[Receiver, str]) -> None:
    r, url = receiver
    r.script = [(503, {}), (429, {"Retry-After": "7"}), (502, {})]
    sleeps = Sleeps()
    notifier = Notifier([Sink("webhook", SecretStr(url), max_retries=5, backoff_s=1.0, sleep=sleeps)])
    assert await notifier.handle(events()[0]) == ["sent"]
    await notifier.aclose()
    assert len(r.bodies) == 4 and len(sleeps.waits) == 3
    assert 0.5 <= sleeps.waits[0] <= 1.0 and sleeps.waits[1] >= 7.0 and 2.0 <= sleeps.waits[2] <= 4.0


async def test_a_refusal_is_not_retried(receiver: tuple[Receiver, str]) -> None:
    r, url = receiver
    r.script = [(400, {})]
    sleeps = Sleeps()
    notifier = Notifier([Sink("slack", SecretStr(url), sleep=sleeps)])
    assert await notifier.handle(events()[0]) == ["failed"]
    await notifier.aclose()
    assert len(r.bodies) == 1 and sleeps.waits == []


async def test_no_receiver_gives_up_without_logging_the_url(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}/hooks/T000/{SECRET}"
    sleeps = Sleeps()
    notifier = Notifier([Sink("slack", SecretStr(url), max_retries=2, sleep=sleeps)])
    with caplog.at_level("INFO"):
        assert await notifier.handle(events()[0]) == ["failed"]
    await notifier.aclose()
    assert len(sleeps.waits) == 2 and sleeps.waits[1] >= sleeps.waits[0] / 2
    assert SECRET not in caplog.text and "gave up after 3 tries" in caplog.text


async def test_the_rate_limit_holds_back_and_then_says_so(receiver: tuple[Receiver, str]) -> None:
    r, url = receiver
    now = [0.0]
    sink = Sink("webhook", SecretStr(url), rate_per_min=6, burst=2, clock=lambda: now[0])
    notifier = Notifier([sink])
    opened = events()[0]
    outcomes = [(await notifier.handle(opened))[0] for _ in range(5)]
    assert outcomes == ["sent", "sent", "rate_limited", "rate_limited", "rate_limited"]
    now[0] += timedelta(seconds=10).total_seconds()  # 6 a minute: one token every 10 s
    assert await notifier.handle(opened) == ["sent"]
    await notifier.aclose()
    assert [b["suppressed"] for b in r.bodies] == [0, 0, 3]
