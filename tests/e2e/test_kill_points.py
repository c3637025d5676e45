"""Kill and restart points of the write path, each at an exact moment armed by a crash point (stratus.crashpoints).

Every case ends the same way: the incident is not lost (it closes resolved), no harmful write is left in place (the
images are the shop's own), the visible mu never exceeds the baseline, and no fencing token was handed to two
different lease holders (every mitigate and undo request is watched on the bus).

- Redis restarted empty while a harmful transaction holds its lease;
- SIGKILL of the mitigator after the journal acknowledged an intent and before the write;
- SIGKILL of the undoer after its first undo step;
- SIGKILL of the coordinator after it decided to abort and before the undo request was sent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import yaml

from arena.server import ArenaServer
from stratus.bus import Bus
from stratus.localinfra import LocalServer, start_redis
from stratus.supervisor import Supervisor
from tests.conftest import bad_image
from tests.e2e.harness import Timeline, running_system
from tests.e2e.shop import break_image, deploy_shop, images, scale

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SHOP_IMAGES = {"cart": "shop/cart:1.0", "db": "shop/db:1.0"}


@dataclass
class Leases:
    """Every lease handed out on the bus (mitigate and undo requests): token -> holders."""

    holders: dict[int, set[str]] = field(default_factory=dict)

    async def on_msg(self, msg: Any) -> None:
        lease = json.loads(msg.data).get("lease")
        if isinstance(lease, dict):
            self.holders.setdefault(int(lease["token"]), set()).add(str(lease["holder"]))

    def reused(self) -> dict[int, set[str]]:
        return {t: h for t, h in self.holders.items() if len(h) > 1}


@pytest.fixture
async def leases(bus: Bus) -> AsyncIterator[Leases]:
    seen = Leases()
    sub = await bus.nc.subscribe(f"{bus.topology.prefix}.work.>", cb=seen.on_msg)
    yield seen
    await sub.unsubscribe()


@pytest.fixture
def private_redis() -> AsyncIterator[LocalServer]:
    server = start_redis()
    yield server  # type: ignore[misc]
    server.stop()


def plan(tmp_path: Path, ns: str, first: list[object]) -> Path:
    path = tmp_path / "plan.yaml"
    fix = [f"kubectl -n {ns} scale deployment web --replicas=1"]
    path.write_text(yaml.safe_dump({"attempts": [first, *[fix] * 6]}))
    return path


async def wait_until(predicate: Any, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def restart_when_fired(system: Supervisor, crash_dir: Path, point: str, service: str) -> None:
    """Wait for ``point`` to fire (its process SIGKILLs itself), then start the service again, as Kubernetes would."""
    await wait_until(lambda: (crash_dir / f"{point}.fired").exists())
    await wait_until(lambda: not system.pids(service), timeout=10)
    system.start_one(service)


async def ends_safely(timeline: Timeline, leases: Leases, kubeconfig: Path, ns: str) -> None:
    closed = (await timeline.wait_for("incident_closed", timeout=120))[0]
    assert closed["outcome"] == "resolved", closed["report"]
    assert max(float(m) for m in closed["visible_mu"]) <= float(closed["visible_mu"][0])
    now = images(kubeconfig, ns)
    assert {k: now[k] for k in SHOP_IMAGES} == SHOP_IMAGES  # no harmful write left in place
    assert len(timeline.incidents) == 1
    assert leases.holders and not leases.reused(), leases.holders


async def run_case(
    kubeconfig: Path,
    nats: LocalServer,
    redis_url: str,
    bus: Bus,
    leases: Leases,
    uid: str,
    tmp_path: Path,
    name: str,
    first: list[object],
    point: str | None,
    service: str,
) -> None:
    ns = f"{name}-{uid}"
    deploy_shop(kubeconfig, ns)
    crash_dir = tmp_path / "crash"
    crash_dir.mkdir()
    timeline = await Timeline(bus, ns).start()
    with running_system(
        nats.url,
        redis_url,
        kubeconfig,
        ns,
        f"t{uid}",
        Path("var/e2e") / f"{ns}.log",
        STRATUS_POLICY="scripted",
        STRATUS_SCRIPTED_PLAN=str(plan(tmp_path, ns, first)),
        STRATUS_LEASE_TTL_S="3",
        STRATUS_CRASH_DIR=str(crash_dir),
    ) as system:
        if point is not None:
            (crash_dir / point).touch()
        scale(kubeconfig, ns, "web", 0)
        if point is not None:
            await restart_when_fired(system, crash_dir, point, service)
        await ends_safely(timeline, leases, kubeconfig, ns)
    await timeline.stop()


async def test_redis_restarted_empty_mid_transaction(
    shop_arena: tuple[ArenaServer, Path],
    nats_server: LocalServer,
    private_redis: LocalServer,
    bus: Bus,
    leases: Leases,
    uid: str,
    tmp_path: Path,
) -> None:
    _, kubeconfig = shop_arena
    ns = f"redis-{uid}"
    deploy_shop(kubeconfig, ns)
    timeline = await Timeline(bus, ns).start()
    redis = aioredis.Redis.from_url(private_redis.url)
    with running_system(
        nats_server.url,
        private_redis.url,
        kubeconfig,
        ns,
        f"t{uid}",
        Path("var/e2e") / f"{ns}.log",
        STRATUS_POLICY="scripted",
        STRATUS_SCRIPTED_PLAN=str(plan(tmp_path, ns, [break_image(ns, "cart"), {"pause": 8}])),
        STRATUS_LEASE_TTL_S="3",
    ):
        scale(kubeconfig, ns, "web", 0)
        await timeline.wait_for("action_executed", timeout=60)
        assert images(kubeconfig, ns)["cart"] == bad_image("cart")  # the harmful write is in place, its lease held
        before = set(leases.holders)
        await redis.flushall()  # what a restart without persistence, or a failover to an empty replica, leaves
        await redis.script_flush()
        undone = (await timeline.wait_for("undo_completed", timeout=60))[0]
        assert undone["undone"] >= 1
        await ends_safely(timeline, leases, kubeconfig, ns)
        assert min(set(leases.holders) - before) > max(before)  # tokens kept increasing: none was issued again
    await redis.aclose()
    await timeline.stop()


@pytest.mark.parametrize(
    ("name", "point", "service", "harm"),
    [
        ("intent", "journal.after_intent", "mitigator", ["cart"]),
        ("undo", "undoer.after_undo_step", "undoer", ["cart", "db"]),
        ("abort", "coordinator.before_undo_request", "coordinator", ["cart"]),
    ],
    ids=["mitigator-between-intent-and-write", "undoer-mid-undo", "coordinator-between-abort-and-undo-request"],
)
async def test_sigkill_at_a_crash_point(
    shop_arena: tuple[ArenaServer, Path],
    nats_server: LocalServer,
    redis_server: LocalServer,
    bus: Bus,
    leases: Leases,
    uid: str,
    tmp_path: Path,
    name: str,
    point: str,
    service: str,
    harm: list[str],
) -> None:
    _, kubeconfig = shop_arena
    first: list[object] = [break_image(f"{name}-{uid}", d) for d in harm]
    await run_case(kubeconfig, nats_server, redis_server.url, bus, leases, uid, tmp_path, name, first, point, service)
