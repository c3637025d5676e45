"""Every Prometheus metric Stratus exports, defined once, and the small HTTP server that exposes them.

Why one module: a metric registered twice under one name is an error in ``prometheus_client``, and two modules that
each define "messages handled" drift apart. Services, the bus loop and the runtime import the objects from here; the
A-Lock keeps its own ``stratus_lock_wait_seconds`` (it is defined beside the lock, with the lock's buckets) and is
re-exported here so a reader finds the whole list in one place.

Why an aiohttp server and not ``prometheus_client.start_http_server``: that one runs in a daemon thread that cannot
be stopped cleanly and cannot answer "is this replica connected to NATS?". This one lives on the service's event loop,
stops with the service, and also answers the Kubernetes probes: ``/healthz`` (liveness: the event loop answers) and
``/readyz`` (readiness: a callable the runtime supplies, e.g. "the bus is connected").

Label values are kept to small, bounded sets (service names, subject kinds, outcomes, states): never an incident id,
a scope or a fingerprint, which would make one series per incident.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from stratus.alock import LOCK_ACQUIRE, LOCK_WAIT

if TYPE_CHECKING:  # aiohttp.web is imported only by processes that serve metrics
    from aiohttp import web

log = logging.getLogger(__name__)

__all__ = [
    "ALERTS_DROPPED",
    "ALERTS_RECEIVED",
    "HANDLER_SECONDS",
    "INCIDENTS",
    "INCIDENT_AGE",
    "INCIDENT_TRANSITIONS",
    "LLM_COST",
    "LLM_TOKENS",
    "LOCK_ACQUIRE",
    "LOCK_WAIT",
    "MESSAGES_FAILED",
    "MESSAGES_HANDLED",
    "MESSAGES_PUBLISHED",
    "NOTIFICATIONS",
    "SERVICE_INFO",
    "TRANSACTIONS",
    "UNDO_DIVERGENCES",
    "UNDO_RUNS",
    "WEBHOOK_REQUESTS",
    "WEBHOOK_SECONDS",
    "MetricsServer",
    "observe_message",
    "record_llm_usage",
    "record_published",
    "record_transition",
    "record_undo",
    "set_incident_ages",
    "set_open_incidents",
    "start_metrics_server",
    "subject_kind",
]

_LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


def _metric(factory: Callable[[], Any], name: str) -> Any:
    """Create a metric once per process; a second import (test reloads) reuses the registered one."""
    try:
        return factory()
    except ValueError:  # already registered under this name
        return REGISTRY._names_to_collectors[name]


# --- the bus: every consumed message -----------------------------------------------------------------------------

MESSAGES_HANDLED: Counter = _metric(
    lambda: Counter(
        "stratus_messages_handled",
        "Messages a service's handler processed successfully (acknowledged).",
        ["service", "subject_kind"],
    ),
    "stratus_messages_handled",
)
MESSAGES_FAILED: Counter = _metric(
    lambda: Counter(
        "stratus_messages_failed",
        "Messages whose handling failed: malformed (dead-lettered), rejected (PermanentError, dead-lettered), "
        "retry (TemporaryError, nak with delay) or error (unexpected exception, redelivered).",
        ["service", "subject_kind", "outcome"],
    ),
    "stratus_messages_failed",
)
MESSAGES_PUBLISHED: Counter = _metric(
    lambda: Counter(
        "stratus_messages_published",
        "Messages a service published to JetStream (acknowledged by the server).",
        ["service", "subject_kind"],
    ),
    "stratus_messages_published",
)
HANDLER_SECONDS: Histogram = _metric(
    lambda: Histogram(
        "stratus_handler_seconds",
        "Time a handler took on one message, whatever the outcome.",
        ["service", "subject_kind"],
        buckets=_LATENCY_BUCKETS,
    ),
    "stratus_handler_seconds",
)

# --- incidents and transactions (the coordinator, the undoer) ---------------------------------------------------

INCIDENTS: Gauge = _metric(
    lambda: Gauge(
        "stratus_incidents",
        "Open incidents in each state of the coordinator's machine, from the durable store (every coordinator "
        "replica reports the whole set: aggregate with max, not sum).",
        ["state"],
    ),
    "stratus_incidents",
)
INCIDENT_AGE: Gauge = _metric(
    lambda: Gauge(
        "stratus_incident_state_age_seconds",
        "How long the open incident that changed state least recently has been in its state, per state (a stuck "
        "incident grows it; aggregate with max).",
        ["state"],
    ),
    "stratus_incident_state_age_seconds",
)
INCIDENT_TRANSITIONS: Counter = _metric(
    lambda: Counter("stratus_incident_transitions", "Incident state changes, by the state entered.", ["state"]),
    "stratus_incident_transitions",
)
TRANSACTIONS: Counter = _metric(
    lambda: Counter(
        "stratus_transactions", "Transactions decided by the coordinator: committed or aborted.", ["outcome"]
    ),
    "stratus_transactions",
)
UNDO_RUNS: Counter = _metric(
    lambda: Counter(
        "stratus_undo_runs", "Undo runs of aborted transactions, by result (restored, diverged, failed).", ["result"]
    ),
    "stratus_undo_runs",
)
UNDO_DIVERGENCES: Counter = _metric(
    lambda: Counter(
        "stratus_undo_divergences",
        "Fields whose state after an undo differs from the checkpoint's (A2 violated, reported, never hidden).",
    ),
    "stratus_undo_divergences",
)

# --- reasoning --------------------------------------------------------------------------------------------------

LLM_TOKENS: Counter = _metric(
    lambda: Counter(
        "stratus_llm_tokens", "LLM tokens used, by service and kind (prompt, completion).", ["service", "kind"]
    ),
    "stratus_llm_tokens",
)
LLM_COST: Counter = _metric(
    lambda: Counter("stratus_llm_cost_usd", "Estimated LLM cost in USD from the configured prices.", ["service"]),
    "stratus_llm_cost_usd",
)

# --- the bridge -------------------------------------------------------------------------------------------------

WEBHOOK_REQUESTS: Counter = _metric(
    lambda: Counter("stratus_webhook_requests", "Alertmanager webhook requests, by HTTP status code.", ["code"]),
    "stratus_webhook_requests",
)
WEBHOOK_SECONDS: Histogram = _metric(
    lambda: Histogram(
        "stratus_webhook_seconds",
        "Time from receiving a webhook request to answering it (all its alerts published, or not).",
        buckets=_LATENCY_BUCKETS,
    ),
    "stratus_webhook_seconds",
)
ALERTS_RECEIVED: Counter = _metric(
    lambda: Counter(
        "stratus_alerts_published", "Normalised alerts the bridge published to NATS, by status.", ["status"]
    ),
    "stratus_alerts_published",
)
ALERTS_DROPPED: Counter = _metric(
    lambda: Counter(
        "stratus_alerts_dropped",
        "Alerts the bridge dropped without publishing, by reason (out_of_scope: outside STRATUS_SCOPES or a system "
        "namespace; invalid_namespace: the namespace label cannot name a namespace).",
        ["reason"],
    ),
    "stratus_alerts_dropped",
)
NOTIFICATIONS: Counter = _metric(
    lambda: Counter(
        "stratus_notifications",
        "Notifications the bridge handled, by sink (slack, webhook) and outcome (sent, failed, rate_limited).",
        ["sink", "outcome"],
    ),
    "stratus_notifications",
)

# --- every process ----------------------------------------------------------------------------------------------

SERVICE_INFO: Gauge = _metric(
    lambda: Gauge(
        "stratus_service_info",
        "Always 1: which service, replica and version this is.",
        ["service", "instance", "version"],
    ),
    "stratus_service_info",
)


_FAMILIES = frozenset({"alerts", "work", "events", "journal", "deadletter", "health"})


def subject_kind(subject: str) -> str:
    """A bounded label for a subject: ``alerts``, ``work.<service>``, ``events.<kind>``, ``journal`` or
    ``deadletter.<service>`` (never an id, a scope or the install's prefix)."""
    parts = subject.split(".")
    if len(parts) < 2 or parts[1] not in _FAMILIES:
        return "other"
    family = parts[1]
    if family == "events" and len(parts) >= 4:
        return f"events.{parts[-1]}"
    if family in ("work", "deadletter") and len(parts) >= 3:
        return f"{family}.{parts[2]}"
    return family


def record_published(service: str, subject: str) -> None:
    """Count one acknowledged publish."""
    MESSAGES_PUBLISHED.labels(service, subject_kind(subject)).inc()


def observe_message(service: str, subject: str, outcome: str, seconds: float | None) -> None:
    """Count one consumed message: ``handled`` on success, otherwise a failure outcome; time it when given."""
    kind = subject_kind(subject)
    if outcome == "handled":
        MESSAGES_HANDLED.labels(service, kind).inc()
    else:
        MESSAGES_FAILED.labels(service, kind, outcome).inc()
    if seconds is not None:
        HANDLER_SECONDS.labels(service, kind).observe(seconds)


def record_transition(state: str) -> None:
    """An incident entered ``state`` (the coordinator); committed/aborted also count a decided transaction."""
    INCIDENT_TRANSITIONS.labels(state).inc()
    if state in ("committed", "aborted"):
        TRANSACTIONS.labels(state).inc()


_seen_states: set[str] = set()


def set_open_incidents(counts: Mapping[str, int]) -> None:
    """Set the incidents-by-state gauge from a full count of the open incidents (states absent now go to 0)."""
    _seen_states.update(counts)
    for state in _seen_states:
        INCIDENTS.labels(state).set(counts.get(state, 0))


_aged_states: set[str] = set()


def set_incident_ages(ages: Mapping[str, float]) -> None:
    """Set the per-state age gauge from a full scan of the open incidents (states absent now go to 0)."""
    _aged_states.update(ages)
    for state in _aged_states:
        INCIDENT_AGE.labels(state).set(ages.get(state, 0.0))


def record_undo(divergences: int) -> None:
    """An undo finished: restored exactly, or with ``divergences`` fields that differ from the checkpoint."""
    UNDO_RUNS.labels("diverged" if divergences else "restored").inc()
    if divergences:
        UNDO_DIVERGENCES.inc(divergences)


def record_llm_usage(service: str, prompt_tokens: int, completion_tokens: int, cost_usd: float) -> None:
    """Account one LLM call."""
    LLM_TOKENS.labels(service, "prompt").inc(prompt_tokens)
    LLM_TOKENS.labels(service, "completion").inc(completion_tokens)
    LLM_COST.labels(service).inc(cost_usd)


# --- the /metrics server ----------------------------------------------------------------------------------------


@dataclass
class MetricsServer:
    """A running /metrics (+ /healthz, /readyz) endpoint; ``port`` is the bound one."""

    runner: web.AppRunner
    host: str
    port: int

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        await self.runner.cleanup()


def metrics_app(
    *,
    ready: Callable[[], bool] | None = None,
    registry: CollectorRegistry = REGISTRY,
    alive: Callable[[], bool] | None = None,
) -> web.Application:
    from aiohttp import web

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        ok = True if alive is None else bool(alive())
        return web.json_response({"ok": ok}, status=200 if ok else 503)

    async def readyz(_: web.Request) -> web.Response:
        ok = True if ready is None else bool(ready())
        return web.json_response({"ready": ok}, status=200 if ok else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def start_metrics_server(
    port: int,
    *,
    host: str = "0.0.0.0",
    ready: Callable[[], bool] | None = None,
    alive: Callable[[], bool] | None = None,
) -> MetricsServer:
    """Serve the process's metrics on ``host:port`` (``port`` 0 picks a free one) until ``stop()``.

    It binds every interface by default because Prometheus scrapes it from outside the pod; the port is only
    opened when ``STRATUS_METRICS_PORT`` is set.
    """
    from aiohttp import web

    runner = web.AppRunner(metrics_app(ready=ready, alive=alive), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = port
    server = getattr(site, "_server", None)
    if server is not None and server.sockets:
        bound = int(server.sockets[0].getsockname()[1])
    log.info("metrics on http://%s:%d/metrics", host, bound)
    return MetricsServer(runner, host, bound)
