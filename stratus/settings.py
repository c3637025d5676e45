"""Configuration: one settings class per service, all read from ``STRATUS_*`` environment variables.

Nothing else in the code base reads ``os.environ``. Fields shared by every service live in ``CommonSettings``;
each service class adds its own. ``stratus settings SERVICE`` prints the variables and their meaning.
"""

from __future__ import annotations

from pydantic import AnyUrl, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    log_level: str = Field(default="INFO", description="Python logging level.")
    metrics_port: int = Field(default=0, description="Port of the Prometheus /metrics endpoint; 0 disables it.")
    instance: str | None = Field(default=None, description="Replica name in logs and health; defaults to host-pid.")


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
    llm_compact: bool = Field(
        default=False,
        description="For small local models (~4k context): writes only as kubectl lines (no typed write tools), "
        "shorter tool outputs, older tool results shortened.",
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


class BridgeSettings(CommonSettings):
    host: str = Field(default="127.0.0.1", description="Address the webhook listens on.")
    port: int = Field(default=9095, description="Port of the Alertmanager webhook.")
    webhook_token: SecretStr | None = Field(
        default=None, description="Bearer token Alertmanager must send; unset accepts any request (dev only)."
    )


class DetectorSettings(CommonSettings, SeveritySettings):
    probe_interval_s: float = Field(default=5.0, gt=0, description="Period of the health probes of each scope.")
    open_threshold: float = Field(default=1.0, ge=0, description="mu at or above which an incident is opened.")
    confirm_probes: int = Field(
        default=2, ge=1, description="Consecutive probes over the threshold before an incident opens (no flapping)."
    )


class CoordinatorSettings(CommonSettings, SeveritySettings):
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
    lease_ttl_s: float = Field(default=30.0, gt=0, description="Writer lease time-to-live (renewed while alive).")
    pickup_timeout_s: float = Field(
        default=900.0,
        gt=0,
        description="How long the coordinator keeps a queued transaction's lease alive until a mitigator takes it; "
        "after that the lease lapses and the attempt is rolled back and retried.",
    )
    escalation_cooldown_s: float = Field(
        default=600.0, ge=0, description="After an escalation, no new incident opens on that scope for this long."
    )
    undo_on_abort: bool = Field(
        default=True,
        description="Roll an aborted transaction back before the next attempt. false is the benchmark's naive-retry "
        "ablation only (the next attempt starts from the state the last one left): it gives up TNR.",
    )


class DiagnoserSettings(CommonSettings, ReasonerSettings):
    diagnosis_policy: str = Field(
        default="auto", description="auto (LLM if configured, else rulebook), rulebook or llm."
    )
    jaeger_url: AnyUrl | None = Field(default=None, description="Jaeger query API for traces.")
    prometheus_url: AnyUrl | None = Field(default=None, description="Prometheus API for metrics.")


class MitigatorSettings(CommonSettings, ReasonerSettings, SeveritySettings):
    policy: str = Field(
        default="auto",
        description="auto (LLM if configured, else rulebook), rulebook, llm, scripted or chaos.",
    )
    scripted_plan: str | None = Field(default=None, description="Path of a YAML plan for the scripted policy.")
    chaos_seed: int = Field(default=0, description="Seed of the chaos policy's random choices.")
    lease_ttl_s: float = Field(default=30.0, gt=0, description="TTL used when renewing the transaction's lease.")
    jaeger_url: AnyUrl | None = Field(default=None, description="Jaeger query API for traces.")


class UndoerSettings(CommonSettings):
    lease_ttl_s: float = Field(default=30.0, gt=0, description="TTL used when renewing the undo's lease.")


SETTINGS_BY_SERVICE: dict[str, type[CommonSettings]] = {
    "bridge": BridgeSettings,
    "detector": DetectorSettings,
    "coordinator": CoordinatorSettings,
    "diagnoser": DiagnoserSettings,
    "mitigator": MitigatorSettings,
    "undoer": UndoerSettings,
}
