"""Alertmanager's webhook payload (version 4) and its normalisation into ``stratus.contracts.Alert``. No I/O.

Idempotency: every normalised alert gets an id derived from what identifies one *occurrence* of one alert state:
the fingerprint (the label set), the status and the start time. Alertmanager re-sends the same group on every
``group_interval``/``repeat_interval`` and retries a failed POST; each re-send of an unchanged alert yields the same id,
which JetStream de-duplicates (``Nats-Msg-Id``) inside its window and the detector treats as a no-op after it. A new
firing of the same alert (a new ``startsAt``) and its resolution (a new status) get new ids.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from stratus.contracts import Alert, alerts_subject

CLUSTER_SCOPE = "cluster"
"""The scope of an alert without a ``namespace`` label (nodes, persistent volumes, the control plane)."""

_ZERO_TIME_YEAR = 1  # Go's zero time.Time, "0001-01-01T00:00:00Z": Alertmanager's "not set"

_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
"""A Kubernetes namespace name: a DNS-1123 label (lower-case alphanumerics and '-', at most 63 characters)."""

SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})


def _utc(ts: datetime | None) -> datetime | None:
    """``ts`` in UTC (naive times are taken as UTC); a time that has no UTC equivalent is a validation error."""
    if ts is None:
        return None
    if ts.tzinfo is None:
        return ts.replace(tzinfo=UTC)
    try:
        return ts.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise ValueError(f"{ts.isoformat()} is outside the range of representable times once converted to UTC") from exc


class AlertmanagerAlert(BaseModel):
    """One alert of a webhook notification."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"] = Field(description="The alert's state when the notification was sent.")
    labels: dict[str, str] = Field(description="Identifying labels; ``alertname`` is required.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Descriptive annotations (summary, ...).")
    startsAt: datetime = Field(description="When the alert started firing (RFC 3339).")
    endsAt: datetime | None = Field(default=None, description="When it resolved; Go's zero time when it has not.")
    generatorURL: str = Field(default="", description="Link to the expression in Prometheus.")
    fingerprint: str = Field(min_length=1, description="Alertmanager's hash of the label set.")

    @field_validator("startsAt", "endsAt", mode="after")
    @classmethod
    def _in_utc(cls, ts: datetime | None) -> datetime | None:
        return _utc(ts)


class WebhookPayload(BaseModel):
    """Alertmanager's webhook body, ``version`` "4" (Alertmanager 0.x up to today)."""

    model_config = ConfigDict(extra="ignore")

    version: Literal["4"] = Field(description="Payload format version; only 4 exists.")
    groupKey: str = Field(description="Key identifying the alert group (for de-duplication on the receiver side).")
    truncatedAlerts: int = Field(default=0, ge=0, le=2**31, description="Alerts left out because of max_alerts.")
    status: Literal["firing", "resolved"] = Field(description="firing when at least one alert of the group fires.")
    receiver: str = Field(description="The receiver's name in the Alertmanager configuration.")
    groupLabels: dict[str, str] = Field(default_factory=dict, description="Labels the group is keyed on.")
    commonLabels: dict[str, str] = Field(default_factory=dict, description="Labels all alerts share.")
    commonAnnotations: dict[str, str] = Field(default_factory=dict, description="Annotations all alerts share.")
    externalURL: str = Field(default="", description="Link back to the Alertmanager.")
    alerts: list[AlertmanagerAlert] = Field(description="The alerts of the group, firing and resolved.")


def _set(ts: datetime | None) -> datetime | None:
    if ts is None or ts.year <= _ZERO_TIME_YEAR:
        return None
    return _utc(ts)


def dedup_id(fingerprint: str, status: str, starts_at: datetime | None) -> str:
    """A stable id of one alert state (see the module docstring)."""
    start = starts_at.isoformat() if starts_at is not None else "-"
    digest = hashlib.sha256(f"{fingerprint}|{status}|{start}".encode()).hexdigest()[:24]
    return f"alert-{digest}"


def scope_of(labels: dict[str, str]) -> str:
    return labels.get("namespace") or CLUSTER_SCOPE


def refusal(scope: str, scopes: frozenset[str]) -> str | None:
    """Why an alert of ``scope`` is dropped, or ``None`` when Stratus watches that scope.

    ``scopes`` is ``STRATUS_SCOPES``: when set, only those scopes pass (the cluster scope too only when listed);
    when empty, every namespace but the system ones passes (the detector's own rule). A namespace label that cannot
    name a Kubernetes namespace (not a DNS-1123 label) names nothing Stratus could act on, so it never passes.
    """
    if scope != CLUSTER_SCOPE and (len(scope) > 63 or not _NAMESPACE.fullmatch(scope)):
        return "invalid_namespace"
    if scopes:
        return None if scope in scopes else "out_of_scope"
    if scope in SYSTEM_NAMESPACES or scope.startswith("kube-"):
        return "out_of_scope"
    return None


def normalise(alert: AlertmanagerAlert) -> Alert:
    """Map one Alertmanager alert to the contract.

    A firing alert has no ``ends_at`` (Prometheus sends a provisional end time that only means "re-send before");
    a resolved one carries the time it resolved.
    """
    if "alertname" not in alert.labels:
        raise ValueError(f"alert {alert.fingerprint} has no alertname label")
    starts = _set(alert.startsAt)
    ends = _set(alert.endsAt) if alert.status == "resolved" else None
    return Alert(
        id=dedup_id(alert.fingerprint, alert.status, starts),
        fingerprint=alert.fingerprint,
        status=alert.status,
        name=alert.labels["alertname"],
        scope=scope_of(alert.labels),
        labels=dict(alert.labels),
        annotations=dict(alert.annotations),
        starts_at=starts,
        ends_at=ends,
    )


def normalise_payload(payload: WebhookPayload) -> list[tuple[str, Alert]]:
    """Every alert of a notification with the subject it is published on."""
    out = []
    for item in payload.alerts:
        alert = normalise(item)
        out.append((alerts_subject(alert.scope), alert))
    return out
