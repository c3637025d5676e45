"""The safety net under crashes: a mitigator killed or paused mid-transaction, a coordinator killed mid-incident.

- SIGKILL of the mitigator: its lease lapses, the coordinator takes a fresh lease (higher fencing token) and the
  undoer rolls the transaction back from the journal; a restarted mitigator carries on with the next attempt.
- SIGSTOP of the mitigator (a paused writer): it wakes up after its lease was taken over and tries to write again;
  the gateway's fence check refuses, so nothing it does after its lease expired reaches the cluster.
- SIGKILL of the coordinator: a new coordinator resumes the incident from Redis and the event stream; nothing is lost
  and no transaction runs twice.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
import yaml

from arena.server import ArenaServer
from stratus.bus import Bus
from stratus.journal import Journal
from stratus.localinfra import LocalServer
from tests.conftest import bad_image
from tests.e2e.harness import Timeline, running_system
from tests.e2e.shop import break_image, deploy_shop, images, scale

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def plan(tmp_path: Path, attempts: list[list[object]]) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump({"attempts": attempts}))
    return path


async def wait_until(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def test_killed_mitigator_is_rolled_back_and_the_incident_continues(
    shop_arena: tuple[ArenaServer, Path],
    nats_server: LocalServer,
    redis_server: LocalServer,
    bus: Bus,
    uid: str,
    tmp_path: Path,
) -> None:
    _, kubeconfig = shop_arena
    ns = f"kill-{uid}"
    deploy_shop(kubeconfig, ns)
    steps = plan(
        tmp_path,
        [
            [break_image(ns, "cart"), {"pause": 60}],
            *[[f"kubectl -n {ns} scale deployment web --replicas=1"]] * 3,
        ],
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
        STRATUS_SCRIPTED_PLAN=str(steps),
        STRATUS_LEASE_TTL_S="3",
    ) as system:
        scale(kubeconfig, ns, "web", 0)
        await timeline.wait_for("action_executed", timeout=60)
        assert images(kubeconfig, ns)["cart"] == bad_image("cart")
        system.signal("mitigator", signal.SIGKILL)
        system.start_one("mitigator")  # restarted, as Kubernetes would; it knows nothing of the dead one's work
        decided = (await timeline.wait_for("transaction_decided", timeout=60))[0]
        assert decided["decision"] == "abort" and "lost its lease" in decided["reason"]
        undone = (await timeline.wait_for("undo_completed", timeout=60))[0]
        assert undone["divergences"] == [] and undone["undone"] == 1
        await wait_until(lambda: images(kubeconfig, ns)["cart"] == "shop/cart:1.0")
        closed = (await timeline.wait_for("incident_closed", timeout=90))[0]
        assert closed["outcome"] == "resolved"
        assert max(float(m) for m in closed["visible_mu"]) <= float(closed["visible_mu"][0])
    await timeline.stop()


async def test_a_paused_writer_whose_lease_expired_cannot_write(
    shop_arena: tuple[ArenaServer, Path],
    nats_server: LocalServer,
    redis_server: LocalServer,
    bus: Bus,
    uid: str,
    tmp_path: Path,
) -> None:
    _, kubeconfig = shop_arena
    ns = f"pause-{uid}"
    deploy_shop(kubeconfig, ns)
    steps = plan(
        tmp_path,
        [
            [
                break_image(ns, "cart"),
                {"pause": 1},
                break_image(ns, "db"),
            ],
            [f"kubectl -n {ns} scale deployment web --replicas=1"],
        ],
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
        STRATUS_SCRIPTED_PLAN=str(steps),
        STRATUS_LEASE_TTL_S="3",
    ) as system:
        scale(kubeconfig, ns, "web", 0)
        first = (await timeline.wait_for("action_executed", timeout=60))[0]
        system.signal("mitigator", signal.SIGSTOP)  # paused mid-transaction, between its two writes
        await timeline.wait_for("undo_completed", timeout=60)  # its lease lapsed; the coordinator rolled it back
        await wait_until(lambda: images(kubeconfig, ns)["cart"] == "shop/cart:1.0")
        system.signal("mitigator", signal.SIGCONT)  # it wakes up believing it may write
        ended = (await timeline.wait_for("transaction_ended", timeout=30, tx_id=first["tx_id"]))[0]
        assert ended["actions"] == 1  # the second write never reached the cluster
        assert images(kubeconfig, ns)["db"] == "shop/db:1.0"
        records = await Journal(bus).read(first["tx_id"])
        assert [r.action.name for r in records if r.phase == "outcome"] == ["cart"]
        closed = (await timeline.wait_for("incident_closed", timeout=90))[0]
        assert closed["outcome"] == "resolved"
    await timeline.stop()


async def test_a_killed_coordinator_loses_nothing(
    shop_arena: tuple[ArenaServer, Path],
    nats_server: LocalServer,
    redis_server: LocalServer,
    bus: Bus,
    uid: str,
    tmp_path: Path,
) -> None:
    _, kubeconfig = shop_arena
    ns = f"coord-{uid}"
    deploy_shop(kubeconfig, ns)
    steps = plan(tmp_path, [[{"pause": 2}, f"kubectl -n {ns} scale deployment web --replicas=1", {"pause": 2}]])
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
        STRATUS_SCRIPTED_PLAN=str(steps),
        STRATUS_LEASE_TTL_S="30",
    ) as system:
        scale(kubeconfig, ns, "web", 0)
        await timeline.wait_for("checkpointed", timeout=60)
        system.signal("coordinator", signal.SIGKILL)  # possibly before its outbox (the request) was published
        system.start_one("coordinator")  # the successor flushes the outbox from Redis
        await timeline.wait_for("action_executed", timeout=60)
        system.signal("coordinator", signal.SIGKILL)  # mid-transaction
        await timeline.wait_for("transaction_ended", timeout=30)  # arrives while no coordinator runs
        system.start_one("coordinator")
        closed = (await timeline.wait_for("incident_closed", timeout=90))[0]
        assert closed["outcome"] == "resolved"
        assert len(timeline.of("checkpointed")) == 1 and len(timeline.of("transaction_decided")) == 1
        assert [e["state"] for e in timeline.of("state_changed")].count("mitigating") == 1
    await timeline.stop()
