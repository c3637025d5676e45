"""The queue/retry load model: rate serves through a queue drained at its QPS limit, search retries each call on its
deadline. A steady client below the limit leaves the queue empty; a burst fills it past the deadline, and the
retries (8 req/s x 3 attempts > 20 QPS) keep it full once the burst is gone. A higher limit or fewer attempts
drains it and survives the next burst; a restart empties it only until the next burst."""

from __future__ import annotations

import copy
import functools
from typing import Any

import pytest

from arena.apps.catalogue import RetryPolicy
from arena.behaviour import queueing
from arena.behaviour.model import AppBehaviour
from arena.behaviour.requests import RequestModel, Span
from arena.behaviour.world import Runtime, World
from tests.unit.arena_apps.minicluster import MiniCluster

NS = "test-hotel-reservation"
IMAGE = "ghcr.io/sregym/hotel-reservation:latest"
URL = "http://frontend:5000/hotels?inDate=2015-04-09&outDate=2015-04-10"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@functools.cache
def _settled() -> tuple[MiniCluster, Clock]:
    clock = Clock()
    c = MiniCluster(AppBehaviour(Runtime(retry_interval=0, clock=clock)))
    c.deploy("hotel-reservation")
    c.settle(NS)
    return c, clock


@pytest.fixture
def hotel() -> tuple[MiniCluster, Clock]:
    c, clock = _settled()
    fresh = Clock()
    fresh.now = clock.now
    out = copy.deepcopy(c)
    out.behaviour.rt.clock = fresh
    return out, fresh


def _pod(c: MiniCluster, service: str) -> dict[str, Any]:
    return c.pods(NS, **{"io.kompose.service": service})[0]


def _restart(c: MiniCluster, service: str, **env: str) -> None:
    """The pod runs SREGym's build with ``env`` (merged by name) from a new container instance."""
    pod = _pod(c, service)
    container = pod["spec"]["containers"][0]
    container["image"] = IMAGE
    have = {e["name"]: e for e in container.get("env") or []}
    for k, v in env.items():
        have[k] = {"name": k, "value": v}
    container["env"] = list(have.values())
    c.start(pod)


def _vulnerable(c: MiniCluster) -> None:
    _restart(c, "rate", RATE_BACKEND_QPS_LIMIT="20", RATE_QUEUE_CAPACITY="256")
    _restart(c, "search", RATE_RPC_TIMEOUT_MS="750", RATE_RPC_MAX_ATTEMPTS="3", RATE_RPC_INITIAL_BACKOFF_MS="50")


def _client(c: MiniCluster, name: str, every: str) -> None:
    c.put(
        {
            "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": {"app": name}},
            "spec": {"containers": [{"name": "load", "image": "busybox:1.36", "command": ["watch", "-n", every, URL]}]},
            "status": {"phase": "Pending", "podIP": "10.244.9.9", "containerStatuses": []},
        }
    )
    pod = c.get("Pod", NS, name)
    assert pod is not None
    c.start(pod)


def _run(c: MiniCluster, clock: Clock, seconds: float, step: float = 0.5) -> queueing.QueueState:
    """Let the arena's clock run, the kubelet passing over rate every ``step``; the queue as it is then."""
    pod = _pod(c, "rate")
    container = pod["spec"]["containers"][0]
    for _ in range(int(seconds / step)):
        clock.now += step
        lines = c.behaviour.periodic_logs(c, pod, container)
        c.logs.setdefault((pod["metadata"]["name"], container["name"]), []).extend(lines)
    world = World(c, c.behaviour.rt)
    proc = world.serving(pod, container)
    assert proc is not None
    return queueing.advance(world, pod, container, proc)


def _statuses(c: MiniCluster, n: int = 10, traces: list[list[Span]] | None = None) -> list[int]:
    model = RequestModel(c.behaviour.rt, on_trace=traces.append if traces is not None else None)
    return [model.http(c, NS, "frontend", 5000, "GET", "/hotels?inDate=2015-04-09").status for _ in range(n)]


def _burst(c: MiniCluster, clock: Clock, seconds: float = 4.0) -> None:
    _client(c, "burst", "0.03125")  # +32 req/s: 40 in all
    _run(c, clock, seconds)
    c.delete("Pod", NS, "burst")


def test_policy_and_limits_fall_back_to_the_baked_values(hotel: tuple[MiniCluster, Clock]) -> None:
    c, _ = hotel
    _restart(c, "rate", RATE_BACKEND_QPS_LIMIT="zero", RATE_QUEUE_CAPACITY="-3")
    world = World(c, c.behaviour.rt)
    pod = _pod(c, "rate")
    proc = world.serving(pod, pod["spec"]["containers"][0])
    assert proc is not None
    assert queueing.limits(proc) == (500.0, 256)
    retry = RetryPolicy(timeout_ms="{T}", max_attempts="{N}", initial_backoff_ms="50", error="e", log="l")
    proc.config.update({"T": "1000", "N": "2"})
    pol = queueing.policy(retry, proc)
    assert (pol.timeout_ms, pol.attempts, pol.backoff(1), pol.backoff(2)) == (1000.0, 2, 50.0, 100.0)


