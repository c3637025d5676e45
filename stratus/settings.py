"""Configuration: one settings class per service, all read from ``STRATUS_*`` environment variables.

Nothing else in the code base reads ``os.environ``. Fields shared by every service live in ``CommonSettings``;
each service class adds its own. ``stratus settings SERVICE`` prints the variables and their meaning.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import AnyUrl, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stratus.contracts import Topology
from stratus.modes import Mode


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STRATUS_", extra="ignore", env_nested_delimiter="__")

    nats_url: AnyUrl = Field(default=AnyUrl("nats://127.0.0.1:4222"), description="NATS server with JetStream.")
    redis_url: AnyUrl = Field(default=AnyUrl("redis://127.0.0.1:6379/0"), description="Redis for locks and state.")
    kubeconfig: str | None = Field(
        default=None,
        description="Path of the kubeconfig to use; in-cluster config or ~/.kube/config when unset.",
    )
    kube_context: str | None = Field(default=None, description="Context of the kubeconfig to use.")
    scopes: list[str] = Field(
        default_factory=list,
        description="Namespaces to watch and act on (JSON list); empty means every non-system namespace.",
    )
    redis_prefix: str = Field(default="stratus", description="Prefix of every Redis key Stratus writes.")
    crash_dir: str | None = Field(
        default=None,
        description="Tests only: a directory whose files arm crash points (stratus.crashpoints); never set it in "
        "production.",
    )
    log_level: str = Field(default="INFO", description="Python logging level.")
    metrics_port: int = Field(default=0, description="Port of the Prometheus /metrics endpoint; 0 disables it.")
    instance: str | None = Field(default=None, description="Replica name in logs and health; defaults to host-pid.")
    subject_prefix: str = Field(
        default="stratus",
        pattern=r"^[A-Za-z0-9_-]+$",
        description="First token of every NATS subject of this install. Two installs on one NATS server need "
        "different prefixes, stream prefixes (and durable prefixes) to never see each other's work.",
    )
    stream_prefix: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="JetStream streams are named <stream_prefix>_ALERTS, _WORK, _EVENTS, _JOURNAL, _DEADLETTER; "
        "default: the subject prefix in upper case.",
    )
    durable_prefix: str = Field(
        default="", pattern=r"^[A-Za-z0-9_-]*$", description="Prepended to every durable consumer name."
    )
    partitions: int = Field(
        default=16,
        ge=1,
        le=1024,
        description="Partitions of the events stream: each is one serial consumer, owned by one coordinator replica "
        "at a time. Every service of an install must agree; change it only with the bus drained.",
    )
    log_format: Literal["json", "text"] = Field(
        default="json", description="json: one JSON object per line with service, incident_id and tx_id; text."
    )
    otlp_endpoint: AnyUrl | None = Field(
        default=None,
        description="OTLP/HTTP endpoint of a trace collector (e.g. http://otel-collector:4318/v1/traces). Set, every "
        "service traces each message it consumes and publishes (the context travels in the headers, so one trace "
        "follows an incident across services, with incident_id and tx_id attributes); unset: no spans are made.",
    )
    stop_grace_s: float = Field(
        default=30.0,
        gt=0,
        description="On SIGTERM, how long handlers that are running may take to finish before they are cancelled "
        "(their messages are then redelivered).",
    )

    @property
    def topology(self) -> Topology:
        """The subjects, streams and durable names of this install."""
        return Topology(
            prefix=self.subject_prefix,
            stream_prefix=self.stream_prefix or self.subject_prefix.upper().replace("-", "_"),
            durable_prefix=self.durable_prefix,
            partitions=self.partitions,
        )


class ReasonerSettings(BaseSettings):
    """How an agent reasons: an OpenAI-compatible LLM when a base URL is set, otherwise the rulebook."""

    model_config = SettingsConfigDict(env_prefix="STRATUS_", extra="ignore")

    llm_base_url: AnyUrl | None = Field(
        default=None, description="OpenAI-compatible endpoint (OpenAI, Azure, vLLM, Ollama, llama.cpp)."
    )
    llm_model: str = Field(default="gpt-4o", description="Model name sent to the endpoint.")
    llm_api_key: SecretStr = Field(default=SecretStr("unused"), description="API key for the endpoint.")
    llm_max_steps: int = Field(default=30, ge=1, description="Tool-loop step limit per piece of work.")
    llm_price_in_per_mtok: float = Field(default=2.5, ge=0, description="USD per million prompt tokens.")
    llm_price_out_per_mtok: float = Field(default=10.0, ge=0, description="USD per million completion tokens.")
    llm_timeout_s: float = Field(default=120.0, gt=0, description="Timeout of one LLM call.")
    llm_max_retries: int = Field(
        default=4, ge=0, description="Retries of an LLM call after a 429/5xx answer, a timeout or no connection."
    )
    llm_retry_budget_s: float = Field(
        default=30.0,
        ge=0,
        description="No retry of an LLM call starts later than this after its first try: with a dead endpoint a "
        "piece of work gives up on the LLM within about this plus llm_timeout_s.",
    )
    llm_context_tokens: int | None = Field(
        default=None,
        ge=512,
        description="The model's context window in tokens; when unset it is asked from the server (vLLM, llama.cpp, "
        "LM Studio publish it), else 8192. Prompts are kept under it.",
    )
    llm_reply_tokens: int = Field(
        default=768, ge=16, description="Tokens kept free for each reply (sent as max_tokens)."
    )
    llm_fallback: bool = Field(
        default=True,
        description="When the LLM fails (unreachable, errors, over budget) or makes no progress, the rulebook does "
        "the work instead; false: the failure is reported and the incident escalates with the reason.",
    )
    llm_fallback_after: int = Field(
        default=2,
        ge=1,
        description="Transactions of one incident the LLM may end without progress (failed, or no write) before "
        "the rulebook takes over the next ones.",
    )
    step_check_enabled: bool = Field(
        default=False,
        description="Agent-step failure detection: each LLM tool call is matched against a knowledge base of failing "
        "steps; a match re-prompts the model with the stored lesson (recorded on the timeline as a step_check step).",
    )
    step_check_threshold: float = Field(
        default=0.5, ge=0, le=1, description="Similarity to a failing step at or above which a step is flagged."
    )
    llm_candidates: bool = Field(
        default=True,
        description="Offer the model the rulebook's findings and fixes as numbered candidates (evidence in the "
        "prompt, apply_candidate as a tool).",
    )
    llm_compact: bool = Field(
        default=False,
        description="For small local models: writes only as kubectl lines (no typed write tools), fewer steps' "
        "history kept verbatim.",
    )


class SeveritySettings(BaseSettings):
    """Weights of mu(s) = w1*|A| + w2*|V| + w3*|L| and where its inputs come from."""

    model_config = SettingsConfigDict(env_prefix="STRATUS_", extra="ignore")

    mu_w_alerts: float = Field(default=1.0, ge=0, description="w1: weight of firing alerts in scope.")
    mu_w_violations: float = Field(default=1.0, ge=0, description="w2: weight of SLO violations.")
    mu_w_unhealthy: float = Field(default=1.0, ge=0, description="w3: weight of unhealthy capacity.")
    alertmanager_url: AnyUrl | None = Field(default=None, description="Alertmanager API for firing alerts.")
    prometheus_url: AnyUrl | None = Field(default=None, description="Prometheus API for SLO queries.")
    slo_probes: dict[str, list[str]] = Field(
        default_factory=dict,
        description='HTTP SLO probes per scope (JSON): {"ns": ["http://frontend/..."]}; a non-2xx or slow answer '
        "is a violation.",
    )
    slo_max_latency_s: float = Field(default=2.0, gt=0, description="Latency budget of each SLO probe.")
    slo_queries: dict[str, str] = Field(
        default_factory=dict,
        description='Operator-defined Prometheus SLO queries (JSON), name -> PromQL, e.g. {"consumer-lag": '
        '"min_over_time(kafka_consumergroup_lag{namespace=\\"$scope\\"}[1m]) > 10"}; `$scope` becomes the scope. A '
        "non-empty result is one violation (needs STRATUS_PROMETHEUS_URL). At most 20 queries of 2,000 characters.",
    )
    stuck_deletion_s: float = Field(
        default=60.0,
        ge=0,
        le=86_400,
        description="An object whose deletion has waited on its finalizers longer than this (deletionTimestamp set, "
        "finalizers still present) counts as unhealthy in mu; 0: off.",
    )
    jaeger_url: AnyUrl | None = Field(default=None, description="Jaeger query API for traces.")
    latency_slo_enabled: bool = Field(
        default=False,
        description="Count latency regressions in mu: each service's latest request latency (trace entry spans) "
        "against what it took while the scope was healthy (needs STRATUS_JAEGER_URL; the healthy values are kept on "
        "the bus).",
    )
    latency_factor: float = Field(
        default=3.0, gt=1, le=1000, description="A service is slow at over this many times its healthy latency..."
    )
    latency_min_delta_s: float = Field(
        default=0.025, ge=0, le=60, description="...and at least this much slower than healthy (jitter is not a fault)."
    )
    latency_window_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Spans older than this are not read; a service without any is not judged.",
    )
    latency_burst_s: float = Field(
        default=3.0,
        gt=0,
        le=600,
        description="A service's latest latency is the median of its entry spans that started within this long of its "
        "newest one (the last round of requests: a fix shows at the next requests, not after a whole window).",
    )
    latency_min_samples: int = Field(
        default=3, ge=1, le=100, description="Healthy samples a service needs before its latency is judged."
    )
    latency_max_samples: int = Field(
        default=20, ge=1, le=100, description="Healthy samples kept per service (the reference is their median)."
    )
    latency_learn_interval_s: float = Field(
        default=10.0, ge=0, le=3600, description="At most one healthy sample per scope this often."
    )

    @field_validator("slo_queries")
    @classmethod
    def _bounded_queries(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > 20:
            raise ValueError(f"at most 20 SLO queries, got {len(value)}")
        for name, query in value.items():
            if not name or len(name) > 100 or not query.strip() or len(query) > 2000:
                raise ValueError(f"SLO query {name[:100]!r}: a name of 1-100 characters and a query of 1-2000")
        return value


class EmbeddingSettings(BaseSettings):
    """The state embedding (stratus.embedding): windows of metrics, traces and logs, an anomaly score for mu's SLO
    term (detector) and a per-service shift ranking for localisation (diagnoser). Off by default."""

    model_config = SettingsConfigDict(env_prefix="STRATUS_", extra="ignore")

    embedding_enabled: bool = Field(
        default=False, description="Use the state embedding (detector: anomaly in mu; diagnoser: localisation)."
    )
    embedding_model: str | None = Field(
        default=None, description="Path of the model artefact (.npz); the one shipped with Stratus when unset."
    )
    embedding_window_s: float = Field(default=60.0, gt=0, le=3600, description="Length of a telemetry window.")
    embedding_stride_s: float = Field(default=15.0, gt=0, le=3600, description="Time between two windows.")
    embedding_min_baseline: int = Field(
        default=6, ge=1, le=1000, description="Healthy windows needed before a scope is scored."
    )
    embedding_persist: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Consecutive windows over the scope's threshold before the embedding counts in mu (raises); the "
        "run must also outlast one window (STRATUS_EMBEDDING_WINDOW_S), so one short burst that every overlapping "
        "window sees does not raise.",
    )
    embedding_clear: int = Field(
        default=2,
        ge=1,
        le=100,
        description="Consecutive windows under the scope's threshold before a raised embedding stops counting in mu.",
    )
    embedding_calibration: int = Field(
        default=8,
        ge=1,
        le=1000,
        description="Healthy scored windows a scope needs for its own threshold; until then its embedding raises "
        "nothing.",
    )
    embedding_warmup_windows: float = Field(
        default=4.0,
        ge=0,
        le=100,
        description="Window lengths (STRATUS_EMBEDDING_WINDOW_S) of healthy telemetry a scope's baseline must cover, "
        "then its calibration's scores as many again, before its embedding may raise (besides "
        "STRATUS_EMBEDDING_MIN_BASELINE and STRATUS_EMBEDDING_CALIBRATION windows a stride apart): windows read in "
        "quick succession are one stretch of telemetry, not a scope's normal.",
    )
    embedding_calibration_margin: float = Field(
        default=1.25,
        ge=1.0,
        le=10.0,
        description="A scope's threshold: the artefact's, or the 95th percentile of the scope's own healthy scores "
        "times this margin when that is higher.",
    )
    embedding_clear_ratio: float = Field(
        default=0.8,
        gt=0,
        le=1.0,
        description="A raised embedding counts a window as under its scope's threshold (towards "
        "STRATUS_EMBEDDING_CLEAR) only when it is under this fraction of the threshold (hysteresis).",
    )
    embedding_state_file: Path | None = Field(
        default=None,
        description="File where the scopes' calibrations are kept across restarts (none: every start calibrates "
        "again and the embedding raises nothing for a calibration period).",
    )
    embedding_weight: float = Field(
        default=1.0, ge=0, description="What an anomalous window adds to mu (times w2, as one SLO violation)."
    )
    embedding_prometheus_url: AnyUrl | None = Field(
        default=None, description="Prometheus HTTP API for the metrics modality (none: the modality is missing)."
    )
    embedding_jaeger_url: AnyUrl | None = Field(
        default=None, description="Jaeger query API for the traces modality (default: STRATUS_JAEGER_URL if set)."
    )
    embedding_metric_preset: str = Field(
        default="otel", description="Metric queries: otel (span metrics), arena, or kube (kube-state + cAdvisor only)."
    )
    embedding_metric_queries: list[dict[str, str | bool]] | None = Field(
        default=None,
        description='Replaces the preset (JSON): [{"name": "requests", "query": "sum by (service) (...)", '
        '"label": "service"}]; $scope and $rate are substituted.',
    )
    embedding_rate_interval: str = Field(default="1m", description="PromQL rate() interval ($rate).")
    embedding_logs: bool = Field(default=True, description="Read pod logs from the Kubernetes API (logs modality).")


class LastGoodSettings(BaseSettings):
    """The last-known-good memory (``stratus.lastgood``): snapshots of healthy scopes, on the bus."""

    model_config = SettingsConfigDict(env_prefix="STRATUS_", extra="ignore")

    lastgood_enabled: bool = Field(
        default=True, description="Record last-known-good snapshots of healthy scopes and use them to diagnose."
    )
    lastgood_settle_s: float = Field(
        default=60.0, ge=0, description="A scope must be at mu 0 this long in a row before a snapshot is recorded."
    )
    lastgood_refresh_s: float = Field(
        default=300.0, gt=0, description="While a scope stays healthy, its snapshot is refreshed at most this often."
    )
    lastgood_history: int = Field(default=5, ge=1, le=64, description="Snapshots kept per scope in the KV bucket.")
    lastgood_max_bytes: int = Field(
        default=512_000, ge=1024, description="Largest compressed snapshot kept; a bigger one is not recorded."
    )


class WritePolicySettings(BaseSettings):
    """The write policy of the write face (stratus.writepolicy)."""

    model_config = SettingsConfigDict(env_prefix="STRATUS_", extra="ignore")

    write_policy: str | None = Field(
        default=None,
        description="Write policy as JSON or YAML, or the path of a file holding it: per scope ('*' any namespace, "
        "'cluster', or a namespace), grants: [{kinds, verbs}], allowed_registries, max_replicas, waive. Unset: the "
        "built-in policy (see stratus.writepolicy).",
    )

    @field_validator("write_policy")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        from stratus.writepolicy import WritePolicy  # a bad policy stops the service at start, not each transaction

        try:
            WritePolicy.parse(value)
        except Exception as exc:
            raise ValueError(f"STRATUS_WRITE_POLICY is not a valid write policy: {exc}") from exc
        return value


class MemorySettings(BaseSettings):
    """Incident memory (stratus.memory): closed incidents kept on the bus, recalled by similarity. On by default."""

    model_config = SettingsConfigDict(env_prefix="STRATUS_", extra="ignore")

    memory_enabled: bool = Field(
        default=True,
        description="Keep closed incidents (coordinator), recall the nearest ones (diagnoser) and replay a close "
        "match's committed fix as attempt 1 (mitigator).",
    )
    memory_bucket: str | None = Field(
        default=None, description="JetStream key-value bucket of the memory; default <stream prefix>_MEMORY."
    )
    memory_k: int = Field(default=5, ge=1, le=50, description="How many past incidents the diagnoser recalls.")
    memory_min_similarity: float = Field(
        default=0.3, ge=0, le=1, description="Past incidents less similar than this are not recalled."
    )
    memory_propose_at: float = Field(
        default=0.7, ge=0, le=1, description="A match at least this similar may have its fix replayed as attempt 1."
    )
    memory_max_entries: int = Field(
        default=500, ge=1, description="Incidents kept; the oldest are dropped past this number."
    )
    memory_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, description="Size bound of the bucket.")

    def memory_bucket_name(self, stream_prefix: str) -> str:
        return self.memory_bucket or f"{stream_prefix}_MEMORY"


class BridgeSettings(CommonSettings):
    host: str = Field(default="127.0.0.1", description="Address the webhook listens on.")
    port: int = Field(default=9095, description="Port of the Alertmanager webhook.")
    webhook_token: SecretStr | None = Field(
        default=None, description="Bearer token Alertmanager must send; unset accepts any request (dev only)."
    )
    max_body_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1024,
        description="Largest webhook body accepted; a larger one is answered 413 (lower max_alerts on the receiver).",
    )
    notify_slack_url: SecretStr | None = Field(
        default=None, description="Slack incoming-webhook URL for notifications (a secret); unset: no Slack."
    )
    notify_webhook_url: SecretStr | None = Field(
        default=None, description="URL that receives each notification as JSON (POST); unset: none."
    )
    notify_webhook_token: SecretStr | None = Field(
        default=None, description="Bearer token sent to notify_webhook_url; unset: no Authorization header."
    )
    notify_events: list[str] = Field(
        default_factory=lambda: [
            "opened",
            "diagnosed",
            "approval_needed",
            "committed",
            "aborted",
            "escalated",
            "resolved",
        ],
        description="Which moments are notified (JSON list): opened, diagnosed, approval_needed, committed, aborted, "
        "escalated, resolved.",
    )
    notify_rate_per_min: float = Field(default=30.0, gt=0, description="Notifications a minute per sink, at most.")
    notify_burst: int = Field(default=10, ge=1, description="Notifications a sink may receive at once after a calm.")
    notify_max_retries: int = Field(default=5, ge=0, description="Retries of a notification (429, 5xx, no answer).")
    notify_backoff_s: float = Field(default=0.5, gt=0, description="First retry delay; doubled at each retry.")
    approval_token: SecretStr | None = Field(
        default=None,
        description="Bearer token of the approvals HTTP API (/approvals); unset: the API is off (404), so no one can "
        "approve or deny over HTTP.",
    )


class DetectorSettings(CommonSettings, SeveritySettings, EmbeddingSettings, LastGoodSettings):
    probe_interval_s: float = Field(default=5.0, gt=0, description="Period of the health probes of each scope.")
    open_threshold: float = Field(default=1.0, ge=0, description="mu at or above which an incident is opened.")
    confirm_probes: int = Field(
        default=2,
        ge=1,
        le=1_000_000,
        description="Probes over the threshold, among the last confirm_window, before an incident opens (one blip "
        "opens nothing; a number no window reaches: the probes never open one, only alerts do).",
    )
    confirm_window: int = Field(
        default=10,
        ge=1,
        le=10_000,
        description="The probes confirm_probes are counted in (the latest must be over the threshold too); "
        "confirm_probes itself: only consecutive probes count, which misses a failure hitting one request in ten.",
    )
    startup_grace_s: float = Field(
        default=60.0,
        ge=0,
        le=3600,
        description="How long a new pod of a serving Deployment may take to become Ready before it counts towards "
        "opening an incident (a rollout, scale-up or replaced pod converging is not a failure); 0: no grace.",
    )


class CoordinatorSettings(CommonSettings, SeveritySettings, MemorySettings):
    max_actions: int = Field(default=20, ge=1, description="K: at most this many commands per transaction.")
    max_retries: int = Field(default=9, ge=0, description="Attempts after the first before escalation.")
    settle_s: float = Field(default=5.0, ge=0, description="Wait after a transaction before measuring mu_post.")
    undo_settle_s: float = Field(
        default=30.0,
        ge=0,
        description="After an undo, how long to wait for mu to come back to at most b (pods recreated, Ready).",
    )
    steady_s: float = Field(
        default=2.0,
        ge=0,
        description="Before each checkpoint, mu must hold steady this long (a fault may still be unfolding); 0: off.",
    )
    steady_max_s: float = Field(
        default=20.0, ge=0, description="Take the checkpoint anyway when mu has not held steady after this long."
    )
    resolve_quiet_s: float = Field(
        default=15.0,
        ge=0,
        description="An incident whose oracles pass when its next attempt would start closes as resolved only after "
        "they have passed for this long (read every second); a violation meanwhile starts the attempt. An "
        "intermittent failure (one request in ten) passes a single read. 0: one read. The wait is longer when "
        "resolve_min_failure_rate needs more reads.",
    )
    resolve_min_failure_rate: float = Field(
        default=0.1,
        ge=0.01,
        le=1,
        description="The smallest share of failing reads a fault may show and still count: an incident whose "
        "oracles pass closes only after so many clean reads in a row that a fault still failing this share of reads "
        "would have shown one with probability resolve_confidence (0.1, 0.99: 44 reads). 1: only a fault failing "
        "every read.",
    )
    resolve_confidence: float = Field(default=0.99, ge=0.5, lt=1, description="See resolve_min_failure_rate.")
    lease_ttl_s: float = Field(default=30.0, gt=0, description="Writer lease time-to-live (renewed while alive).")
    lease_widening_scopes: list[str] = Field(
        default=["cluster"],
        description="Scopes a later attempt's lease may be widened to when an attempt needed writes outside its "
        "incident's scope (JSON list). A write refused in any other scope never widens a lease; 'cluster' covers the "
        "cluster-scoped objects plus the incident's own namespace, never other namespaces. Add a namespace (even "
        "kube-system) only to let Stratus write there.",
    )
    pickup_timeout_s: float = Field(
        default=900.0,
        gt=0,
        description="How long the coordinator keeps a queued transaction's lease alive until a mitigator takes it; "
        "after that the lease lapses and the attempt is rolled back and retried.",
    )
    escalation_cooldown_s: float = Field(
        default=600.0, ge=0, description="After an escalation, no new incident opens on that scope for this long."
    )
    lease_wait_s: float = Field(
        default=2.0,
        ge=0,
        description="How long an attempt waits for its scope's write lease while handling an event; when another "
        "incident still holds it, the attempt is parked and the watchdog tries again every second (waiting longer "
        "would hold up every other incident of the partition).",
    )
    partition_lease_s: float = Field(
        default=6.0,
        gt=0,
        description="A coordinator replica owns a partition under a Redis lease of this TTL, renewed every third of "
        "it; a replica that dies loses its partitions to the others after at most this long.",
    )
    event_ack_wait_s: float = Field(
        default=10.0,
        gt=0,
        description="Redelivery of an event whose coordinator replica died mid-handle, after this long without an ack "
        "or a heartbeat (the partition waits for it: nothing overtakes it).",
    )
    mode: Mode = Field(
        default="auto",
        description="Operator mode of every scope not in `modes`: auto (act under TNR), approve (each transaction's "
        "plan waits for a human), shadow (plans are dry-run and recorded, never executed), observe (detect and "
        "diagnose only).",
    )
    modes: dict[str, Mode] = Field(
        default_factory=dict,
        description='Operator mode per scope (JSON), e.g. {"payments": "approve", "cluster": "shadow"}; a lease wider '
        "than the incident's scope runs under the stricter of the two.",
    )
    approval_timeout_s: float = Field(
        default=900.0, gt=0, description="A plan waiting for approval longer than this escalates the incident."
    )
    undo_on_abort: bool = Field(
        default=True,
        description="Roll an aborted transaction back before the next attempt. false is the benchmark's naive-retry "
        "ablation only (the next attempt starts from the state the last one left): it gives up TNR.",
    )

    def resolve_reads(self) -> int:
        """Clean reads in a row before an incident whose oracles pass closes as resolved (0: resolve_quiet_s off)."""
        if self.resolve_quiet_s <= 0:
            return 0
        rate = self.resolve_min_failure_rate
        needed = 0 if rate >= 1 else math.ceil(math.log(1 - self.resolve_confidence) / math.log(1 - rate))
        return max(math.ceil(self.resolve_quiet_s), needed)


class DiagnoserSettings(CommonSettings, ReasonerSettings, EmbeddingSettings, LastGoodSettings, MemorySettings):
    diagnosis_policy: str = Field(
        default="auto",
        description="auto (LLM if configured, else rulebook), rulebook, llm or hybrid (rulebook first, the LLM for "
        "what it cannot explain).",
    )
    jaeger_url: AnyUrl | None = Field(default=None, description="Jaeger query API for traces.")
    prometheus_url: AnyUrl | None = Field(default=None, description="Prometheus API for metrics.")


class MitigatorSettings(
    CommonSettings, ReasonerSettings, SeveritySettings, LastGoodSettings, WritePolicySettings, MemorySettings
):
    policy: str = Field(
        default="auto",
        description="auto (LLM if configured, else rulebook), rulebook, llm, hybrid (rulebook recipes first, then "
        "the LLM), scripted or chaos.",
    )
    scripted_plan: str | None = Field(default=None, description="Path of a YAML plan for the scripted policy.")
    chaos_seed: int = Field(default=0, description="Seed of the chaos policy's random choices.")
    lease_ttl_s: float = Field(default=30.0, gt=0, description="TTL used when renewing the transaction's lease.")
    jaeger_url: AnyUrl | None = Field(default=None, description="Jaeger query API for traces.")


class UndoerSettings(CommonSettings):
    lease_ttl_s: float = Field(default=30.0, gt=0, description="TTL used when renewing the undo's lease.")


class CliSettings(CommonSettings):
    """What the ``stratus`` command itself reads (besides the common settings)."""

    data_dir: Path = Field(
        default_factory=lambda: Path.home() / ".local" / "state" / "stratus",
        description="Where `stratus up` keeps the data of the NATS and Redis servers it starts (the audit trail "
        "survives a restart) and up.json, the URLs of those servers, which the other commands use.",
    )


class ConsoleSettings(CommonSettings):
    """The read-only web console (``python -m services.console``)."""

    host: str = Field(default="127.0.0.1", description="Address the console listens on.")
    port: int = Field(default=9096, description="Port of the console.")
    console_token: SecretStr = Field(
        description="Bearer token every /api call must carry (an OIDC proxy in front may inject it); required."
    )
    console_approvals: bool = Field(
        default=False,
        description="Let the console approve and deny pending plans (POST /api/approvals/ID/approve|deny); false: "
        "the console is read-only.",
    )


SETTINGS_BY_SERVICE: dict[str, type[CommonSettings]] = {
    "bridge": BridgeSettings,
    "detector": DetectorSettings,
    "coordinator": CoordinatorSettings,
    "diagnoser": DiagnoserSettings,
    "mitigator": MitigatorSettings,
    "undoer": UndoerSettings,
    "console": ConsoleSettings,
}
