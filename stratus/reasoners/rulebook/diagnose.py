"""The rulebook's diagnosis: analyzers' findings, cross-checked with the failures the traces start from.

The analyzers say *what* is wrong in Kubernetes terms; the traces (``stratus.reasoners.bootstrap``) say *where*
requests start failing. A finding whose component the traces also blame ranks first; trace hypotheses no finding
explains come next (a fault the rulebook has no analyzer for still gets localised); symptoms last.
"""

from __future__ import annotations

from stratus.contracts import DiagnoseRequest, DiagnosisReady, Usage
from stratus.lastgood import LastGoodSource
from stratus.reasoners.bootstrap import CallGraph, Hypothesis, build_call_graph
from stratus.reasoners.rulebook.analyzers import Finding, analyze
from stratus.reasoners.rulebook.changes import change_findings
from stratus.reasoners.rulebook.recipes import plan_for
from stratus.reasoners.rulebook.snapshot import Snapshot, collect, name_of
from stratus.reasoning import ClusterTools
from stratus.writepolicy import WritePolicy

MAX_LOCALISATION = 3
MAX_EVIDENCE = 12


def trace_component(snap: Snapshot, h: Hypothesis) -> str:
    """The Kubernetes component a trace hypothesis designates (by its pods, or a Service of that name)."""
    for pod_name in h.pods:
        pod = snap.get("Pod", pod_name)
        owner = snap.owner_workload(pod) if pod else None
        if owner is not None:
            return snap.component_of(owner)
    for candidate in (h.service, h.service.removeprefix("srv-")):
        svc = snap.service_for_host(candidate)
        if svc is not None:
            return name_of(svc)
    return h.service


def rank(snap: Snapshot, findings: list[Finding], graph: CallGraph) -> list[str]:
    """Components, most likely first.

    With root-cause findings: those (the ones the traces also blame first). Without: where the traces say failures
    start, then the components symptoms point at. A short list on purpose: every extra name dilutes localisation.
    """
    blamed = [trace_component(snap, h) for h in graph.hypotheses]
    roots = [f for f in findings if f.caused_by is None and f.confidence >= 0.5]
    roots.sort(key=lambda f: -(f.confidence + (0.05 if f.component in blamed[:3] else 0.0)))
    order = [f.component for f in roots] if roots else blamed + [f.caused_by or f.component for f in findings]
    out: list[str] = []
    for c in order:
        if c and c not in out:
            out.append(c)
    return out


def describe(finding: Finding, namespace: str, scope: str, policy: WritePolicy | None = None) -> tuple[str, list[str]]:
    """A one-line summary of a finding with its recommended fix, and notes on that fix: a write outside the
    incident's scope needs a wider lease, and one the write policy does not allow needs an operator's grant first."""
    plan = plan_for(finding, namespace)
    rc = finding.root_cause
    line = f"{finding.evidence[0] if finding.evidence else finding.mechanism} ({rc.system_level}/{rc.fault_type})"
    notes: list[str] = []
    if plan is not None:
        line += f"; fix: {plan.signature}" + (f" ({plan.note})" if plan.note else "")
        for action in [*plan.actions, *plan.then]:
            if action.scope == scope:
                continue
            grant = (policy or WritePolicy()).operator_grant(action.scope, action.kind, action.verb)
            if grant:
                notes.append(
                    f"the fix writes {action.target}, which the write policy refuses: an operator must add to "
                    f"STRATUS_WRITE_POLICY {grant}, and list '{action.scope}' in STRATUS_LEASE_WIDENING_SCOPES "
                    "if it is not there"
                )
            else:
                notes.append(
                    f"the fix writes {action.target}, which needs a writer on scope '{action.scope}' (the lease "
                    f"widens there when STRATUS_LEASE_WIDENING_SCOPES lists it)"
                )
        if any("an operator must add" in n for n in notes):
            line += "; needs an operator's grant (see the evidence)"
    return line, notes


class RulebookDiagnosisReasoner:
    """Generic Kubernetes analyzers plus trace bootstrapping; the default diagnosis reasoner without an LLM."""

    def __init__(self, lastgood: LastGoodSource | None = None, policy: WritePolicy | None = None) -> None:
        self.lastgood = lastgood
        self.policy = policy
        """The write policy the fixes are judged by (default: this process's ``STRATUS_WRITE_POLICY``)."""

    async def diagnose(self, request: DiagnoseRequest, tools: ClusterTools) -> DiagnosisReady:
        snap = await collect(tools, request.scope)
        policy = self.policy or WritePolicy.configured()
        return diagnose_snapshot(request, snap, await change_findings(self.lastgood, tools, snap), policy)


def diagnose_snapshot(
    request: DiagnoseRequest,
    snap: Snapshot,
    changes: list[Finding] | None = None,
    policy: WritePolicy | None = None,
) -> DiagnosisReady:
    findings = sorted(analyze(snap) + (changes or []), key=lambda f: (f.caused_by is not None, -f.confidence))
    graph = build_call_graph(snap.traces)
    localisation = rank(snap, findings, graph)[:MAX_LOCALISATION]
    evidence: list[str] = []
    summary_lines: list[str] = []
    roots = [f for f in findings if f.caused_by is None and f.confidence >= 0.5]
    for f in roots[:3]:
        line, notes = describe(f, snap.namespace, request.scope, policy)
        summary_lines.append(line)
        evidence += [*f.evidence, *notes]
    for h in graph.hypotheses[:3]:
        where = f"{h.service} {h.operation}".strip()
        what = "calls slow down" if h.signal == "latency" else "failures start"
        evidence.append(f"traces: {what} at {where} in {h.traces} of {graph.total_traces} traces")
        evidence += h.evidence[:1]
    for f in findings:
        if f not in roots[:3]:
            evidence += f.evidence[:1]
    evidence += [f"read error: {e}" for e in snap.read_errors[:2]]
    deduped = list(dict.fromkeys(evidence))[:MAX_EVIDENCE]
    top = roots[0] if roots else (findings[0] if findings else None)
    if top is not None:
        summary = "; ".join(summary_lines) or describe(top, snap.namespace, request.scope, policy)[0]
    elif graph.hypotheses:
        what = "calls slowing down" if graph.hypotheses[0].signal == "latency" else "failures starting"
        summary = f"no Kubernetes-level cause found; traces show {what} at {localisation[0]}"
    else:
        summary = "no fault found: no analyzer matched and no trace failed"
    return DiagnosisReady(
        incident_id=request.incident_id,
        localisation=localisation,
        root_cause=top.root_cause if top else None,
        summary=summary,
        evidence=deduped,
        usage=Usage(steps=len(findings)),
    )