def test_a_steady_client_below_the_limit_keeps_the_queue_empty(hotel: tuple[MiniCluster, Clock]) -> None:
    c, clock = hotel
    _vulnerable(c)
    _client(c, "steady", "0.125")
    st = _run(c, clock, 10)
    assert st.depth == 0.0
    assert sum(a.rate for a in st.arrivals) == pytest.approx(8.0)
    assert set(_statuses(c)) == {200}


def test_a_burst_leaves_a_self_sustaining_retry_storm(hotel: tuple[MiniCluster, Clock]) -> None:
    c, clock = hotel
    _vulnerable(c)
    _client(c, "steady", "0.125")
    _run(c, clock, 5)
    _burst(c, clock)
    st = _run(c, clock, 60)
    assert st.depth == 256, "8 req/s x 3 attempts = 24 > 20: the queue stays full once the burst is gone"
    assert sum(a.rate for a in st.arrivals) == pytest.approx(8.0)
    traces: list[list[Span]] = []
    assert _statuses(c, traces=traces).count(500) >= 8
    retried = [sp for t in traces for sp in t if sp.kind == "client" and sp.operation == "GetRates"]
    assert any(sp.error and sp.duration_us == 750_000 for sp in retried), "an attempt past its deadline is an error"
    assert max(sum(1 for sp in t if sp.kind == "client" and sp.operation == "GetRates") for t in traces) == 3
    search = _pod(c, "search")
    logs = c.behaviour.rt.drain(search, "hotel-reserv-search")
    assert any("downstream request failed dependency=rate" in line for line in logs)
    rate_logs = c.pod_logs(_pod(c, "rate"))
    assert any("request queue full" in line for line in rate_logs)
    metrics = "\n".join(queueing.queue_metrics(c, World(c, c.behaviour.rt)))
    assert 'rate_queue_depth{namespace="test-hotel-reservation"' in metrics
    assert "rate_backend_qps_limit" in metrics and "search_rate_attempts_total" in metrics
    counters = next(iter(st.counters.values()))
    assert counters.failures > counters.successes


def test_the_documented_fix_drains_and_survives_the_next_burst(hotel: tuple[MiniCluster, Clock]) -> None:
    c, clock = hotel
    _vulnerable(c)
    _client(c, "steady", "0.125")
    _burst(c, clock)
    assert _run(c, clock, 10).depth == 256
    _restart(c, "rate", RATE_BACKEND_QPS_LIMIT="50")
    _restart(c, "search", RATE_RPC_TIMEOUT_MS="1000", RATE_RPC_MAX_ATTEMPTS="2")
    assert _run(c, clock, 5).depth == 0.0
    _burst(c, clock)
    assert _run(c, clock, 10).depth == 0.0, "40 req/s stays below a limit of 50"
    assert set(_statuses(c)) == {200}


def test_fewer_attempts_alone_drain_the_queue_slowly(hotel: tuple[MiniCluster, Clock]) -> None:
    c, clock = hotel
    _vulnerable(c)
    _client(c, "steady", "0.125")
    _burst(c, clock)
    assert _run(c, clock, 10).depth == 256
    _restart(c, "search", RATE_RPC_MAX_ATTEMPTS="2")  # rate keeps its queue: 16 attempts/s against 20
    assert 0 < _run(c, clock, 30).depth < 256
    assert _run(c, clock, 60).depth == 0.0
    assert set(_statuses(c)) == {200}


def test_a_restart_empties_the_queue_until_the_next_burst(hotel: tuple[MiniCluster, Clock]) -> None:
    c, clock = hotel
    _vulnerable(c)
    _client(c, "steady", "0.125")
    _burst(c, clock)
    assert _run(c, clock, 10).depth == 256
    _restart(c, "rate")
    assert _run(c, clock, 10).depth == 0.0
    assert set(_statuses(c)) == {200}
    _burst(c, clock)
    assert _run(c, clock, 10).depth == 256


def test_a_second_rate_replica_shares_the_load(hotel: tuple[MiniCluster, Clock]) -> None:
    c, clock = hotel
    _vulnerable(c)
    rate = _pod(c, "rate")
    twin = copy.deepcopy(rate)
    twin["metadata"]["name"] = "rate-twin"
    twin["metadata"].pop("uid")
    twin["status"]["podIP"] = "10.244.9.10"
    c.put(twin)
    _client(c, "steady", "0.125")
    st = _run(c, clock, 5)
    assert sum(a.rate for a in st.arrivals) == pytest.approx(4.0)
