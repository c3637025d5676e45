"""The object the API server acted on is the object confinement examined (the arena's request log), and hostile
identities never reach the server."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from arena.api.app import RequestRecord
from arena.server import ArenaServer
from stratus.actions import Action, Delete, Patch, Scale, SetImage
from stratus.gateway import KubeApi
from tests.integration.test_gateway import Fence, Journal, configmap, deployment, settled, writer

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.fixtures_arena"]

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


def writes_since(arena: ArenaServer, mark: int) -> list[RequestRecord]:
    return [r for r in list(arena.api.request_log)[mark:] if r.method in MUTATING]


async def test_the_server_acts_on_the_examined_object(arena: ArenaServer, arena_kubeconfig: Path) -> None:
    ns = f"id-{uuid.uuid4().hex[:8]}"
    victim = f"victim-{uuid.uuid4().hex[:8]}"
    api = KubeApi.from_kubeconfig(arena_kubeconfig)
    for name in (ns, victim):
        await asyncio.to_thread(api.create, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        await asyncio.to_thread(api.create, configmap("conf", name))
    await asyncio.to_thread(api.create, deployment("web", ns, replicas=1))
    await settled(api, ns, "web")
    journal, fence = Journal(), Fence()
    gw = writer(arena_kubeconfig, ns, journal, fence)
    actions: list[Action] = [
        Scale(kind="Deployment", namespace=ns, name="web", replicas=2),
        Patch(kind="ConfigMap", namespace=ns, name="conf", patch={"data": {"k": "w"}}),
        SetImage(kind="Deployment", namespace=ns, name="web", images={"app": "nginx:1.27"}),
        Delete(kind="ConfigMap", namespace=ns, name="conf"),
    ]
    for action in actions:
        mark = len(arena.api.request_log)
        result = await gw.write(action)
        assert result.ok, result.message
        sent = writes_since(arena, mark)
        assert [r.dry_run for r in sent] == [True, False], sent
        dry, real = sent
        for r in sent:
            assert (r.kind, r.namespace, r.name) == (action.kind, action.namespace, action.name), r
        assert dry.raw_path == real.raw_path and dry.method == real.method
        assert [q for q in dry.query if q[0] != "dryRun"] == [q for q in real.query if q[0] != "dryRun"]
        if action.kind == "Deployment":
            await settled(api, ns, "web")

    mark = len(arena.api.request_log)
    hostile = [
        f"kubectl delete configmap ../../../namespaces/{victim} -n {ns}",
        f"kubectl delete configmap ..%2F..%2F..%2Fnamespaces%2F{victim} -n {ns}",
        f"kubectl scale deploy web# --replicas=0 -n {ns}",
        f"kubectl scale deploy 'web?dryRun=All' --replicas=0 -n {ns}",
        f'kubectl patch cm conf -n {ns}/../{victim} -p \'{{"data":{{"k":"x"}}}}\'',
        f"kubectl delete cm c\u043enf -n {victim}",
    ]
    for line in hostile:
        out = await gw.kubectl(line, namespace=ns)
        assert "refused" in out.lower() or "not a" in out.lower(), (line, out)
    assert writes_since(arena, mark) == []
    assert await asyncio.to_thread(api.get, "ConfigMap", victim, "conf") is not None
    assert await asyncio.to_thread(api.get, "Namespace", None, victim) is not None
    dep = await asyncio.to_thread(api.get, "Deployment", ns, "web")
    assert dep is not None and dep["spec"]["replicas"] == 2
    gw.close()
    api.close()
