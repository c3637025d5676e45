"""For every mitigation scenario: inject -> the documented symptoms -> (persistent faults) a plausible wrong fix does
not pass strict -> the documented mitigation through the Kubernetes API passes strict -> recover leaves a healthy app.
"""

from __future__ import annotations

import pytest

from arena.scenarios.engine import Engine, Registry

from .conftest import healthy

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MITIGATION = [
    "k8s_target_port-misconfig-mitigation-1",
    "k8s_target_port-misconfig-mitigation-2",
    "k8s_target_port-misconfig-mitigation-3",
    "auth_miss_mongodb-mitigation-1",
    "revoke_auth_mongodb-mitigation-1",
    "revoke_auth_mongodb-mitigation-2",
    "user_unregistered_mongodb-mitigation-1",
    "user_unregistered_mongodb-mitigation-2",
    "misconfig_app_hotel_res-mitigation-1",
    "scale_pod_zero_social_net-mitigation-1",
    "assign_to_non_existent_node_social_net-mitigation-1",
    "redeploy_without_PV-mitigation-1",
    "wrong_bin_usage-mitigation-1",
]


@pytest.mark.parametrize("pid", MITIGATION)
def test_mitigation_scenario(pid: str, engine: Engine, registry: Registry) -> None:
    scenario, task = registry.get(pid)
    assert task == "mitigation" and scenario.oracle is not None
    healthy(engine, scenario.app)
    assert engine.check(scenario, "strict").passed, "the healthy app must pass the strict oracle"

    engine.inject(scenario)
    symptoms = engine.wait_symptoms(scenario, timeout=20)
    missing = [f"{r.check}: {r.detail}" for r in symptoms if not r.present]
    assert not missing, f"symptoms missing after injecting {pid}: {missing}"
    strict = engine.check(scenario, "strict")
    assert not strict.passed
    if scenario.oracle.compat_passes_while_faulty:
        compat = engine.check(scenario, "compat")
        assert compat.passed, f"AIOpsLab's quirk should let compat pass with the fault: {compat.reasons}"

    if scenario.persistent and scenario.wrong_fix:
        engine.run_steps(scenario, scenario.wrong_fix)
        wrong = engine.wait_check(scenario, "strict", timeout=3)
        assert not wrong.passed, f"the wrong fix must not pass strict: {wrong.notes}"

    engine.run_steps(scenario, scenario.mitigation)
    verdict = engine.wait_check(scenario, "strict", timeout=30)
    assert verdict.passed, f"strict oracle after the documented fix: {verdict.reasons}"
    assert engine.check(scenario, "compat").passed

    engine.recover(scenario)
    healthy(engine, scenario.app)
