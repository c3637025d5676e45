"""The rulebook reasoner: generic Kubernetes analyzers and fix recipes, the default when no LLM is configured.

- ``snapshot``: everything read of a scope, through the read tools only.
- ``analyzers``: findings (mechanism, component, AIOpsLab category, evidence, confidence, facts), never keyed to a
  scenario's or an application's names.
- ``recipes``: a finding -> the typed writes that fix it.
- ``diagnose`` / ``mitigate``: the two reasoners of ``stratus.reasoning``.
"""

from stratus.reasoners.rulebook.analyzers import ANALYZERS, Finding, analyze
from stratus.reasoners.rulebook.diagnose import RulebookDiagnosisReasoner
from stratus.reasoners.rulebook.mitigate import RulebookMitigationReasoner
from stratus.reasoners.rulebook.recipes import RECIPES, Plan, plan_for

__all__ = [
    "ANALYZERS",
    "RECIPES",
    "Finding",
    "Plan",
    "RulebookDiagnosisReasoner",
    "RulebookMitigationReasoner",
    "analyze",
    "plan_for",
]
