"""The chaos policy: random writes that are permitted (confined, undoable) and usually harmful.

It measures the safety net itself (DESIGN.md section 6): whatever these transactions do, the visible mu must never
exceed the baseline, because each is validated and undone when it does not help. Choices are seeded by the
transaction id, so a run can be replayed.
"""

from __future__ import annotations

import random
from typing import Any

from stratus.contracts import ActionSpec, MitigateRequest
from stratus.errors import PermanentError
from stratus.reasoning import MitigationResult, MitigationTools

Obj = dict[str, Any]


def _name(obj: Obj) -> str:
    return str(obj["metadata"]["name"])


def harmful_actions(
    rng: random.Random, namespace: str, deployments: list[Obj], services: list[Obj]
) -> list[ActionSpec]:
    """A menu of permitted, undoable, mostly harmful writes on the scope's objects."""
    menu: list[ActionSpec] = []
    for d in deployments:
        name = _name(d)
        containers = d["spec"]["template"]["spec"].get("containers") or []
        menu.append(ActionSpec(verb="scale", kind="Deployment", namespace=namespace, name=name, params={"replicas": 0}))
        if containers:
            c = containers[0]["name"]
            menu.append(
                ActionSpec(
                    verb="set_image",
                    kind="Deployment",
                    namespace=namespace,
                    name=name,
                    params={"images": {c: f"chaos/does-not-exist:{rng.randint(1, 999)}"}},
                )
            )
            menu.append(
                ActionSpec(
                    verb="patch",
                    kind="Deployment",
                    namespace=namespace,
                    name=name,
                    params={
                        "patch_type": "strategic",
                        "patch": {"spec": {"template": {"spec": {"nodeSelector": {"chaos": "nowhere"}}}}},
                    },
                )
            )
        menu.append(ActionSpec(verb="rollout_restart", kind="Deployment", namespace=namespace, name=name))
    for s in services:
        ports = s["spec"].get("ports") or []
        if ports and s["spec"].get("selector"):
            patched = [dict(p, targetPort=rng.randint(20000, 30000)) for p in ports]
            menu.append(
                ActionSpec(
                    verb="patch",
                    kind="Service",
                    namespace=namespace,
                    name=_name(s),
                    params={"patch_type": "merge", "patch": {"spec": {"ports": patched}}},
                )
            )
    return menu


class ChaosMitigationReasoner:
    def __init__(self, seed: int = 0, max_writes: int = 3) -> None:
        self.seed = seed
        self.max_writes = max_writes

    async def mitigate(self, request: MitigateRequest, tools: MitigationTools) -> MitigationResult:
        rng = random.Random(f"{self.seed}:{request.tx_id}")
        deployments = await tools.list_objects("Deployment", request.scope)
        services = await tools.list_objects("Service", request.scope)
        menu = harmful_actions(rng, request.scope, deployments, services)
        chosen = rng.sample(menu, k=min(len(menu), rng.randint(1, self.max_writes), tools.writes_left))
        notes = []
        for spec in chosen:
            try:
                notes.append(await tools.execute(spec))
            except PermanentError as exc:
                notes.append(f"refused: {exc}")
        return MitigationResult(done=True, reason=f"chaos: {len(chosen)} write(s)")
