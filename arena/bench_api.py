"""Benchmark of the arena's API with the official Python client: ``python -m arena.bench_api`` or
``stratus arena bench-api``. Prints p50/p99 latency of list (N pods), get, patch and create."""

from __future__ import annotations

import argparse
import statistics
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


def main(url: str | None = None, pods: int = 50, rounds: int = 200) -> dict[str, tuple[float, float]]:
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
    a = ap.parse_args()
    main(a.url, a.pods, a.rounds)
