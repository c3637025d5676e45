"""Notifications: what happens to incidents, to a Slack incoming webhook and to a generic JSON webhook.

Why it is shaped this way:

- **Seven moments, from the event stream.** opened (``incident_opened``), diagnosed (``diagnosis``), approval needed
  (``approval_requested``), committed and aborted (``transaction_decided``), escalated and resolved
  (``incident_closed``). The bridge consumes them with its own durable consumer that starts at the newest event, so a
  fresh install does not replay history at the team, and replicas share the work.
- **Never a secret.** A notification is built from a short list of fields (ids, scope, states, mu, a summary),
  never from a diff, a manifest, a log or a reasoning step, and every text goes through ``reasoning.scrub``. The
  webhook URLs are secrets themselves (a Slack URL is its own credential): they are ``SecretStr`` and are never logged
  or sent anywhere but to themselves.
- **Rate-limited per sink** by a token bucket. A notification over the limit is not sent; the next one that is sent
  says how many were held back, so a storm costs a few messages and the reader still learns that it happened.
- **Retried with backoff** (exponential with jitter, honouring ``Retry-After``) on connection errors, timeouts, 429
  and 5xx; any other answer is final. Delivery never raises: a sink that is down must not hold up the event stream.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field, SecretStr

from stratus.contracts import Event
from stratus.reasoning import scrub

log = logging.getLogger(__name__)

Moment = Literal["opened", "diagnosed", "approval_needed", "committed", "aborted", "escalated", "resolved"]
MOMENTS: tuple[Moment, ...] = (
    "opened",
    "diagnosed",
    "approval_needed",
    "committed",
    "aborted",
    "escalated",
    "resolved",
)
EVENT_KINDS = ("incident_opened", "diagnosis", "approval_requested", "transaction_decided", "incident_closed")
"""The event kinds notifications are made from."""
MAX_TEXT = 1500


class Notification(BaseModel):
    """What a JSON webhook receives (and what a Slack message is rendered from)."""

    schema_version: Literal[1] = Field(default=1, description="Version of this payload.")
    source: Literal["stratus"] = Field(default="stratus", description="Always stratus.")
    event: Moment = Field(description="What happened.")
    incident_id: str = Field(description="The incident.")
    scope: str | None = Field(default=None, description="Its scope, when known to this bridge replica.")
    title: str = Field(description="One line.")
    text: str = Field(default="", description="A few lines for a human (scrubbed of anything like a credential).")
    ts: datetime = Field(description="When it happened (UTC).")
    tx_id: str | None = Field(default=None, description="The transaction, for committed, aborted, approval_needed.")
    mu: float | None = Field(default=None, description="mu at that moment (after the transaction, or at opening).")
    suppressed: int = Field(default=0, description="Notifications held back by the rate limit since the last one.")


def _num(x: float) -> str:
    return f"{x:g}"


def notification_of(event: Event, scope: str | None = None) -> Notification | None:
    """The notification for an incident event, or None for events nobody is notified about."""
    e: Any = event
    base = {"incident_id": event.incident_id, "ts": event.ts, "scope": scope}
    match event.kind:
        case "incident_opened":
            lines = "\n".join(e.evidence[:5])
            title = f"Incident opened on {e.scope}: mu = {_num(e.baseline)}"
            return _make("opened", title, lines, **{**base, "scope": e.scope, "mu": e.baseline})
        case "diagnosis":
            where = ", ".join(e.localisation[:3]) or "?"
            cause = f" ({e.root_cause.system_level} / {e.root_cause.fault_type})" if e.root_cause else ""
            return _make("diagnosed", f"Diagnosed: {where}{cause}", e.summary, **base)
        case "approval_requested":
            writes = "\n".join(
                f"{i}. {a.action.verb} " + "/".join(p for p in (a.action.kind, a.action.namespace, a.action.name) if p)
                for i, a in enumerate(e.actions[:10], 1)
            )
            title = f"Approval needed on {e.scope}: {len(e.actions)} write(s), by {e.deadline:%H:%M:%S} UTC"
            text = f"{writes}\nExpected effect: {e.expected_effect}\n`stratus approvals show {event.incident_id}`"
            return _make("approval_needed", title, text, **{**base, "scope": e.scope, "tx_id": e.tx_id, "mu": e.mu})
        case "transaction_decided":
            moment: Moment = "committed" if e.decision == "commit" else "aborted"
            title = f"{'Committed' if moment == 'committed' else 'Aborted (undone)'} {e.tx_id}: mu {_num(e.mu_pre)} -> "
            return _make(moment, title + _num(e.mu_post), e.reason, **{**base, "tx_id": e.tx_id, "mu": e.mu_post})
        case "incident_closed":
            moment = "resolved" if e.outcome == "resolved" else "escalated"
            path = " -> ".join(_num(m) for m in e.visible_mu)
            title = f"{'Resolved' if moment == 'resolved' else 'Escalated'} after {e.attempts} attempt(s)"
            first = (e.report or "").strip().splitlines()[:1]
            text = f"visible mu: {path}" + (f"\n{first[0]}" if first else "")
            return _make(moment, title, text, **base)
    return None


def _make(event: Moment, title: str, text: str, **fields: Any) -> Notification:
    clean = scrub(text)
    return Notification(
        event=event,
        title=scrub(title)[:200],
        text=clean if len(clean) <= MAX_TEXT else clean[:MAX_TEXT] + "...",
        **fields,
    )


def slack_body(n: Notification) -> dict[str, Any]:
    """An incoming-webhook message (mrkdwn; &, < and > escaped as Slack asks)."""

    def esc(s: str) -> str:
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    where = f" [{esc(n.scope)}]" if n.scope else ""
    held = f"\n_{n.suppressed} earlier notification(s) held back by the rate limit_" if n.suppressed else ""
    text = f"*{esc(n.title)}*{where} `{esc(n.incident_id)}`" + (f"\n{esc(n.text)}" if n.text else "") + held
    return {"text": text}


class TokenBucket:
    """``rate_per_min`` tokens a minute, at most ``burst`` saved up."""

    def __init__(self, rate_per_min: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate_per_min / 60.0
        self.burst = float(burst)
        self.tokens = float(burst)
        self.clock = clock
        self.last = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


Outcome = Literal["sent", "failed", "rate_limited"]


class Sink:
    """One destination: a URL (a secret), how to shape the body, its rate limit and its retry policy."""

    def __init__(
        self,
        name: Literal["slack", "webhook"],
        url: SecretStr,
        *,
        token: SecretStr | None = None,
        rate_per_min: float = 30,
        burst: int = 10,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        timeout_s: float = 10.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.url = url
        self.token = token
        self.bucket = TokenBucket(rate_per_min, burst, clock)
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.timeout_s = timeout_s
        self.sleep = sleep
        self.suppressed = 0

    def body(self, n: Notification) -> dict[str, Any]:
        return slack_body(n) if self.name == "slack" else n.model_dump(mode="json")

    async def send(self, n: Notification, http: httpx.AsyncClient) -> Outcome:
        if not self.bucket.take():
            self.suppressed += 1
            return "rate_limited"
        n = n.model_copy(update={"suppressed": self.suppressed})
        headers = {"Authorization": f"Bearer {self.token.get_secret_value()}"} if self.token else {}
        for attempt in range(self.max_retries + 1):
            wait = self._backoff(attempt)
            try:
                resp = await http.post(
                    self.url.get_secret_value(), json=self.body(n), headers=headers, timeout=self.timeout_s
                )
            except httpx.HTTPError as exc:
                problem = type(exc).__name__  # never the URL (a secret)
            else:
                if resp.is_success:
                    self.suppressed = 0
                    return "sent"
                if resp.status_code != 429 and resp.status_code < 500:
                    log.warning("notify: %s refused a notification (HTTP %d); not retried", self.name, resp.status_code)
                    return "failed"
                problem = f"HTTP {resp.status_code}"
                wait = max(wait, min(_retry_after(resp), self.max_backoff_s))
            if attempt < self.max_retries:
                log.info("notify: %s: %s; retry %d in %.1fs", self.name, problem, attempt + 1, wait)
                await self.sleep(wait)
        log.warning("notify: %s: gave up after %d tries (%s)", self.name, self.max_retries + 1, problem)
        return "failed"

    def _backoff(self, attempt: int) -> float:
        base: float = min(self.max_backoff_s, self.backoff_s * 2**attempt)
        return base / 2 + random.uniform(0, base / 2)


def _retry_after(resp: httpx.Response) -> float:
    try:
        return max(0.0, float(resp.headers.get("Retry-After", "0")))
    except ValueError:
        return 0.0


class Notifier:
    """Turns incident events into notifications and delivers each to every sink (concurrently)."""

    def __init__(
        self,
        sinks: list[Sink],
        events: frozenset[str] = frozenset(MOMENTS),
        record: Callable[[str, Outcome], None] | None = None,
    ) -> None:
        self.sinks = sinks
        self.events = events
        self.record = record
        self._scopes: OrderedDict[str, str] = OrderedDict()
        self._http: httpx.AsyncClient | None = None

    async def handle(self, event: Event) -> list[Outcome]:
        if event.kind == "incident_opened":
            self._scopes[event.incident_id] = event.scope
            while len(self._scopes) > 10_000:
                self._scopes.popitem(last=False)
        n = notification_of(event, self._scopes.get(event.incident_id))
        if n is None or n.event not in self.events or not self.sinks:
            return []
        if self._http is None:
            self._http = httpx.AsyncClient(follow_redirects=False)
        outcomes = list(await asyncio.gather(*(s.send(n, self._http) for s in self.sinks)))
        if self.record is not None:
            for sink, outcome in zip(self.sinks, outcomes, strict=True):
                self.record(sink.name, outcome)
        return outcomes

    async def aclose(self) -> None:
        if self._http is not None:
            http, self._http = self._http, None
            await http.aclose()
