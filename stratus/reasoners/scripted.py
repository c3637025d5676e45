"""A mitigation policy read from a file: the actions of each attempt, in order.

It drives the mitigator before (and beside) the real reasoners: tests and benchmarks use it to issue known-good or
known-bad transactions. A step is a kubectl command line (run through the confined kubectl tool) or a typed action
(``{verb, kind, namespace, name, params}``)::

    attempts:
      - ["kubectl -n ns scale deployment user-service --replicas=0"]   # attempt 1: harmful
      - [{pause: 2}, "kubectl -n ns scale deployment user-service --replicas=1"]   # attempt 2: the fix
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field

from stratus.contracts import Action, MitigateRequest
from stratus.errors import PermanentError
from stratus.reasoning import MitigationResult, MitigationTools


class Pause(BaseModel):
    """Wait between steps (tests and benchmarks use it to act on a transaction in flight)."""

    pause: float = Field(ge=0, le=600, description="Seconds to wait.")


Step = str | Pause | Action


class ScriptedPlan(BaseModel):
    attempts: list[list[Step]] = Field(description="The steps of attempt 1, 2, ...; attempts past the end do nothing.")

    @classmethod
    def load(cls, path: str | Path) -> ScriptedPlan:
        try:
            data: Any = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise PermanentError(f"cannot read the scripted plan {path}: {exc}") from exc
        return cls.model_validate(data)


class ScriptedMitigationReasoner:
    def __init__(self, plan: ScriptedPlan, path: str | Path | None = None) -> None:
        self.plan = plan
        self.path = path

    @classmethod
    def from_file(cls, path: str | Path) -> ScriptedMitigationReasoner:
        """Read (and check) the plan now, and again at each mitigation: a benchmark may write the plan of a scenario
        once its fault is injected (pod names are known only then)."""
        return cls(ScriptedPlan.load(path), path)

    async def mitigate(self, request: MitigateRequest, tools: MitigationTools) -> MitigationResult:
        if self.path is not None:
            self.plan = ScriptedPlan.load(self.path)
        if request.attempt > len(self.plan.attempts):
            return MitigationResult(done=True, reason=f"the plan has no attempt {request.attempt}")
        notes: list[str] = []
        for step in self.plan.attempts[request.attempt - 1]:
            if isinstance(step, Pause):
                await asyncio.sleep(step.pause)
            elif isinstance(step, str):
                notes.append(await tools.kubectl(step))
            else:
                try:
                    notes.append(await tools.execute(step))
                except PermanentError as exc:
                    notes.append(f"refused: {exc}")
        return MitigationResult(done=True, reason="; ".join(n.splitlines()[0] for n in notes if n)[:500])
