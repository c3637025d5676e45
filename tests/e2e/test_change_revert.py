"""Diagnosis by change end to end: the last-known-good memory, a revert that does not help, and the next candidate.

The shop runs healthy until the detector has recorded its last-known-good snapshot on the bus. One patch of the web
Deployment's pod template then adds an annotation (harmless) and names a scheduler that does not run (its new pod
waits forever). No analyzer explains the Pending pod, so the rulebook tries the changes tied to it, one per
transaction: the first (the annotation, by path order) does not help, is undone to the checkpoint's digest, and the
second (the scheduler) commits. The visible mu never exceeds the baseline.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from arena.server import ArenaServer
from stratus.actions import parse_action
from stratus.bus import Bus
from stratus.lastgood import LastGoodStore, bucket_name
from stratus.localinfra import LocalServer
from tests.e2e.harness import Timeline, baseline, running_system
from tests.e2e.shop import apps_api, deploy_shop

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def wait_lastgood(bus: Bus, scope: str, timeout: float = 40.0) -> None:
    store = LastGoodStore(bus.js, bucket_name("STRATUS"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = await store.latest(scope)
        if snap is not None and f"Deployment/{scope}/web" in snap.objects:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"no last-known-good snapshot of {scope} within {timeout}s")


async def test_a_revert_that_does_not_help_is_undone_and_the_next_change_is_tried(
    shop_arena: tuple[ArenaServer, Path],
    nats_server: LocalServer,
    redis_server: LocalServer,
    bus: Bus,
    uid: str,
) -> None:
    _, kubeconfig = shop_arena
    ns = f"chg-{uid}"
    deploy_shop(kubeconfig, ns)
    timeline = await Timeline(bus, ns).start()
    with running_system(
        nats_server.url,
        redis_server.url,
        kubeconfig,
        ns,
        f"t{uid}",
        Path("var/e2e") / f"{ns}.log",
        STRATUS_POLICY="rulebook",
        STRATUS_LASTGOOD_SETTLE_S="1",
        STRATUS_LASTGOOD_REFRESH_S="600",
        STRATUS_MAX_RETRIES="3",
        STRATUS_ESCALATION_COOLDOWN_S="0",
    ):
        await wait_lastgood(bus, ns)
        api, _, apps = apps_api(kubeconfig)
        template = {"metadata": {"annotations": {"team": "payments"}}, "spec": {"schedulerName": "batch-scheduler"}}
        apps.patch_namespaced_deployment("web", ns, {"spec": {"template": template}})
        api.close()

        opened = (await timeline.wait_for("incident_opened", timeout=60))[0]
        diagnosis = (await timeline.wait_for("diagnosis", timeout=60))[0]
        assert "changed since the last healthy state: Deployment" in diagnosis["summary"], diagnosis["summary"]
        closed = (await timeline.wait_for("incident_closed", timeout=150))[0]
        decisions = [(d["attempt"], d["decision"]) for d in timeline.of("transaction_decided")]
        assert decisions == [(1, "abort"), (2, "commit")], (decisions, closed.get("report"))
        undone = timeline.of("undo_completed")
        assert len(undone) == 1 and undone[0]["divergences"] == []
        assert undone[0]["restored_digest"] == timeline.of("checkpointed")[0]["digest"]
        paths = [
            op["path"]
            for e in timeline.of("action_executed")
            for op in (parse_action(e["action"]).params.get("patch") or [])
            if isinstance(op, dict)
        ]
        assert paths == ["/spec/template/metadata/annotations", "/spec/template/spec/schedulerName"], paths
        assert closed["outcome"] == "resolved", closed
        visible = [float(m) for m in closed["visible_mu"]]
        b = baseline(timeline, closed)
        assert max(visible) <= b, f"TNR violated: visible {visible} over b={b}"
        assert opened["baseline"] >= 1
    await timeline.stop()
