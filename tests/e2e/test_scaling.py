"""Horizontal scaling: two replicas each of the diagnoser, mitigator and undoer, incidents in two namespaces at once.

The replicas of a service share one durable JetStream consumer (work-queue semantics), and a replica handles one
piece of work at a time, so while one mitigator holds a transaction open (the scripted plan pauses after its write)
the other replica takes the next one. The A-Lock is per scope: the two namespaces' writers run concurrently, while
each incident keeps Transactional No-Regression (every visible mu <= its b).

One mitigator replica is SIGKILLed in the middle of its transaction: its lease lapses, the coordinator's watchdog
takes a fresh lease and has the undoer roll the transaction back from the journal, and the incident completes with
the next attempt on the surviving replica. (Its unacked request is redelivered after the consumer's ack wait; the
fence check then refuses it, since its lease is no longer current.)
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from arena.server import ArenaServer
from stratus.bus import Bus
from stratus.localinfra import LocalServer
from tests.e2e.harness import Timeline, baseline, replica_of, running_replicas
from tests.e2e.shop import deploy_shop, replicas, scale

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HOLD_S = 6.0
"""How long a mitigator keeps its transaction open after the write, so the two namespaces' transactions overlap."""


def at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["ts"])


def window(timeline: Timeline, attempt: int) -> tuple[datetime, datetime]:
    """From the checkpoint (the lease is held) to the decision (the lease is released or handed to the undoer)."""
    start = next(e for e in timeline.of("checkpointed") if e["attempt"] == attempt)
    end = next(e for e in timeline.of("transaction_decided") if e["attempt"] == attempt)
    return at(start), at(end)


