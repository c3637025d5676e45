"""The planning gateway against the arena: every write is dry-run on the server and recorded with its diff and undo,
none reaches the API server as a real write, and the plan's refusals are those the write path would make."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from arena.server import ArenaServer
from stratus.actions import Delete, Scale, SetImage
from stratus.confinement import Refusal
from stratus.contracts import Action, Lease, MitigateRequest, utcnow
from stratus.errors import PermanentError
from stratus.gateway import KubeApi
from stratus.planning import ApprovedPlanReasoner, PlanningGateway, object_diff
from tests.integration.test_gateway import deployment, settled

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.fixtures_arena"]


@pytest.fixture
async def ns(arena_kubeconfig: Path, uid: str) -> AsyncIterator[str]:
    name = f"plan-{uid}"
    api = KubeApi.from_kubeconfig(arena_kubeconfig)
    await asyncio.to_thread(api.create, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    await asyncio.to_thread(api.create, deployment("web", name))
    await settled(api, name, "web")
    yield name
    api.close()


def lease(scope: str) -> Lease:
    return Lease(scope=scope, holder="test", token=1, expires_at=utcnow())


async def test_a_plan_is_validated_on_the_server_and_writes_nothing(
    arena: ArenaServer, arena_kubeconfig: Path, ns: str
) -> None:
    api = KubeApi.from_kubeconfig(arena_kubeconfig)
    gateway = PlanningGateway(api, lease=lease(ns), max_writes=2, default_namespace=ns)
    seen = len(arena.api.requests)
    result = await gateway.write(SetImage(kind="Deployment", namespace=ns, name="web", images={"app": "x:2"}))
    assert result.ok and not result.executed and "Planned, not executed" in result.message
    scaled = await gateway.write(Scale(kind="Deployment", namespace=ns, name="web", replicas=3))
    assert scaled.ok
    with pytest.raises(Refusal, match="K=2"):
        await gateway.write(Scale(kind="Deployment", namespace=ns, name="web", replicas=4))
    requests = list(arena.api.requests)[seen:]
    assert requests and all(r.dry_run for r in requests), requests
    live = await asyncio.to_thread(api.get, "Deployment", ns, "web")
    assert live is not None and live["spec"]["replicas"] == 2
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    first, second = gateway.planned
    changed = [line.split() for line in first.diff.splitlines() if line[:1] in "+-" and "image:" in line]
    assert changed == [["-", "image:", "nginx:1.25"], ["+", "image:", "x:2"]], first.diff
    assert ["+", "replicas:", "3"] in [line.split() for line in second.diff.splitlines()]
    assert first.undo[0].verb == "replace"
    api.close()


async def test_a_failing_dry_run_or_another_scope_is_not_planned(arena_kubeconfig: Path, ns: str) -> None:
    api = KubeApi.from_kubeconfig(arena_kubeconfig)
    gateway = PlanningGateway(api, lease=lease(ns), max_writes=5, default_namespace=ns)
    missing = await gateway.write(Scale(kind="Deployment", namespace=ns, name="nope", replicas=1))
    assert not missing.ok and "Dry run failed" in missing.message
    with pytest.raises(Refusal, match="lease covers scope"):
        await gateway.write(Scale(kind="Deployment", namespace="elsewhere", name="web", replicas=1))
    assert gateway.planned == []
    api.close()


async def test_the_approved_plan_runs_verbatim_and_stops_at_a_failure(arena_kubeconfig: Path, ns: str) -> None:
    class Tools:
        def __init__(self) -> None:
            self.ran: list[Action] = []

        async def execute(self, action: Action) -> str:
            if action.name == "bad":
                raise PermanentError("refused")
            self.ran.append(action)
            return "ok"

    good = Scale(kind="Deployment", namespace=ns, name="web", replicas=1)
    bad = Delete(kind="Deployment", namespace=ns, name="bad")
    tools = Tools()
    request = MitigateRequest(incident_id="i", scope=ns, tx_id="t", attempt=1, lease=lease(ns), plan=[good, bad, good])
    result = await ApprovedPlanReasoner().mitigate(request, tools)  # type: ignore[arg-type]
    assert result.failed and "delete Deployment" in result.reason and tools.ran == [good]


def test_a_diff_never_shows_a_secret_value() -> None:
    before = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"password": "b2xk"}}
    after = {**before, "data": {"password": "bmV3"}}
    text = object_diff(before, after)
    assert "b2xk" not in text and "bmV3" not in text and text
