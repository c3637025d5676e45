"""Which reasoner drives the mitigator: ``auto`` (the LLM when an endpoint is configured, else the rulebook),
``rulebook``, ``llm``, ``scripted`` (a plan file) or ``chaos`` (random harmful writes, to test the safety net)."""

from __future__ import annotations

from typing import cast

from stratus.errors import PermanentError
from stratus.reasoners.chaos import ChaosMitigationReasoner
from stratus.reasoners.scripted import ScriptedMitigationReasoner, ScriptedPlan
from stratus.reasoning import MitigationReasoner
from stratus.settings import MitigatorSettings

POLICIES = ("auto", "rulebook", "llm", "scripted", "chaos")


def make_reasoner(settings: MitigatorSettings) -> MitigationReasoner:
    policy = settings.policy
    if policy == "auto":
        policy = "llm" if settings.llm_base_url else "rulebook"
    if policy == "scripted":
        if not settings.scripted_plan:
            raise PermanentError("policy 'scripted' needs STRATUS_SCRIPTED_PLAN (a YAML file of attempts)")
        return ScriptedMitigationReasoner(ScriptedPlan.load(settings.scripted_plan))
    if policy == "chaos":
        return ChaosMitigationReasoner(seed=settings.chaos_seed)
    if policy == "rulebook":
        from stratus.reasoners.rulebook import RulebookMitigationReasoner

        return cast(MitigationReasoner, RulebookMitigationReasoner())
    if policy == "llm":
        from stratus.reasoners.llm import LLMMitigationReasoner

        return cast(MitigationReasoner, LLMMitigationReasoner.from_settings(settings))
    raise PermanentError(f"unknown mitigation policy {settings.policy!r}; choose one of {', '.join(POLICIES)}")
