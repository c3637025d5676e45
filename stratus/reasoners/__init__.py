"""Reasoners: what decides, given the tools of ``stratus.reasoning``.

- ``stratus.reasoners.llm``: ``LLMDiagnosisReasoner`` and ``LLMMitigationReasoner``, a bounded tool loop over any
  OpenAI-compatible model (``stratus.llm.LLMClient``).
- ``stratus.reasoners.toolkit``: the model-facing tools built from the tool protocols and the typed actions.

Nothing is imported here, so using one reasoner does not load the others' dependencies.
"""
