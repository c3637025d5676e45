"""The rulebook and the LLM together: fallback when the LLM fails, the rulebook's candidates as the model's evidence,
and the hybrid policy (the rulebook first, the LLM for what it cannot explain).

Why it is shaped this way:

- **A dead LLM never strands an incident.** The LLM client gives up within a configured bound (its retries and their
  time budget); ``LLMFailed`` then reaches these wrappers, which run the rulebook on the same request (a setting,
  ``STRATUS_LLM_FALLBACK``, on by default). The result says who did the work and why. With the fallback off the
  failure is reported as such (a failed diagnosis, a failed transaction) and the coordinator escalates with it.
- **No progress is a failure too.** An LLM that ends ``llm_fallback_after`` transactions of one incident without
  progress (failed, or no write) hands the incident's next transactions to the rulebook.
- **Candidates, not answers.** The rulebook's findings and their recipes are offered to the model as numbered
  candidates (evidence in the prompt, ``apply_candidate`` as a tool); the model may verify, choose, or do otherwise.
- **Hybrid.** Diagnosis: the rulebook's when one of its analyzers found a root cause, else the LLM's with the
  rulebook's findings as evidence. Mitigation: the rulebook's recipes while it has untried ones, else the LLM.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field

from stratus.contracts import DiagnoseRequest, DiagnosisReady, MitigateRequest
from stratus.reasoners.llm import LLMDiagnosisReasoner, LLMFailed, LLMMitigationReasoner
from stratus.reasoners.toolkit import Candidate
from stratus.reasoning import ClusterTools, DiagnosisReasoner, MitigationReasoner, MitigationResult, MitigationTools

log = logging.getLogger(__name__)

MIN_CONFIDENCE = 0.5


async def rulebook_candidates(tools: ClusterTools, scope: str, reflections: list[str]) -> list[Candidate]:
    """The rulebook's root-cause findings with a recipe, most confident first, leaving out fixes an aborted attempt
    already tried (the reflections name them)."""
    from stratus.reasoners.rulebook import analyze, plan_for
    from stratus.reasoners.rulebook.recipes import tried_before
    from stratus.reasoners.rulebook.snapshot import collect

    snap = await collect(tools, scope, with_traces=False)
    findings = sorted(analyze(snap), key=lambda f: (f.caused_by is not None, -f.confidence))
    out: list[Candidate] = []
    seen: set[str] = set()
    for f in findings:
        if f.caused_by is not None or f.confidence < MIN_CONFIDENCE:
            continue
        plan = plan_for(f, scope)
        if plan is None or plan.signature in seen or tried_before(plan, reflections):
            continue
        seen.add(plan.signature)
        what = f.evidence[0] if f.evidence else f.mechanism
        rc = f.root_cause
        fix = "; ".join(f"{a.verb} {a.target}" for a in [*plan.actions, *plan.then])
        summary = f"{f.component}: {what[:200]} [{rc.system_level} / {rc.fault_type}] -> fix: {fix}"
        if plan.note:
            summary += f" ({plan.note[:120]})"
        out.append(Candidate(len(out) + 1, summary, list(plan.actions), list(plan.then), plan.wait_for))
    return out


def _rulebook_diagnoser() -> DiagnosisReasoner:
    from stratus.reasoners.rulebook import RulebookDiagnosisReasoner

    return RulebookDiagnosisReasoner()


def _rulebook_mitigator() -> MitigationReasoner:
    from stratus.reasoners.rulebook import RulebookMitigationReasoner

    return RulebookMitigationReasoner()


@dataclass
class FallbackDiagnosisReasoner:
    """The LLM's diagnosis; the rulebook's when the LLM fails (or the failure, when ``fallback`` is off)."""

    llm: LLMDiagnosisReasoner
    fallback: bool = True
    rulebook: DiagnosisReasoner = field(default_factory=_rulebook_diagnoser)

    async def diagnose(self, request: DiagnoseRequest, tools: ClusterTools) -> DiagnosisReady:
        try:
            return await self.llm.diagnose(request, tools)
        except LLMFailed as exc:
            if not self.fallback:
                raise
            log.warning("%s: the LLM could not diagnose (%s); the rulebook does", request.incident_id, exc)
            return _with_note(await self.rulebook.diagnose(request, tools), f"the LLM failed: {exc}", exc)

    async def aclose(self) -> None:
        await self.llm.aclose()


def _with_note(d: DiagnosisReady, why: str, exc: LLMFailed | None = None) -> DiagnosisReady:
    usage = d.usage if exc is None else d.usage.model_copy(update={"llm_errors": exc.usage.llm_errors})
    if exc is not None:
        usage = usage.model_copy(
            update={
                "prompt_tokens": usage.prompt_tokens + exc.usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens + exc.usage.completion_tokens,
                "cost_usd": usage.cost_usd + exc.usage.cost_usd,
                "steps": usage.steps + exc.usage.steps,
                "max_prompt_tokens": exc.usage.max_prompt_tokens,
            }
        )
    return d.model_copy(update={"summary": f"{d.summary} (diagnosed by the rulebook: {why[:300]})", "usage": usage})


class FallbackMitigationReasoner:
    """The LLM's transaction; the rulebook's when the LLM fails in it, or has made no progress in
    ``after`` transactions of the incident (with ``fallback`` off: the failed transaction, with its reason)."""

    def __init__(
        self,
        llm: LLMMitigationReasoner,
        *,
        fallback: bool = True,
        after: int = 2,
        rulebook: MitigationReasoner | None = None,
    ) -> None:
        self.llm = llm
        self.fallback = fallback
        self.after = after
        self.rulebook = rulebook or _rulebook_mitigator()
        self._stalled: OrderedDict[str, int] = OrderedDict()

    async def mitigate(self, request: MitigateRequest, tools: MitigationTools) -> MitigationResult:
        stalled = self._stalled.get(request.incident_id, 0)
        if self.fallback and stalled >= self.after:
            result = await self.rulebook.mitigate(request, tools)
            why = f"the LLM made no progress in {stalled} transaction(s)"
            return _result_note(result, why)
        budget = tools.writes_left
        result = await self.llm.mitigate(request, tools)
        progress = not result.failed and tools.writes_left < budget
        self._remember(request.incident_id, 0 if progress else stalled + 1)
        if not result.failed or not self.fallback:
            return result
        log.warning(
            "%s: the LLM failed in %s (%s); the rulebook acts", request.incident_id, request.tx_id, result.reason
        )
        fallback = await self.rulebook.mitigate(request, tools)
        merged = fallback.usage.model_copy(
            update={
                "prompt_tokens": result.usage.prompt_tokens,
                "completion_tokens": result.usage.completion_tokens,
                "cost_usd": result.usage.cost_usd,
                "steps": result.usage.steps + fallback.usage.steps,
                "llm_errors": result.usage.llm_errors,
                "max_prompt_tokens": result.usage.max_prompt_tokens,
            }
        )
        return MitigationResult(
            done=fallback.done,
            reason=f"{fallback.reason} (the rulebook acted: {result.reason[:300]})",
            usage=merged,
            failed=fallback.failed,
        )

    def _remember(self, incident_id: str, stalled: int) -> None:
        self._stalled[incident_id] = stalled
        self._stalled.move_to_end(incident_id)
        while len(self._stalled) > 256:
            self._stalled.popitem(last=False)

    async def aclose(self) -> None:
        await self.llm.aclose()


def _result_note(result: MitigationResult, why: str) -> MitigationResult:
    return MitigationResult(
        done=result.done,
        reason=f"{result.reason} (the rulebook acted: {why})",
        usage=result.usage,
        failed=result.failed,
    )


@dataclass
class HybridDiagnosisReasoner:
    """The rulebook's diagnosis when an analyzer found a root cause; otherwise the LLM's (with the rulebook's
    findings in its prompt), and the rulebook's again if the LLM fails."""

    llm: FallbackDiagnosisReasoner
    rulebook: DiagnosisReasoner = field(default_factory=_rulebook_diagnoser)

    async def diagnose(self, request: DiagnoseRequest, tools: ClusterTools) -> DiagnosisReady:
        first = await self.rulebook.diagnose(request, tools)
        if first.root_cause is not None and first.localisation:
            return first
        log.info("%s: the rulebook found no root cause; asking the LLM", request.incident_id)
        evidence = list(dict.fromkeys([*request.evidence, *first.evidence]))[:16]
        return await self.llm.diagnose(request.model_copy(update={"evidence": evidence}), tools)

    async def aclose(self) -> None:
        await self.llm.aclose()


class HybridMitigationReasoner:
    """The rulebook's recipes while it has an untried one; then the LLM (which falls back as configured)."""

    def __init__(self, llm: FallbackMitigationReasoner, rulebook: MitigationReasoner | None = None) -> None:
        self.llm = llm
        self.rulebook = rulebook or _rulebook_mitigator()

    async def mitigate(self, request: MitigateRequest, tools: MitigationTools) -> MitigationResult:
        budget = tools.writes_left
        first = await self.rulebook.mitigate(request, tools)
        if tools.writes_left < budget:
            return first
        log.info("%s: the rulebook has nothing to do (%s); the LLM acts", request.incident_id, first.reason)
        return await self.llm.mitigate(request, tools)

    async def aclose(self) -> None:
        await self.llm.aclose()
