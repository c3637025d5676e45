"""Benchmark: the cost of the safety pipeline per write, and the time to undo 20 writes.

    python -m stratus.benchmarks.gateway [--kubeconfig PATH] [-n 50]

Against a cluster (``--kubeconfig``), or, by default, an arena started as a separate process (``stratus arena
serve``) so the benchmark measures the product's client code, not in-process shortcuts. It starts its own
nats-server and redis-server, and prints p50/p99 of a bare API write (a JSON merge patch of a ConfigMap), the same
write through ``WriteGateway`` (confine + pre-image + dry run + policy + JetStream intent + fence + write + outcome),
their ratio, the same write as the first one to its object (its pre-image is read, not remembered), and the time to
roll back 20 journaled writes with ``apply_undo``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis.asyncio as aioredis

from stratus.actions import Patch
from stratus.alock import ALock
from stratus.bus import Bus
from stratus.gateway import KubeApi, WriteGateway
from stratus.journal import Journal
from stratus.localinfra import free_port, reachable, start_nats, start_redis


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def start_arena(workdir: Path) -> tuple[subprocess.Popen[bytes], Path]:
    kubeconfig = workdir / "kubeconfig"
    port = free_port()
    stratus = str(Path(sys.executable).parent / "stratus")
    proc = subprocess.Popen(
        [stratus, "arena", "serve", "--port", str(port), "--kubeconfig", str(kubeconfig)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not (kubeconfig.exists() and "server" in kubeconfig.read_text() and reachable(f"http://127.0.0.1:{port}")):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the arena did not start (is `make install` done?)")
        time.sleep(0.1)
    return proc, kubeconfig


async def measure(kubeconfig: Path, nats_url: str, redis_url: str, n: int) -> None:
    api = KubeApi.from_kubeconfig(kubeconfig)
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    await asyncio.to_thread(api.create, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf", "namespace": ns}, "data": {"k": "0"}}
    await asyncio.to_thread(api.create, cm)
    bare: list[float] = []
    for i in range(n):
        t = time.perf_counter()
        await asyncio.to_thread(api.patch, "ConfigMap", ns, "conf", {"data": {"k": str(i)}}, "merge")
        bare.append(time.perf_counter() - t)

    bus = await Bus.connect(nats_url)
    await bus.ensure_streams()
    journal = Journal(bus)
    redis = aioredis.Redis.from_url(redis_url)
    lock = ALock(redis, prefix=f"bench-{uuid.uuid4().hex[:6]}")
    lease = await lock.acquire_write(ns, "bench", 120)
    tx = f"tx-{uuid.uuid4().hex[:8]}"
    gateway = WriteGateway(
        api,
        lease=lease,
        check_fence=lock.ensure_fence,
        journal_intent=journal.append,
        journal_outcome=journal.append,
        incident_id="bench",
        tx_id=tx,
        attempt=1,
    )
    gated: list[float] = []
    for i in range(n):
        action = Patch(kind="ConfigMap", namespace=ns, name="conf", patch_type="merge", patch={"data": {"k": f"g{i}"}})
        t = time.perf_counter()
        result = await gateway.write(action)
        gated.append(time.perf_counter() - t)
        if not result.ok:
            raise SystemExit(f"gateway write failed: {result.message}")
    # A gateway reuses its own last write's response as the next pre-image of a status-less object (one GET less);
    # the first write to an object always reads it. Measured apart, on objects the gateway has not written yet.
    cold: list[float] = []
    for i in range(min(n, 20)):
        fresh = {**cm, "metadata": {"name": f"conf-{i}", "namespace": ns}}
        await asyncio.to_thread(api.create, fresh)
        action = Patch(kind="ConfigMap", namespace=ns, name=f"conf-{i}", patch_type="merge", patch={"data": {"k": "c"}})
        t = time.perf_counter()
        result = await gateway.write(action)
        cold.append(time.perf_counter() - t)
        if not result.ok:
            raise SystemExit(f"gateway write failed: {result.message}")
    await gateway.flush()
    intents = [r for r in await journal.read(tx) if r.phase == "intent"][-20:]
    t = time.perf_counter()
    for record in reversed(intents):
        for spec in record.undo:
            await gateway.apply_undo(spec)
    undo_s = time.perf_counter() - t

    print(f"bare API write     p50 {pct(bare, 0.5):7.1f} ms  p99 {pct(bare, 0.99):7.1f} ms  (n={n})")
    print(f"gateway write      p50 {pct(gated, 0.5):7.1f} ms  p99 {pct(gated, 0.99):7.1f} ms  (n={n})")
    print(f"overhead ratio     p50 {statistics.median(gated) / statistics.median(bare):.1f}x")
    cold_ratio = statistics.median(cold) / statistics.median(bare)
    print(f"first write to obj p50 {pct(cold, 0.5):7.1f} ms  ratio {cold_ratio:.1f}x  (n={len(cold)})")
    print(f"undo of 20 writes  {undo_s * 1000:.0f} ms ({undo_s * 1000 / max(len(intents), 1):.1f} ms per write)")
    await lock.release(lease)
    await lock.aclose()
    await bus.close()
    await redis.aclose()
    api.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", type=Path, help="a cluster to measure against (default: start an arena)")
    parser.add_argument("-n", type=int, default=50, help="writes per series")
    args = parser.parse_args()
    nats, redis = start_nats(), start_redis()
    arena = None
    workdir = Path(tempfile.mkdtemp(prefix="stratus-bench-gw-"))
    try:
        kubeconfig = args.kubeconfig
        if kubeconfig is None:
            arena, kubeconfig = start_arena(workdir)
        asyncio.run(measure(kubeconfig, nats.url, redis.url, args.n))
    finally:
        if arena is not None:
            arena.terminate()
            arena.wait(10)
        nats.stop()
        redis.stop()


if __name__ == "__main__":
    main()
