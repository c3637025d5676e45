"""Operator modes end to end on the arena (the six services as processes, the rulebook reasoner).

- approve: nothing reaches the API server as a write before the approval; a denial escalates; an approved plan runs
  and commits under TNR.
- shadow: the plan is dry-run and recorded, zero writes reach the API server, and the plan is what auto runs on the
  same fault at the same time.
- observe: the incident is diagnosed and escalated; no mitigation request is ever sent.

Writes are counted from the arena's request log (every POST, PUT, PATCH, DELETE and exec it received).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from arena.server import ArenaServer
from stratus.actions import parse_action
from stratus.bus import Bus
from stratus.localinfra import LocalServer, free_port
from tests.e2e.harness import Timeline, baseline, running_system
from tests.e2e.shop import deploy_shop, replicas, scale

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STRATUS = str(Path(sys.executable).parent / "stratus")
TOKEN = "e2e-approval-token"


def writes(arena: ArenaServer, ns: str, since: int) -> list[str]:
    """Requests after ``since`` that could change objects of ``ns`` (not dry runs)."""
    return [
        f"{r.method} {r.path}"
        for r in list(arena.api.requests)[since:]
        if r.is_write and f"/namespaces/{ns}/" in r.path
    ]


def action_of(event: dict[str, Any]) -> tuple[str, str, str, str]:
    a = parse_action(event["action"])
    params = {k: v for k, v in a.params.items() if k != "pre_image"}
    return a.verb, a.kind or "", getattr(a, "name", ""), json.dumps(params, sort_keys=True)


async def test_approve_holds_every_write_until_a_human_decides(
    shop_arena: tuple[ArenaServer, Path],
    nats_server: LocalServer,
    redis_server: LocalServer,
    bus: Bus,
    uid: str,
) -> None:
    arena, kubeconfig = shop_arena
    yes, no = f"ok-{uid}", f"no-{uid}"
    for ns in (yes, no):
        deploy_shop(kubeconfig, ns)
    port = free_port()
    approvals = f"http://127.0.0.1:{port}/approvals"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    yes_timeline, no_timeline = await Timeline(bus, yes).start(), await Timeline(bus, no).start()
    with running_system(
        nats_server.url,
        redis_server.url,
        kubeconfig,
        [yes, no],
        f"t{uid}",
        Path("var/e2e") / f"modes-approve-{uid}.log",
        STRATUS_MODE="approve",
        STRATUS_PORT=str(port),
        STRATUS_APPROVAL_TOKEN=TOKEN,
    ):
        for ns in (yes, no):
            scale(kubeconfig, ns, "web", 0)
        since = len(arena.api.requests)
        asked = {}
        for ns, timeline in ((yes, yes_timeline), (no, no_timeline)):
            asked[ns] = (await timeline.wait_for("approval_requested", timeout=90))[0]
        assert writes(arena, yes, since) == [] and writes(arena, no, since) == []
        plan = asked[yes]["actions"]
        assert [action_of(p) for p in plan] == [("scale", "Deployment", "web", '{"replicas": 1}')]
        assert "+  replicas: 1" in plan[0]["diff"] and plan[0]["undo"][0]["verb"] == "replace"

        async with httpx.AsyncClient(timeout=30) as http:
            assert (await http.get(approvals)).status_code == 401
            listed = (await http.get(approvals, headers=auth)).json()
            assert {r["incident_id"] for r in listed} >= {asked[yes]["incident_id"], asked[no]["incident_id"]}
            denied = await http.post(
                f"{approvals}/{asked[no]['incident_id']}/deny", headers=auth, json={"by": "alice", "reason": "no"}
            )
            assert denied.status_code == 200, denied.text
        closed = (await no_timeline.wait_for("incident_closed", timeout=30))[0]
        assert closed["outcome"] == "escalated" and "denied by alice" in closed["report"]
        assert no_timeline.of("checkpointed") == [] and writes(arena, no, since) == []
        assert replicas(kubeconfig, no)["web"] == 0

        assert writes(arena, yes, since) == []
        approved = subprocess.run(
            [STRATUS, "approvals", "approve", asked[yes]["incident_id"], "--by", "bob", "--nats-url", nats_server.url],
            capture_output=True,
            text=True,
        )
        assert approved.returncode == 0, approved.stderr + approved.stdout
        decided = (await yes_timeline.wait_for("transaction_decided", timeout=60))[0]
        assert decided["decision"] == "commit" and decided["tx_id"] == asked[yes]["tx_id"]
        closed = (await yes_timeline.wait_for("incident_closed", timeout=60))[0]
        assert closed["outcome"] == "resolved"
        executed = [action_of(e) for e in yes_timeline.of("action_executed")]
        assert executed == [action_of(p) for p in plan]  # exactly the approved plan
        assert writes(arena, yes, since), "the approved plan wrote nothing"
        assert max(float(m) for m in closed["visible_mu"]) <= baseline(yes_timeline, closed)
        assert replicas(kubeconfig, yes)["web"] == 1
    for timeline in (yes_timeline, no_timeline):
        await timeline.stop()


async def test_shadow_writes_nothing_and_records_what_auto_runs_and_observe_never_mitigates(
    shop_arena: tuple[ArenaServer, Path],
    nats_server: LocalServer,
    redis_server: LocalServer,
    bus: Bus,
    uid: str,
) -> None:
    arena, kubeconfig = shop_arena
    shadow, auto, observe = f"sh-{uid}", f"au-{uid}", f"ob-{uid}"
    for ns in (shadow, auto, observe):
        deploy_shop(kubeconfig, ns)
    timelines = {ns: await Timeline(bus, ns).start() for ns in (shadow, auto, observe)}
    requested: list[dict[str, Any]] = []

    async def on_work(msg: Any) -> None:
        requested.append(json.loads(msg.data))

    sub = await bus.nc.subscribe("stratus.work.mitigator", cb=on_work)
    with running_system(
        nats_server.url,
        redis_server.url,
        kubeconfig,
        [shadow, auto, observe],
        f"t{uid}",
        Path("var/e2e") / f"modes-shadow-{uid}.log",
        STRATUS_MODES=json.dumps({shadow: "shadow", observe: "observe"}),
    ):
        for ns in (shadow, auto, observe):
            scale(kubeconfig, ns, "web", 0)
        since = len(arena.api.requests)
        closed = {ns: (await t.wait_for("incident_closed", timeout=120))[0] for ns, t in timelines.items()}

        assert closed[shadow]["outcome"] == "escalated" and "would have done" in closed[shadow]["report"]
        assert writes(arena, shadow, since) == []
        assert replicas(kubeconfig, shadow)["web"] == 0
        plan = timelines[shadow].of("plan_proposed")[0]["actions"]
        assert plan and all(p["diff"] for p in plan)

        assert closed[auto]["outcome"] == "resolved"
        first = timelines[auto].of("action_executed")
        ran = [action_of(e) for e in first if e["attempt"] == 1]
        assert ran == [action_of(p) for p in plan]  # the recorded plan is the one auto ran

        assert closed[observe]["outcome"] == "escalated" and "observe mode" in closed[observe]["report"]
        assert timelines[observe].of("diagnosis")
        assert not {"checkpointed", "plan_proposed", "transaction_started"} & {
            e["kind"] for e in timelines[observe].events
        }
        observed = closed[observe]["incident_id"]
        assert [r for r in requested if r.get("incident_id") == observed] == []
        assert writes(arena, observe, since) == []
    await sub.unsubscribe()
    for timeline in timelines.values():
        await timeline.stop()
