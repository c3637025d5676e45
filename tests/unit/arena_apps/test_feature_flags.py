"""Feature flags in the Astronomy Shop: flagd serves the flag file of its mounted ConfigMap as the kubelet projects
it, each service evaluates its flags through flagd, and the flag-guarded code paths (failures, stalls, busy threads,
an unhealthy gRPC health check, a queue overload with a slow consumer) follow from the served value only."""

from __future__ import annotations

import json
from typing import Any

import pytest

from arena.behaviour import cpu, flags
from arena.behaviour.model import AppBehaviour
from arena.behaviour.requests import RequestModel
from arena.behaviour.world import Runtime, World
from arena.scenarios.oracles import values_at

from .minicluster import MiniCluster

NS = "astronomy-shop"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def shop() -> tuple[MiniCluster, Clock]:
    clock = Clock()
    c = MiniCluster(AppBehaviour(Runtime(retry_interval=0, clock=clock)))
    c.deploy(NS)
    c.settle(NS)
    return c, clock


def set_flag(c: MiniCluster, key: str, variant: str) -> None:
    cm = c.get("ConfigMap", NS, "flagd-config")
    assert cm is not None
    doc = json.loads(cm["data"]["demo.flagd.json"])
    doc["flags"][key]["defaultVariant"] = variant
    cm["data"]["demo.flagd.json"] = json.dumps(doc)


def sync(c: MiniCluster, clock: Clock) -> None:
    """Let the kubelet's sync period pass (the mounted ConfigMap is projected again)."""
    clock.now += c.behaviour.rt.volume_sync + 0.1


def get(c: MiniCluster, path: str, method: str = "GET") -> tuple[int, str, float]:
    r = RequestModel(c.behaviour.rt).http(c, NS, "frontend-proxy", 8080, method, path)
    return r.status, r.error or "", r.latency_ms


def pod_of(c: MiniCluster, name: str) -> dict[str, Any]:
    return c.pods(NS, **{"opentelemetry.io/name": name})[0]


def served(c: MiniCluster, key: str) -> Any:
    pod = pod_of(c, "flagd")
    world = World(c, c.behaviour.rt)
    container = pod["spec"]["containers"][0]
    proc = world.process(container, pod)
    assert proc is not None
    return flags.served_flags(world, pod, container, proc).get(key)


def test_a_configmap_edit_reaches_flagd_with_the_kubelets_sync_and_a_subpath_copy_never(
    shop: tuple[MiniCluster, Clock],
) -> None:
    c, clock = shop
    assert served(c, "productCatalogFailure") is False
    set_flag(c, "productCatalogFailure", "on")
    assert served(c, "productCatalogFailure") is False  # the volume still holds the last projection
    assert get(c, "/api/products/OLJCESPC7Z")[0] == 200
    sync(c, clock)
    assert served(c, "productCatalogFailure") is True
    assert any(
        "reloaded" in line and "productCatalogFailure" in line
        for line in c.behaviour.rt.drain(pod_of(c, "flagd"), "flagd")
    )
    # a subPath mount is a copy made when the container started
    pod = pod_of(c, "flagd")
    pod["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "config-ro", "mountPath": "/etc/flagd/demo.flagd.json", "subPath": "demo.flagd.json"}
    ]
    c.start(pod)
    set_flag(c, "productCatalogFailure", "off")
    sync(c, clock)
    assert served(c, "productCatalogFailure") is True
    c.start(pod)  # a new container: a new copy
    assert served(c, "productCatalogFailure") is False


def test_product_catalog_failure_fails_one_product_only(shop: tuple[MiniCluster, Clock]) -> None:
    c, clock = shop
    set_flag(c, "productCatalogFailure", "on")
    sync(c, clock)
    status, error, _ = get(c, "/api/products/OLJCESPC7Z")
    assert status == 500 and "Product Catalog Fail Feature Flag Enabled" in error and "Internal" in error
    assert get(c, "/api/products/66VCHSJNUP")[0] == 200
    assert get(c, "/api/products")[0] == 200 and get(c, "/api/checkout", "POST")[0] == 200
    set_flag(c, "productCatalogFailure", "off")
    sync(c, clock)
    assert get(c, "/api/products/OLJCESPC7Z")[0] == 200


def test_an_unreachable_flag_service_means_every_flag_takes_the_codes_default(shop: tuple[MiniCluster, Clock]) -> None:
    c, clock = shop
    set_flag(c, "paymentFailure", "100%")
    sync(c, clock)
    assert get(c, "/api/checkout", "POST")[0] == 500
    c.get("Service", NS, "flagd")["spec"]["selector"] = {"opentelemetry.io/name": "nobody"}  # type: ignore[index]
    assert get(c, "/api/checkout", "POST")[0] == 200


def test_payment_failure_is_the_share_the_flags_number_says(shop: tuple[MiniCluster, Clock]) -> None:
    c, clock = shop
    set_flag(c, "paymentFailure", "100%")
    sync(c, clock)
    status, error, _ = get(c, "/api/checkout", "POST")
    assert status == 500 and "Payment request failed. Invalid token" in error
    assert any("charge failed" in line for line in c.behaviour.rt.drain(pod_of(c, "payment"), "payment"))
    set_flag(c, "paymentFailure", "50%")
    sync(c, clock)
    failed = sum(get(c, "/api/checkout", "POST")[0] != 200 for _ in range(200))
    assert 60 < failed < 140
    assert get(c, "/api/products/OLJCESPC7Z")[0] == 200


