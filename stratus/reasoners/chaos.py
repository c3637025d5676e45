"""The chaos policy: random writes that are permitted (confined, undoable) and usually harmful.

It measures the safety net itself (DESIGN.md section 6): whatever these transactions do, the visible mu must never
exceed the baseline, because each is validated and undone when it does not help. Choices are seeded by the
transaction id, so a run can be replayed.
"""

from __future__ import annotations

import random
from typing import Any

from stratus.actions import Action, parse_action
from stratus.contracts import MitigateRequest
from stratus.errors import PermanentError
from stratus.reasoning import MitigationResult, MitigationTools

Obj = dict[str, Any]


def _name(obj: Obj) -> str:
    return str(obj["metadata"]["name"])


def harmful_actions(
    rng: random.Random, namespace: str, deployments: list[Obj], services: list[Obj], pods: list[Obj] | None = None
) -> list[Action]:
    """A menu of permitted, undoable, mostly harmful writes on the scope's objects: scales, image and env changes,
    patches, restarts, deletes and creates."""
    menu: list[Action] = []

    def add(verb: str, kind: str, name: str | None, **params: Any) -> None:
        menu.append(parse_action({**params, "verb": verb, "kind": kind, "namespace": namespace, "name": name}))

    for d in deployments:
        name = _name(d)
        containers = d["spec"]["template"]["spec"].get("containers") or []
        add("scale", "Deployment", name, replicas=rng.choice([0, 3]))
        add("rollout_restart", "Deployment", name)
        if containers:
            c = containers[0]["name"]
            add("set_image", "Deployment", name, images={c: f"chaos/does-not-exist:{rng.randint(1, 999)}"})
            add("set_env", "Deployment", name, container=c, env={"CHAOS_MODE": str(rng.randint(1, 999))})
            add(
                "patch",
                "Deployment",
                name,
                patch_type="strategic",
                patch={"spec": {"template": {"spec": {"nodeSelector": {"chaos": "nowhere"}}}}},
            )
    for svc in services:
        ports = svc["spec"].get("ports") or []
        if ports and svc["spec"].get("selector"):
            patched = [dict(p, targetPort=rng.randint(20000, 30000)) for p in ports]
            add("patch", "Service", _name(svc), patch_type="merge", patch={"spec": {"ports": patched}})
            add("delete", "Service", _name(svc))
    for pod in pods or []:
        add("delete", "Pod", _name(pod))
    suffix = rng.randint(1000, 9999)
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"chaos-{suffix}", "namespace": namespace},
        "data": {"chaos": "yes"},
    }
    add("create", "ConfigMap", f"chaos-{suffix}", manifest=manifest)
    labels = {"app": f"chaos-{suffix}"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"chaos-{suffix}", "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "chaos", "image": "chaos/does-not-exist:latest"}]},
            },
        },
    }
    add("create", "Deployment", f"chaos-{suffix}", manifest=deployment)
    return menu


class ChaosMitigationReasoner:
    def __init__(self, seed: int = 0, max_writes: int = 3) -> None:
        self.seed = seed
        self.max_writes = max_writes

    async def mitigate(self, request: MitigateRequest, tools: MitigationTools) -> MitigationResult:
        rng = random.Random(f"{self.seed}:{request.tx_id}")
        deployments = await tools.list_objects("Deployment", request.scope)
        services = await tools.list_objects("Service", request.scope)
        pods = await tools.list_objects("Pod", request.scope)
        menu = harmful_actions(rng, request.scope, deployments, services, pods)
        chosen = rng.sample(menu, k=min(len(menu), rng.randint(1, self.max_writes), tools.writes_left))
        notes = []
        for spec in chosen:
            try:
                notes.append(await tools.execute(spec))
            except PermanentError as exc:
                notes.append(f"refused: {exc}")
        return MitigationResult(done=True, reason=f"chaos: {len(chosen)} write(s)")
