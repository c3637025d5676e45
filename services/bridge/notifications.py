"""Wiring of the notifier in the bridge (the service that faces humans): its own durable consumer of the incident
events it notifies about, starting at the newest, shared by the bridge replicas (see ``stratus.notify``)."""

from __future__ import annotations

from stratus.contracts import ConsumerSpec, Event
from stratus.errors import PermanentError
from stratus.metrics import NOTIFICATIONS
from stratus.notify import EVENT_KINDS, MOMENTS, Notifier, Sink
from stratus.runtime import ServiceRuntime
from stratus.settings import BridgeSettings


def sinks_of(settings: BridgeSettings) -> list[Sink]:
    common = {
        "rate_per_min": settings.notify_rate_per_min,
        "burst": settings.notify_burst,
        "max_retries": settings.notify_max_retries,
        "backoff_s": settings.notify_backoff_s,
    }
    sinks: list[Sink] = []
    if settings.notify_slack_url is not None:
        sinks.append(Sink("slack", settings.notify_slack_url, **common))  # type: ignore[arg-type]
    if settings.notify_webhook_url is not None:
        sinks.append(Sink("webhook", settings.notify_webhook_url, token=settings.notify_webhook_token, **common))  # type: ignore[arg-type]
    return sinks


def wire_notifier(runtime: ServiceRuntime, settings: BridgeSettings) -> Notifier | None:
    """Subscribe the notifier when a sink is configured; None when there is none."""
    unknown = set(settings.notify_events) - set(MOMENTS)
    if unknown:
        raise PermanentError(f"STRATUS_NOTIFY_EVENTS: unknown {sorted(unknown)}; choose from {', '.join(MOMENTS)}")
    sinks = sinks_of(settings)
    if not sinks:
        return None
    notifier = Notifier(
        sinks, frozenset(settings.notify_events), record=lambda sink, outcome: NOTIFICATIONS.labels(sink, outcome).inc()
    )
    t = runtime.topology
    spec = ConsumerSpec(
        durable=f"{t.durable_prefix}notifier",
        stream=t.events_stream,
        filter_subject=t.all_events,
        filter_subjects=tuple(f"{t.prefix}.events.*.*.{kind}" for kind in EVENT_KINDS),
        ack_wait_s=120.0,
        deliver="new",
    )

    async def notify(event: Event) -> None:
        await notifier.handle(event)

    runtime.bus.subscribe(
        spec,
        Event,
        notify,
        name="notifier",
        description="Notify Slack and a JSON webhook of incidents opened, diagnosed, waiting for approval, committed, "
        "aborted, escalated and resolved (rate-limited, retried, never a secret).",
    )
    return notifier
