"""Horizontal scaling: two replicas each of the diagnoser, mitigator and undoer, incidents in two namespaces at once.

The replicas of a service share one durable JetStream consumer (work-queue semantics), and a replica handles one
piece of work at a time, so while one mitigator holds a transaction open (the scripted plan pauses after its write)
the other replica takes the next one. The A-Lock is per scope: the two namespaces' writers run concurrently, while
each incident keeps Transactional No-Regression (every visible mu <= its b).

One mitigator replica is SIGKILLed in the middle of its transaction: its lease lapses, the coordinator's watchdog
takes a fresh lease and has the undoer roll the transaction back from the journal, and the incident completes with
the next attempt on the surviving replica. (Its unacked request is redelivered after the consumer's ack wait; the
fence check then refuses it, since its lease is no longer current.)

The coordinator scales by partitions of the events stream: two coordinator replicas share 20 incidents over four
namespaces, and the one that owns a running incident's partition is SIGKILLed; the other takes its partitions over and
every incident still closes, its events in order, under TNR.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from arena.server import ArenaServer
from stratus import contracts as c
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

        # Writers on disjoint scopes ran concurrently: the lease windows overlap, and the later transaction wrote
        # while the earlier one was still open (detection may see one namespace a few seconds before the other,
        # so the earlier write can precede the later checkpoint; the plan's pause keeps the earlier one open).
        (start_a, end_a), (start_b, end_b) = window(tl_a, 1), window(tl_b, 1)
        assert max(start_a, start_b) < min(end_a, end_b), ((start_a, end_a), (start_b, end_b))
        if start_a <= start_b:
            end_first, start_later, later_write = end_a, start_b, at(write_b)
        else:
            end_first, start_later, later_write = end_b, start_a, at(write_a)
        assert start_later < later_write < end_first, (start_later, later_write, end_first)
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


NAMESPACES = 4
ROUNDS = 5
"""4 namespaces x 5 rounds = 20 incidents; the rounds of one namespace follow each other (one incident per scope)."""


def legal_chain(states: list[dict[str, Any]]) -> bool:
    """Each state change leaves the state the previous one entered: no event was applied twice or out of order."""
    return all(b["previous"] == a["state"] for a, b in itertools.pairwise(states))


async def test_two_coordinators_share_incidents_by_partition_and_survive_a_kill(
    shop_arena: tuple[ArenaServer, Path],
    nats_server: LocalServer,
    redis_server: LocalServer,
    bus: Bus,
    uid: str,
    tmp_path: Path,
) -> None:
    """2 coordinators, 2 of each agent; 20 incidents over 4 namespaces; the coordinator that owns a running
    incident's partition is SIGKILLed mid-incident and not restarted. Every incident closes, in order, under TNR."""
    _, kubeconfig = shop_arena
    namespaces = [f"part-{i}-{uid}" for i in range(NAMESPACES)]
    for ns in namespaces:
        deploy_shop(kubeconfig, ns)
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({"attempts": [["kubectl scale deployment web --replicas=1"]] * 3}))
    lines: list[str] = []
    started = asyncio.get_running_loop().time()
    timelines = {ns: await Timeline(bus, ns).start(new_only=True) for ns in namespaces}
    with running_replicas(
        nats_server.url,
        redis_server.url,
        kubeconfig,
        namespaces,
        f"t{uid}",
        Path("var/e2e") / f"partitions-{uid}.log",
        {"coordinator": 2, "diagnoser": 2, "mitigator": 2, "undoer": 2},
        lines,
        STRATUS_POLICY="scripted",
        STRATUS_SCRIPTED_PLAN=str(plan),
        STRATUS_STEADY_S="0.5",
        STRATUS_SETTLE_S="1",
        STRATUS_PARTITIONS="8",
        STRATUS_PARTITION_LEASE_S="3",
        STRATUS_EVENT_ACK_WAIT_S="3",
        STRATUS_LOG_FORMAT="text",
    ) as system:

        async def rounds(ns: str, kill_after: int | None) -> None:
            tl = timelines[ns]
            for r in range(ROUNDS):
                scale(kubeconfig, ns, "web", 0)
                if r == kill_after:
                    await tl.wait_for("checkpointed", count=r + 1, timeout=120)
                    await kill_the_owner(tl.of("incident_opened")[-1]["incident_id"])
                await tl.wait_for("incident_closed", count=r + 1, timeout=180)
                await wait_until(lambda: replicas(kubeconfig, ns)["web"] == 1, timeout=30)

        killed: list[str] = []

        async def kill_the_owner(incident: str) -> None:
            partition = c.partition_of(incident, 8)
            owner = replica_of(list(reversed(lines)), "coordinator", f"took partition {partition}")  # its latest owner
            assert owner is not None, f"nobody took partition {partition}"
            killed.append(owner)
            lines.append(f"[test] SIGKILL {owner} (owns partition {partition} of {incident}, mid-incident)")
            system.kill(owner)

        await asyncio.gather(*(rounds(ns, 2 if i == 0 else None) for i, ns in enumerate(namespaces)))

    wall = asyncio.get_running_loop().time() - started
    closed = [e for tl in timelines.values() for e in tl.of("incident_closed")]
    assert len(closed) == NAMESPACES * ROUNDS
    assert {e["outcome"] for e in closed} <= {"resolved", "escalated"}
    for tl in timelines.values():
        for incident in {e["incident_id"] for e in tl.of("incident_opened")}:
            events = [e for e in tl.events if e["incident_id"] == incident]
            states = [e for e in events if e["kind"] == "state_changed"]
            assert legal_chain(states), (incident, [(s["previous"], s["state"]) for s in states])
            assert events[-1]["kind"] == "incident_closed" and states[-1]["state"] in ("resolved", "escalated")
            ids = [e["id"] for e in events]
            assert len(ids) == len(set(ids)), f"{incident}: an event was published twice"
            decided = [e for e in events if e["kind"] == "transaction_decided"]
            assert len(decided) == len([e for e in events if e["kind"] == "checkpointed"])
            last = next(e for e in events if e["kind"] == "incident_closed")
            assert_tnr(tl, last)
    assert len(killed) == 1
    survivor = ({"coordinator-0", "coordinator-1"} - set(killed)).pop()
    partition = c.partition_of(timelines[namespaces[0]].of("incident_opened")[2]["incident_id"], 8)
    after_kill = lines[next(i for i, line in enumerate(lines) if line.startswith("[test] SIGKILL")) :]
    assert replica_of(after_kill, "coordinator", f"took partition {partition}") == survivor
    before_kill = lines[: next(i for i, line in enumerate(lines) if line.startswith("[test] SIGKILL"))]
    assert replica_of(before_kill, "coordinator", "took partition") and replica_of(before_kill, "coordinator", "->")
    lines.append(f"[test] 20 incidents over 4 namespaces in {wall:.1f}s")
    for tl in timelines.values():
        await tl.stop()
