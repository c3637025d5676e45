"""Plans without writes (the ``approve`` and ``shadow`` modes), and running a plan a human approved.

Why it is shaped this way:

- **The plan comes from the same reasoner, through the same pipeline.** ``PlanningGateway`` is a ``WriteGateway``
  whose write stops after the validation half of R2: confinement, the lease's scope, the bound K, the server-side dry
  run (``dryRun=All``), the pre-image, the ready-capacity guard and the undo record all run exactly as they would in
  ``auto``; the journal, the fence and the write itself never do. So a plan holds only writes that ``auto`` would
  have been allowed to send, and a refusal in planning is the refusal ``auto`` would have met.
- **Nothing a plan records can write.** The planning gateway has no journal and a fence that always refuses, so even
  a path that reached the write step by mistake could not send anything.
- **Each write is dry-run against the live object.** Writes of one plan are not applied to each other while
  planning (that would need the first to happen): a plan that patches one object twice shows each patch against the
  live state. When the approved plan runs, every write is dry-run again against the state of that moment.
- **An approved plan is run verbatim** by ``ApprovedPlanReasoner``: the same writes, in order, through the ordinary
  transaction tools (journal, fence, hidden mu-path), and the transaction is validated and undone like any other: an
  approval does not suspend TNR.
"""

from __future__ import annotations

import difflib
from typing import Any

import yaml

from stratus.actions import Action, Apply, Replace, RolloutRestart, RolloutUndo, SetEnv, SetImage
from stratus.confinement import Refusal, confine_action
from stratus.contracts import Lease, MitigateRequest, PlannedAction
from stratus.digest import normalise
from stratus.disruption import ready_capacity_loss
from stratus.errors import PermanentError
from stratus.gateway import KubeApi, KubeApiError, WriteGateway, WriteResult
from stratus.reasoning import MitigationResult, MitigationTools, scrub

Obj = dict[str, Any]
MAX_DIFF_CHARS = 6000


async def _never(_scope: str, _token: int) -> bool:
    return False


class PlanningGateway(WriteGateway):
    """A write face that validates each write on the server and records it in ``planned``; it never writes."""

    def __init__(self, api: KubeApi, *, lease: Lease, max_writes: int | None, default_namespace: str) -> None:
        super().__init__(
            api, lease=lease, check_fence=_never, max_writes=max_writes, default_namespace=default_namespace
        )
        self.planned: list[PlannedAction] = []

    async def _write(self, action: Action) -> WriteResult:
        confine_action(action, "write")
        self._check_scope(action)
        if self.max_writes is not None and self.writes >= self.max_writes:
            raise Refusal(
                f"Write operation '{action.verb}' refused: this plan already holds {self.writes} writes, its bound "
                f"K={self.max_writes}. End the transaction.",
                rule="risk_window",
            )
        spec = action
        try:
            needs_basis = isinstance(action, (Apply, Replace, SetImage, SetEnv, RolloutRestart, RolloutUndo))
            basis = await self._call(self._pre_image_sync, action) if needs_basis else None
            dry = await self._send(action, basis, dry_run=True)
        except KubeApiError as exc:
            return WriteResult(ok=False, action=spec, executed=False, message=f"Dry run failed, nothing planned: {exc}")
        pre: Obj | None = await self._call(self._pre_image_sync, action)
        after = dry if isinstance(dry, dict) else None
        loss = ready_capacity_loss(action.verb, action.kind, pre, after)
        if loss:
            raise Refusal(f"Write operation '{action.verb}' on {action.target} refused: {loss}", rule="ready_capacity")
        undo, note = await self._call(self._undo_for_sync, action, pre)
        if undo is None:
            raise Refusal(
                f"Write operation '{action.verb}' on {action.target} refused: {note} Every write needs a recorded "
                "undo; choose an action whose effect can be reverted.",
                rule="no_undo",
            )
        self.writes += 1
        deleted = action.verb == "delete"
        self.planned.append(
            PlannedAction(action=spec, diff=object_diff(pre, None if deleted else after), undo=undo, note=note)
        )
        message = f"Planned, not executed (the server's dry run passed): {action.verb} {action.target}; {note}"
        return WriteResult(ok=True, action=spec, executed=False, message=message, undo=undo)


def object_diff(before: Obj | None, after: Obj | None) -> str:
    """A unified diff of an object's declared state (``digest.normalise``: no status, no server fields, Secret
    values hashed), with anything that looks like a credential scrubbed; capped at ``MAX_DIFF_CHARS``."""
    if after is not None and (not after.get("metadata") or (before and after.get("kind") != before.get("kind"))):
        after = None if before is None else before  # not an object of the same kind (a Status, an exec answer)
    old = _lines(before)
    new = _lines(after)
    text = "".join(difflib.unified_diff(old, new, fromfile="live", tofile="after (server dry run)"))
    text = scrub(text)
    return text if len(text) <= MAX_DIFF_CHARS else text[:MAX_DIFF_CHARS] + "\n... (diff truncated)\n"


def _lines(obj: Obj | None) -> list[str]:
    if obj is None:
        return []
    return yaml.safe_dump(normalise(obj), sort_keys=True, default_flow_style=False).splitlines(keepends=True)


class ApprovedPlanReasoner:
    """Runs ``request.plan`` verbatim through the transaction tools; stops at the first write that fails."""

    async def mitigate(self, request: MitigateRequest, tools: MitigationTools) -> MitigationResult:
        notes: list[str] = []
        for spec in request.plan or []:
            try:
                notes.append(await tools.execute(spec))
            except PermanentError as exc:
                return MitigationResult(
                    done=False, failed=True, reason=f"the approved plan failed at {_name(spec)}: {exc}"
                )
        return MitigationResult(done=True, reason=f"ran the approved plan ({len(notes)} write(s))")


def _name(spec: Action) -> str:
    return f"{spec.verb} " + "/".join(p for p in (spec.kind, spec.namespace, spec.name) if p)
