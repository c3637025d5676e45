"""Kill and restart points: NATS restarted (same port, same JetStream store) in the middle of a transaction ends
like every other kill point (see test_kill_points): nothing lost, no harmful write left, no token given twice."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest

from arena.server import ArenaServer
from stratus.bus import Bus
from stratus.localinfra import LocalServer, find_binary, reachable, start_nats
from tests.e2e.harness import Timeline, running_system
from tests.e2e.shop import break_image, deploy_shop, scale
from tests.e2e.test_kill_points import Leases, ends_safely, plan, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def jetstream_ready(bus: Bus, timeout: float = 30.0) -> None:
    """JetStream answers a while after the server accepts connections again (it recovers its streams first)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await bus.js.account_info()
            return
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)


def restart_nats(server: LocalServer) -> LocalServer:
    """Stop ``server`` and start it again on the same port with the same JetStream store (what a pod restart does)."""
    port = server.url.rsplit(":", 1)[1]
    server.process.terminate()
    server.process.wait(timeout=10)
    data = server.workdir / "data"
    cmd = [find_binary("nats-server"), "-js", "-a", "127.0.0.1", "-p", port, "-sd", str(data)]
    cmd += ["-l", str(server.workdir / "nats-2.log")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 15
    while not reachable(server.url):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise AssertionError("nats-server did not come back")
        time.sleep(0.05)
    return LocalServer("nats", server.url, proc, server.workdir)


async def test_a_nats_restart_mid_transaction(
    shop_arena: tuple[ArenaServer, Path], redis_server: LocalServer, uid: str, tmp_path: Path
) -> None:
    _, kubeconfig = shop_arena
    ns = f"natsrestart-{uid}"
    deploy_shop(kubeconfig, ns)
    nats = start_nats()
    bus = await Bus.connect(nats.url, name="pytest")
    try:
        seen = Leases()
        await bus.nc.subscribe(f"{bus.topology.prefix}.work.>", cb=seen.on_msg)
        timeline = await Timeline(bus, ns).start()
        with running_system(
            nats.url,
            redis_server.url,
            kubeconfig,
            ns,
            f"t{uid}",
            Path("var/e2e") / f"{ns}.log",
            STRATUS_POLICY="scripted",
            STRATUS_SCRIPTED_PLAN=str(plan(tmp_path, ns, [break_image(ns, "cart"), {"pause": 2}])),
            STRATUS_LEASE_TTL_S="3",
        ):
            scale(kubeconfig, ns, "web", 0)
            await timeline.wait_for("action_executed", timeout=60)
            await timeline.stop()
            nats = restart_nats(nats)
            await wait_until(lambda: bus.connected, timeout=20)
            await jetstream_ready(bus)
            after = await Timeline(bus, ns).start()  # replays the stream: nothing published before is lost
            await ends_safely(after, seen, kubeconfig, ns)
            await after.stop()
    finally:
        await bus.close()
        nats.stop()
