"""Benchmark of the arena's API with the official Python client: ``python -m arena.bench_api`` or
``stratus arena bench-api``. Prints p50/p99 latency of list (N pods), get, patch and create."""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from kubernetes import client

from arena.server import ArenaServer


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def _time(fn: Callable[[int], object], rounds: int) -> list[float]:
    out = []
    for i in range(rounds):
        t0 = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _hammer(core: Any, ns: str, pods: int, clients: int, seconds: float) -> None:
    """``clients`` threads, each looping list/get/patch as fast as it can: what agents do to the API."""
    lat: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker(w: int) -> None:
        i = 0
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            op = i % 3
            if op == 0:
                core.list_namespaced_pod(ns, _preload_content=False).read()
            elif op == 1:
                core.read_namespaced_pod(f"p-{(w + i) % pods}", ns, _preload_content=False).read()
            else:
                core.patch_namespaced_pod(
                    f"p-{(w + i) % pods}", ns, {"metadata": {"labels": {"w": str(i)}}}, _preload_content=False
                ).read()
            with lock:
                lat.append((time.perf_counter() - t0) * 1000)
            i += 1

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(  # noqa: T201
        f"{clients} concurrent clients, mixed list/get/patch (raw JSON): {len(lat) / seconds:.0f} requests/s, "
        f"p50 {_pct(lat, 50):.2f} ms, p99 {_pct(lat, 99):.2f} ms"
    )


def main(
    url: str | None = None, pods: int = 50, rounds: int = 200, clients: int = 4, seconds: float = 5.0
) -> dict[str, tuple[float, float]]:
    server = None
    if url is None:
        server = ArenaServer().start()
        url = server.url
    cfg = client.Configuration()
    cfg.host = url
    cfg.api_key = {"authorization": "Bearer arena"}
    api = client.ApiClient(cfg)
    core: Any = client.CoreV1Api(api)
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns}})
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                core.read_namespaced_service_account("default", ns)
                break
            except client.ApiException:
                time.sleep(0.05)
        for i in range(pods):
            core.create_namespaced_pod(
                ns,
                {
                    "metadata": {"name": f"p-{i}", "labels": {"app": "bench"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]},
                },
            )
        results: dict[str, list[float]] = {}
        results[f"list {pods} pods"] = _time(lambda i: core.list_namespaced_pod(ns), rounds)
        results[f"list {pods} pods (raw JSON)"] = _time(
            lambda i: core.list_namespaced_pod(ns, _preload_content=False).read(), rounds
        )
        results["get pod"] = _time(lambda i: core.read_namespaced_pod(f"p-{i % pods}", ns), rounds)
        results["patch pod labels"] = _time(
            lambda i: core.patch_namespaced_pod(f"p-{i % pods}", ns, {"metadata": {"labels": {"round": str(i)}}}),
            rounds,
        )
        results["create configmap"] = _time(
            lambda i: core.create_namespaced_config_map(ns, {"metadata": {"name": f"cm-{i}"}, "data": {"k": "v"}}),
            rounds,
        )
        print(f"arena API latency, official Python client, {rounds} requests each ({url})")  # noqa: T201
        print(f"{'operation':<28}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")  # noqa: T201
        summary = {}
        for name, xs in results.items():
            summary[name] = (_pct(xs, 50), _pct(xs, 99))
            print(f"{name:<28}{_pct(xs, 50):>10.2f}{_pct(xs, 99):>10.2f}{statistics.mean(xs):>10.2f}")  # noqa: T201
        if clients:
            _hammer(core, ns, pods, clients, seconds)
        return summary
    finally:
        try:
            core.delete_namespace(ns)
        except client.ApiException:
            pass
        if server is not None:
            server.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", default=None)
    ap.add_argument("--pods", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--clients", type=int, default=4, help="concurrent clients for the load phase (0: skip)")
    ap.add_argument("--seconds", type=float, default=5.0)
    a = ap.parse_args()
    main(a.url, a.pods, a.rounds, a.clients, a.seconds)
