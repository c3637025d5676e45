"""The Astronomy Shop in the arena: it deploys healthy under its locust mix, its data stores behave as state says
(orders reach Kafka and both consumer groups commit them), and its SREGym scenarios run end to end: inject -> every
documented symptom -> the wrong fix does not pass strict -> the documented fix passes strict (durability included)
-> recover leaves a healthy shop.

``SAMPLE`` (one scenario per new capability: valkey, secret-env + postgres, kafka) runs in ``make test`` in seconds;
``STRATUS_TEST_SREGYM_ALL=1`` runs every Astronomy Shop scenario.
"""

from __future__ import annotations

import os
import re

import httpx
import pytest

from arena.apps import APPS
from arena.scenarios.engine import SREGYM_DIR, Engine, Registry, wait_for
from arena.workload.generator import WorkloadSpec

from .conftest import healthy

pytestmark = [pytest.mark.integration]

SHOP = APPS["astronomy-shop"]
SREGYM = Registry([SREGYM_DIR])
SHOP_IDS = [pid for pid in SREGYM.ids() if SREGYM.get(pid)[0].app == "astronomy-shop"]
SAMPLE = [
    "valkey_auth_disruption",
    "secret_rotation_stale_env_credentials_astronomy_shop",
    "kafka_poison_pill_hol_block",
]
PARAMS = SHOP_IDS if os.environ.get("STRATUS_TEST_SREGYM_ALL") == "1" else SAMPLE


def _offsets(engine: Engine, group: str) -> tuple[int, int]:
    """(committed offset, log end offset) of ``group`` on topic orders, read with the broker's own tool."""
    kafka = engine._pod_for(SHOP.namespace, {"opentelemetry.io/name": "kafka"})
    argv = ["kafka-consumer-groups.sh", "--bootstrap-server", "localhost:9092", "--describe", "--group", group]
    out, err, code = engine.kube.exec(SHOP.namespace, kafka, argv)
    assert code == 0, err
    row = next((ln for ln in out.splitlines() if ln.startswith(f"{group} orders ")), None)
    if row is None:  # the group commits nothing before its first poll
        return 0, 0
    current, end = re.split(r"\s+", row)[3:5]
    return int(current), int(end)


def test_the_shop_is_healthy_and_its_orders_flow(engine: Engine) -> None:
    healthy(engine, "astronomy-shop")
    pods = engine.pods(SHOP.namespace)
    assert len(pods) == 20
    report = engine._plane().workload(SHOP.namespace, WorkloadSpec(rate=20, duration_s=5))
    assert report.clean, report.errors
    for path in ("/", "/api/products", "/api/products/OLJCESPC7Z", "/api/recommendations", "/api/data/", "/api/cart"):
        assert engine._plane().request(SHOP.namespace, "GET", path)["status"] == 200, path
    assert engine._plane().request(SHOP.namespace, "GET", "/nope")["status"] == 404  # an unknown page, as in the shop
    before = engine._plane().request(SHOP.namespace, "POST", "/api/checkout")
    assert before["status"] == 200
    # checkout published the orders; accounting and fraud-detection consume and commit them on their next poll
    for group in ("accounting", "fraud-detection"):

        def caught_up(g: str = group) -> bool:
            current, end = _offsets(engine, g)
            return end > 0 and current == end

        wait_for(f"{group} to commit every order", caught_up, 10, interval=0.2)


def test_a_wrong_dns_name_in_env_fails_the_calls_that_use_it(engine: Engine) -> None:
    healthy(engine, "astronomy-shop")
    env = [{"name": "SHIPPING_ADDR", "value": "shiping:8080"}]
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "checkout", "env": env}]}}}}
    engine.kube.patch("Deployment", SHOP.namespace, "checkout", patch, "strategic")
    try:

        def failing() -> bool:
            r = engine._plane().request(SHOP.namespace, "POST", "/api/checkout")
            return r["status"] == 500 and "shiping" in (r["error"] or "")

        wait_for("checkout to fail on the misspelt shipping address", failing, 20, interval=0.25)
        # the rest of the shop does not use that address
        assert engine._plane().request(SHOP.namespace, "GET", "/api/products/OLJCESPC7Z")["status"] == 200
    finally:
        engine.deploy(SHOP)
        healthy(engine, "astronomy-shop")


@pytest.mark.parametrize("pid", PARAMS)
def test_astronomy_shop_scenario(pid: str, engine: Engine) -> None:
    scenario, task = SREGYM.get(pid)
    assert task == "mitigation" and scenario.oracle is not None
    healthy(engine, "astronomy-shop")
    try:
        engine.inject(scenario)
        symptoms = engine.wait_symptoms(scenario, timeout=20)
        missing = [f"{r.check}: {r.detail}" for r in symptoms if not r.present]
        assert not missing, f"symptoms missing after injecting {pid}: {missing}"
        assert not engine.check(scenario, "strict").passed

        engine.run_steps(scenario, scenario.wrong_fix)
        wrong = engine.wait_check(scenario, "strict", timeout=3)
        assert not wrong.passed, f"the wrong fix must not pass strict: {wrong.notes}"

        engine.run_steps(scenario, scenario.mitigation)
        verdict = engine.wait_check(scenario, "strict", timeout=30)
        assert verdict.passed, f"strict oracle after the documented fix: {verdict.reasons}"
    finally:
        engine.recover(scenario)
        try:
            healthy(engine, "astronomy-shop")
        except TimeoutError:
            engine.redeploy(SHOP)
            healthy(engine, "astronomy-shop", 90)


def test_the_astronomy_shop_lite_problems_have_scenarios() -> None:
    lite = {
        "env_variable_shadowing_astronomy_shop",
        "internal_traffic_policy_local_astronomy_shop",
        "valkey_auth_disruption",
        "secret_rotation_stale_env_credentials_astronomy_shop",
        "wrong_dns_policy_astronomy_shop",
        "kafka_poison_pill_hol_block",
        "unschedulable_incorrect_port_assignment",
    }
    assert lite <= set(SHOP_IDS)


def test_consumer_lag_is_exported_as_kafka_exporter_does(engine: Engine) -> None:
    healthy(engine, "astronomy-shop")
    assert engine._plane().request(SHOP.namespace, "POST", "/api/checkout")["status"] == 200
    series = 'kafka_consumergroup_lag{namespace="astronomy-shop",consumergroup="accounting",topic="orders"'

    def exported() -> str | None:
        text = httpx.get(f"{engine._plane().url}/metrics").text
        return text if series in text else None

    text = wait_for("the accounting group's lag series", exported, 10, interval=0.2)
    assert 'kafka_topic_partition_current_offset{namespace="astronomy-shop",topic="orders",partition="0"}' in text
