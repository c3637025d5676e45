"""The SREGym scenario files (catalogue/sregym): inject -> every documented symptom, from state -> a plausible wrong
fix does not pass strict -> the documented fix passes strict (durability included) -> recover leaves a healthy app.

``SAMPLE`` holds one scenario per capability and runs in ``make test`` (about a minute). The whole catalogue is the
bench's job (``stratus bench --suite sregym --policy scripted``); ``STRATUS_TEST_SREGYM_ALL=1`` runs every scenario
here too (tens of minutes: outside the suite's 20-minute budget).
"""

from __future__ import annotations

import os

import pytest

from arena.apps import APPS
from arena.scenarios.engine import CATALOGUE_DIR, Engine, Registry

from .conftest import healthy

pytestmark = [pytest.mark.integration]

SREGYM = Registry([CATALOGUE_DIR / "sregym"])
SAMPLE = {
    "readiness_probe_misconfiguration_social_network": "probes (readiness, Unhealthy, endpoint removal)",
    "namespace_memory_limit": "quota-limitrange (admission, FailedCreate, durability)",
    "service_port_conflict_social_network": "scheduler (hostPort)",
    "persistent_volume_affinity_violation": "scheduler + storage (PV node affinity), select at inject",
    "network_policy_block": "netpol",
    "service_dns_resolution_failure_social_network": "dns (CoreDNS template)",
    "resource_request_too_small": "resources (OOMKill)",
    "missing_configmap_hotel_reservation": "cm-volume (FailedMount)",
    "astronomy_shop_failed_readiness_probe": "feature-flags (flagd's ConfigMap file, gRPC health NOT_SERVING)",
}
ALL = SREGYM.ids()
PARAMS = ALL if os.environ.get("STRATUS_TEST_SREGYM_ALL") == "1" else [pid for pid in ALL if pid in SAMPLE]


@pytest.mark.parametrize("pid", PARAMS)
def test_sregym_scenario(pid: str, engine: Engine) -> None:
    scenario, task = SREGYM.get(pid)
    assert task == "mitigation" and scenario.oracle is not None
    healthy(engine, scenario.app)
    before = engine.wait_check(scenario, "strict", timeout=10)  # the previous scenario's objects may be terminating
    # a fault that builds its own victim (aux-service, custom-service, a pipeline it applies): the victim's objects, and
    # what the oracle reads from them (a topic's messages, a login), do not exist before injection
    builds_victim = any(step.action == "apply" for step in scenario.inject)
    assert before.passed or builds_victim or all("does not exist" in r for r in before.reasons), before.reasons
    try:
        engine.inject(scenario)
        symptoms = engine.wait_symptoms(scenario, timeout=20)
        missing = [f"{r.check}: {r.detail}" for r in symptoms if not r.present]
        assert not missing, f"symptoms missing after injecting {pid}: {missing}"
        assert not engine.check(scenario, "strict").passed

        if scenario.wrong_fix:
            engine.run_steps(scenario, scenario.wrong_fix)
            wrong = engine.wait_check(scenario, "strict", timeout=3)
            assert not wrong.passed, f"the wrong fix must not pass strict: {wrong.notes}"

        engine.run_steps(scenario, scenario.mitigation)
        verdict = engine.wait_check(scenario, "strict", timeout=30)
        assert verdict.passed, f"strict oracle after the documented fix: {verdict.reasons}"
    finally:
        engine.recover(scenario)
        try:
            healthy(engine, scenario.app)
        except TimeoutError:  # leave the next scenario a healthy app even when this one failed
            engine.redeploy(APPS[scenario.app])
            healthy(engine, scenario.app, 90)


def test_the_sample_covers_every_new_capability() -> None:
    caps = {c for pid in SAMPLE for c in SREGYM.get(pid)[0].capabilities}
    for needed in (
        "probes",
        "quota-limitrange",
        "scheduler",
        "netpol",
        "dns",
        "resources",
        "cm-volume",
        "storage",
        "feature-flags",
    ):
        assert needed in caps, needed
