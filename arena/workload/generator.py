"""A wrk2-like open-loop load generator over the arena's request model.

wrk2 sends requests at a constant rate (here with exponential inter-arrival times, ``dist="exp"`` as AIOpsLab runs
it) over a fixed number of connections and measures each latency from the request's *scheduled* time, which corrects
coordinated omission: when responses are slow, later requests queue behind them and their latency includes the wait.
The arena computes responses without sleeping, so a 10 s run at 10 rps takes milliseconds when ``time_scale`` is 0; a
positive ``time_scale`` paces the schedule in real time (scaled), so cluster changes during the run show up in it.
"""

from __future__ import annotations

import asyncio
import heapq
import random
from collections.abc import Callable, Sequence

from pydantic import BaseModel, ConfigDict, Field

from arena.apps import WorkloadRoute
from arena.behaviour.requests import HttpResult

Sender = Callable[[str, str], HttpResult]
"""(method, path) -> the response, as the front end serves it."""


class WorkloadSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rate: float = Field(10.0, gt=0, description="Requests per second (wrk2 -R).")
    duration_s: float = Field(10.0, gt=0, description="Length of the run in seconds (wrk2 -d).")
    connections: int = Field(2, ge=1, description="Open connections (wrk2 -c).")
    threads: int = Field(2, ge=1, description="Threads (wrk2 -t); reported only.")
    dist: str = Field("exp", description="Inter-arrival distribution: exp or fixed.")
    timeout_s: float | None = Field(None, description="Requests slower than this count as timeouts (socket errors).")
    seed: int = Field(1, description="Seed of the schedule and of the request mix.")


class LatencySummary(BaseModel):
    mean_ms: float = Field(description="Mean latency.")
    p50_ms: float = Field(description="Median latency.")
    p90_ms: float = Field(description="90th percentile.")
    p99_ms: float = Field(description="99th percentile.")
    max_ms: float = Field(description="Largest latency.")


class WorkloadReport(BaseModel):
    requests: int = Field(description="Requests completed (including errors).")
    non_2xx: int = Field(description="Responses with a status outside 200-299 (wrk: Non-2xx or 3xx responses).")
    socket_errors: int = Field(description="Connect errors and timeouts (wrk: Socket errors).")
    status_counts: dict[str, int] = Field(description="Responses by HTTP status ('0' is a socket error).")
    latency: LatencySummary = Field(description="Latency measured from each request's scheduled time.")
    requests_per_sec: float = Field(description="Completed requests divided by the duration.")
    errors: dict[str, int] = Field(default_factory=dict, description="Error messages of failed requests, counted.")

    @property
    def clean(self) -> bool:
        return self.requests > 0 and self.non_2xx == 0 and self.socket_errors == 0

    def text(self) -> str:
        lat = self.latency
        return (
            f"{self.requests} requests, {self.non_2xx} non-2xx, {self.socket_errors} socket errors; latency p50 "
            f"{lat.p50_ms:.2f} ms, p90 {lat.p90_ms:.2f} ms, p99 {lat.p99_ms:.2f} ms, max {lat.max_ms:.2f} ms; "
            f"{self.requests_per_sec:.1f} req/s"
        )


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def _schedule(spec: WorkloadSpec, rng: random.Random) -> list[float]:
    times: list[float] = []
    t = 0.0
    while True:
        t += rng.expovariate(spec.rate) if spec.dist == "exp" else 1.0 / spec.rate
        if t > spec.duration_s:
            return times
        times.append(t)


def _pick(routes: Sequence[WorkloadRoute], rng: random.Random) -> WorkloadRoute:
    return rng.choices(list(routes), weights=[r.weight for r in routes])[0]


class _Accumulator:
    def __init__(self, spec: WorkloadSpec) -> None:
        self.spec = spec
        self.free: list[float] = [0.0] * spec.connections
        self.latencies: list[float] = []
        self.status: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.non_2xx = self.socket = 0

    def record(self, scheduled: float, result: HttpResult) -> None:
        start = max(scheduled, heapq.heappop(self.free))
        finish = start + result.latency_ms / 1000
        heapq.heappush(self.free, finish)
        latency_ms = (finish - scheduled) * 1000
        status = result.status
        if self.spec.timeout_s is not None and latency_ms > self.spec.timeout_s * 1000:
            status = 0
        self.latencies.append(latency_ms)
        self.status[str(status)] = self.status.get(str(status), 0) + 1
        if status == 0:
            self.socket += 1
        elif not 200 <= status < 300:
            self.non_2xx += 1
        if result.error and status != 200:
            key = result.error[:160]
            self.errors[key] = self.errors.get(key, 0) + 1

    def report(self) -> WorkloadReport:
        lat = sorted(self.latencies)
        n = len(lat)
        return WorkloadReport(
            requests=n,
            non_2xx=self.non_2xx,
            socket_errors=self.socket,
            status_counts=self.status,
            latency=LatencySummary(
                mean_ms=sum(lat) / n if n else 0.0,
                p50_ms=_percentile(lat, 0.5),
                p90_ms=_percentile(lat, 0.9),
                p99_ms=_percentile(lat, 0.99),
                max_ms=lat[-1] if lat else 0.0,
            ),
            requests_per_sec=n / self.spec.duration_s,
            errors=dict(sorted(self.errors.items(), key=lambda kv: -kv[1])[:10]),
        )


def run_workload(send: Sender, routes: Sequence[WorkloadRoute], spec: WorkloadSpec) -> WorkloadReport:
    """The whole schedule at once, against the cluster as it is now."""
    rng = random.Random(spec.seed)
    acc = _Accumulator(spec)
    for t in _schedule(spec, rng):
        route = _pick(routes, rng)
        acc.record(t, send(route.method, route.path))
    return acc.report()


async def run_workload_paced(
    send: Sender, routes: Sequence[WorkloadRoute], spec: WorkloadSpec, time_scale: float
) -> WorkloadReport:
    """The schedule paced in real time (``time_scale`` seconds of wall clock per workload second)."""
    rng = random.Random(spec.seed)
    acc = _Accumulator(spec)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for t in _schedule(spec, rng):
        delay = t0 + t * time_scale - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        route = _pick(routes, rng)
        acc.record(t, send(route.method, route.path))
    return acc.report()
