"""Which reasoner diagnoses: ``auto`` (the LLM when an endpoint is set, else the rulebook), ``rulebook``, ``llm``,
``hybrid`` (the rulebook first, the LLM for what it cannot explain). The LLM falls back to the rulebook when it
fails, unless ``STRATUS_LLM_FALLBACK=false``."""

from __future__ import annotations

from typing import cast

from stratus.errors import PermanentError
from stratus.reasoning import DiagnosisReasoner
from stratus.settings import DiagnoserSettings


def make_reasoner(settings: DiagnoserSettings) -> DiagnosisReasoner:
    policy = settings.diagnosis_policy
    if policy == "auto":
        policy = "llm" if settings.llm_base_url else "rulebook"
    if policy == "rulebook":
        from stratus.reasoners.rulebook import RulebookDiagnosisReasoner

        return RulebookDiagnosisReasoner()
    if policy in ("llm", "hybrid"):
        from stratus.reasoners.hybrid import FallbackDiagnosisReasoner, HybridDiagnosisReasoner, rulebook_candidates
        from stratus.reasoners.llm import LLMDiagnosisReasoner

        advisor = rulebook_candidates if settings.llm_candidates else None
        llm = FallbackDiagnosisReasoner(
            LLMDiagnosisReasoner.from_settings(settings, advisor=advisor), fallback=settings.llm_fallback
        )
        return cast(DiagnosisReasoner, HybridDiagnosisReasoner(llm) if policy == "hybrid" else llm)
    raise PermanentError(
        f"unknown diagnosis policy {settings.diagnosis_policy!r}; choose auto, rulebook, llm or hybrid"
    )
