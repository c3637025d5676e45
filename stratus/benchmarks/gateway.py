"""Benchmark: the cost of the safety pipeline per write, and the time to undo 20 writes.

    python -m stratus.benchmarks.gateway [--kubeconfig PATH] [-n 300] [--rounds 5]

Against a cluster (``--kubeconfig``), or, by default, an arena started as a separate process (``stratus arena
serve``) so the benchmark measures the product's client code, not in-process shortcuts. It starts its own
nats-server and redis-server, and prints p50/p95/p99 of a bare API write (a JSON merge patch of a ConfigMap through
the same client and connection pool), the same write through ``WriteGateway`` (confine + pre-image + dry run + policy
+ JetStream intent + fence + write + outcome), their ratio, the same write as the first one to its object (its
pre-image is read, not remembered), and the time to roll back 20 journaled writes with ``apply_undo``. Both sides are
warmed first and measured in alternating rounds (the machine may be shared); the spread of the per-round ratios is
printed with the overall one.
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


async def measure(kubeconfig: Path, nats_url: str, redis_url: str, n: int, rounds: int) -> None:
    api = KubeApi.from_kubeconfig(kubeconfig)
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    await asyncio.to_thread(api.create, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf", "namespace": ns}, "data": {"k": "0"}}
    await asyncio.to_thread(api.create, cm)
    await asyncio.to_thread(api.create, {**cm, "metadata": {"name": "conf-bare", "namespace": ns}})

    bus = await Bus.connect(nats_url)
    await bus.ensure_streams()
    journal = Journal(bus)
    redis = aioredis.Redis.from_url(redis_url)
    lock = ALock(redis, prefix=f"bench-{uuid.uuid4().hex[:6]}")
    lease = await lock.acquire_write(ns, "bench", 300)
    tx = f"tx-{uuid.uuid4().hex[:8]}"
    gateway = WriteGateway(
        api,
        lease=lease,
        check_fence=lock.ensure_fence,
        journal_intent=journal.append,
        journal_outcome=journal.append,
        journal_batch=journal.append_batch,
        incident_id="bench",
        tx_id=tx,
        attempt=1,
        journal_wire=journal,
        fence_wire=lock.blocking_fence(),
    )
    counter = iter(range(1_000_000_000))

    async def bare_series(count: int, out: list[float]) -> None:
        # The same write with no safety: a JSON merge patch of a ConfigMap through the same client, on a ConfigMap of
        # its own (so the gateway's object is written by the gateway only).
        for _ in range(count):
            body = {"data": {"k": str(next(counter))}}
            t = time.perf_counter()
            await asyncio.to_thread(api.patch, "ConfigMap", ns, "conf-bare", body, "merge")
            out.append(time.perf_counter() - t)

    async def gated_series(count: int, out: list[float]) -> None:
        for _ in range(count):
            patch = {"data": {"k": f"g{next(counter)}"}}
            action = Patch(kind="ConfigMap", namespace=ns, name="conf", patch_type="merge", patch=patch)
            t = time.perf_counter()
            result = await gateway.write(action)
            out.append(time.perf_counter() - t)
            if not result.ok:
                raise SystemExit(f"gateway write failed: {result.message}")
        # A write returns once its outcome record is sent; the next write waits for its acknowledgement. The series'
        # last outcome is waited for here and charged to the last write, so every write pays for its outcome.
        t = time.perf_counter()
        await gateway.flush()
        out[-1] += time.perf_counter() - t

    # Warm both sides (connections, the journal's last sequence, caches), then measure in alternating rounds so that
    # load from other processes on the machine falls on both series alike.
    await bare_series(10, [])
    await gated_series(10, [])
    bare: list[float] = []
    gated: list[float] = []
    per_round: list[float] = []
    for r in range(rounds):
        size = n // rounds + (1 if r < n % rounds else 0)
        b: list[float] = []
        g: list[float] = []
        await bare_series(size, b)
        await gated_series(size, g)
        bare += b
        gated += g
        per_round.append(statistics.median(g) / statistics.median(b))
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

    def line(label: str, values: list[float]) -> str:
        p50, p95, p99 = pct(values, 0.5), pct(values, 0.95), pct(values, 0.99)
        return f"{label:18s} p50 {p50:6.2f} ms  p95 {p95:6.2f} ms  p99 {p99:6.2f} ms"

    print(f"{line('bare API write', bare)}  (n={len(bare)})")
    print(f"{line('gateway write', gated)}  (n={len(gated)})")
    print(
        f"overhead ratio     p50 {statistics.median(gated) / statistics.median(bare):.2f}x  "
        f"p95 {pct(gated, 0.95) / pct(bare, 0.95):.2f}x  "
        f"(per round p50 {min(per_round):.2f}x..{max(per_round):.2f}x over {rounds} rounds)"
    )
    cold_ratio = statistics.median(cold) / statistics.median(bare)
    print(f"first write to obj p50 {pct(cold, 0.5):7.1f} ms  ratio {cold_ratio:.1f}x  (n={len(cold)})")
    print(f"undo of 20 writes  {undo_s * 1000:.0f} ms ({undo_s * 1000 / max(len(intents), 1):.1f} ms per write)")
    journal.close()
    await lock.release(lease)
    await lock.aclose()
    await bus.close()
    await redis.aclose()
    api.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", type=Path, help="a cluster to measure against (default: start an arena)")
    parser.add_argument("-n", type=int, default=300, help="writes per side (bare and gateway)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds the writes are split into")
    args = parser.parse_args()
    nats, redis = start_nats(), start_redis()
    arena = None
    workdir = Path(tempfile.mkdtemp(prefix="stratus-bench-gw-"))
    try:
        kubeconfig = args.kubeconfig
        if kubeconfig is None:
            arena, kubeconfig = start_arena(workdir)
        asyncio.run(measure(kubeconfig, nats.url, redis.url, args.n, max(1, args.rounds)))
    finally:
        if arena is not None:
            arena.terminate()
            arena.wait(10)
        nats.stop()
        redis.stop()


if __name__ == "__main__":
    main()
