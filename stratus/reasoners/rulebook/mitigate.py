"""The rulebook's mitigation: read the scope, find root causes, run their recipes as one transaction.

Why it re-reads instead of trusting the diagnosis alone: an attempt after an abort starts from the restored state,
and the diagnosis may be minutes old; the analyzers are cheap. The diagnosis still orders the plans (its first
component first). Plans are run root causes first; a plan whose first write an aborted attempt already tried (the
reflections) is skipped; a blind restart runs only when nothing better is left. With a last-known-good snapshot
(``changes``), an object an analyzer blames is first put back as it was when healthy (history beats inference), and
when no analyzer has a fix the changes tied to the incident are reverted one per transaction. Every write goes through
``tools.execute`` (confinement, dry run, journal, lease), and a refusal is recorded and the next plan tried: a fix that
needs a cluster-scoped write under a namespace lease is reported as such, not forced.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from stratus.actions import Action, RolloutRestart
from stratus.contracts import MitigateRequest
from stratus.errors import PermanentError
from stratus.lastgood import LastGoodSource
from stratus.reasoners.rulebook.analyzers import Finding, analyze
from stratus.reasoners.rulebook.changes import change_findings
from stratus.reasoners.rulebook.recipes import Plan, plan_for, tried_before
from stratus.reasoners.rulebook.snapshot import Snapshot, collect
from stratus.reasoning import MitigationResult, MitigationTools

MIN_CONFIDENCE = 0.5
REVERT = "revert_change"


def choose_plans(findings: list[Finding], namespace: str, reflections: list[str], first: str | None) -> list[Plan]:
    """The plans to run, in order: root causes (diagnosed component first), then a restart only as a last resort."""
    plans: list[Plan] = []
    signatures: set[tuple[str, str]] = set()
    ordered = sorted(findings, key=lambda f: (f.caused_by is not None, f.component != first, -f.confidence))
    for f in ordered:
        if f.confidence < MIN_CONFIDENCE and f.mechanism != "crash_loop":
            continue
        plan = plan_for(f, namespace)
        if plan is None or (plan.signature, plan.marker) in signatures:
            continue
        signatures.add((plan.signature, plan.marker))
        plans.append(plan)
    fresh = [p for p in plans if not tried_before(p, reflections)]
    roots = [p for p in fresh if not p.last_resort and p.recipe != REVERT]
    # Changes on the component the diagnosis localised first (traces and changes together) are reverted first.
    reverts = sorted(
        (p for p in fresh if p.recipe == REVERT),
        key=lambda p: (
            bool(p.finding.facts.get("hides")),  # a revert that would only hide the fault, after every other
            p.finding.component != first,
            int(p.finding.facts.get("rank", 0)),
        ),
    )
    if roots and reverts:
        roots = _history_first(roots, reverts, [p for p in plans if p.recipe == REVERT and p not in fresh])
    if roots:
        chosen = roots
    elif reverts:
        chosen = reverts[:1]  # one change per transaction: a revert that does not help is undone alone
    else:
        explained = {f.component for f in findings if not f.caused_by and f.mechanism != "crash_loop"}
        chosen = [p for p in fresh if p.last_resort and p.finding.component not in explained][:1]
    _add_client_restarts(chosen, findings, namespace)
    return chosen


def _object(target: str) -> tuple[str, str]:
    """``Kind/name`` of an analyzer's target or a change's ``Kind/namespace/name``, as (kind, name)."""
    parts = target.split("/")
    return parts[0], parts[-1]


def _history_first(roots: list[Plan], reverts: list[Plan], tried: list[Plan]) -> list[Plan]:
    """An analyzer's fix invents a value; the last healthy state of the very object it blames is known. So the
    object's best-ranked change is reverted instead, once: if that revert was tried and undone, the analyzer's fix
    runs."""
    done = {key for p in tried for key in _objects(p)}
    best: dict[tuple[str, str], Plan] = {}
    for p in reverts:
        for key in _objects(p):
            best.setdefault(key, p)
    out: list[Plan] = []
    for p in roots:
        keys = [k for k in _blamed(p.finding) if k in best and k not in done]
        chosen = best[keys[0]] if keys else p
        if chosen not in out:
            out.append(chosen)
    return out


def _objects(plan: Plan) -> list[tuple[str, str]]:
    """The objects a revert puts back: its finding's target, and others of that kind it reverts with it (the nodes of
    one taint change), not the follow-up restarts of other kinds."""
    keys = [_object(plan.finding.target)]
    keys += [(str(a.kind), str(a.name)) for a in plan.actions if getattr(a, "kind", None) == keys[0][0] and a.name]
    return list(dict.fromkeys(keys))


def _blamed(finding: Finding) -> list[tuple[str, str]]:
    """The objects whose history may replace a finding's fix, most telling first: the nodes whose taints keep its
    pods off (a taint set since the healthy state is removed rather than tolerated: the pods' old tolerations never
    covered it), then the object it blames."""
    nodes = [("Node", str(n)) for n in finding.facts.get("tainted_nodes") or []]
    return [*nodes, _object(finding.target)]


def _add_client_restarts(plans: list[Plan], findings: list[Finding], namespace: str) -> None:
    """Clients that crashed because an upstream was down are restarted after the upstream's fix."""
    for f in findings:
        if f.mechanism != "upstream_unavailable" or not f.facts.get("client"):
            continue
        for plan in plans:
            if plan.finding.component != f.caused_by:
                continue
            restart = RolloutRestart(kind="Deployment", namespace=namespace, name=f.facts["client"])
            if all(a.target != restart.target for a in plan.then):
                plan.then.append(restart)
                plan.wait_for = plan.wait_for or f.caused_by


