"""A-Lock latencies: ``python -m stratus.benchmarks.alock [--redis-url URL] [-n 2000] [--clients 16]``.

Starts its own ``redis-server`` on a free port unless ``--redis-url`` is given (then keys go under a random prefix and
are deleted at the end). Figures, in milliseconds unless stated:

- uncontended: acquire/release of a write lease, of a read lease, renew, and ``ensure_fence`` (the gateway's per-write
  cost), each timed alone, sequentially;
- hand-over: a waiter blocked on a held write lease, from the holder's release call to the waiter's grant (pub/sub
  wake-up vs. polling);
- contended: ``--clients`` tasks looping acquire/release on one scope (writers only, then 1 writer in 4), the wait
  per grant and the grants per second; then the same clients on disjoint scopes.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from stratus.alock import ALock
from stratus.localinfra import LocalServer, start_redis

TTL_S = 30.0


def out(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def row(name: str, seconds: list[float], extra: str = "") -> None:
    ms = [s * 1000 for s in seconds]
    out(
        f"  {name:<34} n={len(ms):<6} p50={pct(ms, 50):7.3f}  p99={pct(ms, 99):7.3f}  "
        f"mean={statistics.fmean(ms):7.3f}  max={max(ms):8.3f}  {extra}"
    )


async def timed(fn: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await fn()
    return time.perf_counter() - start


async def uncontended(lock: ALock, n: int) -> None:
    out("uncontended (one client, sequential), ms:")
    acquire, release, r_acquire, r_release, renew, fence = [], [], [], [], [], []
    for i in range(n):
        t0 = time.perf_counter()
        lease = await lock.acquire_write("bench", f"w{i}", TTL_S)
        t1 = time.perf_counter()
        await lock.ensure_fence("bench", lease.token)
        t2 = time.perf_counter()
        lease = await lock.renew(lease, TTL_S)
        t3 = time.perf_counter()
        await lock.release(lease)
        t4 = time.perf_counter()
        read = await lock.acquire_read("bench", f"r{i}", TTL_S)
        t5 = time.perf_counter()
        await lock.release(read)
        t6 = time.perf_counter()
        acquire.append(t1 - t0)
        fence.append(t2 - t1)
        renew.append(t3 - t2)
        release.append(t4 - t3)
        r_acquire.append(t5 - t4)
        r_release.append(t6 - t5)
    row("acquire_write", acquire)
    row("release (write)", release)
    row("acquire_read", r_acquire)
    row("release (read)", r_release)
    row("renew (write)", renew)
    row("ensure_fence (per gateway write)", fence)
    ping = [await timed(lock.redis.ping) for _ in range(n)]
    row("(reference: PING round trip)", ping)


async def handover(lock: ALock, n: int) -> None:
    out("hand-over: holder's release -> blocked waiter's grant, ms:")
    delays = []
    for i in range(n):
        held = await lock.acquire_write("handover", f"holder{i}", TTL_S)
        waiter = asyncio.create_task(lock.acquire_write("handover", f"waiter{i}", TTL_S, wait_s=10))
        await asyncio.sleep(random.uniform(0.002, 0.02))  # let the waiter block and back off
        released = time.perf_counter()
        await lock.release(held)
        lease = await waiter
        delays.append(time.perf_counter() - released)
        await lock.release(lease)
    row("release -> waiter granted", delays)


async def contended(locks: list[ALock], clients: int, duration: float, *, writer_share: float, disjoint: bool) -> None:
    waits: list[float] = []
    grants = 0
    stop = time.perf_counter() + duration

    async def client(n: int) -> None:
        nonlocal grants
        rng = random.Random(n)
        lock = locks[n % len(locks)]
        scope = f"scope-{n}" if disjoint else "hot"
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            if rng.random() < writer_share:
                lease = await lock.acquire_write(scope, f"c{n}", TTL_S, wait_s=60)
                waits.append(time.perf_counter() - t0)
                await lock.release(lease)
            else:
                read = await lock.acquire_read(scope, f"c{n}", TTL_S, wait_s=60)
                waits.append(time.perf_counter() - t0)
                await lock.release(read)
            grants += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    elapsed = time.perf_counter() - started
    kind = "disjoint scopes" if disjoint else ("writers only" if writer_share >= 1 else "1 writer in 4")
    row(f"{clients} clients, {kind}", waits, f"{grants / elapsed:8.0f} grants/s")


async def run(url: str | None, n: int, clients: int, duration: float) -> None:
    server: LocalServer | None = None
    if url is None:
        server = start_redis()
        url = server.url
    redis = aioredis.Redis.from_url(url)
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    locks = [ALock(redis, prefix=prefix) for _ in range(4)]
    try:
        info = await redis.info("server")
        version = info.get("redis_version")
        out(f"A-Lock benchmark: redis {version} at {url}, prefix {prefix}, python {sys.version.split()[0]}")
        await uncontended(locks[0], n)
        await handover(locks[0], max(n // 10, 20))
        out(f"contended, {duration:g}s each, wait from the acquire call to the grant, ms:")
        await contended(locks, clients, duration, writer_share=1.0, disjoint=False)
        await contended(locks, clients, duration, writer_share=0.25, disjoint=False)
        await contended(locks, clients, duration, writer_share=1.0, disjoint=True)
    finally:
        for lock in locks:
            await lock.aclose()
        if server is None:  # someone else's Redis: leave nothing behind, not even the fence counters
            async for key in redis.scan_iter(match=f"{{{prefix}}}:*", count=1000):
                await redis.delete(key)
        await redis.aclose()
        if server is not None:
            server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stratus.benchmarks.alock", description=__doc__.split("\n")[0])
    parser.add_argument("--redis-url", default=None, help="Use this Redis instead of starting a redis-server.")
    parser.add_argument("-n", type=int, default=2000, help="Iterations of the uncontended loop.")
    parser.add_argument("--clients", type=int, default=16, help="Concurrent clients in the contended runs.")
    parser.add_argument("--duration", type=float, default=3.0, help="Seconds per contended run.")
    args = parser.parse_args(argv)
    asyncio.run(run(args.redis_url, args.n, args.clients, args.duration))


if __name__ == "__main__":
    main()