def test_cart_failure_sends_empty_cart_to_a_store_that_does_not_exist(shop: tuple[MiniCluster, Clock]) -> None:
    c, clock = shop
    set_flag(c, "cartFailure", "on")
    sync(c, clock)
    status, error, _ = get(c, "/api/checkout", "POST")
    assert status == 500 and "badhost:1234" in error
    assert get(c, "/api/cart")[0] == 200 and get(c, "/api/cart", "POST")[0] == 200


def test_failed_readiness_probe_turns_carts_grpc_health_to_not_serving(shop: tuple[MiniCluster, Clock]) -> None:
    c, clock = shop
    pod = pod_of(c, "cart")
    container = pod["spec"]["containers"][0]
    probe = {"grpc": {"port": 8080}, "periodSeconds": 5, "failureThreshold": 2}
    assert c.behaviour.probe(c, pod, container, probe) is None
    set_flag(c, "failedReadinessProbe", "on")
    sync(c, clock)
    assert c.behaviour.probe(c, pod, container, probe) == 'service unhealthy (responded with "NOT_SERVING")'
    container["readinessProbe"] = probe
    assert c.behaviour.ready(c, pod, container) is False
    set_flag(c, "failedReadinessProbe", "off")
    sync(c, clock)
    assert c.behaviour.ready(c, pod, container) is True


def test_ad_failure_fails_about_one_request_in_ten(shop: tuple[MiniCluster, Clock]) -> None:
    c, clock = shop
    path = "/api/data/?contextKeys=telescopes"
    assert all(get(c, path)[0] == 200 for _ in range(50))
    set_flag(c, "adFailure", "on")
    sync(c, clock)
    results = [get(c, path) for _ in range(400)]
    failed = [r for r in results if r[0] != 200]
    assert 15 < len(failed) < 70 and all("Unavailable" in r[1] for r in failed)


def test_ad_manual_gc_stalls_every_ad_request(shop: tuple[MiniCluster, Clock]) -> None:
    c, clock = shop
    path = "/api/data/?contextKeys=telescopes"
    assert get(c, path)[2] < 100
    set_flag(c, "adManualGc", "on")
    sync(c, clock)
    latencies = sorted(get(c, path)[2] for _ in range(20))
    assert latencies[10] > 1000 and get(c, "/api/products")[2] < 100
    assert any("garbage collections took" in line for line in c.behaviour.rt.drain(pod_of(c, "ad"), "ad"))


def test_ad_high_cpu_is_throttled_only_under_a_cpu_limit(shop: tuple[MiniCluster, Clock]) -> None:
    c, clock = shop
    path = "/api/data/?contextKeys=telescopes"
    set_flag(c, "adHighCpu", "on")
    sync(c, clock)
    assert get(c, path)[0] == 200
    unlimited = sorted(get(c, path)[2] for _ in range(20))[10]
    assert unlimited < 20  # the busy threads take spare node CPU
    pod = pod_of(c, "ad")
    pod["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "100m"
    c.start(pod)  # a new container: its threads start with the next request
    get(c, path)
    clock.now += 10
    limited = sorted(get(c, path)[2] for _ in range(20))[10]
    assert limited > 50
    text = "\n".join(cpu.cpu_metrics(c, c.behaviour.rt))
    assert 'container_cpu_cfs_throttled_periods_total{namespace="astronomy-shop"' in text
    throttled = [ln for ln in text.splitlines() if ln.startswith("container_cpu_cfs_throttled_periods_total")]
    assert int(throttled[0].rsplit(" ", 1)[1]) >= 99
    set_flag(c, "adHighCpu", "off")
    sync(c, clock)
    get(c, path)  # the first request that sees the flag off stops the threads
    assert sorted(get(c, path)[2] for _ in range(20))[10] < 20


def test_kafka_queue_problems_floods_the_topic_and_slows_the_consumer(shop: tuple[MiniCluster, Clock]) -> None:
    c, clock = shop
    kafka = pod_of(c, "kafka")
    state = c.behaviour.rt.stores[next(k for k in c.behaviour.rt.stores if k.startswith("kafka:"))]

    def lag() -> int:
        return len(state.topics.get("orders", [])) - state.groups.get(("fraud-detection", "orders"), 0)

    def tick(seconds: float) -> None:
        clock.now += seconds
        c.settle(NS, rounds=1)

    assert get(c, "/api/checkout", "POST")[0] == 200
    tick(0.5)
    assert lag() == 0
    set_flag(c, "kafkaQueueProblems", "on")
    sync(c, clock)
    assert get(c, "/api/checkout", "POST")[0] == 200
    assert len(state.topics["orders"]) == 1 + 1 + 100
    tick(0.0)  # the consumer polls: the first record starts its wait
    tick(1.0)
    assert 80 < lag() < 101  # a record a second (0.1 s on the arena's clock)
    assert any("waiting 1 s" in line for line in c.pod_logs(pod_of(c, "fraud-detection")))
    assert kafka is not None
    set_flag(c, "kafkaQueueProblems", "off")
    sync(c, clock)
    tick(0.1)
    assert lag() == 0


def test_a_field_path_descends_into_a_json_document_held_in_a_string() -> None:
    cm = {"data": {"demo.flagd.json": json.dumps({"flags": {"adFailure": {"defaultVariant": "on"}}})}}
    assert values_at(cm, 'data["demo.flagd.json"].flags.adFailure.defaultVariant') == ["on"]
    assert values_at({"data": {"x": "not json"}}, "data.x.y") == [None]
