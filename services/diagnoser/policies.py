"""Which reasoner diagnoses: ``auto`` (the LLM when an endpoint is set, else the rulebook), ``rulebook``, ``llm``."""

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
    if policy == "llm":
        from stratus.reasoners.llm import LLMDiagnosisReasoner

        return cast(DiagnosisReasoner, LLMDiagnosisReasoner.from_settings(settings))
    raise PermanentError(f"unknown diagnosis policy {settings.diagnosis_policy!r}; choose auto, rulebook or llm")