@dataclass
class _Run:
    """The running tally of one transaction."""

    budget: int
    scope: str
    written: int = 0
    notes: list[str] = field(default_factory=list)
    needs: set[str] = field(default_factory=set)


class RulebookMitigationReasoner:
    """Generic Kubernetes fix recipes; the default mitigation reasoner when no LLM is configured."""

    def __init__(
        self, *, settle_timeout_s: float = 30.0, poll_s: float = 1.0, lastgood: LastGoodSource | None = None
    ) -> None:
        self.settle_timeout_s = settle_timeout_s
        self.poll_s = poll_s
        self.lastgood = lastgood

    async def mitigate(self, request: MitigateRequest, tools: MitigationTools) -> MitigationResult:
        namespace = request.scope
        snap = await collect(tools, namespace, with_traces=False)
        findings = analyze(snap) + await change_findings(self.lastgood, tools, snap)
        first = request.diagnosis.localisation[0] if request.diagnosis and request.diagnosis.localisation else None
        plans = choose_plans(findings, namespace, request.reflections, first)
        if not plans:
            skipped = [p for f in findings if (p := plan_for(f, namespace)) and tried_before(p, request.reflections)]
            why = "no finding has a recipe" if findings else "no Kubernetes-level fault found in the scope"
            if skipped:
                why = f"every recipe was tried by an aborted attempt ({', '.join(p.signature for p in skipped)})"
            return MitigationResult(done=True, reason=f"rulebook: nothing to do: {why}")
        run = _Run(budget=request.max_actions, scope=request.lease.scope)
        for plan in plans:
            if not await self._run(plan.actions, tools, run):
                continue
            follow = [a for a in plan.then if a.scope == run.scope]
            run.needs |= {a.scope for a in plan.then if a.scope != run.scope}
            if follow and run.budget > 0:
                if plan.wait_for:
                    await self._settle(tools, snap, plan.wait_for)
                await self._run(follow, tools, run)
        head = f"needs a writer on scope {', '.join(sorted(run.needs))}; " if run.needs else ""
        return MitigationResult(done=run.written > 0, reason=f"rulebook: {head}" + "; ".join(run.notes))

    async def _run(self, actions: list[Action], tools: MitigationTools, run: _Run) -> bool:
        """Run writes in order; stop the list at the first refusal. True when every write ran."""
        for action in actions:
            if run.budget <= 0 or tools.writes_left <= 0:
                run.notes.append(f"stopped before {action.verb} {action.target}: the transaction's bound K is reached")
                return False
            try:
                message = await tools.execute(action)
            except PermanentError as exc:
                if action.scope != run.scope:
                    run.needs.add(action.scope)
                run.notes.append(f"{action.verb} {action.target} refused: {str(exc).splitlines()[0][:200]}")
                return False
            run.budget -= 1
            run.written += 1
            first_line = str(message).splitlines()[0][:160] if message else "ok"
            run.notes.append(f"{action.verb} {action.target}: {first_line}")
        return True

    async def _settle(self, tools: MitigationTools, snap: Snapshot, service: str) -> None:
        """Wait (bounded) until ``service`` has a ready endpoint, so restarted clients find their upstream up."""
        deadline = time.monotonic() + self.settle_timeout_s
        while time.monotonic() < deadline:
            try:
                ep = await tools.get_object("Endpoints", snap.namespace, service)
                if ep is None or any(s.get("addresses") for s in ep.get("subsets") or []):
                    return
            except Exception:  # a read failing while things restart: keep waiting until the deadline
                pass
            await asyncio.sleep(self.poll_s)
