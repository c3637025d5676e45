"""What a bench run records: one ``ScenarioRecord`` per scenario run, and the ``BenchRecord`` of the whole run."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from arena.bench.llm_log import ServerStats
from arena.bench.noise import NoiseEvent


class _Model(BaseModel):
    # mu is infinite when a scope is down: keep it as JSON's Infinity (Python's json reads it back).
    model_config = ConfigDict(ser_json_inf_nan="constants")


class AttemptRecord(_Model):
    n: int = Field(description="Attempt number, from 1.")
    decision: str | None = Field(default=None, description="commit or abort (None: the run ended first).")
    mu_pre: float | None = Field(default=None, description="mu at the checkpoint.")
    mu_post: float | None = Field(default=None, description="mu measured after the transaction settled.")
    hidden_mu: list[float] = Field(default_factory=list, description="mu after each action inside the transaction.")
    actions: list[str] = Field(default_factory=list, description="The writes executed, as verb kind/name.")
    undo_divergences: int | None = Field(default=None, description="Divergences the undo reported (None: no undo).")
    digest_restored: bool | None = Field(
        default=None, description="Whether the undo restored the checkpoint's digest (None: no undo)."
    )


class ScenarioRecord(_Model):
    scenario: str = Field(description="Problem id, e.g. scale_pod_zero_social_net-mitigation-1.")
    task: str = Field(description="detection, localization, analysis or mitigation.")
    app: str = Field(description="The application.")
    policy: str = Field(description="Mitigation policy of the run.")
    ablation: str = Field(description="none, no-retry or naive-retry.")
    repeat: int = Field(default=0, description="Repetition index.")
    success: bool = Field(default=False, description="The scenario's oracle (AIOpsLab scoring) passed.")
    score: float | None = Field(default=None, description="Localization accuracy (100, 100/len, 0) when scored.")
    oracle_reasons: list[str] = Field(default_factory=list, description="Why the oracle failed.")
    answer: str | None = Field(default=None, description="What the system 'submitted' (detection/localization/RCA).")
    detected: bool = Field(default=False, description="An incident opened on the scope.")
    ttd_s: float | None = Field(default=None, description="Inject -> incident_opened, seconds.")
    ttm_s: float | None = Field(default=None, description="Inject -> incident_closed(resolved), seconds.")
    outcome: str | None = Field(default=None, description="resolved, escalated, or None (time limit).")
    incident_id: str | None = None
    baseline: float | None = Field(default=None, description="b = mu(s0).")
    visible_mu: list[float] = Field(default_factory=list, description="mu at each commit/abort/undo point.")
    attempts: list[AttemptRecord] = Field(default_factory=list)
    actions: int = Field(default=0, description="Writes executed, over all attempts.")
    tool_calls: int = Field(default=0, description="Reasoning steps reported by the agents (usage.steps).")
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    llm_errors: int = Field(default=0, description="LLM calls answered with an HTTP error or not at all (the agents').")
    max_prompt_tokens: int = Field(default=0, description="The largest prompt any agent sent, in tokens.")
    llm_server: ServerStats | None = Field(
        default=None, description="The local server's own account of the scenario (with --llm-log)."
    )
    tnr_held: bool = Field(default=True, description="Every visible mu <= b.")
    drift: bool = Field(
        default=False,
        description="TNR did not hold although no transaction committed and every undo restored the checkpoint's "
        "digest: the excess is runtime state at a restored spec (pods crash-looping or restarting: the fault evolving, "
        "or the controllers still converging after an undo when the coordinator measured).",
    )
    undo_divergences: int = Field(default=0, description="Divergences over every undo.")
    digest_mismatches: int = Field(default=0, description="Undos whose restored digest differs from the checkpoint.")
    wall_s: float = Field(default=0.0, description="Wall time of the scenario, set-up and recovery included.")
    error: str | None = Field(default=None, description="What went wrong in the harness, if anything.")
    services_log: str | None = Field(default=None, description="Log file of the services that ran the scenario.")
    timeline_file: str | None = Field(
        default=None, description="The incident's timeline events, one JSON object a line, in the logs folder."
    )
    noise: list[NoiseEvent] = Field(
        default_factory=list, description="The benign changes the noise made during the run (--noise), in order."
    )
    noise_restored: list[str] = Field(
        default_factory=list, description="What the bench put back after the run (replicas, images, ConfigMap keys)."
    )
    false_positive: bool | None = Field(
        default=None,
        description="With noise on a run without a fault: an incident opened although only noise happened "
        "(None: no noise, or the scenario has a fault).",
    )
    blamed: str | None = Field(
        default=None, description="With noise: the diagnosis' top component and the first change it blames."
    )
    wrong_attribution: str | None = Field(
        default=None,
        description="With noise: why the diagnosis blamed a noise change rather than the fault (None: it did not, "
        "or there was no diagnosis).",
    )

    @property
    def steps(self) -> int:
        return self.actions + self.tool_calls

    @property
    def transactions(self) -> int:
        return sum(1 for a in self.attempts if a.decision is not None)

    @property
    def regressions(self) -> int:
        b = self.baseline if self.baseline is not None else math.inf
        return sum(1 for m in self.visible_mu if m > b)


class BenchRecord(_Model):
    suite: str = Field(description="The suite that ran.")
    command: str = Field(description="The command line that produced this record.")
    started: datetime
    finished: datetime | None = None
    oracle: str = Field(description="strict or compat.")
    settings: dict[str, str] = Field(default_factory=dict, description="STRATUS_* settings the services ran with.")
    noise: dict[str, Any] | None = Field(default=None, description="The noise specification (--noise), if any.")
    runs: list[ScenarioRecord] = Field(default_factory=list)