async def wait_until(predicate: Any, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


def assert_tnr(timeline: Timeline, closed: dict[str, Any]) -> None:
    b = baseline(timeline, closed)
    visible = [float(m) for m in closed["visible_mu"]]
    assert visible and max(visible) <= b, f"TNR violated in {timeline.scope}: visible {visible} over b={b}"


async def test_replicas_share_work_survive_a_kill_and_disjoint_writers_overlap(
    shop_arena: tuple[ArenaServer, Path],
    nats_server: LocalServer,
    redis_server: LocalServer,
    bus: Bus,
    uid: str,
    tmp_path: Path,
) -> None:
    _, kubeconfig = shop_arena
    ns_a, ns_b = f"scale-a-{uid}", f"scale-b-{uid}"
    for ns in (ns_a, ns_b):
        deploy_shop(kubeconfig, ns)
    plan = tmp_path / "plan.yaml"  # kubectl without -n acts on the incident's own scope
    plan.write_text(
        yaml.safe_dump(
            {
                "attempts": [
                    ["kubectl scale deployment web --replicas=1", {"pause": HOLD_S}],
                    ["kubectl scale deployment web --replicas=1"],
                ]
            }
        )
    )
    lines: list[str] = []
    log = Path("var/e2e") / f"scale-{uid}.log"
    with running_replicas(
        nats_server.url,
        redis_server.url,
        kubeconfig,
        [ns_a, ns_b],
        f"t{uid}",
        log,
        {"diagnoser": 2, "mitigator": 2, "undoer": 2},
        lines,
        STRATUS_POLICY="scripted",
        STRATUS_SCRIPTED_PLAN=str(plan),
        STRATUS_LEASE_TTL_S="3",
    ) as system:
        # Round 1: both namespaces fail at once; the second namespace's writer is killed mid-transaction.
        tl_a, tl_b = await Timeline(bus, ns_a).start(new_only=True), await Timeline(bus, ns_b).start(new_only=True)
        scale(kubeconfig, ns_a, "web", 0)
        scale(kubeconfig, ns_b, "web", 0)
        write_a = (await tl_a.wait_for("action_executed", timeout=90, attempt=1))[0]
        write_b = (await tl_b.wait_for("action_executed", timeout=90, attempt=1))[0]
        needles = [f"transaction {w['tx_id']} (attempt 1)" for w in (write_a, write_b)]
        await wait_until(lambda: all(replica_of(lines, "mitigator", n) for n in needles), timeout=5)
        runs_a, runs_b = (replica_of(lines, "mitigator", n) for n in needles)
        assert runs_a and runs_b and runs_a != runs_b, (runs_a, runs_b)  # both replicas took work, at once
        assert not tl_b.of("transaction_ended"), "the plan holds the transaction open; it ended too early"
        system.kill(runs_b)  # SIGKILL mid-transaction: the write is done, the transaction is not
        system.start_one("mitigator", int(runs_b.rsplit("-", 1)[1]))  # restarted, as Kubernetes would

        closed_a = (await tl_a.wait_for("incident_closed", timeout=240))[0]
        assert closed_a["outcome"] == "resolved"
        assert [(d["attempt"], d["decision"]) for d in tl_a.of("transaction_decided")] == [(1, "commit")]
        decided_b = (await tl_b.wait_for("transaction_decided", timeout=120, attempt=1))[0]
        assert decided_b["decision"] == "abort" and "lost its lease" in decided_b["reason"], decided_b
        undone = (await tl_b.wait_for("undo_completed", timeout=120))[0]
        assert undone["divergences"] == [] and undone["undone"] == 1
        assert undone["restored_digest"] == tl_b.of("checkpointed")[0]["digest"]
        closed_b = (await tl_b.wait_for("incident_closed", timeout=240))[0]
        assert closed_b["outcome"] == "resolved"
        assert [(d["attempt"], d["decision"]) for d in tl_b.of("transaction_decided")] == [(1, "abort"), (2, "commit")]
        assert replicas(kubeconfig, ns_a)["web"] == 1 and replicas(kubeconfig, ns_b)["web"] == 1

        # Writers on disjoint scopes ran concurrently: the lease windows overlap, and each write happened while
        # the other scope's transaction was open.
        (start_a, end_a), (start_b, end_b) = window(tl_a, 1), window(tl_b, 1)
        assert max(start_a, start_b) < min(end_a, end_b), ((start_a, end_a), (start_b, end_b))
        assert start_b < at(write_a) < end_b and start_a < at(write_b) < end_a
        for tl, closed in ((tl_a, closed_a), (tl_b, closed_b)):
            assert_tnr(tl, closed)

        # Round 2: both namespaces fail again; both replicas (one of them the restarted process) take a transaction.
        tl_a2, tl_b2 = await Timeline(bus, ns_a).start(new_only=True), await Timeline(bus, ns_b).start(new_only=True)
        scale(kubeconfig, ns_a, "web", 0)
        scale(kubeconfig, ns_b, "web", 0)
        closed = [(await tl.wait_for("incident_closed", timeout=240))[0] for tl in (tl_a2, tl_b2)]
        runners = {
            replica_of(lines, "mitigator", f"transaction {tl.of('checkpointed')[0]['tx_id']} (attempt 1)")
            for tl in (tl_a2, tl_b2)
        }
        assert runners == {"mitigator-0", "mitigator-1"}, runners
        for tl, c in zip((tl_a2, tl_b2), closed, strict=True):
            assert c["outcome"] == "resolved"
            assert_tnr(tl, c)
        (start_a, end_a), (start_b, end_b) = window(tl_a2, 1), window(tl_b2, 1)
        assert max(start_a, start_b) < min(end_a, end_b)

        # Diagnoses take a fraction of a second, so which diagnoser replicas got one is recorded, not asserted.
        incidents = [tl.of("incident_opened")[0]["incident_id"] for tl in (tl_a, tl_b, tl_a2, tl_b2)]
        diagnosed_by = {i: replica_of(lines, "diagnoser", f"{i}: diagnosis") for i in incidents}
        lines.append(f"[test] diagnosed by {diagnosed_by}")
        for tl in (tl_a, tl_b, tl_a2, tl_b2):
            await tl.stop()
