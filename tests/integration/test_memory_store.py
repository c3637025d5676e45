"""Incident memory on a real JetStream: put and read back, bounded, compare-and-set updates, and a restart of the
NATS server itself (the bucket is file-backed)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import nats
import pytest

from stratus.actions import Scale
from stratus.bus import Bus
from stratus.contracts import IncidentSignature, utcnow
from stratus.localinfra import find_binary, free_port, reachable
from stratus.memory.records import IncidentMemory, RememberedTransaction
from stratus.memory.store import MemoryStore

pytestmark = pytest.mark.integration

SIG = IncidentSignature(unhealthy=["Deployment:ScaledToZero"], objects=["Deployment/web"])


def memory(key: str, minutes: int = 0) -> IncidentMemory:
    fix = Scale(kind="Deployment", namespace="ns", name="web", replicas=1)
    return IncidentMemory(
        key=key,
        incident_id=key,
        scope="ns",
        outcome="resolved",
        closed_at=utcnow() + timedelta(minutes=minutes),
        signature=SIG,
        transactions=[RememberedTransaction(tx_id=f"{key}-tx1", attempt=1, actions=[fix], mu_pre=2, decision="commit")],
    )


async def test_put_read_back_bound_and_update(bus: Bus, uid: str) -> None:
    store = MemoryStore(bus.js, f"MEM_{uid}", max_entries=3)
    assert await store.all() == []
    for i in range(5):
        await store.put(memory(f"inc-{i}", minutes=i))
    kept = sorted(m.key for m in await store.all())
    assert kept == ["inc-2", "inc-3", "inc-4"]  # the oldest dropped past the bound
    demoted = await store.demote("inc-3")
    assert demoted is not None and demoted.demoted
    await asyncio.gather(*(store.count_replay("inc-4") for _ in range(4)))  # concurrent updates: none lost
    again = await MemoryStore(bus.js, f"MEM_{uid}").get("inc-4")
    assert again is not None and again.replays == 4 and again.transactions[0].decision == "commit"
    assert (await store.get("inc-3")).demoted  # type: ignore[union-attr]
    assert await store.demote("gone") is None


@contextmanager
def nats_on(port: int, data: Path) -> Iterator[str]:
    cmd = [find_binary("nats-server"), "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(data)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"nats://127.0.0.1:{port}"
    try:
        for _ in range(500):
            if reachable(url):
                break
            if proc.poll() is not None:
                raise RuntimeError("nats-server exited")
            time.sleep(0.02)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_memory_survives_a_restart_of_the_server(tmp_path: Path, uid: str) -> None:
    port = free_port()
    with nats_on(port, tmp_path) as url:
        nc = await nats.connect(url)
        await MemoryStore(nc.jetstream(), "MEMORY").put(memory(f"inc-{uid}"))
        await nc.close()
    with nats_on(port, tmp_path) as url:
        nc = await nats.connect(url)
        kept = await MemoryStore(nc.jetstream(), "MEMORY").all()
        await nc.close()
    assert [m.key for m in kept] == [f"inc-{uid}"]
