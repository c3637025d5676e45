"""Transactional No-Regression end to end: arena + NATS + Redis + the six services, a scripted mitigation policy.

A harmful first attempt (scale every deployment to zero) is aborted and undone back to the checkpoint's digest; the
second attempt (the correct one-action fix) commits and resolves the incident; the visible mu never exceeds b.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from arena.server import ArenaServer
from stratus.bus import Bus
from stratus.localinfra import LocalServer
from tests.e2e.harness import Timeline, baseline, running_system
from tests.e2e.shop import break_image, deploy_shop, scale

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STRATUS = str(Path(sys.executable).parent / "stratus")


async def test_harmful_attempt_is_undone_and_the_fix_commits(
    shop_arena: tuple[ArenaServer, Path],
    nats_server: LocalServer,
    redis_server: LocalServer,
    bus: Bus,
    uid: str,
    tmp_path: Path,
) -> None:
    _, kubeconfig = shop_arena
    ns = f"shop-{uid}"
    deploy_shop(kubeconfig, ns)
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        yaml.safe_dump(
            {
                "attempts": [
                    [break_image(ns, d) for d in ("web", "cart", "db")],
                    [f"kubectl -n {ns} scale deployment web --replicas=1"],
                ]
            }
        )
    )
    timeline = await Timeline(bus, ns).start()
    log = Path("var/e2e") / f"{ns}.log"
    with running_system(
        nats_server.url,
        redis_server.url,
        kubeconfig,
        ns,
        f"t{uid}",
        log,
        STRATUS_POLICY="scripted",
        STRATUS_SCRIPTED_PLAN=str(plan),
    ):
        scale(kubeconfig, ns, "web", 0)  # the fault: web has no endpoint left
        opened = (await timeline.wait_for("incident_opened", timeout=60))[0]
        b = opened["baseline"]
        assert b >= 1
        first = (await timeline.wait_for("transaction_decided", timeout=90))[0]
        assert first["decision"] == "abort" and first["attempt"] == 1
        mu_pre = float(timeline.of("checkpointed")[0]["severity"]["mu"])
        assert first["mu_post"] in ("Infinity", math.inf) or float(first["mu_post"]) > mu_pre
        undone = (await timeline.wait_for("undo_completed", timeout=60))[0]
        checkpoint = timeline.of("checkpointed")[0]
        assert undone["divergences"] == []
        assert undone["restored_digest"] == checkpoint["digest"]
        closed = (await timeline.wait_for("incident_closed", timeout=90))[0]
        assert closed["outcome"] == "resolved", closed
        decisions = [(d["attempt"], d["decision"]) for d in timeline.of("transaction_decided")]
        assert decisions == [(1, "abort"), (2, "commit")]
        visible = [float(m) for m in closed["visible_mu"]]
        b = baseline(timeline, closed)
        assert max(visible) <= b, f"TNR violated: visible {visible} over b={b}"
        hidden = [e for e in timeline.of("action_executed") if e["attempt"] == 1]
        assert len(hidden) == 3  # the harmful writes happened, hidden inside the aborted transaction

    # The audit trail: the CLI replays the incident from the event stream.
    incident = opened["incident_id"]
    listed = subprocess.run(
        [STRATUS, "incidents", "list", "--json", "--nats-url", nats_server.url], capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stderr
    mine = [i for i in json.loads(listed.stdout) if i["incident_id"] == incident]
    assert mine and mine[0]["outcome"] == "resolved" and mine[0]["attempts"] == 2
    shown = subprocess.run(
        [STRATUS, "incidents", "show", incident, "--json", "--nats-url", nats_server.url],
        capture_output=True,
        text=True,
    )
    kinds = [e["kind"] for e in json.loads(shown.stdout)]
    assert kinds[0] == "incident_opened" and kinds[-1] == "incident_closed" and "undo_completed" in kinds
    text = subprocess.run(
        [STRATUS, "incidents", "show", incident, "--nats-url", nats_server.url], capture_output=True, text=True
    )
    assert "ABORT" in text.stdout and "COMMIT" in text.stdout
    await timeline.stop()
