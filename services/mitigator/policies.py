"""Which reasoner drives the mitigator: ``auto`` (the LLM when an endpoint is configured, else the rulebook),
``rulebook``, ``llm``, ``hybrid`` (the rulebook's recipes first, then the LLM), ``scripted`` (a plan file) or
``chaos`` (random harmful writes, to test the safety net). The LLM falls back to the rulebook when it fails or makes
no progress, unless ``STRATUS_LLM_FALLBACK=false``."""

from __future__ import annotations

from typing import cast

from stratus.errors import PermanentError
from stratus.reasoners.chaos import ChaosMitigationReasoner
from stratus.reasoners.scripted import ScriptedMitigationReasoner
from stratus.reasoning import MitigationReasoner
from stratus.settings import MitigatorSettings

POLICIES = ("auto", "rulebook", "llm", "hybrid", "scripted", "chaos")


def make_reasoner(settings: MitigatorSettings) -> MitigationReasoner:
    """The policy's reasoner, behind the MemoryFirst step when incident memory is on (except for the chaos and
    scripted policies, whose attempts are the test's own)."""
    reasoner = _policy_reasoner(settings)
    if settings.memory_enabled and settings.policy not in ("scripted", "chaos"):
        from stratus.memory.first import MemoryFirstMitigationReasoner

        return MemoryFirstMitigationReasoner(reasoner)
    return reasoner


def _policy_reasoner(settings: MitigatorSettings) -> MitigationReasoner:
    policy = settings.policy
    if policy == "auto":
        policy = "llm" if settings.llm_base_url else "rulebook"
    if policy == "scripted":
        if not settings.scripted_plan:
            raise PermanentError("policy 'scripted' needs STRATUS_SCRIPTED_PLAN (a YAML file of attempts)")
        return ScriptedMitigationReasoner.from_file(settings.scripted_plan)
    if policy == "chaos":
        return ChaosMitigationReasoner(seed=settings.chaos_seed)
    if policy == "rulebook":
        from stratus.reasoners.rulebook import RulebookMitigationReasoner

        return cast(MitigationReasoner, RulebookMitigationReasoner())
    if policy in ("llm", "hybrid"):
        from stratus.reasoners.hybrid import FallbackMitigationReasoner, HybridMitigationReasoner, rulebook_candidates
        from stratus.reasoners.llm import LLMMitigationReasoner

        advisor = rulebook_candidates if settings.llm_candidates else None
        llm = FallbackMitigationReasoner(
            LLMMitigationReasoner.from_settings(settings, advisor=advisor),
            fallback=settings.llm_fallback,
            after=settings.llm_fallback_after,
        )
        return cast(MitigationReasoner, HybridMitigationReasoner(llm) if policy == "hybrid" else llm)
    raise PermanentError(f"unknown mitigation policy {settings.policy!r}; choose one of {', '.join(POLICIES)}")
